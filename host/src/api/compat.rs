//! ScheduleZero's REST routes, with its request and reply shapes and its validation order (see
//! `shared/COMPAT.md`), so existing clients work unchanged. Where ScheduleZero had bugs, the
//! documented differences apply (real handler status, 404 on deleting an unknown schedule, 200 on
//! clearing the log, one record per attempt).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::json::{Body, Query};
use super::{AppState, handlers, views};
use crate::runtime::JobContext;
use crate::schedule::TriggerSpec;
use crate::schedule::{ConflictPolicy, ExecutionStatus, Schedule, SchedulePolicy};
use crate::store::{
    Completion, ExecutionQuery, Inserted, NewExecution, ScheduleQuery, Write, params_summary,
};

type Shared = State<Arc<AppState>>;

/// The compatible routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/handlers", get(list_handlers))
        .route("/api/schedule", post(add_schedule))
        .route("/api/run_now", post(run_now))
        .route("/api/schedules", get(list_schedules))
        .route("/api/schedules/{id}", delete(remove_schedule))
        .route("/api/config", get(config))
        .route("/api/executions", get(executions))
        .route("/api/executions/stats", get(stats))
        .route("/api/executions/errors", get(errors))
        .route("/api/executions/clear", post(clear))
}

/// A store error in this API's shape.
fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::from(e).compat()
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).compat()
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok", "service": "ScheduleZero" })).into_response()
}

async fn list_handlers(State(state): Shared) -> Result<Response, ApiError> {
    let all = handlers::all(&state).await.map_err(store_error)?;
    let list: Vec<Value> = all
        .iter()
        .map(|h| {
            json!({
                "id": h.id,
                "address": h.address,
                "methods": h.methods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                "status": h.status,
                "kind": h.kind,
                "version": h.version,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "handlers": list })).into_response())
}

/// Reads the string field `key`; absent is `None`, another type is a 400.
fn string_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("`{key}` must be a string"))),
    }
}

/// The checks `/api/schedule` and `/api/run_now` share, in ScheduleZero's order after the
/// trigger: required fields, handler (404), method, params object.
async fn check_job(
    state: &AppState,
    obj: &Map<String, Value>,
) -> Result<(String, String, Value), ApiError> {
    let missing: Vec<&str> = ["handler_id", "job_method", "job_params"]
        .into_iter()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "Missing required fields: {}",
            missing.join(", ")
        )));
    }
    let handler_id = string_field(obj, "handler_id")?
        .ok_or_else(|| bad("`handler_id` must be a string"))?
        .to_owned();
    let method = string_field(obj, "job_method")?
        .ok_or_else(|| bad("`job_method` must be a string"))?
        .to_owned();
    let params = obj.get("job_params").cloned().unwrap_or(Value::Null);
    // ScheduleZero checks that the params are an object after the handler and method: so do we,
    // then against the method's schema.
    let schema_params = params.is_object().then_some(&params);
    match handlers::check(state, &handler_id, &method, schema_params).await {
        Ok(()) => {}
        Err(handlers::Missing::Handler) => {
            return Err(ApiError::not_found(
                "unknown_handler",
                format!("Handler '{handler_id}' not found"),
            )
            .compat());
        }
        Err(handlers::Missing::Method(known)) => {
            return Err(bad(format!(
                "Method '{method}' is not available on handler '{handler_id}' (it has: {})",
                known.join(", ")
            )));
        }
        Err(handlers::Missing::Params(why)) => return Err(bad(why)),
    }
    if !params.is_object() {
        return Err(bad("job_params must be a JSON object"));
    }
    Ok((handler_id, method, params))
}

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(obj) => Ok(obj),
        _ => Err(bad("the body must be a JSON object")),
    }
}

async fn add_schedule(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    state.room_for_new_work().map_err(ApiError::compat)?;
    let obj = object(body)?;
    let Some(trigger) = obj.get("trigger") else {
        return Err(bad("Missing required field: trigger"));
    };
    let (handler_id, method, params) = check_job(&state, &obj).await?;
    let now = Utc::now();
    let (spec, compiled) = TriggerSpec::read_compat(trigger, now)
        .map_err(|e| bad(format!("Invalid trigger configuration: {e}")))?;
    let id = match string_field(&obj, "job_id")? {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("{handler_id}_{method}_{}", now.timestamp()),
    };
    let conflict = match obj.get("conflict_policy") {
        None | Some(Value::Null) => ConflictPolicy::DoNothing,
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| bad("conflict_policy must be one of `replace`, `do_nothing`, `error`"))?,
    };
    let policy = match obj.get("policy") {
        None | Some(Value::Null) => SchedulePolicy::default(),
        Some(v) => {
            let p: SchedulePolicy = serde_json::from_value(v.clone())
                .map_err(|e| bad(format!("invalid policy: {e}")))?;
            p.check().map_err(bad)?;
            p
        }
    };
    let schedule = Schedule {
        id: id.clone(),
        handler_id,
        method,
        params,
        next_fire: compiled.first_fire(now),
        trigger: spec,
        policy,
        paused: false,
        created_at: now,
        updated_at: now,
    };
    match state.store.insert_schedule(&schedule, conflict).await {
        Ok(Inserted::Created | Inserted::Replaced) => state.scheduler.wake_for(schedule.next_fire),
        Ok(Inserted::Kept(_)) => {}
        Err(e) => return Err(store_error(e)),
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "status": "success", "job_id": id })),
    )
        .into_response())
}

