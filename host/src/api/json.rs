//! Request bodies and query strings read by the API itself, so that every way they can be wrong
//! (too large, not JSON, wrong types, unknown fields) maps to a stable code and a clear message.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};

/// The raw body as JSON; a body over the limit is 413.
#[derive(Debug)]
pub struct Body(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let path = req.uri().path().to_owned();
        let fix = |e: ApiError| e.for_path(&path);
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                fix(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than this host accepts (server.max_body_bytes)",
                ))
            } else {
                fix(ApiError::bad_request(format!("cannot read the body: {r}")))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(serde_json::Value::Null));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            fix(ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {e}"),
            ))
        })
    }
}

/// Reads a JSON value into a typed request (unknown fields are refused where the type says so).
pub fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    crate::json::read(value).map_err(ApiError::bad_request)
}

/// A query string read into a typed request; bad values are 400 `invalid_query`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_like(query).map(Self).map_err(|message| {
            let e = ApiError::new(ErrorCode::InvalidQuery, message);
            e.for_path(parts.uri.path())
        })
    }
}

fn serde_urlencoded_like<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|e| format!("bad query string: {e}"))?,
    )
    .map(|q| q.0)
    .map_err(|e| e.body_text())
}
