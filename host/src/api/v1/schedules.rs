//! Schedules: create, list, get, update, delete, pause, resume and run now. Every write goes
//! through the schedule service ([`crate::service::ScheduleService`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{MAX_PAGE, Shared, page};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::json::{Body, Query, typed};
use crate::api::requests::{NewSchedule, Resume, RunNowQuery, ScheduleChange, ScheduleQuery};
use crate::api::views::{self, RunEnded, RunStarted, ScheduleList, ScheduleView};
use crate::schedule::{Schedule, ScheduleState};
use crate::service::schedules::Created;
use crate::service::{Change, Draft, TriggerText};
use crate::store::ExecutionQuery;

crate::api::routes::api_routes! {
    (get, "/api/v1/schedules", list),
    (post, "/api/v1/schedules", create),
    (get, "/api/v1/schedules/{id}", get),
    (patch, "/api/v1/schedules/{id}", update),
    (delete, "/api/v1/schedules/{id}", delete),
    (post, "/api/v1/schedules/{id}/pause", pause),
    (post, "/api/v1/schedules/{id}/resume", resume),
    (post, "/api/v1/schedules/{id}/run", run_now),
}

/// The view of `s` with its runs in progress and its latest run.
async fn view(state: &AppState, s: &Schedule) -> Result<ScheduleView, ApiError> {
    let mut last = state.store.last_runs(&[s.id.as_str()]).await?;
    let running = in_progress(state, &[s.id.as_str()]).await?;
    let mut view = ScheduleView::of(s, running(&s.id), last.remove(&s.id));
    view.runnable = runnable(state).await?.contains(&s.handler_id);
    Ok(view)
}

/// How many runs of each schedule are in progress: this host's count, or (on a shared store)
/// every host's, from the store.
async fn in_progress<'a>(
    state: &'a AppState,
    ids: &[&str],
) -> Result<Box<dyn Fn(&str) -> u32 + Send + Sync + 'a>, ApiError> {
    if state.store.is_shared() {
        let counts = state.store.runs_in_progress(ids).await?;
        Ok(Box::new(move |id: &str| {
            counts.get(id).copied().unwrap_or(0)
        }))
    } else {
        Ok(Box::new(|id: &str| state.scheduler.running(id)))
    }
}

/// The handlers a live host can run now: this host's, and (on a shared store) the plugins the
/// other live hosts reported and the remote handlers that answer.
async fn runnable(state: &AppState) -> Result<std::collections::HashSet<String>, ApiError> {
    let mut ids: std::collections::HashSet<String> = state
        .scheduler
        .dispatcher()
        .handlers()
        .runnable()
        .into_iter()
        .collect();
    if state.store.is_shared() {
        for node in state.store.nodes(state.store.node().lease()).await? {
            if node.state == crate::store::NodeState::Live {
                ids.extend(node.plugins);
            }
        }
    }
    Ok(ids)
}

/// Creates a schedule; a 201 means it is committed.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", operation_id = "createSchedule",
    request_body = NewSchedule,
    responses(
        (status = 201, description = "Created and committed", body = ScheduleView),
        (status = 200, description = "Replaced, or kept (`conflict_policy`)", body = ScheduleView),
        (status = 404, description = "`unknown_handler`", body = ErrorBody),
        (status = 409, description = "`schedule_exists`", body = ErrorBody),
        (status = 507, description = "`storage_full`: nothing was written", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn create(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    state.schedules.room_for_new_work()?;
    let req: NewSchedule = typed(body)?;
    let created = state
        .schedules
        .create(Draft {
            id: req.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            handler: req.handler,
            method: req.method,
            params: req.params,
            trigger: TriggerText::V1(&req.trigger),
            policy: req.policy,
            paused: req.paused,
            conflict: req.conflict_policy,
            allow_past_date: req.allow_past_date,
        })
        .await?;
    Ok(match created {
        Created::New(s) => {
            let mut view = ScheduleView::of(&s, 0, None);
            view.runnable = runnable(&state).await?.contains(&s.handler_id);
            (StatusCode::CREATED, Json(view)).into_response()
        }
        Created::Replaced(s) | Created::Kept(s) => Json(view(&state, &s).await?).into_response(),
    })
}

/// Schedules in id order, a page at a time, with their latest runs.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", operation_id = "listSchedules",
    params(ScheduleQuery),
    responses((status = 200, description = "A page of schedules", body = ScheduleList)))]