async fn run_now(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    state.room_for_new_work().map_err(ApiError::compat)?;
    let obj = object(body)?;
    let (handler_id, method, params) = check_job(&state, &obj).await?;
    let started_at = Utc::now();
    let job_id = format!("immediate_{handler_id}_{method}_{}", started_at.timestamp());
    let ctx = JobContext {
        job_id: job_id.clone(),
        run_id: uuid::Uuid::now_v7().to_string(),
        attempt: 1,
        scheduled_time: started_at.into(),
    };
    let handlers = state.scheduler.dispatcher().handlers();
    let result = handlers
        .call(&handler_id, &method, &params.to_string(), &ctx, None)
        .await;
    let completed_at = Utc::now();
    let (status, result_json, error_code, error, instance) = match &result {
        Ok((result, instance)) => (
            ExecutionStatus::Success,
            serde_json::from_str::<Value>(result).ok(),
            None,
            None,
            Some(instance.clone()),
        ),
        Err(e) => (
            ExecutionStatus::Error,
            None,
            Some(e.code().to_owned()),
            Some(e.to_string()),
            None,
        ),
    };
    let start = NewExecution {
        run_id: ctx.run_id.clone(),
        job_id: job_id.clone(),
        handler_id: handler_id.clone(),
        method: method.clone(),
        attempt: 1,
        max_attempts: 1,
        status: ExecutionStatus::Running,
        started_at,
        params_summary: params_summary(&params),
        instance: Some(handlers.location(&handler_id)),
    };
    let done = Completion {
        id: 0,
        status,
        completed_at,
        result: result_json.clone(),
        error_code,
        error,
        instance,
        not_retried: None,
    };
    // One write, committed before the reply: the record of a reported run is never lost.
    state
        .store
        .record(vec![Write::Done(start, done)])
        .await
        .map_err(store_error)?;
    match result {
        Ok(_) => Ok(axum::Json(json!({
            "status": "success",
            "job_id": job_id,
            "result": result_json,
            "message": format!("Job executed on handler '{handler_id}'"),
        }))
        .into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.code(),
            format!("Job execution failed on handler '{handler_id}': {e}"),
        )
        .compat()),
    }
}

async fn list_schedules(State(state): Shared) -> Result<Response, ApiError> {
    let mut all = Vec::new();
    let mut q = ScheduleQuery {
        limit: 1000,
        ..ScheduleQuery::default()
    };
    loop {
        let page = state.store.list_schedules(&q).await.map_err(store_error)?;
        let full = page.len() == q.limit as usize;
        q.after_id = page.last().map(|s| s.id.clone());
        all.extend(page.iter().map(views::schedule_compat));
        if !full {
            break;
        }
    }
    Ok(axum::Json(json!({ "count": all.len(), "schedules": all })).into_response())
}

async fn remove_schedule(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let removed = state
        .store
        .delete_schedule(&id)
        .await
        .map_err(store_error)?;
    if !removed {
        return Err(ApiError::not_found(
            "schedule_not_found",
            format!("Schedule '{id}' not found"),
        )
        .compat());
    }
    Ok(axum::Json(json!({
        "status": "success",
        "message": format!("Schedule '{id}' removed"),
        "schedule_id": id,
    }))
    .into_response())
}

async fn config(State(state): Shared) -> Response {
    let s = &state.config.server;
    axum::Json(json!({
        "instance_name": s.instance_name,
        "description": s.description,
        "admin_contact": s.admin_contact,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ExecutionsQuery {
    limit: Option<u32>,
    handler_id: Option<String>,
    job_id: Option<String>,
    status: Option<ExecutionStatus>,
}

async fn executions(
    State(state): Shared,
    Query(q): Query<ExecutionsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let records = state
        .store
        .executions(&ExecutionQuery {
            handler_id: q.handler_id,
            job_id: q.job_id,
            status: q.status,
            limit,
            ..ExecutionQuery::default()
        })
        .await
        .map_err(store_error)?;
    let records: Vec<Value> = records.iter().map(views::execution_compat).collect();
    Ok(
        axum::Json(json!({ "count": records.len(), "limit": limit, "records": records }))
            .into_response(),
    )
}

async fn stats(State(state): Shared) -> Result<Response, ApiError> {
    let stats = state.store.execution_stats().await.map_err(store_error)?;
    Ok(axum::Json(stats).into_response())
}

#[derive(Debug, Deserialize)]
struct ErrorsQuery {
    limit: Option<u32>,
}

async fn errors(State(state): Shared, Query(q): Query<ErrorsQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let records = state
        .store
        .executions(&ExecutionQuery {
            status: Some(ExecutionStatus::Error),
            limit,
            ..ExecutionQuery::default()
        })
        .await
        .map_err(store_error)?;
    let errors: Vec<Value> = records.iter().map(views::execution_compat).collect();
    Ok(
        axum::Json(json!({ "count": errors.len(), "limit": limit, "errors": errors }))
            .into_response(),
    )
}

/// Takes no body; one that is there must be JSON (an object), or nothing is cleared: a client
/// that sent something malformed did not mean to wipe the log.
async fn clear(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    if !matches!(body, Value::Null | Value::Object(_)) {
        return Err(bad("the body, when there is one, must be a JSON object"));
    }
    state.store.clear_executions().await.map_err(store_error)?;
    Ok(
        axum::Json(json!({ "status": "success", "message": "Execution history cleared" }))
            .into_response(),
    )
}
