//! `/api/v1`: schedules (create, list, get, update, delete, pause, resume, run now), runs,
//! execution records, handlers, host info, health and triggers. Every error is
//! `{"error": {"code": "<stable code>", "message": "..."}}`; lists page with a `next` cursor.
//! Each route declares its OpenAPI operation next to it.

mod host;
mod runs;
mod schedules;

use std::sync::Arc;

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

type Shared = State<Arc<AppState>>;

/// The largest page of any list.
pub const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
const DEFAULT_PAGE: u32 = 100;

fn page(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// The `/api/v1` routes, with their operations.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(host::health))
        .routes(routes!(host::host))
        .routes(routes!(host::openapi))
        .routes(routes!(host::list_handlers))
        .routes(routes!(host::get_handler, host::forget_handler))
        .routes(routes!(host::call_handler))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(
            schedules::get,
            schedules::update,
            schedules::delete
        ))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(schedules::run_now))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::list_executions))
        .routes(routes!(runs::stats))
        .routes(routes!(runs::timeline))
        .routes(routes!(runs::get_execution))
        .routes(routes!(host::preview))
        .routes(routes!(host::check))
}
