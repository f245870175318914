//! The host itself: health, host info, the OpenAPI document, handlers, and trigger previews.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::{Shared, page};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorBody, ErrorCode};
use crate::api::handler_view::{self, HandlerView};
use crate::api::json::{Body, Query, typed};
use crate::api::requests::{CallRequest, HandlerQuery, TriggerRequest};
use crate::api::views::{
    self, AuthMode, CallResult, Forgotten, HandlerList, Health, HealthStatus, HostView, NodeList,
    Rejected, ScheduleCounts, StoreHealth, TriggerCheck, TriggerPreview,
};
use crate::schedule::TriggerSpec;
use crate::service::ScheduleError;
use crate::service::schedules::refuse_past_date;

crate::api::routes::api_routes! {
    (get, "/api/v1/health", health),
    (get, "/api/v1/host", host),
    (get, "/api/v1/nodes", nodes),
    (get, "/api/v1/openapi.json", openapi),
    (get, "/api/v1/handlers", list_handlers),
    (get, "/api/v1/handlers/{id}", get_handler),
    (delete, "/api/v1/handlers/{id}", forget_handler),
    (post, "/api/v1/handlers/{id}/call", call_handler),
    (post, "/api/v1/triggers/preview", preview),
    (post, "/api/v1/triggers/check", check),
}

/// Whether the host is well: `ok`, or `degraded` with the reason. The store does not answer:
/// 503; free space below the floor: 200 (reads are served, new work waits for space).
#[utoipa::path(get, path = "/api/v1/health", tag = "host", operation_id = "health",
    responses(
        (status = 200, description = "The host answers (`status` says whether all is well)", body = Health),
        (status = 503, description = "The store does not answer", body = Health),
    ))]
pub async fn health(State(state): Shared) -> Response {
    let storage = state.storage.report();
    let auth = auth(&state);
    match state.store.count_schedules().await {
        Ok(_) => {
            let low = state.storage.is_low();
            Json(Health {
                status: if low {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Ok
                },
                reason: low.then(|| {
                    "free space below server.min_free_space: no new work until space returns".into()
                }),
                store: StoreHealth::Ok,
                storage,
                auth,
            })
            .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            let health = Health {
                status: HealthStatus::Degraded,
                reason: Some("the store does not answer".into()),
                store: StoreHealth::Unavailable,
                storage,
                auth,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response()
        }
    }
}

/// Whether the API needs a token: the dashboard asks for one before its first call rather
/// than after a 401.
fn auth(state: &AppState) -> AuthMode {
    if state.config.server.api_token.is_some() {
        AuthMode::Token
    } else {
        AuthMode::None
    }
}

/// The host: versions, addresses, counts.
#[utoipa::path(get, path = "/api/v1/host", tag = "host", operation_id = "host",
    responses((status = 200, description = "The host", body = HostView)))]
pub async fn host(State(state): Shared) -> Result<Json<HostView>, ApiError> {
    let (active, paused) = state.store.count_schedules_by_state().await?;
    let now = Utc::now();
    Ok(Json(HostView {
        name: state.config.server.instance_name.clone(),
        description: state.config.server.description.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        wasmtime_version: env!("SCHEDULEZERO_WASMTIME_VERSION").into(),
        pid: std::process::id(),
        started_at: state.started_at,
        uptime_s: (now - state.started_at).num_milliseconds() as f64 / 1000.0,
        listen: state.listen.to_string(),
        zmq_endpoint: state.zmq_endpoint.clone(),
        remote_handlers: state.registry.all().len(),
        plugins_dir: state.config.plugins_dir.display().to_string(),
        allocator: format!("{:?}", state.runtime.allocator()).to_lowercase(),
        store: state.store.kind().into(),
        node: state.store.node().id().to_owned(),
        schedules: ScheduleCounts { active, paused },
        plugins: state.runtime.plugins().len(),
        rejected_plugins: Rejected::all(&state.runtime),
    }))
}

/// The hosts (nodes) working on this store: each process is one node, with a fresh id at every
/// start. Live nodes first; stopped and lost ones stay listed for `cluster.forget_nodes_after`.
/// On SQLite, this host alone (and its predecessors on the same database).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "host", operation_id = "nodes",
    responses((status = 200, description = "The nodes", body = NodeList)))]
pub async fn nodes(State(state): Shared) -> Result<Json<NodeList>, ApiError> {
    let nodes = state
        .store
        .nodes(state.config.cluster.forget_nodes_after)
        .await?;
    Ok(Json(NodeList {
        this_node: state.store.node().id().to_owned(),
        store: state.store.kind().into(),
        lease_s: state.store.node().lease().as_secs_f64(),
        nodes,
    }))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "host", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this host's API", content_type = "application/json", body = Object)))]
pub async fn openapi(State(state): Shared) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state
            .openapi
            .get_or_init(|| crate::api::openapi_served(state.config.server.api_token.is_some()))
            .clone(),
    )
        .into_response()
}

/// Handlers in id order, a page at a time (`next` is the `after` of the next page).
#[utoipa::path(get, path = "/api/v1/handlers", tag = "handlers", operation_id = "listHandlers",
    params(HandlerQuery),
    responses((status = 200, description = "A page of handlers", body = HandlerList)))]
pub async fn list_handlers(
    State(state): Shared,
    Query(q): Query<HandlerQuery>,
) -> Result<Json<HandlerList>, ApiError> {
    let limit = page(q.limit) as usize;
    // In id order already.
    let all = handler_view::all(&state).await?;
    let from = q
        .after
        .as_deref()
        .map_or(0, |after| all.partition_point(|h| h.id.as_str() <= after));
    let handlers: Vec<_> = all.into_iter().skip(from).take(limit).collect();
    let next = (handlers.len() == limit)
        .then(|| handlers.last().map(|h| h.id.clone()))
        .flatten();
    Ok(Json(HandlerList { handlers, next }))
}

