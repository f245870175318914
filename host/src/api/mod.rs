//! The REST API (axum): the ScheduleZero-compatible routes under `/api` ([`compat`]), with their
//! own reply and error shapes, and the clean `/api/v1` ([`v1`]) with stable error codes. Both sit
//! behind the same guard: a bearer token when one is configured (compared in constant time), a
//! body size limit, and JSON read by the API itself so that malformed input gets a clear 4xx and
//! changes nothing. Handlers never block on a handler component: run-now waits for its own run only.

mod auth;
mod compat;
mod error;
mod handlers;
mod json;
mod plugins;
mod v1;
mod views;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use chrono::{DateTime, Utc};

pub use self::error::ApiError;
pub use self::handlers::{HandlerView, MethodView};
use crate::config::Config;
use crate::runtime::Runtime;
use crate::scheduler::service::Scheduler;
use crate::store::Store;

/// The OpenAPI description of every route, as served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every request handler can reach.
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
}

impl AppState {
    /// Refuses new work (a schedule to store, a run to start) while free space is below
    /// `server.min_free_space`: 507 `storage_full`, before SQLite itself fails.
    pub fn room_for_new_work(&self) -> Result<(), error::ApiError> {
        if self.storage.is_low() {
            let r = self.storage.report();
            return Err(error::ApiError::storage_full(&format!(
                "{} bytes free on the data directory's volume, below server.min_free_space ({} bytes)",
                r.free_bytes.unwrap_or(0),
                r.floor_bytes
            )));
        }
        Ok(())
    }
}

/// The whole API.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.server.max_body_bytes;
    Router::new()
        .merge(compat::routes())
        .merge(v1::routes())
        .merge(plugins::routes())
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
