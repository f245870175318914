//! The execution log: one record per attempt. Writes come in batches (one transaction, one
//! fsync, however many records), so the dispatcher can commit many results per disk flush
//! without giving up durability. Reads filter and page newest first; stats, recent errors,
//! clearing and retention (by count and by age) complete it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::db::{Dialect, Get, on, writing};
use super::{Store, StoreError, Write, read_time};
use crate::schedule::{Execution, ExecutionStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An attempt as it starts (or as it is recorded without running: skipped, missed).
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    /// The run this attempt belongs to.
    pub run_id: String,
    /// The schedule id, or `immediate_<handler>_<method>_<ts>` for a call made at once.
    pub schedule_id: String,
    /// The handler.
    pub handler_id: String,
    /// The method.
    pub method: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The attempts the run may take.
    pub max_attempts: u32,
    /// `Running` for an attempt that starts; `Skipped` or `Missed` for one that does not.
    pub status: ExecutionStatus,
    /// When it started (or was due).
    pub started_at: DateTime<Utc>,
    /// A short text of the params (see [`params_summary`]).
    pub params_summary: Option<String>,
    /// Which instance or remote handler ran it.
    pub instance: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The record.
    pub id: i64,
    /// `Success`, `Retry` or `Error`.
    pub status: ExecutionStatus,
    /// When it ended.
    pub completed_at: DateTime<Utc>,
    /// The result (JSON), on success.
    pub result: Option<serde_json::Value>,
    /// The error's stable code, on failure.
    pub error_code: Option<String>,
    /// The error's message, on failure.
    pub error: Option<String>,
    /// Which instance ran it, when known only at the end (replaces the one given at start).
    pub instance: Option<String>,
    /// Why a failed attempt was not retried.
    pub not_retried: Option<String>,
    /// What it used outside its instance.
    pub usage: Option<crate::capability::CallUsage>,
}

/// Which records to read, newest first, a page at a time (ids below `before_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    /// Only this handler's.
    pub handler_id: Option<String>,
    /// Only this job's (schedule id).
    pub schedule_id: Option<String>,
    /// Only this run's.
    pub run_id: Option<String>,
    /// Only with this status.
    pub status: Option<ExecutionStatus>,
    /// Only started at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only started before this.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this one (the last id of the previous page).
    pub before_id: Option<i64>,
    /// The page size.
    pub limit: u32,
}

/// Totals of one handler.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HandlerTotals {
    /// Records.
    pub total: u64,
    /// Successes.
    pub success: u64,
    /// Errors (final failures).
    pub error: u64,
}

/// One handler's attempts that started since a time (the fleet view's recent window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandlerWindow {
    /// The handler.
    pub handler_id: String,
    /// Attempts, in all (skipped and missed fire times not counted: they did not run).
    pub total: u64,
    /// Succeeded.
    pub success: u64,
    /// Failed: error, retry, interrupted.
    pub failed: u64,
    /// Still running.
    pub running: u64,
    /// Mean duration of those that ended, in ms.
    pub mean_ms: Option<f64>,
    /// Longest duration of those that ended, in ms.
    pub max_ms: Option<f64>,
}

/// A handler's attempts of one status in a window: handler, status, count, mean and longest
/// duration (µs).
type WindowRow = (String, String, i64, Option<f64>, Option<i64>);

/// The attempts that started in one stretch of time, by status, with their durations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineBucket {
    /// Where the stretch starts (it ends where the next one starts).
    #[serde(with = "crate::time::rfc3339")]
    pub start: DateTime<Utc>,
    /// Still running.
    pub running: u64,
    /// Finished with a result.
    pub success: u64,
    /// Failed, with another attempt to follow.
    pub retry: u64,
    /// Failed for good.
    pub error: u64,
    /// Not started: overlap limit.
    pub skipped: u64,
    /// Not started: too late.
    pub missed: u64,
    /// The mean duration of the finished attempts, in milliseconds.
    pub duration_ms_mean: Option<f64>,
    /// The longest of them, in milliseconds.
    pub duration_ms_max: Option<f64>,
}

