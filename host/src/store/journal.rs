//! The journal: group commit for the writes that follow every run (attempts starting and ending,
//! run statuses). Callers hand a request to one writer task and wait for its commit; the writer
//! takes every request that queued while the previous commit was on disk and commits them in one
//! transaction. One fsync then covers many runs, and a caller still returns only once its writes
//! are durable. A request is atomic: its writes commit together or not at all; when a shared
//! transaction fails, the writer retries each request alone, so one bad request fails only itself.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::db::{Turn, Writes, per_database};
use super::executions::{Completion, NewExecution};
use crate::schedule::RunStatus;

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
        /// Who writes it: with a holder, the change (and every write of its request) is
        /// refused unless that node still holds the run with that fence.
        holder: Option<Holder>,
    },
}

/// The node that holds a run, and the fence it holds it with (bumped each time the run
/// changes hands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The node.
    pub node: String,
    /// The fence.
    pub fence: i64,
}

/// Why a request was not committed.
#[derive(Debug, Clone)]
enum Refused {
    /// A run's holder it named no longer holds it.
    LeaseLost(String),
    /// The database failed.
    Failed(String),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Self::Failed(e.to_string())
    }
}

struct Request {
    writes: Vec<Write>,
    reply: oneshot::Sender<Result<Vec<i64>, Refused>>,
}

/// The sending side of the journal; cloned with the store.
#[derive(Debug, Clone)]
pub(super) struct Journal {
    tx: mpsc::Sender<Request>,
}

impl Journal {
    /// Starts the writer task.
    pub(super) fn start(writes: Writes, node: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(writes, node, rx));
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
            .map_err(|refused| match refused {
                Refused::LeaseLost(run_id) => StoreError::LeaseLost(run_id),
                Refused::Failed(m) if super::is_full_text(&m) => StoreError::Full(m),
                Refused::Failed(m) => StoreError::Write(m),
            })
    }
}

