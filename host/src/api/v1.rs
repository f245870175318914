//! `/api/v1`: schedules (create, list, get, update, delete, pause, resume, run now), runs,
//! execution records, handlers, host info and health. Every error is
//! `{"error": {"code": "<stable code>", "message": "..."}}`; lists page with a `next` cursor.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::json::{Body, Query, typed};
use super::{AppState, OPENAPI, handlers, views};
use crate::schedule::TriggerSpec;
use crate::schedule::{ConflictPolicy, ExecutionStatus, RunStatus, Schedule, SchedulePolicy};
use crate::scheduler::policy::resume_from;
use crate::scheduler::service::RunNowError;
use crate::store::{ExecutionQuery, Inserted, RunQuery, ScheduleQuery, TimelineQuery};

type Shared = State<Arc<AppState>>;

/// The largest page of any list.
const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
const DEFAULT_PAGE: u32 = 100;

/// The `/api/v1` routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/host", get(host))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/handlers", get(list_handlers))
        .route(
            "/api/v1/handlers/{id}",
            get(get_handler).delete(forget_handler),
        )
        .route(
            "/api/v1/schedules",
            get(list_schedules).post(create_schedule),
        )
        .route(
            "/api/v1/schedules/{id}",
            get(get_schedule)
                .patch(update_schedule)
                .delete(delete_schedule),
        )
        .route("/api/v1/schedules/{id}/pause", post(pause))
        .route("/api/v1/schedules/{id}/resume", post(resume))
        .route("/api/v1/schedules/{id}/run", post(run_now))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/executions", get(list_executions))
        .route("/api/v1/executions/stats", get(stats))
        .route("/api/v1/executions/timeline", get(timeline))
        .route("/api/v1/executions/{id}", get(get_execution))
        .route("/api/v1/triggers/preview", post(preview))
        .route("/api/v1/triggers/check", post(check))
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn page(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// `ok`, or `degraded` with the reason: the store does not answer (503), or free space is below
/// the floor (200: reads are served, new work waits for space; `storage` has the figures).
async fn health(State(state): Shared) -> Response {
    let storage = state.storage.report();
    match state.store.count_schedules().await {
        Ok(_) if state.storage.is_low() => ok(json!({
            "status": "degraded",
            "reason": "free space below server.min_free_space: no new work until space returns",
            "store": "ok",
            "storage": storage,
            "auth": auth(&state),
        })),
        Ok(_) => {
            ok(json!({ "status": "ok", "store": "ok", "storage": storage, "auth": auth(&state) }))
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "status": "degraded",
                    "reason": "the store does not answer",
                    "store": "unavailable",
                    "storage": storage,
                    "auth": auth(&state),
                })),
            )
                .into_response()
        }
    }
}

/// Whether the API needs a token (`token`) or not (`none`): the dashboard asks for one before
/// its first call rather than after a 401.
fn auth(state: &AppState) -> &'static str {
    if state.config.server.api_token.is_some() {
        "token"
    } else {
        "none"
    }
}