/// Which attempts a timeline counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineQuery {
    /// From (included).
    pub since: DateTime<Utc>,
    /// To (excluded).
    pub until: DateTime<Utc>,
    /// The length of a bucket.
    pub bucket: Duration,
    /// Only this handler's.
    pub handler_id: Option<String>,
    /// Only this schedule's.
    pub schedule_id: Option<String>,
}

/// Totals over the log as it is now, and since the store was created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionStats {
    /// Records in the log.
    pub total_executions: u64,
    /// Records ever written, including pruned and cleared ones.
    pub lifetime_executions: u64,
    /// Successes in the log.
    pub success_count: u64,
    /// Errors in the log.
    pub error_count: u64,
    /// Successes among finished successes and errors, in percent (0 when there are none).
    pub success_rate: f64,
    /// The mean duration of finished records, in milliseconds.
    pub avg_duration_ms: f64,
    /// Per handler.
    pub by_handler: BTreeMap<String, HandlerTotals>,
}

/// How long the log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The most records kept (the oldest go first).
    pub max_records: u64,
    /// Records older than this go.
    pub max_age: Duration,
}

fn corrupt(message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table: "executions",
        message: message.to_string(),
    }
}

fn time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    read_time("executions", us)
}

/// One group of [`Store::execution_timeline`]'s query.
struct Bucketed {
    bucket: i64,
    status: String,
    n: i64,
    timed: i64,
    total_us: Option<i64>,
    max_us: Option<i64>,
}

fn read(row: &impl Get) -> Result<Execution, StoreError> {
    let count = |col: &str| -> Result<u32, StoreError> {
        u32::try_from(row.col::<i64>(col)?).map_err(|_| corrupt(format!("{col} out of range")))
    };
    Ok(Execution {
        id: row.col("id")?,
        run_id: row.col("run_id")?,
        schedule_id: row.col("job_id")?,
        handler_id: row.col("handler_id")?,
        method: row.col("method")?,
        attempt: count("attempt")?,
        max_attempts: count("max_attempts")?,
        status: ExecutionStatus::parse(&row.col::<String>("status")?).map_err(corrupt)?,
        started_at: time(row.col("started_us")?)?,
        completed_at: row
            .col::<Option<i64>>("completed_us")?
            .map(time)
            .transpose()?,
        duration_ms: row
            .col::<Option<i64>>("duration_us")?
            .map(|us| us as f64 / 1000.0),
        result: row
            .col::<Option<String>>("result")?
            .map(|r| serde_json::from_str(&r).map_err(corrupt))
            .transpose()?,
        error_code: row.col("error_code")?,
        error: row.col("error")?,
        params_summary: row.col("params_summary")?,
        instance: row.col("instance")?,
        not_retried: row.col("not_retried")?,
        usage: row
            .col::<Option<String>>("usage")?
            .map(|u| serde_json::from_str(&u).map_err(corrupt))
            .transpose()?,
        node: row.col("node")?,
    })
}

impl Store {
    /// Writes attempts that start (or are recorded as skipped or missed), all in one
    /// transaction. Returns their ids, in order. Committed on return.
    pub async fn insert_executions(&self, batch: &[NewExecution]) -> Result<Vec<i64>, StoreError> {
        self.record(batch.iter().cloned().map(Write::Start).collect())
            .await
    }

    /// Records how attempts ended, all in one transaction. Committed on return.
    pub async fn complete_executions(&self, batch: &[Completion]) -> Result<(), StoreError> {
        self.record(batch.iter().cloned().map(Write::Complete).collect())
            .await
            .map(drop)
    }

