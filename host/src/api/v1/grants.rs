//! A plugin's capabilities: what its component requests beside what the operator granted
//! (`GET /api/v1/plugins/{name}/grants`), granting (`POST`) and revoking (`DELETE`). Every change
//! is checked against the component's manifest, recorded with who made it, and in effect from
//! the next call.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use crate::api::error::{ApiError, ErrorBody, ErrorCode};
use crate::api::json::{Body, Query, typed};
use crate::capability::{Grant, GrantId, GrantSpec, Manifest, Review};
use crate::service::GrantError;
use crate::store::GrantEvent;

crate::api::routes::api_routes! {
    (get, "/api/v1/plugins/{name}/grants", list),
    (post, "/api/v1/plugins/{name}/grants", grant),
    (delete, "/api/v1/plugins/{name}/grants", revoke),
}

/// The header a caller names itself in, for the record of who changed a grant.
pub const ACTOR_HEADER: &str = "x-schedulezero-actor";

/// The most events listed.
const EVENTS: u32 = 100;

/// What a plugin requests, what it is granted, and the latest changes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantsView {
    /// The plugin.
    pub plugin: String,
    /// What its component requests (its manifest).
    pub manifest: Manifest,
    /// Each request with the grants that meet it (none: missing), and grants it does not
    /// request.
    pub capabilities: Review,
    /// The latest changes, newest first.
    pub events: Vec<GrantEvent>,
}

/// Which grant to revoke.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// `http`, `directory`, `config` or `secret`.
    pub kind: String,
    /// The destination, directory name or key.
    pub name: String,
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        let code = match e {
            GrantError::UnknownPlugin(_) => ErrorCode::PluginNotFound,
            GrantError::Refused(_) => ErrorCode::GrantRefused,
            GrantError::NotFound { .. } => ErrorCode::GrantNotFound,
            GrantError::Store(s) => return ApiError::from(s),
        };
        ApiError::new(code, e.to_string())
    }
}

/// Who is changing a grant: the caller's `X-ScheduleZero-Actor`, or `api`.
fn actor(headers: &HeaderMap) -> String {
    headers
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map_or_else(|| "api".to_owned(), |v| v.chars().take(100).collect())
}

async fn view(state: &crate::api::AppState, name: &str) -> Result<GrantsView, ApiError> {
    let plugin = crate::api::plugins::find(state, name)?;
    let capabilities =
        crate::capability::grant::review(plugin.manifest(), &state.runtime.grants(name));
    let events = state
        .store
        .grant_events(Some(name), EVENTS)
        .await
        .map_err(|e| ApiError::from(GrantError::Store(e)))?;
    Ok(GrantsView {
        plugin: name.to_owned(),
        manifest: plugin.manifest().clone(),
        capabilities,
        events,
    })
}

/// What the plugin requests, what it is granted (a secret by its reference, never its value),
/// and the latest changes.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/grants", tag = "plugins", operation_id = "listGrants",
    params(("name" = String, Path, description = "The plugin")),
    responses(
        (status = 200, description = "Requests, grants and changes", body = GrantsView),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    ))]
async fn list(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<GrantsView>, ApiError> {
    Ok(Json(view(&state, &name).await?))
}

/// Grants the plugin something its component requests: an outbound destination, a directory, a
/// configuration value or a secret by reference. Replaces a grant of the same kind and name. In
/// effect from the next call.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/grants", tag = "plugins", operation_id = "grant",
    params(
        ("name" = String, Path, description = "The plugin"),
        ("X-ScheduleZero-Actor" = Option<String>, Header, description = "Who is granting, for the record (default `api`)"),
    ),
    request_body = GrantSpec,
    responses(
        (status = 201, description = "Granted, committed and in effect", body = Grant),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
        (status = 422, description = "`grant_refused`: not requested by the component, or not usable (the message says why)", body = ErrorBody),
    ))]
async fn grant(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let spec: GrantSpec = typed(body)?;
    let granted = state.grants.grant(&name, spec, &actor(&headers)).await?;
    Ok((StatusCode::CREATED, Json(granted)).into_response())
}

/// Revokes a grant. In effect from the next call.
#[utoipa::path(delete, path = "/api/v1/plugins/{name}/grants", tag = "plugins", operation_id = "revoke",
    params(
        ("name" = String, Path, description = "The plugin"),
        RevokeQuery,
        ("X-ScheduleZero-Actor" = Option<String>, Header, description = "Who is revoking, for the record (default `api`)"),
    ),
    responses(
        (status = 204, description = "Revoked, committed and in effect"),
        (status = 404, description = "`grant_not_found`", body = ErrorBody),
    ))]
async fn revoke(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<RevokeQuery>,
) -> Result<StatusCode, ApiError> {
    if !crate::capability::grant::KINDS.contains(&q.kind.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!(
                "kind: `{}` is not one of: {}",
                q.kind,
                crate::capability::grant::KINDS.join(", ")
            ),
        ));
    }
    let id = GrantId {
        kind: q.kind,
        name: q.name,
    };
    state.grants.revoke(&name, &id, &actor(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}