async fn host(State(state): Shared) -> Result<Response, ApiError> {
    let (active, paused) = state.store.count_schedules_by_state().await?;
    let now = Utc::now();
    Ok(ok(json!({
        "name": state.config.server.instance_name,
        "description": state.config.server.description,
        "version": env!("CARGO_PKG_VERSION"),
        "wasmtime_version": env!("SCHEDULEZERO_WASMTIME_VERSION"),
        "pid": std::process::id(),
        "started_at": views::utc(state.started_at),
        "uptime_s": (now - state.started_at).num_milliseconds() as f64 / 1000.0,
        "listen": state.listen.to_string(),
        "zmq_endpoint": state.zmq_endpoint,
        "remote_handlers": state.registry.all().len(),
        "plugins_dir": state.config.plugins_dir,
        "allocator": format!("{:?}", state.runtime.allocator()).to_lowercase(),
        "store": "sqlite",
        "schedules": { "active": active, "paused": paused },
        "plugins": state.runtime.plugins().len(),
        "rejected_plugins": state.runtime.rejected().iter().map(|r| json!({
            "file": r.path, "error": r.error.to_string(),
        })).collect::<Vec<_>>(),
    })))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlerList {
    limit: Option<u32>,
    after: Option<String>,
}

/// Handlers in id order, a page at a time (`next` is the `after` of the next page).
async fn list_handlers(
    State(state): Shared,
    Query(q): Query<HandlerList>,
) -> Result<Response, ApiError> {
    let limit = page(q.limit) as usize;
    // In id order already.
    let all = handlers::all(&state).await?;
    let from = q
        .after
        .as_deref()
        .map_or(0, |after| all.partition_point(|h| h.id.as_str() <= after));
    let page: Vec<_> = all.into_iter().skip(from).take(limit).collect();
    let next = (page.len() == limit)
        .then(|| page.last().map(|h| h.id.clone()))
        .flatten();
    Ok(ok(json!({ "handlers": page, "next": next })))
}

/// Forgets a remote handler (one that went away for good); a plugin goes with its file.
async fn forget_handler(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(h) = state.registry.forget(&id).await? {
        return Ok(ok(json!({ "forgotten": h.id, "address": h.address })));
    }
    if state.runtime.plugin(&id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "handler_is_plugin",
            format!("`{id}` is a plugin: remove its file from the plugins folder instead"),
        ));
    }
    Err(unknown_handler(&id))
}

async fn get_handler(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    if let Some(h) = handlers::find(&state, &id).await {
        return Ok(ok(json!(h)));
    }
    match handlers::all(&state)
        .await?
        .into_iter()
        .find(|h| h.id == id)
    {
        Some(h) => Ok(ok(json!(h))),
        None => Err(unknown_handler(&id)),
    }
}

fn unknown_handler(id: &str) -> ApiError {
    ApiError::not_found("unknown_handler", format!("no handler `{id}`"))
}

fn schedule_not_found(id: &str) -> ApiError {
    ApiError::not_found("schedule_not_found", format!("no schedule `{id}`"))
}

/// A schedule id: 1 to 200 characters, no `/`, no control characters.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.chars().count() > 200
        || id.contains('/')
        || id.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "a schedule id has 1 to 200 characters, without `/` or control characters",
        ));
    }
    Ok(())
}

/// Checks that `handler` exists and has `method`.
async fn check_target(
    state: &AppState,
    handler: &str,
    method: &str,
    params: &Value,
) -> Result<(), ApiError> {
    match handlers::check(state, handler, method, Some(params)).await {
        Ok(()) => Ok(()),
        Err(handlers::Missing::Handler) => Err(unknown_handler(handler)),
        Err(handlers::Missing::Method(known)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_method",
            format!(
                "handler `{handler}` has no method `{method}` (it has: {})",
                known.join(", ")
            ),
        )),
        Err(handlers::Missing::Params(why)) => Err(invalid_params(why)),
    }
}

fn invalid_params(why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_params", why)
}

fn check_policy(policy: &SchedulePolicy) -> Result<(), ApiError> {
    policy
        .check()
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_policy", m))
}

fn policy_from(value: Value) -> Result<SchedulePolicy, ApiError> {
    let policy: SchedulePolicy = serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_policy",
            format!("invalid policy: {e}"),
        )
    })?;
    check_policy(&policy)?;
    Ok(policy)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSchedule {
    id: Option<String>,
    handler: String,
    method: String,
    #[serde(default = "empty_object")]
    params: Value,
    trigger: Value,
    #[serde(default)]
    policy: Option<Value>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    conflict_policy: ConflictPolicy,
    /// A date trigger may be in the past (it is then due at once, and its misfire policy decides
    /// whether it runs or is recorded as missed).
    #[serde(default)]
    allow_past_date: bool,
}