    /// Ends the attempts of `runs` still marked running (code `interrupted`): their host
    /// stopped, or lost its lease, before finishing them. The attempt of a run that goes on to
    /// its next attempt (`true`) ends as `retry`, any other as `error`. Returns how many.
    pub async fn interrupt_attempts(
        &self,
        now: DateTime<Utc>,
        runs: &[(String, bool)],
    ) -> Result<u64, StoreError> {
        if runs.is_empty() {
            return Ok(0);
        }
        let now_us = now.timestamp_micros();
        let mut turn = self.write_turn().await?;
        let mut ended = 0;
        // 2 parameters a run; well under SQLite's 32,766 per statement.
        for chunk in runs.chunks(5_000) {
            ended += writing!(&mut turn, conn, DB => {
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "UPDATE executions SET status = CASE WHEN run_id IN (NULL",
                );
                for (run, _) in chunk.iter().filter(|(_, goes_on)| *goes_on) {
                    q.push(", ").push_bind(run.as_str());
                }
                q.push(") THEN 'retry' ELSE 'error' END, completed_us = ")
                    .push_bind(now_us)
                    .push(", duration_us = CASE WHEN started_us < ")
                    .push_bind(now_us)
                    .push(" THEN ")
                    .push_bind(now_us)
                    .push(
                        " - started_us ELSE 0 END, error_code = 'interrupted', \
                         error = 'the host running this attempt stopped or lost its lease' \
                         WHERE status = 'running' AND run_id IN (NULL",
                    );
                for (run, _) in chunk {
                    q.push(", ").push_bind(run.as_str());
                }
                q.push(")");
                q.build().execute(&mut *conn).await?.rows_affected()
            });
        }
        Ok(ended)
    }

    /// The last attempt recorded for a run, with its status (`None` when none).
    pub async fn last_attempt_of(
        &self,
        run_id: &str,
    ) -> Result<Option<(u32, ExecutionStatus)>, StoreError> {
        let row: Option<(i64, String)> = on!(&self.db, pool => sqlx::query_as(
            "SELECT attempt, status FROM executions WHERE run_id = $1 ORDER BY attempt DESC, id DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(pool)
        .await?);
        row.map(|(attempt, status)| {
            Ok((
                u32::try_from(attempt).map_err(|_| corrupt("attempt out of range"))?,
                ExecutionStatus::parse(&status).map_err(corrupt)?,
            ))
        })
        .transpose()
    }

    /// Records, newest first.
    pub async fn executions(&self, q: &ExecutionQuery) -> Result<Vec<Execution>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, run_id, job_id, handler_id, method, attempt, max_attempts, status, started_us, completed_us, \
             duration_us, result, error_code, error, params_summary, instance, not_retried, usage, node FROM executions \
             WHERE ($1 IS NULL OR handler_id = $1) AND ($2 IS NULL OR job_id = $2) \
             AND ($3 IS NULL OR run_id = $3) AND ($4 IS NULL OR status = $4) \
             AND ($5 IS NULL OR started_us >= $5) AND ($6 IS NULL OR started_us < $6) \
             AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8",
        )
        .bind(q.handler_id.as_deref())
        .bind(q.schedule_id.as_deref())
        .bind(q.run_id.as_deref())
        .bind(q.status.map(ExecutionStatus::as_str))
        .bind(q.since.map(|t| t.timestamp_micros()))
        .bind(q.until.map(|t| t.timestamp_micros()))
        .bind(q.before_id)
        .bind(i64::from(q.limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }

    /// Totals over the log.
    pub async fn execution_stats(&self) -> Result<ExecutionStats, StoreError> {
        let rows: Vec<(String, String, i64)> = on!(&self.db, pool => sqlx::query(
            "SELECT handler_id, status, COUNT(*) AS n FROM executions GROUP BY handler_id, status",
        )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.col("handler_id")?, row.col("status")?, row.col("n")?)))
            .collect::<Result<_, sqlx::Error>>()?);
        let mut stats = ExecutionStats::default();
        for (handler, status, n) in rows {
            let status = ExecutionStatus::parse(&status).map_err(corrupt)?;
            let n = u64::try_from(n).unwrap_or(0);
            let totals = stats.by_handler.entry(handler).or_default();
            totals.total += n;
            stats.total_executions += n;
            match status {
                ExecutionStatus::Success => {
                    totals.success += n;
                    stats.success_count += n;
                }
                ExecutionStatus::Error => {
                    totals.error += n;
                    stats.error_count += n;
                }
                _ => {}
            }
        }
        let finished = stats.success_count + stats.error_count;
        if finished > 0 {
            stats.success_rate = stats.success_count as f64 * 100.0 / finished as f64;
        }
        let (avg,): (Option<f64>,) = on!(&self.db, pool => sqlx::query_as(
            "SELECT CAST(AVG(duration_us) AS DOUBLE PRECISION) FROM executions WHERE duration_us IS NOT NULL",
        )
        .fetch_one(pool)
        .await?);
        stats.avg_duration_ms = avg.unwrap_or(0.0) / 1000.0;
        // A count may be kept in shards (PostgreSQL): it is their sum.
        let (lifetime,): (i64,) = on!(&self.db, pool => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT) FROM counters WHERE name = 'lifetime_executions'",
        )
        .fetch_one(pool)
        .await?);
        stats.lifetime_executions = u64::try_from(lifetime).unwrap_or(0);
        Ok(stats)
    }

    /// Each handler's attempts that started at or after `since`, by handler id.
    pub async fn executions_by_handler_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<HandlerWindow>, StoreError> {
        let rows: Vec<WindowRow> = on!(&self.db, pool => sqlx::query(
            "SELECT handler_id, status, COUNT(*) AS n, \
             CAST(AVG(duration_us) AS DOUBLE PRECISION) AS mean_us, MAX(duration_us) AS max_us \
             FROM executions WHERE started_us >= $1 AND status NOT IN ('skipped', 'missed') \
             GROUP BY handler_id, status ORDER BY handler_id",
        )
            .bind(since.timestamp_micros())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((
                row.col("handler_id")?,
                row.col("status")?,
                row.col("n")?,
                row.col("mean_us")?,
                row.col("max_us")?,
            )))
            .collect::<Result<_, sqlx::Error>>()?);
        let mut out: Vec<HandlerWindow> = Vec::new();
        // Per handler: the sum and count behind the mean, over the statuses that ended.
        let mut weights: Vec<(f64, u64)> = Vec::new();
        for (handler, status, n, mean_us, max_us) in rows {
            if out.last().is_none_or(|w| w.handler_id != handler) {
                out.push(HandlerWindow {
                    handler_id: handler,
                    ..HandlerWindow::default()
                });
                weights.push((0.0, 0));
            }
            let (Some(w), Some(weight)) = (out.last_mut(), weights.last_mut()) else {
                continue;
            };
            let n = u64::try_from(n).unwrap_or(0);
            w.total += n;
            match ExecutionStatus::parse(&status).map_err(corrupt)? {
                ExecutionStatus::Success => w.success += n,
                ExecutionStatus::Running => w.running += n,
                _ => w.failed += n,
            }
            if let Some(mean) = mean_us {
                weight.0 += mean * n as f64;
                weight.1 += n;
            }
            if let Some(max) = max_us {
                let max = max as f64 / 1000.0;
                w.max_ms = Some(w.max_ms.map_or(max, |m: f64| m.max(max)));
            }
        }
        for (w, (sum, n)) in out.iter_mut().zip(weights) {
            if n > 0 {
                w.mean_ms = Some(sum / n as f64 / 1000.0);
            }
        }
        Ok(out)
    }

    /// The result of the latest successful attempt of `method` of `handler`, if any.
    pub async fn last_result(
        &self,
        handler: &str,
        method: &str,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on!(&self.db, pool => sqlx::query_as(
            "SELECT result FROM executions WHERE handler_id = $1 AND method = $2 \
             AND status = 'success' ORDER BY id DESC LIMIT 1",
        )
        .bind(handler)
        .bind(method)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(r,)| r))
    }

    /// The attempts started between `since` and `until`, counted per bucket: every bucket of
    /// the span is there, empty ones included, oldest first.
    pub async fn execution_timeline(
        &self,
        q: &TimelineQuery,
    ) -> Result<Vec<TimelineBucket>, StoreError> {
        let bucket_us = i64::try_from(q.bucket.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        let since = q.since.timestamp_micros();
        let until = q.until.timestamp_micros().max(since);
        let buckets = usize::try_from((until - since + bucket_us - 1) / bucket_us).unwrap_or(0);
        let mut out: Vec<TimelineBucket> = (0..buckets)
            .map(|i| TimelineBucket {
                start: DateTime::from_timestamp_micros(since + i as i64 * bucket_us)
                    .unwrap_or(q.since),
                ..TimelineBucket::default()
            })
            .collect();
        let rows: Vec<Bucketed> = on!(&self.db, pool => sqlx::query(
            "SELECT (started_us - $1) / $2 AS bucket, status, COUNT(*) AS n, \
             COUNT(duration_us) AS timed, CAST(SUM(duration_us) AS BIGINT) AS total_us, \
             MAX(duration_us) AS max_us \
             FROM executions \
             WHERE started_us >= $1 AND started_us < $3 \
             AND ($4 IS NULL OR handler_id = $4) AND ($5 IS NULL OR job_id = $5) \
             GROUP BY bucket, status",
        )
        .bind(since)
        .bind(bucket_us)
        .bind(until)
        .bind(q.handler_id.as_deref())
        .bind(q.schedule_id.as_deref())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Bucketed {
                    bucket: row.col("bucket")?,
                    status: row.col("status")?,
                    n: row.col("n")?,
                    timed: row.col("timed")?,
                    total_us: row.col("total_us")?,
                    max_us: row.col("max_us")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?);
        // Per bucket: timed attempts and their total duration, for the mean.
        let mut timed = vec![(0i64, 0i64); buckets];
        for row in &rows {
            let i = row.bucket;
            let Some(b) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) else {
                continue;
            };
            let n = u64::try_from(row.n).unwrap_or(0);
            match ExecutionStatus::parse(&row.status).map_err(corrupt)? {
                ExecutionStatus::Running => b.running += n,
                ExecutionStatus::Success => b.success += n,
                ExecutionStatus::Retry => b.retry += n,
                ExecutionStatus::Error => b.error += n,
                ExecutionStatus::Skipped => b.skipped += n,
                ExecutionStatus::Missed => b.missed += n,
            }
            if let Some(max) = row.max_us {
                let max = max as f64 / 1000.0;
                b.duration_ms_max = Some(b.duration_ms_max.map_or(max, |m| m.max(max)));
            }
            let t = &mut timed[i as usize];
            t.0 += row.timed;
            t.1 += row.total_us.unwrap_or(0);
        }
        for (b, (count, total)) in out.iter_mut().zip(timed) {
            if count > 0 {
                b.duration_ms_mean = Some(total as f64 / count as f64 / 1000.0);
            }
        }
        Ok(out)
    }

    /// Empties the log (the lifetime count stays).
    pub async fn clear_executions(&self) -> Result<u64, StoreError> {
        let mut turn = self.write_turn().await?;
        Ok(
            writing!(&mut turn, conn => sqlx::query("DELETE FROM executions")
            .execute(&mut *conn)
            .await?
            .rows_affected()),
        )
    }

    /// Deletes records beyond the retention: older than `max_age`, then the oldest beyond
    /// `max_records`. Returns how many went. On a shared store one host prunes at a time; the
    /// others find it busy and return 0.
    pub async fn prune_executions(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut turn = self.write_turn().await?;
        let max_age =
            chrono::TimeDelta::from_std(retention.max_age).unwrap_or(chrono::TimeDelta::MAX);
        let cutoff = now
            .checked_sub_signed(max_age)
            .map_or(i64::MIN, |t| t.timestamp_micros());
        let keep = i64::try_from(retention.max_records).unwrap_or(i64::MAX);
        writing!(&mut turn, conn, DB => {
            let mut tx = conn.begin_with(<DB as Dialect>::BEGIN_WRITE).await?;
            if let Some(lock) = <DB as Dialect>::TRY_MAINTENANCE_LOCK {
                let (mine,): (bool,) = sqlx::query_as(lock).fetch_one(&mut *tx).await?;
                if !mine {
                    // Another host is pruning now.
                    return Ok(0);
                }
            }
            let aged = sqlx::query("DELETE FROM executions WHERE started_us < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            let over = sqlx::query(
                "DELETE FROM executions WHERE id < (SELECT MIN(id) FROM \
                 (SELECT id FROM executions ORDER BY id DESC LIMIT $1) AS kept)",
            )
            .bind(keep)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(aged.rows_affected() + over.rows_affected())
        })
    }
}

