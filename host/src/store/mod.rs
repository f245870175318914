//! The durable store (sqlx): schedules, the runs claimed from them, the execution log and the
//! handlers the host knows. SQLite is embedded and the default, in WAL mode with `synchronous=FULL`, so a
//! committed write survives a crash or power loss; PostgreSQL (`postgres://...`) is shared by
//! several hosts. Every write that a caller acknowledges is committed before the call returns.
//! The SQL sticks to what SQLite and PostgreSQL share (times as BIGINT microseconds since the
//! epoch in UTC, JSON as text), so one query serves both ([`db`]). Reads go to a pool; writes
//! take a turn ([`db::Writes`]): SQLite's one write connection, or a pooled PostgreSQL one.

mod db;
mod executions;
mod grants;
mod handlers;
mod journal;
mod nodes;
mod notify;
mod runs;
mod schedules;
pub mod scratch;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use self::db::{Db, Turn, Writer, Writes};

pub use self::executions::{
    Completion, ExecutionQuery, ExecutionStats, HandlerTotals, HandlerWindow, NewExecution,
    Retention, TimelineBucket, TimelineQuery, params_summary,
};
pub use self::grants::GrantEvent;
pub use self::handlers::{HandlerKind, HandlerRecord};
pub use self::journal::{Holder, Write};
pub use self::nodes::{DEFAULT_LEASE, Node, NodeRecord, NodeReport, NodeState};
pub use self::notify::{Announcement, Listener};
pub use self::runs::{Claim, DueSchedule, RunQuery};
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
        "unsupported database url `{0}` (use sqlite://PATH or postgres://USER@HOST/DB, or leave it unset for the data dir)"
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
    /// This node no longer holds the run (another node took it over after its lease ran out):
    /// what it wrote about the run was refused, nothing was committed.
    #[error("this host no longer holds run {0}: another host took it over; the write was refused")]
    LeaseLost(String),
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
            // SQLITE_FULL (13), and its extended codes; PostgreSQL's disk_full (53100).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c == "13" || c == "53100" || c.parse::<i32>().is_ok_and(|c| c & 0xff == 13)
            }),
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

/// How many connections a host keeps to PostgreSQL (the claim loop, the journal's writer, the
/// API's reads, heartbeats).
const PG_CONNECTIONS: u32 = 8;

