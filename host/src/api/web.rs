//! The dashboard: `web/index.html` at `/` and the files of `web/assets/` under `/assets/`, all
//! embedded in the binary at build time, so a host on a machine without internet serves the same
//! dashboard it was built with. The page and its files are open without a token (they hold no
//! data); the page asks for the API token when the API answers 401 and sends it with every call.
//! A strict content security policy allows nothing but this origin.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

use super::AppState;
use super::error::ApiError;

/// The dashboard's page.
const INDEX: &str = include_str!("../../../web/index.html");

/// What the page may load and reach: this origin only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self'; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The files under `web/assets/`.
#[derive(Embed)]
#[folder = "../web/assets/"]
struct Assets;

/// The dashboard's routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

/// Whether a path is the dashboard's (open without a token).
pub fn is_dashboard(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/")
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let file = Assets::get(&path).ok_or_else(|| {
        ApiError::new(
            super::error::ErrorCode::AssetNotFound,
            format!("no dashboard file `{path}`"),
        )
    })?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let etag = HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(&e))?;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes());
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let mime = HeaderValue::from_str(file.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((common, [(header::CONTENT_TYPE, mime)], file.data).into_response())
}
