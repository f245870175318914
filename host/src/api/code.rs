//! Every stable error code of the API, declared once with its HTTP status and meaning. Clients
//! match on the code; README's table and the OpenAPI document's `ErrorCode` list come from (or
//! are checked against) this enum.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// A stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON.
    InvalidJson,
    /// The request is readable but wrong (a missing or mistyped field, an unknown field).
    InvalidRequest,
    /// A query parameter is wrong.
    InvalidQuery,
    /// The trigger cannot be used (the message says which field and why).
    InvalidTrigger,
    /// The policy cannot be used (the message names the field).
    InvalidPolicy,
    /// The params do not match the method's JSON Schema.
    InvalidParams,
    /// The handler has no such method.
    UnknownMethod,
    /// A token is needed and was missing or wrong.
    Unauthorized,
    /// No handler has this id.
    UnknownHandler,
    /// No schedule has this id.
    ScheduleNotFound,
    /// No run has this id.
    RunNotFound,
    /// No execution record has this id.
    ExecutionNotFound,
    /// No plugin has this name.
    PluginNotFound,
    /// The dashboard has no such file.
    AssetNotFound,
    /// No route at this path.
    RouteNotFound,
    /// The route does not take this method.
    MethodNotAllowed,
    /// A schedule with this id exists (conflict policy `error`).
    ScheduleExists,
    /// The schedule has `max_running` runs in progress; the run was recorded as skipped.
    OverlapLimit,
    /// The schedule has a run at this very instant; try again.
    RunExists,
    /// The handler is a plugin: remove its file instead.
    HandlerIsPlugin,
    /// The grant is not for something the plugin requests, or is not usable as given.
    GrantRefused,
    /// The plugin has no such grant.
    GrantNotFound,
    /// The body is larger than `server.max_body_bytes`.
    PayloadTooLarge,
    /// A call made at once failed (ScheduleZero's run-now; the message has the call's code).
    CallFailed,
    /// Something failed inside the host; the log has the details.
    Internal,
    /// The host is shutting down.
    ShuttingDown,
    /// Free space is below `server.min_free_space`: nothing was written; try again later.
    StorageFull,
}

impl ErrorCode {
    /// Every code, in the order of README's table.
    pub const ALL: [Self; 27] = [
        Self::InvalidJson,
        Self::InvalidRequest,
        Self::InvalidQuery,
        Self::InvalidTrigger,
        Self::InvalidPolicy,
        Self::InvalidParams,
        Self::UnknownMethod,
        Self::Unauthorized,
        Self::UnknownHandler,
        Self::ScheduleNotFound,
        Self::RunNotFound,
        Self::ExecutionNotFound,
        Self::PluginNotFound,
        Self::AssetNotFound,
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::ScheduleExists,
        Self::OverlapLimit,
        Self::RunExists,
        Self::HandlerIsPlugin,
        Self::GrantRefused,
        Self::GrantNotFound,
        Self::PayloadTooLarge,
        Self::CallFailed,
        Self::Internal,
        Self::ShuttingDown,
        Self::StorageFull,
    ];

    /// The HTTP status answered with it.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidJson
            | Self::InvalidRequest
            | Self::InvalidQuery
            | Self::InvalidTrigger
            | Self::InvalidPolicy
            | Self::InvalidParams
            | Self::UnknownMethod => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::UnknownHandler
            | Self::ScheduleNotFound
            | Self::RunNotFound
            | Self::ExecutionNotFound
            | Self::PluginNotFound
            | Self::GrantNotFound
            | Self::AssetNotFound
            | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ScheduleExists | Self::OverlapLimit | Self::RunExists | Self::HandlerIsPlugin => {
                StatusCode::CONFLICT
            }
            Self::GrantRefused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::CallFailed | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// The code as it is on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidTrigger => "invalid_trigger",
            Self::InvalidPolicy => "invalid_policy",
            Self::InvalidParams => "invalid_params",
            Self::UnknownMethod => "unknown_method",
            Self::Unauthorized => "unauthorized",
            Self::UnknownHandler => "unknown_handler",
            Self::ScheduleNotFound => "schedule_not_found",
            Self::RunNotFound => "run_not_found",
            Self::ExecutionNotFound => "execution_not_found",
            Self::PluginNotFound => "plugin_not_found",
            Self::AssetNotFound => "asset_not_found",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ScheduleExists => "schedule_exists",
            Self::OverlapLimit => "overlap_limit",
            Self::RunExists => "run_exists",
            Self::HandlerIsPlugin => "handler_is_plugin",
            Self::GrantRefused => "grant_refused",
            Self::GrantNotFound => "grant_not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::CallFailed => "call_failed",
            Self::Internal => "internal",
            Self::ShuttingDown => "shutting_down",
            Self::StorageFull => "storage_full",
        }
    }

    /// What it means, for README's table.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::InvalidJson => "the body is not valid JSON",
            Self::InvalidRequest => {
                "the request is readable but wrong: a missing, mistyped or unknown field"
            }
            Self::InvalidQuery => "a query parameter is wrong",
            Self::InvalidTrigger => {
                "the trigger cannot be used; the message says which field and why"
            }
            Self::InvalidPolicy => "the policy cannot be used; the message names the field",
            Self::InvalidParams => {
                "the params do not match the method's JSON Schema (where and why)"
            }
            Self::UnknownMethod => {
                "the handler has no such method (the message lists those it has)"
            }
            Self::Unauthorized => "a token is needed and was missing or wrong",
            Self::UnknownHandler => "no handler has this id",
            Self::ScheduleNotFound => "no schedule has this id",
            Self::RunNotFound => "no run has this id",
            Self::ExecutionNotFound => "no execution record has this id",
            Self::PluginNotFound => "no plugin has this name",
            Self::AssetNotFound => "the dashboard has no such file",
            Self::RouteNotFound => "no route at this path",
            Self::MethodNotAllowed => "the route does not take this HTTP method",
            Self::ScheduleExists => "a schedule with this id exists (conflict policy `error`)",
            Self::OverlapLimit => {
                "the schedule has `max_running` runs in progress; the run was recorded as skipped"
            }
            Self::RunExists => "the schedule has a run at this very instant; try again",
            Self::HandlerIsPlugin => "the handler is a plugin: remove its file instead",
            Self::GrantRefused => {
                "the grant is not for something the plugin requests, or not usable as given (the message says which)"
            }
            Self::GrantNotFound => "the plugin has no such grant",
            Self::PayloadTooLarge => "the body is larger than `server.max_body_bytes`",
            Self::CallFailed => {
                "a call made at once failed (ScheduleZero's run-now; the message has the call's code)"
            }
            Self::Internal => "something failed inside the host; its log has the details",
            Self::ShuttingDown => "the host is shutting down",
            Self::StorageFull => {
                "free space is below `server.min_free_space`: nothing was written; retry after `Retry-After`"
            }
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_reads_back_as_itself() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire, code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(wire).unwrap(), code);
            assert!(!code.meaning().is_empty());
        }
    }
}