/// How far in the past a date may be and still count as "now" (a client's clock and latency).
const PAST_DATE_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Refuses a date trigger in the past unless the caller allowed it: a one-shot job meant for a
/// time that is gone is more likely a mistake (a wrong year, a local time read as UTC) than a
/// wish to run it now.
fn refuse_past_date(
    trigger: &TriggerSpec,
    now: DateTime<Utc>,
    allowed: bool,
) -> Result<(), ApiError> {
    match trigger {
        TriggerSpec::Date { run_date } if !allowed && *run_date < now - PAST_DATE_SLACK => {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_trigger",
                format!(
                    "run_date {} is in the past; set \"allow_past_date\": true to schedule it anyway (it is then due at once, and misfire_grace_time decides whether it runs)",
                    run_date.to_rfc3339()
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn empty_object() -> Value {
    json!({})
}

async fn create_schedule(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    state.room_for_new_work()?;
    let req: NewSchedule = typed(body)?;
    let id = req.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    check_id(&id)?;
    check_target(&state, &req.handler, &req.method, &req.params).await?;
    let now = Utc::now();
    let (trigger, compiled) =
        TriggerSpec::read_json(&req.trigger, now).map_err(|e| ApiError::trigger(&e))?;
    refuse_past_date(&trigger, now, req.allow_past_date)?;
    let policy = match req.policy {
        Some(p) => policy_from(p)?,
        None => SchedulePolicy::default(),
    };
    let schedule = Schedule {
        id,
        handler_id: req.handler,
        method: req.method,
        params: req.params,
        next_fire: compiled.first_fire(now),
        trigger,
        policy,
        paused: req.paused,
        created_at: now,
        updated_at: now,
    };
    match state
        .store
        .insert_schedule(&schedule, req.conflict_policy)
        .await?
    {
        Inserted::Created => {
            state.scheduler.wake_for(schedule.next_fire);
            Ok((
                StatusCode::CREATED,
                axum::Json(views::schedule_v1(&schedule)),
            )
                .into_response())
        }
        Inserted::Replaced => {
            state.scheduler.wake_for(schedule.next_fire);
            Ok(ok(views::schedule_v1(&schedule)))
        }
        Inserted::Kept(existing) => Ok(ok(views::schedule_v1(&existing))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleList {
    handler: Option<String>,
    paused: Option<bool>,
    /// `active`, `paused` or `completed` (no fire time left: a one-shot that ran, an ended
    /// cron or interval).
    state: Option<ScheduleState>,
    limit: Option<u32>,
    after: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ScheduleState {
    Active,
    Paused,
    Completed,
}

async fn list_schedules(
    State(state): Shared,
    Query(q): Query<ScheduleList>,
) -> Result<Response, ApiError> {
    let limit = page(q.limit);
    let list = state
        .store
        .list_schedules(&ScheduleQuery {
            handler_id: q.handler,
            paused: match q.state {
                Some(ScheduleState::Active) => Some(false),
                Some(ScheduleState::Paused) => Some(true),
                _ => q.paused,
            },
            completed: match q.state {
                Some(ScheduleState::Active) => Some(false),
                Some(ScheduleState::Completed) => Some(true),
                _ => None,
            },
            after_id: q.after,
            limit,
        })
        .await?;
    let next = (list.len() == limit as usize)
        .then(|| list.last().map(|s| s.id.clone()))
        .flatten();
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    let last = state.store.last_runs(&ids).await?;
    let schedules: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut view = views::schedule_v1(s);
            view["last_run"] = last.get(&s.id).map_or(Value::Null, views::run_v1);
            view
        })
        .collect();
    Ok(ok(json!({ "schedules": schedules, "next": next })))
}

async fn load_schedule(state: &AppState, id: &str) -> Result<Schedule, ApiError> {
    state
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| schedule_not_found(id))
}

async fn get_schedule(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let s = load_schedule(&state, &id).await?;
    let mut view = views::schedule_v1(&s);
    view["running"] = json!(state.scheduler.running(&id));
    let last = state.store.last_runs(&[id.as_str()]).await?;
    view["last_run"] = last.get(&id).map_or(Value::Null, views::run_v1);
    Ok(ok(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleChange {
    handler: Option<String>,
    method: Option<String>,
    params: Option<Value>,
    trigger: Option<Value>,
    policy: Option<serde_json::Map<String, Value>>,
    paused: Option<bool>,
    #[serde(default)]
    allow_past_date: bool,
}

async fn update_schedule(
    State(state): Shared,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    state.room_for_new_work()?;
    let change: ScheduleChange = typed(body)?;
    let mut s = load_schedule(&state, &id).await?;
    let now = Utc::now();
    let retargeted = change.handler.is_some() || change.method.is_some();
    let new_params = change.params.is_some();
    if let Some(h) = change.handler {
        s.handler_id = h;
    }
    if let Some(m) = change.method {
        s.method = m;
    }
    if let Some(params) = change.params {
        s.params = params;
    }
    if retargeted || new_params {
        check_target(&state, &s.handler_id, &s.method, &s.params).await?;
    }
    if let Some(patch) = change.policy {
        // Only the fields given change.
        let mut merged = serde_json::to_value(&s.policy).map_err(|e| ApiError::internal(&e))?;
        if let Value::Object(current) = &mut merged {
            current.extend(patch);
        }
        s.policy = policy_from(merged)?;
    }
    if let Some(trigger) = change.trigger {
        let (spec, compiled) =
            TriggerSpec::read_json(&trigger, now).map_err(|e| ApiError::trigger(&e))?;
        refuse_past_date(&spec, now, change.allow_past_date)?;
        s.trigger = spec;
        s.next_fire = compiled.first_fire(now);
    }
    if let Some(paused) = change.paused {
        s.paused = paused;
    }
    s.updated_at = now;
    state
        .store
        .insert_schedule(&s, ConflictPolicy::Replace)
        .await?;
    state.scheduler.wake();
    Ok(ok(views::schedule_v1(&s)))
}

async fn delete_schedule(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state.store.delete_schedule(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(schedule_not_found(&id))
    }
}

async fn pause(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut s = load_schedule(&state, &id).await?;
    let now = Utc::now();
    if !state.store.set_paused(&id, true, s.next_fire, now).await? {
        return Err(schedule_not_found(&id));
    }
    s.paused = true;
    s.updated_at = now;
    Ok(ok(views::schedule_v1(&s)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// Run the fire times missed while paused (by the schedule's coalesce policy) instead of
    /// going on from now.
    #[serde(default)]
    catch_up: bool,
}

async fn resume(
    State(state): Shared,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let req: Resume = if body.is_null() {
        Resume::default()
    } else {
        typed(body)?
    };
    let mut s = load_schedule(&state, &id).await?;
    let now = Utc::now();
    let trigger = s.trigger.compile().map_err(|e| ApiError::trigger(&e))?;
    let next = resume_from(&trigger, s.next_fire, now, req.catch_up);
    if !state.store.set_paused(&id, false, next, now).await? {
        return Err(schedule_not_found(&id));
    }
    state.scheduler.wake();
    s.paused = false;
    s.next_fire = next;
    s.updated_at = now;
    Ok(ok(views::schedule_v1(&s)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunNowQuery {
    /// Answer when the run has ended, with its outcome.
    #[serde(default)]
    wait: bool,
}

async fn run_now(
    State(state): Shared,
    Path(id): Path<String>,
    Query(q): Query<RunNowQuery>,
) -> Result<Response, ApiError> {
    state.room_for_new_work()?;
    let s = load_schedule(&state, &id).await?;
    // The handler may have changed since the schedule was made (a new version, a new schema).
    if let Err(handlers::Missing::Params(why)) =
        handlers::check(&state, &s.handler_id, &s.method, Some(&s.params)).await
    {
        return Err(invalid_params(why));
    }
    let (run, outcome) = match state.scheduler.run_now(s, Utc::now()).await {
        Ok(started) => started,
        Err(RunNowError::OverlapLimit(id)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "overlap_limit",
                format!(
                    "schedule `{id}` already has max_running runs in progress; this run is recorded as skipped"
                ),
            ));
        }
        Err(RunNowError::Duplicate(id)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "run_exists",
                format!("schedule `{id}` already has a run at this instant; try again"),
            ));
        }
        Err(RunNowError::Store(e)) => return Err(e.into()),
    };
    if !q.wait {
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "run": views::run_v1(&run) })),
        )
            .into_response());
    }
    let outcome = outcome
        .await
        .map_err(|_| ApiError::internal(&"the run ended without an outcome (see the log)"))?;
    let executions = state
        .store
        .executions(&ExecutionQuery {
            run_id: Some(run.id.clone()),
            limit: MAX_PAGE,
            ..ExecutionQuery::default()
        })
        .await?;
    let mut run = run;
    run.status = outcome.status;
    Ok(ok(json!({
        "run": views::run_v1(&run),
        "attempts": outcome.attempts,
        "error": outcome.error,
        "executions": executions.iter().map(views::execution_v1).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunList {
    schedule: Option<String>,
    status: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    before: Option<String>,
}

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

async fn list_runs(State(state): Shared, Query(q): Query<RunList>) -> Result<Response, ApiError> {
    let limit = page(q.limit);
    let status = q
        .status
        .as_deref()
        .map(RunStatus::parse)
        .transpose()
        .map_err(|_| {
            invalid_query("status is one of pending, running, success, error, skipped, missed")
        })?;
    let before = match q.before.as_deref() {
        None => None,
        Some(cursor) => {
            let (us, id) = cursor
                .split_once('_')
                .ok_or_else(|| invalid_query("`before` is a cursor from a previous page"))?;
            let us: i64 = us
                .parse()
                .map_err(|_| invalid_query("`before` is a cursor from a previous page"))?;
            let t = DateTime::from_timestamp_micros(us)
                .ok_or_else(|| invalid_query("`before` is a cursor from a previous page"))?;
            Some((t, id.to_owned()))
        }
    };
    let runs = state
        .store
        .list_runs(&RunQuery {
            schedule_id: q.schedule,
            status,
            since: q.since,
            until: q.until,
            before,
            limit,
        })
        .await?;
    let next = (runs.len() == limit as usize)
        .then(|| {
            runs.last()
                .map(|r| format!("{}_{}", r.fire_time.timestamp_micros(), r.id))
        })
        .flatten();
    Ok(ok(json!({
        "runs": runs.iter().map(views::run_v1).collect::<Vec<_>>(),
        "next": next,
    })))
}

async fn get_run(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("run_not_found", format!("no run `{id}`")))?;
    let executions = state
        .store
        .executions(&ExecutionQuery {
            run_id: Some(id),
            limit: MAX_PAGE,
            ..ExecutionQuery::default()
        })
        .await?;
    Ok(ok(json!({
        "run": views::run_v1(&run),
        "executions": executions.iter().map(views::execution_v1).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionList {
    schedule: Option<String>,
    handler: Option<String>,
    run: Option<String>,
    status: Option<ExecutionStatus>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    before: Option<i64>,
}

async fn list_executions(
    State(state): Shared,
    Query(q): Query<ExecutionList>,
) -> Result<Response, ApiError> {
    let limit = page(q.limit);
    let records = state
        .store
        .executions(&ExecutionQuery {
            handler_id: q.handler,
            job_id: q.schedule,
            run_id: q.run,
            status: q.status,
            since: q.since,
            until: q.until,
            before_id: q.before,
            limit,
        })
        .await?;
    let next = (records.len() == limit as usize)
        .then(|| records.last().map(|e| e.id))
        .flatten();
    Ok(ok(json!({
        "executions": records.iter().map(views::execution_v1).collect::<Vec<_>>(),
        "next": next,
    })))
}

async fn get_execution(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("execution_not_found", format!("no execution `{id}`"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let found = state
        .store
        .executions(&ExecutionQuery {
            before_id: n.checked_add(1),
            limit: 1,
            ..ExecutionQuery::default()
        })
        .await?;
    match found.first() {
        Some(e) if e.id == n => Ok(ok(views::execution_v1(e))),
        _ => Err(not_found()),
    }
}

async fn stats(State(state): Shared) -> Result<Response, ApiError> {
    Ok(ok(json!(state.store.execution_stats().await?)))
}

/// The most buckets one timeline has.
const MAX_BUCKETS: i64 = 1440;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineList {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    bucket_s: Option<u32>,
    handler: Option<String>,
    schedule: Option<String>,
}

/// Attempts per bucket of time and status (default: the last hour, by minute).
async fn timeline(
    State(state): Shared,
    Query(q): Query<TimelineList>,
) -> Result<Response, ApiError> {
    let bucket_s = q.bucket_s.unwrap_or(60);
    if bucket_s == 0 {
        return Err(ApiError::bad_request("`bucket_s` must be at least 1"));
    }
    let until = q.until.unwrap_or_else(Utc::now);
    let bucket = i64::from(bucket_s);
    // By default the hour before `until` (at least one bucket, at most as many as allowed), in
    // buckets on the clock's own boundaries (whole minutes for 60 s), so a bucket's count does
    // not change as the window slides.
    let since = q.since.unwrap_or_else(|| {
        let span = 3600.clamp(bucket, bucket * (MAX_BUCKETS - 1));
        let start = until.timestamp() - span;
        DateTime::from_timestamp(start - start.rem_euclid(bucket), 0)
            .unwrap_or(until - chrono::Duration::seconds(span))
    });
    if since >= until {
        return Err(ApiError::bad_request("`since` must be before `until`"));
    }
    let span_us = (until - since).num_microseconds().unwrap_or(i64::MAX);
    let bucket_us = bucket * 1_000_000;
    if span_us.div_euclid(bucket_us) + i64::from(span_us.rem_euclid(bucket_us) > 0) > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "that is more than {MAX_BUCKETS} buckets: widen `bucket_s` or shorten the span"
        )));
    }
    let buckets = state
        .store
        .execution_timeline(&TimelineQuery {
            since,
            until,
            bucket: std::time::Duration::from_secs(u64::from(bucket_s)),
            handler_id: q.handler,
            job_id: q.schedule,
        })
        .await?;
    Ok(ok(json!({
        "since": views::utc(since),
        "until": views::utc(until),
        "bucket_s": bucket_s,
        "buckets": buckets.iter().map(|b| {
            let mut v = json!(b);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("start".into(), json!(views::utc(b.start)));
            }
            v
        }).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Preview {
    trigger: Value,
    #[serde(default = "five")]
    count: usize,
    #[serde(default)]
    allow_past_date: bool,
}

fn five() -> usize {
    5
}

/// A trigger's next fire times, or why it is not valid.
fn fire_times(req: &Preview) -> Result<Value, ApiError> {
    let now = Utc::now();
    let (spec, trigger) =
        TriggerSpec::read_json(&req.trigger, now).map_err(|e| ApiError::trigger(&e))?;
    refuse_past_date(&spec, now, req.allow_past_date)?;
    let count = req.count.clamp(1, 100);
    let mut fires = Vec::with_capacity(count);
    if let Some(first) = trigger.first_fire(now) {
        fires.push(first);
        fires.extend(trigger.fires_after(first, count - 1));
    }
    Ok(json!({
        "trigger": spec,
        "trigger_text": views::trigger_text(&spec),
        "timezone": views::zone(&spec).name(),
        "fire_times": fires.iter().map(|t| views::utc(*t)).collect::<Vec<_>>(),
        "fire_times_local": fires.iter().map(|t| views::local(*t, &spec)).collect::<Vec<_>>(),
    }))
}

/// The next fire times; an invalid trigger is a 4xx with its code.
async fn preview(Body(body): Body) -> Result<Response, ApiError> {
    let req: Preview = typed(body)?;
    Ok(ok(fire_times(&req)?))
}

/// A form's check as it is typed: always 200 for a readable request, `valid` saying whether
/// the trigger is, with the fire times or the error a schedule with it would get.
async fn check(Body(body): Body) -> Result<Response, ApiError> {
    let req: Preview = typed(body)?;
    Ok(ok(match fire_times(&req) {
        Ok(mut v) => {
            v["valid"] = json!(true);
            v
        }
        Err(e) => json!({
            "valid": false,
            "error": { "code": e.code, "message": e.message },
        }),
    }))
}