pub async fn list(
    State(state): Shared,
    Query(q): Query<ScheduleQuery>,
) -> Result<Json<ScheduleList>, ApiError> {
    let limit = page(q.limit);
    let list = state
        .store
        .list_schedules(&crate::store::ScheduleQuery {
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
    let mut last = state.store.last_runs(&ids).await?;
    let can_run = runnable(&state).await?;
    let running = in_progress(&state, &ids).await?;
    let schedules = list
        .iter()
        .map(|s| {
            let mut view = ScheduleView::of(s, running(&s.id), last.remove(&s.id));
            view.runnable = can_run.contains(&s.handler_id);
            view
        })
        .collect();
    Ok(Json(ScheduleList { schedules, next }))
}

/// One schedule, with its runs in progress and its latest run.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", operation_id = "getSchedule",
    params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
    ))]
pub async fn get(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let s = state.schedules.get(&id).await?;
    Ok(Json(view(&state, &s).await?))
}

/// Changes the fields given; the result is checked as a create would check it.
#[utoipa::path(patch, path = "/api/v1/schedules/{id}", tag = "schedules", operation_id = "updateSchedule",
    params(("id" = String, Path, description = "The schedule's id")),
    request_body = ScheduleChange,
    responses(
        (status = 200, description = "The schedule as changed", body = ScheduleView),
        (status = 404, description = "`schedule_not_found` or `unknown_handler`", body = ErrorBody),
        (status = 507, description = "`storage_full`: nothing was written", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn update(
    State(state): Shared,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<ScheduleView>, ApiError> {
    state.schedules.room_for_new_work()?;
    let change: ScheduleChange = typed(body)?;
    let s = state
        .schedules
        .update(
            &id,
            Change {
                handler: change.handler,
                method: change.method,
                params: change.params,
                trigger: change.trigger,
                policy: change.policy,
                paused: change.paused,
                allow_past_date: change.allow_past_date,
            },
        )
        .await?;
    Ok(Json(view(&state, &s).await?))
}

/// Deletes a schedule; its runs and records stay in the log.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", operation_id = "deleteSchedule",
    params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
    ))]
pub async fn delete(State(state): Shared, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.schedules.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a schedule: it fires no more until resumed.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/pause", tag = "schedules", operation_id = "pauseSchedule",
    params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "The schedule, paused", body = ScheduleView),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let s = state.schedules.pause(&id).await?;
    Ok(Json(view(&state, &s).await?))
}

/// Resumes a schedule from now, or from the fire times missed while paused (`catch_up`).
#[utoipa::path(post, path = "/api/v1/schedules/{id}/resume", tag = "schedules", operation_id = "resumeSchedule",
    params(("id" = String, Path, description = "The schedule's id")),
    request_body(content = Option<Resume>, description = "Optional"),
    responses(
        (status = 200, description = "The schedule, resumed", body = ScheduleView),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): Shared,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<ScheduleView>, ApiError> {
    let req: Resume = if body.is_null() {
        Resume::default()
    } else {
        typed(body)?
    };
    let resumed = state.schedules.resume(&id, req.catch_up).await?;
    Ok(Json(view(&state, &resumed.schedule).await?))
}

/// Runs a schedule now, outside its trigger, within its overlap limit; `?wait=true` answers
/// when the run has ended.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/run", tag = "schedules", operation_id = "runSchedule",
    params(("id" = String, Path, description = "The schedule's id"), RunNowQuery),
    responses(
        (status = 202, description = "Started", body = RunStarted),
        (status = 200, description = "Ended (`wait=true`), with its outcome", body = RunEnded),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 409, description = "`overlap_limit` or `run_exists`", body = ErrorBody),
        (status = 507, description = "`storage_full`: nothing was written", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn run_now(
    State(state): Shared,
    Path(id): Path<String>,
    Query(q): Query<RunNowQuery>,
) -> Result<Response, ApiError> {
    let (run, outcome) = state.schedules.run_now(&id).await?;
    if !q.wait {
        return Ok((StatusCode::ACCEPTED, Json(RunStarted { run })).into_response());
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
    Ok(Json(RunEnded {
        run,
        attempts: outcome.attempts,
        error: outcome.error,
        executions: views::executions(&executions),
    })
    .into_response())
}