/// The params of a call, in a line: the first five as `k=v` joined by `, `; a value longer than
/// 50 characters cut to 47 and `...`; ` (+N more)` when there are more; `None` when there are
/// none. Strings show as they are, other values as JSON.
pub fn params_summary(params: &serde_json::Value) -> Option<String> {
    let map = params.as_object().filter(|m| !m.is_empty())?;
    let parts: Vec<String> = map
        .iter()
        .take(5)
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = if text.chars().count() > 50 {
                format!("{}...", text.chars().take(47).collect::<String>())
            } else {
                text
            };
            format!("{k}={text}")
        })
        .collect();
    let mut line = parts.join(", ");
    if map.len() > 5 {
        line.push_str(&format!(" (+{} more)", map.len() - 5));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn attempt(job: &str, handler: &str, attempt: u32, started: &str) -> NewExecution {
        NewExecution {
            run_id: format!("run-{job}"),
            schedule_id: job.into(),
            handler_id: handler.into(),
            method: "ping".into(),
            attempt,
            max_attempts: 3,
            status: ExecutionStatus::Running,
            started_at: at(started),
            params_summary: params_summary(&json!({"n": 1})),
            instance: Some("ding-dong#1".into()),
        }
    }

    on_both! {
    #[tokio::test]
    async fn attempts_start_and_complete_durably(db) {
        let ids = db
            .insert_executions(&[
                attempt("a", "ding-dong", 1, "2026-01-01T00:00:00Z"),
                attempt("b", "misbehave", 1, "2026-01-01T00:00:01Z"),
            ])
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] < ids[1]);
        db.complete_executions(&[
            Completion {
                id: ids[0],
                status: ExecutionStatus::Success,
                completed_at: at("2026-01-01T00:00:00.250Z"),
                result: Some(json!({"pong": true})),
                error_code: None,
                error: None,
                instance: None,
                not_retried: None,
                usage: None,
            },
            Completion {
                id: ids[1],
                status: ExecutionStatus::Retry,
                completed_at: at("2026-01-01T00:00:03Z"),
                result: None,
                error_code: Some("timeout".into()),
                error: Some("timed out after 2s".into()),
                instance: None,
                not_retried: None,
                usage: None,
            },
        ])
        .await
        .unwrap();
        let db = db.reopen().await;
        let all = db
            .executions(&ExecutionQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter()
                .map(|e| e.schedule_id.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"],
            "newest first"
        );
        let a = &all[1];
        assert_eq!(
            (a.status, a.duration_ms, a.result.clone()),
            (
                ExecutionStatus::Success,
                Some(250.0),
                Some(json!({"pong": true}))
            )
        );
        assert_eq!(a.params_summary.as_deref(), Some("n=1"));
        assert_eq!(a.instance.as_deref(), Some("ding-dong#1"));
        let b = &all[0];
        assert_eq!(
            (b.status, b.error_code.as_deref(), b.completed_at),
            (
                ExecutionStatus::Retry,
                Some("timeout"),
                Some(at("2026-01-01T00:00:03Z"))
            )
        );
    }
    }

    on_both! {
    #[tokio::test]
    async fn filters_paging_stats_and_retention(db) {
        let mut batch = Vec::new();
        for i in 0..30u32 {
            let handler = if i % 3 == 0 { "misbehave" } else { "ding-dong" };
            batch.push(attempt(
                &format!("job{}", i % 2),
                handler,
                1,
                &format!("2026-01-01T00:00:{i:02}Z"),
            ));
        }
        let ids = db.insert_executions(&batch).await.unwrap();
        let done: Vec<Completion> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Completion {
                id,
                status: if i % 3 == 0 {
                    ExecutionStatus::Error
                } else {
                    ExecutionStatus::Success
                },
                completed_at: at(&format!("2026-01-01T00:00:{i:02}Z"))
                    + chrono::TimeDelta::milliseconds(10),
                result: None,
                error_code: (i % 3 == 0).then(|| "trap".to_owned()),
                error: (i % 3 == 0).then(|| "boom".to_owned()),
                instance: None,
                not_retried: None,
                usage: None,
            })
            .collect();
        db.complete_executions(&done).await.unwrap();

        let errors = db
            .executions(&ExecutionQuery {
                status: Some(ExecutionStatus::Error),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(errors.len(), 10);
        assert!(errors.iter().all(|e| e.handler_id == "misbehave"));
        let job0 = db
            .executions(&ExecutionQuery {
                schedule_id: Some("job0".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(job0.len(), 15);
        let window = db
            .executions(&ExecutionQuery {
                since: Some(at("2026-01-01T00:00:10Z")),
                until: Some(at("2026-01-01T00:00:20Z")),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(window.len(), 10);
        // Paging newest first.
        let mut q = ExecutionQuery {
            limit: 7,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = db.executions(&q).await.unwrap();
            let Some(last) = page.last() else { break };
            q.before_id = Some(last.id);
            seen.extend(page.iter().map(|e| e.id));
        }
        assert_eq!(seen.len(), 30);
        assert!(seen.windows(2).all(|w| w[0] > w[1]));

        let stats = db.execution_stats().await.unwrap();
        assert_eq!(
            (
                stats.total_executions,
                stats.success_count,
                stats.error_count
            ),
            (30, 20, 10)
        );
        assert!(
            (stats.success_rate - 66.666).abs() < 0.01,
            "{}",
            stats.success_rate
        );
        assert!((stats.avg_duration_ms - 10.0).abs() < 1e-9);
        assert_eq!(
            stats.by_handler["misbehave"],
            HandlerTotals {
                total: 10,
                success: 0,
                error: 10
            }
        );

        // Retention: age first, then count.
        let now = at("2026-01-01T00:00:40Z");
        let pruned = db
            .prune_executions(
                Retention {
                    max_records: 10,
                    max_age: Duration::from_secs(35),
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            pruned,
            5 + 15,
            "5 older than 35 s, then all but the newest 10"
        );
        let left = db
            .executions(&ExecutionQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(left.last().unwrap().started_at, at("2026-01-01T00:00:20Z"));

        assert_eq!(db.clear_executions().await.unwrap(), 10);
        let stats = db.execution_stats().await.unwrap();
        assert_eq!((stats.total_executions, stats.lifetime_executions), (0, 30));
    }
    }

    #[test]
    fn params_summaries_follow_schedulezero() {
        assert_eq!(params_summary(&json!({})), None);
        assert_eq!(params_summary(&json!(null)), None);
        assert_eq!(
            params_summary(&json!({"to": "ops", "n": 3, "flag": true})).as_deref(),
            Some("to=ops, n=3, flag=true")
        );
        let long = "x".repeat(60);
        assert_eq!(
            params_summary(&json!({"body": long})),
            Some(format!("body={}...", "x".repeat(47)))
        );
        let many = json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7});
        assert_eq!(
            params_summary(&many).as_deref(),
            Some("a=1, b=2, c=3, d=4, e=5 (+2 more)")
        );
    }
}