async fn writer(writes: Writes, node: String, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        // Wait for the turn to write before gathering: what queues meanwhile joins this commit.
        let mut turn = match writes.turn().await {
            Ok(turn) => turn,
            Err(e) => {
                let _ = first.reply.send(Err(e.into()));
                continue;
            }
        };
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
        let began = std::time::Instant::now();
        let committed = commit_together(&mut turn, &node, &batch).await;
        tracing::debug!(
            requests = batch.len(),
            writes,
            commit_ms = began.elapsed().as_secs_f64() * 1e3,
            "journal commit"
        );
        match committed {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
            }
            Err(_) if batch.len() > 1 => {
                for request in batch {
                    let result = commit_together(&mut turn, &node, std::slice::from_ref(&request))
                        .await
                        .map(|mut r| r.pop().unwrap_or_default());
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                for request in batch {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Rows per multi-row statement (17 parameters a row stays well under SQLite's 32766).
const ROWS_PER_STATEMENT: usize = 500;

/// A run's status change, with where its result goes: (request, write) indexes, run id, status,
/// time, holder.
type StatusChange<'a> = (
    (usize, usize),
    &'a str,
    RunStatus,
    DateTime<Utc>,
    Option<&'a Holder>,
);

/// One row of the executions table, as an insert writes it.
struct Row<'a> {
    e: &'a NewExecution,
    end: Option<&'a Completion>,
}

async fn commit_together(
    turn: &mut Turn<'_>,
    node: &str,
    batch: &[Request],
) -> Result<Vec<Vec<i64>>, Refused> {
    match turn {
        Turn::Sqlite(conn) => sqlite::commit_together(conn, node, batch).await,
        Turn::Postgres(conn) => postgres::commit_together(conn, node, batch).await,
    }
}

per_database! {
use sqlx::{QueryBuilder, Transaction};

use super::super::db::Dialect;


/// Commits every request of `batch` in one transaction, with one multi-row statement per kind
/// of write (per 500 rows) instead of one statement per write: the writes of a batch never
/// depend on each other (a completion names a record committed earlier; a run's status changes
/// come in causal order and the last one wins).
pub(super) async fn commit_together(
    conn: &mut <DB as sqlx::Database>::Connection,
    node: &str,
    batch: &[Request],
) -> Result<Vec<Vec<i64>>, Refused> {
    let mut results: Vec<Vec<i64>> = batch.iter().map(|r| vec![0; r.writes.len()]).collect();
    let mut inserts = Vec::new();
    let mut completes = Vec::new();
    let mut statuses: Vec<StatusChange<'_>> = Vec::new();
    for (ri, request) in batch.iter().enumerate() {
        for (wi, write) in request.writes.iter().enumerate() {
            match write {
                Write::Start(e) => inserts.push(((ri, wi), Row { e, end: None })),
                Write::Done(e, c) => inserts.push(((ri, wi), Row { e, end: Some(c) })),
                Write::Complete(c) => completes.push(((ri, wi), c)),
                Write::RunStatus {
                    run_id,
                    status,
                    at,
                    holder,
                } => {
                    statuses.push(((ri, wi), run_id.as_str(), *status, *at, holder.as_ref()));
                }
            }
        }
    }
    if batch.len() == 1 && batch[0].writes.len() == 1 && inserts.len() == 1 {
        // A lone record (a run-now, say): one statement commits by itself, without the round
        // trips of BEGIN and COMMIT.
        let ids = insert_rows(conn, node, &inserts).await?;
        results[0][0] = ids.first().copied().unwrap_or_default();
        return Ok(results);
    }
    let mut tx = sqlx::Connection::begin_with(conn, DB::BEGIN_WRITE).await?;
    for chunk in inserts.chunks(ROWS_PER_STATEMENT) {
        let ids = insert_rows(&mut tx, node, chunk).await?;
        for (((ri, wi), _), id) in chunk.iter().zip(ids) {
            results[*ri][*wi] = id;
        }
    }
    for chunk in completes.chunks(ROWS_PER_STATEMENT) {
        let updated = complete_rows(&mut tx, chunk).await?;
        for ((ri, wi), c) in chunk {
            results[*ri][*wi] = i64::from(updated.contains(&c.id));
        }
    }
    // The last status of each run wins (requests are in the order their callers made them).
    let mut last_of_run = std::collections::HashMap::new();
    for (k, (_, run_id, _, _, _)) in statuses.iter().enumerate() {
        last_of_run.insert(*run_id, k);
    }
    let winners: Vec<_> = statuses
        .iter()
        .enumerate()
        .filter(|(k, (_, run_id, _, _, _))| last_of_run.get(run_id) == Some(k))
        .map(|(_, s)| s)
        .collect();
    let mut updated_runs = std::collections::HashSet::new();
    for chunk in winners.chunks(ROWS_PER_STATEMENT) {
        updated_runs.extend(status_rows(&mut tx, chunk).await?);
    }
    // A change its writer no longer has the right to make refuses its whole request (the
    // transaction is dropped, rolled back; the writer then retries each request alone).
    if let Some((_, run_id, _, _, _)) = winners
        .iter()
        .find(|(_, run_id, _, _, holder)| holder.is_some() && !updated_runs.contains(*run_id))
    {
        return Err(Refused::LeaseLost((*run_id).to_owned()));
    }
    for ((ri, wi), run_id, _, _, _) in &statuses {
        results[*ri][*wi] = i64::from(updated_runs.contains(*run_id));
    }
    tx.commit().await?;
    Ok(results)
}

/// Inserts execution rows; returns their ids, in order.
async fn insert_rows(
    conn: &mut <DB as sqlx::Database>::Connection,
    node: &str,
    rows: &[((usize, usize), Row<'_>)],
) -> Result<Vec<i64>, sqlx::Error> {
    // Where the database does not report a statement's ids, take them from the sequence first.
    let reserved: Option<Vec<i64>> = match DB::RESERVE_EXECUTION_IDS {
        Some(sql) => Some(
            sqlx::query_scalar(sql)
                .bind(rows.len() as i64)
                .fetch_all(&mut *conn)
                .await?,
        ),
        None => None,
    };
    let mut q = QueryBuilder::<DB>::new(if reserved.is_some() {
        "INSERT INTO executions (id, run_id, job_id, handler_id, method, attempt, max_attempts, status, started_us, \
         completed_us, duration_us, result, error_code, error, params_summary, instance, usage, node) "
    } else {
        "INSERT INTO executions (run_id, job_id, handler_id, method, attempt, max_attempts, status, started_us, \
         completed_us, duration_us, result, error_code, error, params_summary, instance, usage, node) "
    });
    q.push_values(rows.iter().enumerate(), |mut b, (k, (_, Row { e, end }))| {
        let started = e.started_at.timestamp_micros();
        let completed = end.map(|c| c.completed_at.timestamp_micros());
        if let Some(ids) = &reserved {
            b.push_bind(ids.get(k).copied().unwrap_or_default());
        }
        b.push_bind(&e.run_id)
            .push_bind(&e.schedule_id)
            .push_bind(&e.handler_id)
            .push_bind(&e.method)
            .push_bind(i64::from(e.attempt))
            .push_bind(i64::from(e.max_attempts))
            .push_bind(end.map_or(e.status, |c| c.status).as_str())
            .push_bind(started)
            .push_bind(completed)
            .push_bind(completed.map(|c| (c - started).max(0)))
            .push_bind(end.and_then(|c| c.result.as_ref().map(serde_json::Value::to_string)))
            .push_bind(end.and_then(|c| c.error_code.clone()))
            .push_bind(end.and_then(|c| c.error.clone()))
            .push_bind(e.params_summary.as_deref())
            .push_bind(
                end.and_then(|c| c.instance.clone())
                    .or_else(|| e.instance.clone()),
            )
            .push_bind(
                end.and_then(|c| c.usage.as_ref())
                    .and_then(|u| serde_json::to_string(u).ok()),
            )
            .push_bind(node);
    });
    let done = q.build().execute(&mut *conn).await?;
    Ok(match (reserved, DB::last_id(&done)) {
        (Some(ids), _) => ids,
        // One statement under the write lock: AUTOINCREMENT gives its rows consecutive ids.
        (None, Some(last)) => {
            let first = last - rows.len() as i64 + 1;
            (0..rows.len() as i64).map(|k| first + k).collect()
        }
        (None, None) => Vec::new(),
    })
}

/// Completes execution rows; returns the ids that existed.
async fn complete_rows(
    tx: &mut Transaction<'_, DB>,
    rows: &[((usize, usize), &Completion)],
) -> Result<std::collections::HashSet<i64>, sqlx::Error> {
    let mut q = QueryBuilder::<DB>::new(
        "UPDATE executions SET status = v.column2, completed_us = v.column3, \
         duration_us = CASE WHEN v.column3 > executions.started_us \
         THEN v.column3 - executions.started_us ELSE 0 END, result = v.column4, \
         error_code = v.column5, error = v.column6, instance = COALESCE(v.column7, executions.instance), \
         not_retried = v.column8, usage = v.column9 FROM (",
    );
    q.push_values(rows, |mut b, (_, c)| {
        b.push_bind(c.id)
            .push_bind(c.status.as_str())
            .push_bind(c.completed_at.timestamp_micros())
            .push_bind(c.result.as_ref().map(serde_json::Value::to_string))
            .push_bind(c.error_code.as_deref())
            .push_bind(c.error.as_deref())
            .push_bind(c.instance.as_deref())
            .push_bind(c.not_retried.as_deref())
            .push_bind(c.usage.as_ref().and_then(|u| serde_json::to_string(u).ok()));
    });
    // Only an attempt still running ends: one ended meanwhile (taken over from a node that lost
    // its lease, and marked interrupted) keeps how it ended.
    q.push(
        ") AS v WHERE executions.id = v.column1 AND executions.status = 'running' \
         RETURNING executions.id",
    );
    let ids: Vec<(i64,)> = q.build_query_as().fetch_all(&mut **tx).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Sets run statuses (one row per run); returns the run ids that existed.
async fn status_rows(
    tx: &mut Transaction<'_, DB>,
    rows: &[&StatusChange<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let mut q = QueryBuilder::<DB>::new(
        "UPDATE runs SET status = v.column2, updated_us = v.column3 FROM (",
    );
    q.push_values(rows, |mut b, (_, run_id, status, at, holder)| {
        b.push_bind(*run_id)
            .push_bind(status.as_str())
            .push_bind(at.timestamp_micros())
            .push_bind(holder.map(|h| h.node.as_str()))
            .push_bind(holder.map(|h| h.fence));
    });
    q.push(
        ") AS v WHERE runs.id = v.column1 AND (v.column4 IS NULL \
         OR (runs.node = v.column4 AND runs.fence = v.column5)) RETURNING runs.id",
    );
    let ids: Vec<(String,)> = q.build_query_as().fetch_all(&mut **tx).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ExecutionStatus;
    use crate::store::ExecutionQuery;
    use crate::store::testing::on_both;

    fn start(job: &str) -> NewExecution {
        NewExecution {
            run_id: format!("run-{job}"),
            schedule_id: job.to_owned(),
            handler_id: "h".into(),
            method: "m".into(),
            attempt: 1,
            max_attempts: 1,
            status: ExecutionStatus::Running,
            started_at: Utc::now(),
            params_summary: None,
            instance: None,
        }
    }

    on_both! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_commits_and_get_their_own_ids(db) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..400 {
            let db = db.clone();
            tasks.spawn(async move {
                let job = format!("job-{i}");
                let id = db.record(vec![Write::Start(start(&job))]).await.unwrap()[0];
                let done = db
                    .record(vec![Write::Complete(Completion {
                        id,
                        status: ExecutionStatus::Success,
                        completed_at: Utc::now(),
                        result: Some(serde_json::json!(i)),
                        error_code: None,
                        error: None,
                        instance: Some(format!("i{i}")),
                        not_retried: None,
                        usage: None,
                    })])
                    .await
                    .unwrap();
                assert_eq!(done, [1]);
                (job, id)
            });
        }
        let mut seen = Vec::new();
        while let Some(r) = tasks.join_next().await {
            seen.push(r.unwrap());
        }
        let all = db
            .executions(&ExecutionQuery {
                limit: 1000,
                ..ExecutionQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 400);
        for (job, id) in seen {
            let e = all.iter().find(|e| e.id == id).unwrap();
            assert_eq!(
                e.schedule_id, job,
                "each caller got the id of its own record"
            );
            assert_eq!(e.status, ExecutionStatus::Success);
            let n: usize = job.trim_start_matches("job-").parse().unwrap();
            assert_eq!(e.result, Some(serde_json::json!(n)));
            assert_eq!(e.instance.as_deref(), Some(format!("i{n}").as_str()));
        }
        // A completion of a record that does not exist reports 0; a finished record in one go.
        let missing = Completion {
            id: 999_999,
            status: ExecutionStatus::Error,
            completed_at: Utc::now(),
            result: None,
            error_code: None,
            error: None,
            instance: None,
            not_retried: None,
            usage: None,
        };
        let out = db
            .record(vec![
                Write::Complete(missing.clone()),
                Write::Done(start("done"), missing),
            ])
            .await
            .unwrap();
        assert_eq!(out[0], 0);
        let done = db
            .executions(&ExecutionQuery {
                schedule_id: Some("done".into()),
                limit: 1,
                ..ExecutionQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(done[0].id, out[1]);
        assert_eq!(done[0].status, ExecutionStatus::Error);
        assert!(done[0].duration_ms.is_some());
        assert_eq!(db.execution_stats().await.unwrap().lifetime_executions, 401);
    }
    }
}
