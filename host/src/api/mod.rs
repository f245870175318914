//! The REST API (axum): the ScheduleZero-compatible routes under `/api` ([`compat`]), with their
//! own reply and error shapes, and the clean `/api/v1` ([`v1`]) with stable error codes. Both sit
//! behind the same guard: a bearer token when one is configured (compared in constant time), a
//! body size limit, and JSON read by the API itself so that malformed input gets a clear 4xx and
//! changes nothing. Routes never block on a job's handler: run-now waits for its own run only.

mod auth;
pub mod code;
pub mod compat;
pub mod error;
pub mod handler_view;
mod json;
pub mod openapi;
pub mod plugins;
pub mod requests;
mod routes;
mod v1;
pub mod views;

pub use self::v1::grants::{ACTOR_HEADER, GrantsView};
mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use chrono::{DateTime, Utc};

pub use self::code::ErrorCode;
pub use self::error::ApiError;
pub use self::handler_view::{HandlerView, MethodView};
use crate::config::Config;
use crate::runtime::Runtime;
use crate::scheduler::service::Scheduler;
use crate::store::Store;

/// What every route can reach.
pub struct AppState {
    /// The configuration the host started with.
    pub config: Arc<Config>,
    /// The store.
    pub store: Store,
    /// The WebAssembly runtime.
    pub runtime: Arc<Runtime>,
    /// The scheduler (for run-now and to wake it on changes).
    pub scheduler: Arc<Scheduler>,
    /// When the host started.
    pub started_at: DateTime<Utc>,
    /// The address the API listens on.
    pub listen: std::net::SocketAddr,
    /// Samples the host process and the machine.
    pub host_metrics: Arc<crate::telemetry::HostMetrics>,
    /// The host's figures over the last hour.
    pub history: Arc<crate::history::History>,
    /// The remote handlers registered over ZeroMQ.
    pub registry: Arc<crate::bridge::Registry>,
    /// The connections to remote handlers, with what was seen of each.
    pub connections: Arc<crate::bridge::Connections>,
    /// Where remote handlers register.
    pub zmq_endpoint: String,
    /// Free space on the data directory's volume.
    pub storage: Arc<crate::storage::Storage>,
    /// The one path for writes to schedules.
    pub schedules: crate::service::ScheduleService,
    /// The one path for writes to grants.
    pub grants: crate::service::GrantService,
    /// The service catalog of the plugins folder.
    pub catalog: Arc<crate::catalog::Catalog>,
    /// The OpenAPI document as served (with bearer auth when the host has a token), made on
    /// its first request.
    pub openapi: std::sync::OnceLock<String>,
}

/// The OpenAPI document generated from the routes.
fn documented() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    utoipa_axum::router::OpenApiRouter::<Arc<AppState>>::with_openapi(openapi::ApiDoc::openapi())
        .merge(compat::documented())
        .merge(v1::documented())
        .merge(plugins::documented())
        .into_openapi()
}

/// The OpenAPI document of the API, pretty-printed; `token`: the host has an API token, so
/// every route but health declares bearer auth.
pub fn openapi_document(token: bool) -> String {
    let doc = openapi::finish(documented(), token);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The document as the host serves it: compact.
fn openapi_served(token: bool) -> String {
    openapi::finish(documented(), token).to_string()
}

/// The whole API.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.server.max_body_bytes;
    Router::new()
        .merge(compat::router())
        .merge(v1::router())
        .merge(plugins::router())
        .merge(web::routes())
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
