//! API errors. `/api/v1` answers `{"error": {"code": "<stable code>", "message": "..."}}`; the
//! ScheduleZero-compatible routes answer `{"error": {"code": <HTTP status>, "message": "..."}}`.
//! A 5xx never carries internal error text: that goes to the log.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use serde::{Deserialize, Serialize};

pub use super::code::ErrorCode;
use crate::schedule::TriggerError;
use crate::service::ScheduleError;
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
    /// A stable code clients can match on; it decides the HTTP status.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The wire shape.
    pub shape: Shape,
    /// Seconds a client should wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// The body of every `/api/v1` error.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

/// The body of an error of ScheduleZero's routes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompatErrorBody {
    /// The error.
    pub error: CompatErrorDetail,
}

/// An error of ScheduleZero's routes: the HTTP status as its code.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompatErrorDetail {
    /// The HTTP status.
    pub code: u16,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with the `/api/v1` shape.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            shape: Shape::V1,
            retry_after: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 507 `storage_full`: nothing was written, for lack of space (`why`); try again later.
    pub fn storage_full(why: &str) -> Self {
        let mut e = Self::new(
            ErrorCode::StorageFull,
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
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 500 `internal`; the cause goes to the log, not to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(ErrorCode::Internal, "internal error; see the host's log")
    }

    /// The body of an `/api/v1` error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(id) => Self::new(
                ErrorCode::ScheduleExists,
                ScheduleError::Exists(id).to_string(),
            ),
            e if e.is_full() => {
                tracing::warn!(error = %e, "a write failed: the disk is full");
                Self::storage_full("the database's disk is full")
            }
            StoreError::Closed => Self::new(ErrorCode::ShuttingDown, "the host is shutting down"),
            other => Self::internal(&other),
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        Self::new(ErrorCode::InvalidTrigger, e.to_string())
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        let e = match e {
            ScheduleError::Store(e) => return e.into(),
            ScheduleError::StorageFull { .. } => return Self::storage_full(&e.to_string()),
            e => e,
        };
        let code = match &e {
            ScheduleError::Store(_) | ScheduleError::StorageFull { .. } => ErrorCode::Internal,
            ScheduleError::InvalidId => ErrorCode::InvalidRequest,
            ScheduleError::UnknownHandler(_) => ErrorCode::UnknownHandler,
            ScheduleError::UnknownMethod { .. } => ErrorCode::UnknownMethod,
            ScheduleError::InvalidParams(_) => ErrorCode::InvalidParams,
            ScheduleError::InvalidTrigger(_) | ScheduleError::PastDate(_) => {
                ErrorCode::InvalidTrigger
            }
            ScheduleError::InvalidPolicy(_) => ErrorCode::InvalidPolicy,
            ScheduleError::NotFound(_) => ErrorCode::ScheduleNotFound,
            ScheduleError::Exists(_) => ErrorCode::ScheduleExists,
            ScheduleError::OverlapLimit(_) => ErrorCode::OverlapLimit,
            ScheduleError::RunExists(_) => ErrorCode::RunExists,
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match self.shape {
            Shape::V1 => (status, axum::Json(self.body())).into_response(),
            Shape::Compat => (
                status,
                axum::Json(CompatErrorBody {
                    error: CompatErrorDetail {
                        code: status.as_u16(),
                        message: self.message,
                    },
                }),
            )
                .into_response(),
        };
        if let Some(secs) = self.retry_after
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
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

impl ApiError {
    /// The same error in the shape of the route at `path`: the one place that decides it.
    pub fn for_path(mut self, path: &str) -> Self {
        self.shape = shape_for(path);
        self
    }
}

/// No route at this path.
pub async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, format!("no route {}", uri.path())).for_path(uri.path())
}

/// The route exists, not with this method.
pub async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not take this method", uri.path()),
    )
    .for_path(uri.path())
}
