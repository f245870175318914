//! API errors. `/api/v1` answers `{"error": {"code": "<stable code>", "message": "..."}}`; the
//! ScheduleZero-compatible routes answer `{"error": {"code": <HTTP status>, "message": "..."}}`.
//! A 5xx never carries internal error text: that goes to the log.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::schedule::TriggerError;
use crate::store::StoreError;

/// Which shape an error takes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/api/v1`: a string code.
    V1,
    /// ScheduleZero's routes: the HTTP status as the code.
    Compat,
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code clients can match on.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The wire shape.
    pub shape: Shape,
    /// Seconds a client should wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the `/api/v1` shape.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            shape: Shape::V1,
            retry_after: None,
        }
    }

    /// 507 `storage_full`: nothing was written, for lack of space (`why`); try again later.
    pub fn storage_full(why: &str) -> Self {
        let mut e = Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            format!(
                "the host is out of storage space, nothing was written: {why}; try again once space is freed"
            ),
        );
        e.retry_after = Some(crate::storage::RETRY_AFTER_SECS);
        e
    }

    /// The same error in the ScheduleZero shape.
    pub fn compat(mut self) -> Self {
        self.shape = Shape::Compat;
        self
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 with a code naming what was not found.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 500 `internal`; the cause goes to the log, not to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the host's log",
        )
    }

    /// 400 `invalid_trigger`.
    pub fn trigger(e: &TriggerError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_trigger", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(id) => Self::new(
                StatusCode::CONFLICT,
                "schedule_exists",
                format!(
                    "a schedule with id `{id}` already exists (send conflict_policy `replace` or `do_nothing` to change that)"
                ),
            ),
            e if e.is_full() => {
                tracing::warn!(error = %e, "a write failed: the disk is full");
                Self::storage_full("the database's disk is full")
            }
            StoreError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the host is shutting down",
            ),
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.shape {
            Shape::V1 => json!({ "error": { "code": self.code, "message": self.message } }),
            Shape::Compat => {
                json!({ "error": { "code": self.status.as_u16(), "message": self.message } })
            }
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The shape for a path: ScheduleZero's outside `/api/v1`.
pub fn shape_for(path: &str) -> Shape {
    if path == "/api/v1" || path.starts_with("/api/v1/") {
        Shape::V1
    } else {
        Shape::Compat
    }
}

fn in_shape(e: ApiError, path: &str) -> ApiError {
    match shape_for(path) {
        Shape::V1 => e,
        Shape::Compat => e.compat(),
    }
}

/// No route at this path.
pub async fn route_not_found(uri: Uri) -> ApiError {
    in_shape(
        ApiError::not_found("route_not_found", format!("no route {}", uri.path())),
        uri.path(),
    )
}

/// The route exists, not with this method.
pub async fn method_not_allowed(uri: Uri) -> ApiError {
    in_shape(
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} does not take this method", uri.path()),
        ),
        uri.path(),
    )
}
