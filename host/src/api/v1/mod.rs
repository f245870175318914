//! `/api/v1`: schedules (create, list, get, update, delete, pause, resume, run now), runs,
//! execution records, handlers, host info, health and triggers. Every error is
//! `{"error": {"code": "<stable code>", "message": "..."}}`; lists page with a `next` cursor.
//! Each route declares its OpenAPI operation next to it.

mod catalog;
pub mod grants;
mod host;
mod runs;
mod schedules;

use std::sync::Arc;

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

type Shared = State<Arc<AppState>>;

/// The largest page of any list.
pub const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
const DEFAULT_PAGE: u32 = 100;

fn page(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// The `/api/v1` routes with their operations, for the document.
pub fn documented() -> OpenApiRouter<Arc<AppState>> {
    host::documented()
        .merge(schedules::documented())
        .merge(runs::documented())
        .merge(grants::documented())
        .merge(catalog::documented())
}

/// Each `/api/v1` route as served beside its documentation's.
#[cfg(test)]
pub fn declared() -> Vec<crate::api::routes::Declared> {
    [
        host::declared(),
        schedules::declared(),
        runs::declared(),
        grants::declared(),
        catalog::declared(),
    ]
    .concat()
}

/// The `/api/v1` routes, for serving.
pub fn router() -> axum::Router<Arc<AppState>> {
    host::router()
        .merge(schedules::router())
        .merge(runs::router())
        .merge(grants::router())
        .merge(catalog::router())
}
