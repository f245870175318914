//! ScheduleZero's REST routes, with its request and reply shapes and its validation order (see
//! `shared/COMPAT.md`), so existing clients work unchanged. Where ScheduleZero had bugs, the
//! documented differences apply (real handler status, 404 on deleting an unknown schedule, 200 on
//! clearing the log, one record per attempt).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, CompatErrorBody, ErrorCode};
use super::json::{Body, Query};
use super::views::{CompatExecution, CompatSchedule};
use super::{AppState, handler_view};
use crate::schedule::{ConflictPolicy, ExecutionStatus, TriggerSpec};
use crate::service::{Draft, ScheduleError, TriggerText};
use crate::store::{ExecutionQuery, ExecutionStats, HandlerKind, ScheduleQuery};

type Shared = State<Arc<AppState>>;

super::routes::api_routes! {
    (get, "/api/health", health),
    (get, "/api/handlers", list_handlers),
    (post, "/api/schedule", add_schedule),
    (post, "/api/run_now", run_now),
    (get, "/api/schedules", list_schedules),
    (delete, "/api/schedules/{id}", remove_schedule),
    (get, "/api/config", config),
    (get, "/api/executions", executions),
    (get, "/api/executions/stats", stats),
    (get, "/api/executions/errors", errors),
    (post, "/api/executions/clear", clear),
}

/// `{"status": "ok", "service": "ScheduleZero"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatHealth {
    /// `ok`.
    pub status: String,
    /// `ScheduleZero`.
    pub service: String,
}

/// A handler in ScheduleZero's list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatHandler {
    /// Its id.
    pub id: String,
    /// A plugin's file, or a remote handler's endpoint.
    pub address: Option<String>,
    /// Its methods' names.
    pub methods: Vec<String>,
    /// `available`, `missing`, `online`, `unreachable` or `offline`.
    pub status: String,
    /// `wasm` or `remote`.
    pub kind: HandlerKind,
    /// Its version.
    pub version: Option<String>,
}

/// ScheduleZero's handler list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatHandlers {
    /// The handlers.
    pub handlers: Vec<CompatHandler>,
}

/// A write that went through.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatDone {
    /// `success`.
    pub status: String,
    /// The schedule's (or the call's) job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The schedule removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// What was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A call's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl CompatDone {
    fn success() -> Self {
        Self {
            status: "success".into(),
            job_id: None,
            schedule_id: None,
            message: None,
            result: None,
        }
    }
}

/// ScheduleZero's schedule list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatSchedules {
    /// How many.
    pub count: usize,
    /// The schedules.
    pub schedules: Vec<CompatSchedule>,
}

/// The host's name and version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatConfig {
    /// `server.instance_name`.
    pub instance_name: String,
    /// `server.description`.
    pub description: String,
    /// `server.admin_contact`.
    pub admin_contact: String,
    /// The ScheduleZero version.
    pub version: String,
}

/// Execution records in ScheduleZero's form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatRecords {
    /// How many.
    pub count: usize,
    /// The limit applied.
    pub limit: u32,
    /// The records, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<CompatExecution>>,
    /// The errors, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<CompatExecution>>,
}

/// A store error in this API's shape.
fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::from(e).compat()
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).compat()
}

/// ScheduleZero's health check.
#[utoipa::path(get, path = "/api/health", tag = "scheduleZero", operation_id = "compatHealth",
    responses((status = 200, description = "The host answers", body = CompatHealth)))]
async fn health() -> Json<CompatHealth> {
    Json(CompatHealth {
        status: "ok".into(),
        service: "ScheduleZero".into(),
    })
}

/// Every handler, with its methods' names.
#[utoipa::path(get, path = "/api/handlers", tag = "scheduleZero", operation_id = "compatHandlers",
    responses((status = 200, description = "The handlers", body = CompatHandlers)))]
async fn list_handlers(State(state): Shared) -> Result<Json<CompatHandlers>, ApiError> {
    let all = handler_view::all(&state).await.map_err(store_error)?;
    let handlers = all
        .into_iter()
        .map(|h| CompatHandler {
            methods: h.methods.into_iter().map(|m| m.name).collect(),
            id: h.id,
            address: h.address,
            status: h.status,
            kind: h.kind,
            version: h.version,
        })
        .collect();
    Ok(Json(CompatHandlers { handlers }))
}

/// Reads the string field `key`; absent is `None`, another type is a 400.
fn string_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("`{key}` must be a string"))),
    }
}

/// A refusal of the schedule service in ScheduleZero's words and shape.
fn refused(e: ScheduleError) -> ApiError {
    let message = match &e {
        ScheduleError::UnknownHandler(id) => format!("Handler '{id}' not found"),
        ScheduleError::UnknownMethod {
            handler,
            method,
            known,
        } => format!(
            "Method '{method}' is not available on handler '{handler}' (it has: {})",
            known.join(", ")
        ),
        ScheduleError::InvalidTrigger(t) => format!("Invalid trigger configuration: {t}"),
        ScheduleError::NotFound(id) => format!("Schedule '{id}' not found"),
        _ => return ApiError::from(e).compat(),
    };
    ApiError::new(ApiError::from(e).code, message).compat()
}

