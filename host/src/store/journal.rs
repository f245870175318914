//! The journal: group commit for the writes that follow every run (attempts starting and ending,
//! run statuses). Callers hand a request to one writer task and wait for its commit; the writer
//! takes every request that queued while the previous commit was on disk and commits them in one
//! transaction. One fsync then covers many runs, and a caller still returns only once its writes
//! are durable. A request is atomic: its writes commit together or not at all; when a shared
//! transaction fails, the writer retries each request alone, so one bad request fails only itself.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::executions::{Completion, NewExecution};
use super::runs::RunStatus;

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 2048;

/// How many requests may wait for the writer before callers wait to queue.
const QUEUE: usize = 8192;

/// One write.
#[derive(Debug, Clone)]
pub enum Write {
    /// An attempt starts (or is recorded as skipped or missed); its result is the record's id.
    Start(NewExecution),
    /// An attempt ended; its result is 1 when the record existed.
    Complete(Completion),
    /// An attempt that already ended, recorded in one go (a synchronous run-now); its result is
    /// the record's id. The completion's `id` is not used.
    Done(NewExecution, Completion),
    /// A run's status changes; its result is 1 when the run existed.
    RunStatus {
        /// The run.
        run_id: String,
        /// Its new status.
        status: RunStatus,
        /// When.
        at: DateTime<Utc>,
    },
}

struct Request {
    writes: Vec<Write>,
    reply: oneshot::Sender<Result<Vec<i64>, String>>,
}

/// The sending side of the journal; cloned with the store.
#[derive(Debug, Clone)]
pub(super) struct Journal {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl Journal {
    /// Starts the writer task over `pool`.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(pool, rx));
        Self { tx }
    }

    /// Commits `writes` in one transaction (possibly shared with other requests) and returns one
    /// result per write.
    pub(super) async fn commit(&self, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { writes, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Write)
    }
}

async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut writes = batch[0].writes.len();
        while writes < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    writes += more.writes.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        match commit_together(&pool, &batch).await {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
            }
            Err(_) if batch.len() > 1 => {
                for request in batch {
                    let result = commit_together(&pool, std::slice::from_ref(&request))
                        .await
                        .map(|mut r| r.pop().unwrap_or_default())
                        .map_err(|e| e.to_string());
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                for request in batch {
                    let _ = request.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

async fn commit_together(
    pool: &SqlitePool,
    batch: &[Request],
) -> Result<Vec<Vec<i64>>, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut started = 0i64;
    for request in batch {
        let mut out = Vec::with_capacity(request.writes.len());
        for write in &request.writes {
            if matches!(write, Write::Start(_) | Write::Done(..)) {
                started += 1;
            }
            out.push(apply(&mut tx, write).await?);
        }
        results.push(out);
    }
    if started > 0 {
        sqlx::query("UPDATE counters SET value = value + ? WHERE name = 'lifetime_executions'")
            .bind(started)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(results)
}

async fn apply(tx: &mut Transaction<'static, Sqlite>, write: &Write) -> Result<i64, sqlx::Error> {
    match write {
        Write::Start(e) => {
            let done = sqlx::query(
                "INSERT INTO executions (run_id, job_id, handler_id, method, attempt, max_attempts, status, started_us, params_summary, instance) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&e.run_id)
            .bind(&e.job_id)
            .bind(&e.handler_id)
            .bind(&e.method)
            .bind(i64::from(e.attempt))
            .bind(i64::from(e.max_attempts))
            .bind(e.status.as_str())
            .bind(e.started_at.timestamp_micros())
            .bind(e.params_summary.as_deref())
            .bind(e.instance.as_deref())
            .execute(&mut **tx)
            .await?;
            Ok(done.last_insert_rowid())
        }
        Write::Done(e, c) => {
            let result = c.result.as_ref().map(serde_json::Value::to_string);
            let done = sqlx::query(
                "INSERT INTO executions (run_id, job_id, handler_id, method, attempt, max_attempts, status, started_us, \
                 completed_us, duration_us, result, error_code, error, params_summary, instance) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, MAX(0, ? - ?), ?, ?, ?, ?, ?)",
            )
            .bind(&e.run_id)
            .bind(&e.job_id)
            .bind(&e.handler_id)
            .bind(&e.method)
            .bind(i64::from(e.attempt))
            .bind(i64::from(e.max_attempts))
            .bind(c.status.as_str())
            .bind(e.started_at.timestamp_micros())
            .bind(c.completed_at.timestamp_micros())
            .bind(c.completed_at.timestamp_micros())
            .bind(e.started_at.timestamp_micros())
            .bind(result)
            .bind(c.error_code.as_deref())
            .bind(c.error.as_deref())
            .bind(e.params_summary.as_deref())
            .bind(c.instance.as_deref().or(e.instance.as_deref()))
            .execute(&mut **tx)
            .await?;
            Ok(done.last_insert_rowid())
        }
        Write::Complete(c) => {
            let result = c.result.as_ref().map(serde_json::Value::to_string);
            let done = sqlx::query(
                "UPDATE executions SET status = ?, completed_us = ?, duration_us = MAX(0, ? - started_us), \
                 result = ?, error_code = ?, error = ?, instance = COALESCE(?, instance) WHERE id = ?",
            )
            .bind(c.status.as_str())
            .bind(c.completed_at.timestamp_micros())
            .bind(c.completed_at.timestamp_micros())
            .bind(result)
            .bind(c.error_code.as_deref())
            .bind(c.error.as_deref())
            .bind(c.instance.as_deref())
            .bind(c.id)
            .execute(&mut **tx)
            .await?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
        Write::RunStatus { run_id, status, at } => {
            let done = sqlx::query("UPDATE runs SET status = ?, updated_us = ? WHERE id = ?")
                .bind(status.as_str())
                .bind(at.timestamp_micros())
                .bind(run_id)
                .execute(&mut **tx)
                .await?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
    }
}
