//! The durable store (sqlx): schedules, the runs claimed from them, the execution log and the
//! handlers the host knows. SQLite is embedded and the default, in WAL mode with `synchronous=FULL`, so a
//! committed write survives a crash or power loss; every write that a caller acknowledges is
//! committed before the call returns. The SQL sticks to what SQLite and PostgreSQL share (times as
//! BIGINT microseconds since the epoch in UTC, JSON as text), so a PostgreSQL backend can take the
//! same queries.

mod executions;
mod grants;
mod handlers;
mod journal;
mod runs;
mod schedules;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use self::executions::{
    Completion, ExecutionQuery, ExecutionStats, HandlerTotals, NewExecution, Retention,
    TimelineBucket, TimelineQuery, params_summary,
};
pub use self::grants::GrantEvent;
pub use self::handlers::{HandlerKind, HandlerRecord};
pub use self::journal::Write;
pub use self::runs::{Claim, RunQuery};
pub use self::schedules::{Inserted, ScheduleQuery};

/// How long a writer waits for the database lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A stored time (microseconds since the epoch) as a UTC instant; out of range is a corrupt row
/// of `table`.
fn read_time(table: &'static str, us: i64) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::Corrupt {
        table,
        message: format!("time {us} out of range"),
    })
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one this host can use.
    #[error(
        "unsupported database url `{0}` (use sqlite://PATH, or leave it unset for the data dir)"
    )]
    Url(String),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(sqlx::Error),
    /// The disk (or the database's size limit) is full: nothing was written. Retrying once
    /// space is freed succeeds.
    #[error("the database's disk is full: {0}")]
    Full(String),
    /// A schedule with that id exists and the conflict policy says so.
    #[error("a schedule with id `{0}` already exists")]
    Conflict(String),
    /// The store is closed (the host is shutting down).
    #[error("the store is closed")]
    Closed,
    /// A group commit failed.
    #[error("database write failed: {0}")]
    Write(String),
    /// A row holds data this version cannot read (written by hand, or by a newer version).
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What could not be read.
        message: String,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let full = match &e {
            // SQLITE_FULL (13), and its extended codes.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c == "13" || c.parse::<i32>().is_ok_and(|c| c & 0xff == 13)),
            sqlx::Error::Io(io) => io.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        };
        if full || is_full_text(&e.to_string()) {
            Self::Full(e.to_string())
        } else {
            Self::Query(e)
        }
    }
}

/// Whether an error's text says the disk is full (errors that reach us as text: a group
/// commit's, a failed open).
pub(crate) fn is_full_text(text: &str) -> bool {
    text.contains("database or disk is full") || text.contains("No space left on device")
}

impl StoreError {
    /// Whether the disk being full is the cause.
    pub fn is_full(&self) -> bool {
        match self {
            Self::Full(_) => true,
            Self::Open(m) | Self::Write(m) => is_full_text(m),
            _ => false,
        }
    }
}

/// The store: a connection pool and the queries over it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    journal: journal::Journal,
    /// Taken by every writer of this process before it writes: SQLite has one writer at a
    /// time, and a writer that finds the lock taken sleeps in SQLite's busy handler (1, 2, 5,
    /// 10 ms ...), while this queue hands the lock on at once, in order.
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("create {}: {e}", dir.display())))?;
        }
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens the database a URL names (`sqlite://PATH` or `sqlite:PATH`).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Url(url.to_owned()));
        }
        let options =
            SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Open(e.to_string()))?;
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Let the WAL grow to 32 MiB before a commit has to checkpoint it: a burst of runs
            // then commits without copying pages back in between; `checkpoint` (called when
            // the host is idle) keeps it small the rest of the time.
            .pragma("wal_autocheckpoint", "8192")
            // After a checkpoint the WAL is cut back to 64 MiB at most: it does not keep the
            // size of its largest burst for ever (a small volume fills otherwise).
            .pragma("journal_size_limit", "67108864");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file does not drop connections: pinging one on every acquire would cost a
            // round trip to its worker thread on every query.
            .test_before_acquire(false)
            // A connection must come back out of any transaction. After a failed write (a full
            // disk, say) SQLite may have rolled the transaction back by itself, the ROLLBACK
            // queued when it was dropped then fails, and the connection would answer every
            // later BEGIN with "begin_with at non-zero transaction depth" for good. Such a
            // connection is closed and replaced instead of going back to the pool. The depth is
            // an atomic read; only a connection still in a transaction pays a round trip (the
            // ping lets a ROLLBACK queued by a dropped transaction run first).
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if conn.is_in_transaction()
                        && (conn.ping().await.is_err() || conn.is_in_transaction())
                    {
                        tracing::warn!(
                            "store: a connection left in a failed transaction is replaced"
                        );
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("migrations: {e}")))?;
        let gate = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let journal = journal::Journal::start(pool.clone(), gate.clone());
        Ok(Self {
            pool,
            journal,
            gate,
        })
    }

    /// Commits writes that belong together (an attempt's start and its run's status, say) in
    /// one transaction, sharing the commit with other callers' writes (group commit). Returns one
    /// value per write: the record id for [`Write::Start`], rows changed otherwise. Committed on
    /// return.
    pub async fn record(&self, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        self.journal.commit(writes).await
    }

    /// Copies what the WAL holds into the database file, without waiting for (or blocking)
    /// readers and writers. Returns the frames checkpointed.
    pub async fn checkpoint(&self) -> Result<i64, StoreError> {
        let (_, _, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        Ok(done)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_is_durable_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("nested/sz.db"))
            .await
            .unwrap();
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            (mode.as_str(), sync),
            ("wal", 2),
            "WAL with synchronous=FULL"
        );
        store.close().await;

        let url = format!("sqlite://{}", dir.path().join("by-url.db").display());
        Store::open_url(&url).await.unwrap().close().await;
        assert!(matches!(
            Store::open_url("postgres://localhost/sz").await,
            Err(StoreError::Url(_))
        ));
    }
}