/// The checks `/api/schedule` and `/api/run_now` share, in ScheduleZero's order after the
/// trigger: required fields, handler (404), method, params object (the schema is checked by
/// the service, after them).
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
    state
        .schedules
        .check_target(&handler_id, &method, schema_params)
        .await
        .map_err(refused)?;
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

/// ScheduleZero's schedule request (read field by field, in ScheduleZero's order of checks).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatScheduleRequest {
    /// The handler.
    pub handler_id: String,
    /// The method.
    pub job_method: String,
    /// The params (an object).
    pub job_params: Value,
    /// ScheduleZero's trigger object: `{"type": "cron" | "interval" | "date", ...}`.
    pub trigger: Value,
    /// The schedule's id; `<handler>_<method>_<unix seconds>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// What to do when the id exists (default `do_nothing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_policy: Option<ConflictPolicy>,
    /// How it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schedule::SchedulePolicy>)]
    pub policy: Option<Value>,
}

/// ScheduleZero's run-now request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatRunNowRequest {
    /// The handler.
    pub handler_id: String,
    /// The method.
    pub job_method: String,
    /// The params (an object).
    pub job_params: Value,
}

/// Stores a schedule (201 even when one with the id is kept).
#[utoipa::path(post, path = "/api/schedule", tag = "scheduleZero", operation_id = "compatSchedule",
    request_body = CompatScheduleRequest,
    responses(
        (status = 201, description = "Stored (or kept)", body = CompatDone),
        (status = 404, description = "No such handler", body = CompatErrorBody),
        (status = 409, description = "The id exists (`conflict_policy: error`)", body = CompatErrorBody),
        (status = 507, description = "Out of storage space: nothing was written", body = CompatErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn add_schedule(
    State(state): Shared,
    Body(body): Body,
) -> Result<(StatusCode, Json<CompatDone>), ApiError> {
    state.schedules.room_for_new_work().map_err(refused)?;
    let obj = object(body)?;
    let Some(trigger) = obj.get("trigger") else {
        return Err(bad("Missing required field: trigger"));
    };
    let (handler, method, params) = check_job(&state, &obj).await?;
    // Read before the service's own checks, as ScheduleZero does.
    TriggerSpec::read_compat(trigger, Utc::now())
        .map_err(|e| bad(format!("Invalid trigger configuration: {e}")))?;
    let id = match string_field(&obj, "job_id")? {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("{handler}_{method}_{}", Utc::now().timestamp()),
    };
    let conflict = match obj.get("conflict_policy") {
        None | Some(Value::Null) => ConflictPolicy::DoNothing,
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| bad("conflict_policy must be one of `replace`, `do_nothing`, `error`"))?,
    };
    let policy = obj.get("policy").filter(|v| !v.is_null()).cloned();
    let created = state
        .schedules
        .create(Draft {
            id,
            handler,
            method,
            params,
            trigger: TriggerText::Compat(trigger),
            policy,
            paused: false,
            conflict,
            // ScheduleZero runs a date in the past at once (by its misfire policy).
            allow_past_date: true,
        })
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::CREATED,
        Json(CompatDone {
            job_id: Some(created.schedule().id.clone()),
            ..CompatDone::success()
        }),
    ))
}

/// Calls a handler's method at once and answers with its result; the call is recorded.
#[utoipa::path(post, path = "/api/run_now", tag = "scheduleZero", operation_id = "compatRunNow",
    request_body = CompatRunNowRequest,
    responses(
        (status = 200, description = "The call's result", body = CompatDone),
        (status = 404, description = "No such handler", body = CompatErrorBody),
        (status = 500, description = "The call failed", body = CompatErrorBody),
        (status = 507, description = "Out of storage space: nothing was run", body = CompatErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn run_now(State(state): Shared, Body(body): Body) -> Result<Json<CompatDone>, ApiError> {
    state.schedules.room_for_new_work().map_err(refused)?;
    let obj = object(body)?;
    let (handler_id, method, params) = check_job(&state, &obj).await?;
    let call = state
        .schedules
        .call_now(&handler_id, &method, &params)
        .await
        .map_err(refused)?;
    match call.result {
        Ok((result, _)) => Ok(Json(CompatDone {
            job_id: Some(call.schedule_id),
            result: Some(result.unwrap_or(Value::Null)),
            message: Some(format!("Job executed on handler '{handler_id}'")),
            ..CompatDone::success()
        })),
        Err(e) => Err(ApiError::new(
            ErrorCode::CallFailed,
            format!("Job execution failed on handler '{handler_id}': {e}"),
        )
        .compat()),
    }
}

/// Every schedule.
#[utoipa::path(get, path = "/api/schedules", tag = "scheduleZero", operation_id = "compatSchedules",
    responses((status = 200, description = "The schedules", body = CompatSchedules)))]
