//! Runs and the execution log: list and get runs, list and get records, totals and the
//! timeline of attempts.

use axum::Json;
use axum::extract::{Path, State};
use chrono::DateTime;

use super::{MAX_PAGE, Shared, page};
use crate::api::error::{ApiError, ErrorBody, ErrorCode};
use crate::api::json::Query;
use crate::api::requests::{ExecutionQuery, RunQuery, TimelineQuery};
use crate::api::views::{self, ExecutionList, ExecutionView, RunDetail, RunList, Timeline};
use crate::schedule::RunStatus;
use crate::store::{ExecutionStats, TimelineQuery as Span};

crate::api::routes::api_routes! {
    (get, "/api/v1/runs", list_runs),
    (get, "/api/v1/runs/{id}", get_run),
    (get, "/api/v1/executions", list_executions),
    (get, "/api/v1/executions/stats", stats),
    (get, "/api/v1/executions/timeline", timeline),
    (get, "/api/v1/executions/{id}", get_execution),
}

/// The most buckets one timeline has.
const MAX_BUCKETS: i64 = 1440;

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, message)
}

/// Reads a runs cursor: `<fire time in µs>_<run id>`.
fn run_cursor(cursor: &str) -> Result<(DateTime<chrono::Utc>, String), ApiError> {
    let bad = || invalid_query("`before` is a cursor from a previous page");
    let (us, id) = cursor.split_once('_').ok_or_else(bad)?;
    let us: i64 = us.parse().map_err(|_| bad())?;
    let t = DateTime::from_timestamp_micros(us).ok_or_else(bad)?;
    Ok((t, id.to_owned()))
}

/// Runs, newest fire time first, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", operation_id = "listRuns",
    params(RunQuery),
    responses((status = 200, description = "A page of runs", body = RunList)))]
pub async fn list_runs(
    State(state): Shared,
    Query(q): Query<RunQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = page(q.limit);
    let status = q
        .status
        .as_deref()
        .map(RunStatus::parse)
        .transpose()
        .map_err(|e| invalid_query(format!("status: {e}")))?;
    let before = q.before.as_deref().map(run_cursor).transpose()?;
    let runs = state
        .store
        .list_runs(&crate::store::RunQuery {
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
    Ok(Json(RunList { runs, next }))
}

/// One run with its attempts.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", operation_id = "getRun",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run and its execution records", body = RunDetail),
        (status = 404, description = "`run_not_found`", body = ErrorBody),
    ))]
pub async fn get_run(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::RunNotFound, format!("no run `{id}`")))?;
    let executions = state
        .store
        .executions(&crate::store::ExecutionQuery {
            run_id: Some(id),
            limit: MAX_PAGE,
            ..Default::default()
        })
        .await?;
    Ok(Json(RunDetail {
        run,
        executions: views::executions(&executions),
    }))
}

/// Execution records, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/executions", tag = "executions", operation_id = "listExecutions",
    params(ExecutionQuery),
    responses((status = 200, description = "A page of execution records", body = ExecutionList)))]
pub async fn list_executions(
    State(state): Shared,
    Query(q): Query<ExecutionQuery>,
) -> Result<Json<ExecutionList>, ApiError> {
    let limit = page(q.limit);
    let records = state
        .store
        .executions(&crate::store::ExecutionQuery {
            handler_id: q.handler,
            schedule_id: q.schedule,
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
    Ok(Json(ExecutionList {
        executions: views::executions(&records),
        next,
    }))
}

/// One execution record.
#[utoipa::path(get, path = "/api/v1/executions/{id}", tag = "executions", operation_id = "getExecution",
    params(("id" = String, Path, description = "The record's id")),
    responses(
        (status = 200, description = "The record", body = ExecutionView),
        (status = 404, description = "`execution_not_found`", body = ErrorBody),
    ))]
pub async fn get_execution(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    let not_found = || ApiError::new(ErrorCode::ExecutionNotFound, format!("no execution `{id}`"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let found = state
        .store
        .executions(&crate::store::ExecutionQuery {
            before_id: n.checked_add(1),
            limit: 1,
            ..Default::default()
        })
        .await?;
    match found.first() {
        Some(e) if e.id == n => Ok(Json(ExecutionView::from(e))),
        _ => Err(not_found()),
    }
}

/// Totals over the log, and since the store was created.
#[utoipa::path(get, path = "/api/v1/executions/stats", tag = "executions", operation_id = "executionStats",
    responses((status = 200, description = "Totals", body = ExecutionStats)))]
pub async fn stats(State(state): Shared) -> Result<Json<ExecutionStats>, ApiError> {
    Ok(Json(state.store.execution_stats().await?))
}

/// Attempts per bucket of time and status (default: the last hour, by minute).
#[utoipa::path(get, path = "/api/v1/executions/timeline", tag = "executions", operation_id = "executionTimeline",
    params(TimelineQuery),
    responses((status = 200, description = "The buckets", body = Timeline)))]
pub async fn timeline(
    State(state): Shared,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let bucket_s = q.bucket_s.unwrap_or(60);
    if bucket_s == 0 {
        return Err(ApiError::bad_request("`bucket_s` must be at least 1"));
    }
    let until = q.until.unwrap_or_else(chrono::Utc::now);
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
        .execution_timeline(&Span {
            since,
            until,
            bucket: std::time::Duration::from_secs(u64::from(bucket_s)),
            handler_id: q.handler,
            schedule_id: q.schedule,
        })
        .await?;
    Ok(Json(Timeline {
        since,
        until,
        bucket_s,
        buckets,
    }))
}