/// One handler, with its methods and their params schemas.
#[utoipa::path(get, path = "/api/v1/handlers/{id}", tag = "handlers", operation_id = "getHandler",
    params(("id" = String, Path, description = "The handler's id")),
    responses(
        (status = 200, description = "The handler", body = HandlerView),
        (status = 404, description = "`unknown_handler`", body = ErrorBody),
    ))]
pub async fn get_handler(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<HandlerView>, ApiError> {
    if let Some(h) = handler_view::find(&state, &id).await {
        return Ok(Json(h));
    }
    handler_view::all(&state)
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .map(Json)
        .ok_or_else(|| unknown_handler(&id))
}

/// Forgets a remote handler (one that went away for good); a plugin goes with its file.
#[utoipa::path(delete, path = "/api/v1/handlers/{id}", tag = "handlers", operation_id = "forgetHandler",
    params(("id" = String, Path, description = "The remote handler's id")),
    responses(
        (status = 200, description = "Forgotten", body = Forgotten),
        (status = 404, description = "`unknown_handler`", body = ErrorBody),
        (status = 409, description = "`handler_is_plugin`", body = ErrorBody),
    ))]
pub async fn forget_handler(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Forgotten>, ApiError> {
    if let Some(h) = state.registry.forget(&id).await? {
        return Ok(Json(Forgotten {
            forgotten: h.id,
            address: h.address,
        }));
    }
    if state.runtime.plugin(&id).is_some() {
        return Err(ApiError::new(
            ErrorCode::HandlerIsPlugin,
            format!("`{id}` is a plugin: remove its file from the plugins folder instead"),
        ));
    }
    Err(unknown_handler(&id))
}

/// Calls a handler's method at once (a plugin or a remote handler) and answers with its
/// result, or its failure with the call's code; the call is recorded in the execution log.
#[utoipa::path(post, path = "/api/v1/handlers/{id}/call", tag = "handlers", operation_id = "callHandler",
    params(("id" = String, Path, description = "The handler's id")),
    request_body = CallRequest,
    responses(
        (status = 200, description = "The call ended: its result or its failure", body = CallResult),
        (status = 404, description = "`unknown_handler`", body = ErrorBody),
        (status = 507, description = "`storage_full`: nothing was run", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn call_handler(
    State(state): Shared,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<CallResult>, ApiError> {
    state.schedules.room_for_new_work()?;
    let req: CallRequest = typed(body)?;
    state
        .schedules
        .check_target(&id, &req.method, Some(&req.params))
        .await?;
    let call = state
        .schedules
        .call_now(&id, &req.method, &req.params)
        .await?;
    let (result, instance, error) = match call.result {
        Ok((result, instance)) => (result, Some(instance), None),
        Err(e) => (None, None, Some(crate::schedule::Failure::of(&e))),
    };
    Ok(Json(CallResult {
        handler: id,
        method: req.method,
        schedule_id: call.schedule_id,
        result,
        instance,
        error,
    }))
}

fn unknown_handler(id: &str) -> ApiError {
    ScheduleError::UnknownHandler(id.to_owned()).into()
}

/// A trigger's next fire times, or why it is not valid.
fn fire_times(req: &TriggerRequest) -> Result<TriggerPreview, ApiError> {
    let now = Utc::now();
    let (spec, trigger) = TriggerSpec::read_json(&req.trigger, now)?;
    refuse_past_date(&spec, now, req.allow_past_date)?;
    let count = req.count.clamp(1, 100);
    let mut fires = Vec::with_capacity(count);
    if let Some(first) = trigger.first_fire(now) {
        fires.push(first);
        fires.extend(trigger.fires_after(first, count - 1));
    }
    Ok(TriggerPreview {
        trigger_text: views::trigger_text(&spec),
        trigger_description: views::trigger_words(&spec),
        timezone: views::zone(&spec).name().to_owned(),
        fire_times: fires.iter().map(|t| crate::time::format(*t)).collect(),
        fire_times_local: fires.iter().map(|t| views::local(*t, &spec)).collect(),
        trigger: spec,
    })
}

/// The next fire times of a trigger; an invalid trigger is a 400 with its code.
#[utoipa::path(post, path = "/api/v1/triggers/preview", tag = "triggers", operation_id = "previewTrigger",
    request_body = TriggerRequest,
    responses((status = 200, description = "The next fire times", body = TriggerPreview)))]
pub async fn preview(Body(body): Body) -> Result<Json<TriggerPreview>, ApiError> {
    let req: TriggerRequest = typed(body)?;
    Ok(Json(fire_times(&req)?))
}

/// A form's check as it is typed: always 200 for a readable request, `valid` saying whether
/// the trigger is, with the fire times or the error a schedule with it would get.
#[utoipa::path(post, path = "/api/v1/triggers/check", tag = "triggers", operation_id = "checkTrigger",
    request_body = TriggerRequest,
    responses((status = 200, description = "Valid with its fire times, or the error", body = TriggerCheck)))]
pub async fn check(Body(body): Body) -> Result<Json<TriggerCheck>, ApiError> {
    let req: TriggerRequest = typed(body)?;
    Ok(Json(match fire_times(&req) {
        Ok(preview) => TriggerCheck::valid(preview),
        Err(e) => TriggerCheck::invalid(e.body().error),
    }))
}
