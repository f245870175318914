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
    /// The route needs the admin token (`server.admin_token`), or is closed without one.
    Forbidden,
    /// Not a registry reference, or a tag that is not a semver version.
    BadReference,
    /// The registry has no such artifact or tag.
    ArtifactNotFound,
    /// The registry cannot be reached, answered garbage, or the download broke off; nothing changed.
    RegistryUnavailable,
    /// The bytes are not what their digest says (tampered, or cut short); nothing changed.
    DigestMismatch,
    /// The component is larger than `pool.max_component_size`; it was not downloaded.
    ArtifactTooLarge,
    /// The artifact or file is not a WebAssembly component.
    NotAComponent,
    /// A component this host cannot run: another world, a newer contract, no name or version.
    UnsupportedComponent,
    /// The component is unsigned, its signature does not hold, or its signer is not trusted for its name.
    SignatureRefused,
    /// Installing needs `consent: true` with the digest that was reviewed, and the bytes must still be those.
    ConsentRequired,
    /// The plugin was not installed from the catalog (it is not in the lockfile).
    NotInstalled,
    /// No newer version to update to, or no earlier one to roll back to.
    NothingToDo,
    /// The component did not compile, link or describe itself; nothing changed.
    InstallFailed,
    /// The plugins folder, the lockfile or the kept components could not be read or written.
    CatalogStorage,
}

impl ErrorCode {
    /// Every code, in the order of README's table.
    pub const ALL: [Self; 41] = [
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
        Self::Forbidden,
        Self::BadReference,
        Self::ArtifactNotFound,
        Self::RegistryUnavailable,
        Self::DigestMismatch,
        Self::ArtifactTooLarge,
        Self::NotAComponent,
        Self::UnsupportedComponent,
        Self::SignatureRefused,
        Self::ConsentRequired,
        Self::NotInstalled,
        Self::NothingToDo,
        Self::InstallFailed,
        Self::CatalogStorage,
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
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadReference => StatusCode::BAD_REQUEST,
            Self::ArtifactNotFound => StatusCode::NOT_FOUND,
            Self::RegistryUnavailable => StatusCode::BAD_GATEWAY,
            Self::DigestMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ArtifactTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotAComponent => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedComponent => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SignatureRefused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ConsentRequired => StatusCode::CONFLICT,
            Self::NotInstalled => StatusCode::NOT_FOUND,
            Self::NothingToDo => StatusCode::CONFLICT,
            Self::InstallFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CatalogStorage => StatusCode::INTERNAL_SERVER_ERROR,
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
            Self::Forbidden => "forbidden",
            Self::BadReference => "bad_reference",
            Self::ArtifactNotFound => "artifact_not_found",
            Self::RegistryUnavailable => "registry_unavailable",
            Self::DigestMismatch => "digest_mismatch",
            Self::ArtifactTooLarge => "artifact_too_large",
            Self::NotAComponent => "not_a_component",
            Self::UnsupportedComponent => "unsupported_component",
            Self::SignatureRefused => "signature_refused",
            Self::ConsentRequired => "consent_required",
            Self::NotInstalled => "not_installed",
            Self::NothingToDo => "nothing_to_do",
            Self::InstallFailed => "install_failed",
            Self::CatalogStorage => "catalog_storage",
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
            Self::Forbidden => {
                "the route needs the admin token (`server.admin_token`), or is closed without one"
            }
            Self::BadReference => "not a registry reference, or a tag that is not a semver version",
            Self::ArtifactNotFound => "the registry has no such artifact or tag",
            Self::RegistryUnavailable => {
                "the registry cannot be reached, answered garbage, or the download broke off; nothing changed"
            }
            Self::DigestMismatch => {
                "the bytes are not what their digest says (tampered, or cut short); nothing changed"
            }
            Self::ArtifactTooLarge => {
                "the component is larger than `pool.max_component_size`; it was not downloaded"
            }
            Self::NotAComponent => "the artifact or file is not a WebAssembly component",
            Self::UnsupportedComponent => {
                "a component this host cannot run: another world, a newer contract, no name or version"
            }
            Self::SignatureRefused => {
                "the component is unsigned, its signature does not hold, or its signer is not trusted for its name"
            }
            Self::ConsentRequired => {
                "installing needs `consent: true` with the digest that was reviewed, and the bytes must still be those"
            }
            Self::NotInstalled => {
                "the plugin was not installed from the catalog (it is not in the lockfile)"
            }
            Self::NothingToDo => "no newer version to update to, or no earlier one to roll back to",
            Self::InstallFailed => {
                "the component did not compile, link or describe itself; nothing changed"
            }
            Self::CatalogStorage => {
                "the plugins folder, the lockfile or the kept components could not be read or written"
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