async fn list_schedules(State(state): Shared) -> Result<Json<CompatSchedules>, ApiError> {
    let mut all = Vec::new();
    let mut q = ScheduleQuery {
        limit: 1000,
        ..ScheduleQuery::default()
    };
    loop {
        let page = state.store.list_schedules(&q).await.map_err(store_error)?;
        let full = page.len() == q.limit as usize;
        q.after_id = page.last().map(|s| s.id.clone());
        all.extend(page.iter().map(CompatSchedule::from));
        if !full {
            break;
        }
    }
    Ok(Json(CompatSchedules {
        count: all.len(),
        schedules: all,
    }))
}

/// Removes a schedule.
#[utoipa::path(delete, path = "/api/schedules/{id}", tag = "scheduleZero", operation_id = "compatRemoveSchedule",
    params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "Removed", body = CompatDone),
        (status = 404, description = "No such schedule", body = CompatErrorBody),
    ))]
async fn remove_schedule(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<CompatDone>, ApiError> {
    state.schedules.delete(&id).await.map_err(refused)?;
    Ok(Json(CompatDone {
        message: Some(format!("Schedule '{id}' removed")),
        schedule_id: Some(id),
        ..CompatDone::success()
    }))
}

/// The host's name and version.
#[utoipa::path(get, path = "/api/config", tag = "scheduleZero", operation_id = "compatConfig",
    responses((status = 200, description = "The host's name and version", body = CompatConfig)))]
async fn config(State(state): Shared) -> Json<CompatConfig> {
    let s = &state.config.server;
    Json(CompatConfig {
        instance_name: s.instance_name.clone(),
        description: s.description.clone(),
        admin_contact: s.admin_contact.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Which records to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExecutionsQuery {
    /// How many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only this handler's.
    handler_id: Option<String>,
    /// Only this schedule's.
    job_id: Option<String>,
    /// Only in this status.
    status: Option<ExecutionStatus>,
}

/// Execution records, newest first.
#[utoipa::path(get, path = "/api/executions", tag = "scheduleZero", operation_id = "compatExecutions",
    params(ExecutionsQuery),
    responses((status = 200, description = "The records", body = CompatRecords)))]
async fn executions(
    State(state): Shared,
    Query(q): Query<ExecutionsQuery>,
) -> Result<Json<CompatRecords>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let records = state
        .store
        .executions(&ExecutionQuery {
            handler_id: q.handler_id,
            schedule_id: q.job_id,
            status: q.status,
            limit,
            ..ExecutionQuery::default()
        })
        .await
        .map_err(store_error)?;
    let records: Vec<CompatExecution> = records.iter().map(CompatExecution::from).collect();
    Ok(Json(CompatRecords {
        count: records.len(),
        limit,
        records: Some(records),
        errors: None,
    }))
}

/// Totals over the log.
#[utoipa::path(get, path = "/api/executions/stats", tag = "scheduleZero", operation_id = "compatStats",
    responses((status = 200, description = "Totals", body = ExecutionStats)))]
async fn stats(State(state): Shared) -> Result<Json<ExecutionStats>, ApiError> {
    Ok(Json(
        state.store.execution_stats().await.map_err(store_error)?,
    ))
}

/// How many errors.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ErrorsQuery {
    /// How many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The latest failed attempts.
#[utoipa::path(get, path = "/api/executions/errors", tag = "scheduleZero", operation_id = "compatErrors",
    params(ErrorsQuery),
    responses((status = 200, description = "The errors", body = CompatRecords)))]
async fn errors(
    State(state): Shared,
    Query(q): Query<ErrorsQuery>,
) -> Result<Json<CompatRecords>, ApiError> {
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
    let errors: Vec<CompatExecution> = records.iter().map(CompatExecution::from).collect();
    Ok(Json(CompatRecords {
        count: errors.len(),
        limit,
        records: None,
        errors: Some(errors),
    }))
}

/// Clears the execution log. Takes no body; one that is there must be JSON (an object), or
/// nothing is cleared: a client that sent something malformed did not mean to wipe the log.
#[utoipa::path(post, path = "/api/executions/clear", tag = "scheduleZero", operation_id = "compatClear",
    request_body(content = Option<Object>, description = "None, or an empty object"),
    responses((status = 200, description = "Cleared", body = CompatDone)))]
async fn clear(State(state): Shared, Body(body): Body) -> Result<Json<CompatDone>, ApiError> {
    if !matches!(body, Value::Null | Value::Object(_)) {
        return Err(bad("the body, when there is one, must be a JSON object"));
    }
    state.store.clear_executions().await.map_err(store_error)?;
    Ok(Json(CompatDone {
        message: Some("Execution history cleared".into()),
        ..CompatDone::success()
    }))
}