/// The store: a connection pool and the queries over it.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    journal: journal::Journal,
    node: std::sync::Arc<Node>,
    /// Where every write goes (SQLite: one connection outside the pool, in turn).
    writes: Writes,
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

    /// Opens the database a URL names (`sqlite://PATH` or `sqlite:PATH`, `postgres://...` or
    /// `postgresql://...`) and brings its schema up to date.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::Open(e.to_string()))?;
            return Self::open_postgres(options).await;
        }
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Url(url.to_owned()));
        }
        let options =
            SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Open(e.to_string()))?;
        Self::open_with(options).await
    }

    /// Whether several hosts may share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.db.is_postgres()
    }

    /// The database's kind, as logs and the API name it: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        if self.is_shared() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    async fn open_postgres(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(PG_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.application_name("schedulezero"))
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        // Several hosts may start at once: the migrator holds an advisory lock while it works.
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("migrations: {e}")))?;
        Ok(Self::over(
            Db::Postgres(pool.clone()),
            Writes::Postgres(pool),
        ))
    }

    fn over(db: Db, writes: Writes) -> Self {
        let node = std::sync::Arc::new(Node::fresh());
        let journal = journal::Journal::start(writes.clone(), node.id().to_owned());
        Self {
            db,
            journal,
            node,
            writes,
        }
    }

    /// Waits for this process's turn to write: SQLite's write connection (one writer at a
    /// time), or a connection of PostgreSQL's pool.
    async fn write_turn(&self) -> Result<Turn<'_>, StoreError> {
        Ok(self.writes.turn().await?)
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
            .pragma("journal_size_limit", "67108864")
            // A statement that writes many rows inside a transaction keeps the pages it changed
            // in a statement journal (to undo itself alone on error): in memory, not in a
            // temporary file written and read back (a seventh of the write connection's time
            // in a burst of runs).
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file does not drop connections: pinging one on every acquire would cost a
            // round trip to its worker thread on every query.
            .test_before_acquire(false)
            // A connection must come back out of any transaction, or it is replaced (as the
            // write connection is: see `db::Writer`).
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
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("migrations: {e}")))?;
        // The write connection touches every table and index a run changes: a 16 MiB page cache
        // (SQLite's default is 2 MiB) keeps them in memory instead of reading pages back from
        // the OS at every claim and commit. It fills only as far as the database is that big.
        let writer = std::sync::Arc::new(Writer::new(options.pragma("cache_size", "-16384")));
        Ok(Self::over(Db::Sqlite(pool), Writes::Sqlite(writer)))
    }

    /// Commits writes that belong together (an attempt's start and its run's status, say) in
    /// one transaction, sharing the commit with other callers' writes (group commit). Returns one
    /// value per write: the record id for [`Write::Start`], rows changed otherwise. Committed on
    /// return.
    pub async fn record(&self, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        self.journal.commit(writes).await
    }

    /// Copies what SQLite's WAL holds into the database file, without waiting for (or
    /// blocking) readers and writers. Returns the frames checkpointed (PostgreSQL checkpoints
    /// by itself: 0).
    pub async fn checkpoint(&self) -> Result<i64, StoreError> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(0);
        };
        let (_, _, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
        Ok(done)
    }

    /// Closes the connections, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.writes.close().await;
        self.db.close().await;
    }
}

/// Stores for tests, on both databases.
#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A store in a fresh SQLite file or a fresh PostgreSQL database (on the process's scratch
    /// server), kept for as long as the value lives.
    pub(crate) struct TestStore {
        /// The store.
        pub(crate) store: Store,
        /// Its URL, to open it again.
        pub(crate) url: String,
        _dir: Option<tempfile::TempDir>,
    }

    impl std::ops::Deref for TestStore {
        type Target = Store;
        fn deref(&self) -> &Store {
            &self.store
        }
    }

    impl TestStore {
        /// A fresh SQLite store.
        pub(crate) async fn sqlite() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("sz.db").display());
            let store = Store::open_url(&url).await.expect("open SQLite");
            Self {
                store,
                url,
                _dir: Some(dir),
            }
        }

        /// A fresh PostgreSQL store.
        pub(crate) async fn postgres() -> Self {
            let server = super::scratch::ScratchPostgres::shared().expect("scratch PostgreSQL");
            let url = server.fresh_database().await.expect("a database");
            let store = Store::open_url(&url).await.expect("open PostgreSQL");
            Self {
                store,
                url,
                _dir: None,
            }
        }

        /// The same database, opened again (after closing this store).
        pub(crate) async fn reopen(&self) -> Store {
            self.store.close().await;
            Store::open_url(&self.url).await.expect("open again")
        }
    }

    /// Makes a test a module of two, `sqlite` and `postgres`, each running the body with `$db`
    /// a [`TestStore`] of that database.
    macro_rules! on_both {
        ($(#[$attr:meta])* async fn $name:ident($db:ident) $body:block) => {
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                $(#[$attr])*
                async fn sqlite() {
                    let $db = $crate::store::testing::TestStore::sqlite().await;
                    $body
                }
                $(#[$attr])*
                async fn postgres() {
                    let $db = $crate::store::testing::TestStore::postgres().await;
                    $body
                }
            }
        };
    }
    pub(crate) use on_both;
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
        let Db::Sqlite(pool) = &store.db else {
            panic!("a SQLite store")
        };
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(pool)
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
            Store::open_url("mysql://localhost/sz").await,
            Err(StoreError::Url(_))
        ));
    }
}
