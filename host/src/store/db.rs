//! The two databases the store runs on, and what lets one query serve both: the pool of either
//! kind ([`Db`]), a macro that runs a block once per kind ([`on!`](crate::store::db::on)), rows
//! read the same way from either ([`Get`]), and the few statements that differ ([`Dialect`]).
//!
//! The SQL is written once where it can be: `$1`-style parameters (SQLite takes them too),
//! times as BIGINT microseconds, JSON as text, booleans as BOOLEAN, `ON CONFLICT`, `RETURNING`
//! and `UPDATE ... FROM (VALUES ...)` (whose columns both name `column1`, `column2`, ...).

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Connection, Decode, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Type};

/// A pool of connections to one of the two databases.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// SQLite: one file, one host.
    Sqlite(SqlitePool),
    /// PostgreSQL: shared by several hosts.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool of whichever database `$db` is, and `$kind` (when
/// given) naming its sqlx database type: the block is compiled once per database.
macro_rules! on {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::db::Db::Sqlite($pool) => $body,
            $crate::store::db::Db::Postgres($pool) => $body,
        }
    };
    ($db:expr, $pool:ident, $kind:ident => $body:expr) => {
        match $db {
            $crate::store::db::Db::Sqlite($pool) => {
                #[allow(dead_code)]
                type $kind = ::sqlx::Sqlite;
                $body
            }
            $crate::store::db::Db::Postgres($pool) => {
                #[allow(dead_code)]
                type $kind = ::sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on;

/// Runs `$body` with `$conn` bound to the connection of a write [`Turn`] (`&mut` the database's
/// own connection type), and `$kind` (when given) naming its sqlx database type. Statements take
/// `&mut *$conn`; a transaction is `$conn.begin_with(...)`.
macro_rules! writing {
    ($turn:expr, $conn:ident => $body:expr) => {
        $crate::store::db::writing!($turn, $conn, _Database => $body)
    };
    ($turn:expr, $conn:ident, $kind:ident => $body:expr) => {
        match $turn {
            $crate::store::db::Turn::Sqlite($conn) => {
                #[allow(dead_code)]
                type $kind = ::sqlx::Sqlite;
                #[allow(unused_imports)]
                use ::sqlx::Connection as _;
                let $conn: &mut ::sqlx::SqliteConnection = &mut *$conn;
                $body
            }
            $crate::store::db::Turn::Postgres($conn) => {
                #[allow(dead_code)]
                type $kind = ::sqlx::Postgres;
                #[allow(unused_imports)]
                use ::sqlx::Connection as _;
                let $conn: &mut ::sqlx::PgConnection = &mut *$conn;
                $body
            }
        }
    };
}
pub(crate) use writing;

/// Where writes go: SQLite's one write connection, kept outside the pool, or PostgreSQL's pool
/// (which takes concurrent writers).
#[derive(Debug, Clone)]
pub(crate) enum Writes {
    /// SQLite.
    Sqlite(Arc<Writer>),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A turn to write: SQLite's write connection, held until the turn is dropped (other writers of
/// this process wait, in order), or a connection of PostgreSQL's pool.
pub(crate) enum Turn<'a> {
    /// SQLite's write connection.
    Sqlite(tokio::sync::MappedMutexGuard<'a, SqliteConnection>),
    /// A pooled PostgreSQL connection.
    Postgres(PoolConnection<Postgres>),
}

impl Writes {
    /// Waits for a turn to write.
    pub(crate) async fn turn(&self) -> Result<Turn<'_>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(writer) => Turn::Sqlite(writer.turn().await?),
            Self::Postgres(pool) => Turn::Postgres(pool.acquire().await?),
        })
    }

    /// Closes SQLite's write connection once the writer holding it is done; later turns fail.
    pub(crate) async fn close(&self) {
        if let Self::Sqlite(writer) = self {
            writer.close().await;
        }
    }
}

/// SQLite's one write connection. SQLite has one writer at a time, so every write of this
/// process goes through this connection, in turn: a writer waiting here is handed the
/// connection at once, in order (a writer that found the database locked would sleep in
/// SQLite's busy handler instead: 1, 2, 5, 10 ms...). Being the only writer, its page cache
/// stays valid from one write to the next (a pooled connection finds its cache stale after
/// another connection's write and reads the pages again), and it skips the pool's checkout and
/// the test each pooled connection gets when it is returned.
#[derive(Debug)]
pub(crate) struct Writer {
    options: SqliteConnectOptions,
    slot: tokio::sync::Mutex<Slot>,
}

/// The write connection's state, behind its lock.
#[derive(Debug)]
enum Slot {
    /// None yet (or the last one was replaced): the next turn connects.
    Empty,
    /// Open.
    Open(SqliteConnection),
    /// Closed with the store: turns fail.
    Closed,
}

impl Writer {
    /// A writer that connects with `options` on its first turn.
    pub(crate) fn new(options: SqliteConnectOptions) -> Self {
        Self {
            options,
            slot: tokio::sync::Mutex::new(Slot::Empty),
        }
    }

    async fn turn(
        &self,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, SqliteConnection>, sqlx::Error> {
        let mut slot = self.slot.lock().await;
        // The connection must come back out of any transaction. After a failed write (a full
        // disk, say) SQLite may have rolled the transaction back by itself, the ROLLBACK queued
        // when it was dropped then fails, and the connection would answer every later BEGIN
        // with "begin_with at non-zero transaction depth" for good: such a connection is
        // replaced. The depth is an atomic read; only a connection still in a transaction pays
        // a round trip (the ping lets a ROLLBACK queued by a dropped transaction run first).
        if let Slot::Open(conn) = &mut *slot
            && conn.is_in_transaction()
            && (conn.ping().await.is_err() || conn.is_in_transaction())
        {
            tracing::warn!(
                "store: the write connection, left in a failed transaction, is replaced"
            );
            if let Slot::Open(conn) = std::mem::replace(&mut *slot, Slot::Empty) {
                let _ = conn.close_hard().await;
            }
        }
        match *slot {
            Slot::Closed => return Err(sqlx::Error::PoolClosed),
            Slot::Empty => {
                *slot = Slot::Open(SqliteConnection::connect_with(&self.options).await?);
            }
            Slot::Open(_) => {}
        }
        tokio::sync::MutexGuard::try_map(slot, |s| match s {
            Slot::Open(conn) => Some(conn),
            _ => None,
        })
        .map_err(|_| sqlx::Error::PoolClosed)
    }

    async fn close(&self) {
        let mut slot = self.slot.lock().await;
        if let Slot::Open(conn) = std::mem::replace(&mut *slot, Slot::Closed) {
            let _ = conn.close().await;
        }
    }
}

/// Compiles the items given once per database, in modules `sqlite` and `postgres`, with `DB`
/// naming the module's sqlx database type: for code that needs the database's own types
/// (a transaction, a query result) across several functions.
macro_rules! per_database {
    ($($item:item)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            type DB = ::sqlx::Sqlite;
            $($item)*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            type DB = ::sqlx::Postgres;
            $($item)*
        }
    };
}
pub(crate) use per_database;

/// A column type both databases decode.
pub(crate) trait Value:
    Sized + for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Value for T where
    T: Sized
        + for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
{
}

/// A row of either database, read by column name.
pub(crate) trait Get {
    /// The value of `column`.
    fn col<T: Value>(&self, column: &str) -> Result<T, sqlx::Error>;
}

impl Get for SqliteRow {
    fn col<T: Value>(&self, column: &str) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, column)
    }
}

impl Get for PgRow {
    fn col<T: Value>(&self, column: &str) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, column)
    }
}

/// What differs between the two databases, by their sqlx types.
pub(crate) trait Dialect: sqlx::Database {
    /// Whether several hosts may share the database (and a host must count the runs others
    /// have in progress).
    const SHARED: bool;
    /// What goes before a column to keep it out of the planner's choice of index: a unary `+`
    /// on SQLite, whose planner keeps no statistics and would otherwise pick an index that
    /// matches more terms over a better one (a claim filtering by handler would walk every
    /// schedule of the handler, `schedules_handler`, and sort them, instead of the due ones in
    /// order, `schedules_due`); nothing on PostgreSQL.
    const NO_INDEX: &'static str;
    /// Begins a transaction that writes: SQLite takes the write lock up front (a read
    /// transaction that later writes may fail to upgrade), PostgreSQL needs nothing more.
    const BEGIN_WRITE: &'static str;
    /// Reserves `$1` ids of a table's sequence, in order, before a multi-row insert gives them
    /// (PostgreSQL); `None` where the last id a statement inserted is known instead (SQLite,
    /// whose one writer gives a statement's rows consecutive ids).
    const RESERVE_EXECUTION_IDS: Option<&'static str>;
    /// What ends a SELECT that locks the rows it reads, skipping rows another transaction
    /// holds (PostgreSQL); nothing where a write transaction holds the whole database
    /// (SQLite).
    const LOCK_SKIPPING_LOCKED: &'static str;
    /// Takes, for the rest of the transaction, the lock that makes maintenance (pruning the
    /// log, forgetting old nodes) run on one host at a time; answers whether it got it (others
    /// skip their turn). `None` where one host has the store.
    const TRY_MAINTENANCE_LOCK: Option<&'static str>;
    /// The last id a statement inserted, where the database reports it.
    fn last_id(done: &Self::QueryResult) -> Option<i64>;
}

impl Dialect for Sqlite {
    const SHARED: bool = false;
    const NO_INDEX: &'static str = "+";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const RESERVE_EXECUTION_IDS: Option<&'static str> = None;
    const LOCK_SKIPPING_LOCKED: &'static str = "";
    const TRY_MAINTENANCE_LOCK: Option<&'static str> = None;
    fn last_id(done: &Self::QueryResult) -> Option<i64> {
        Some(done.last_insert_rowid())
    }
}

impl Dialect for Postgres {
    const SHARED: bool = true;
    const NO_INDEX: &'static str = "";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const RESERVE_EXECUTION_IDS: Option<&'static str> = Some(
        "SELECT nextval(pg_get_serial_sequence('executions', 'id')) FROM generate_series(1, $1::BIGINT)",
    );
    const LOCK_SKIPPING_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const TRY_MAINTENANCE_LOCK: Option<&'static str> =
        Some("SELECT pg_try_advisory_xact_lock(hashtext('schedulezero maintenance'))");
    fn last_id(_: &Self::QueryResult) -> Option<i64> {
        None
    }
}

impl Db {
    /// Whether this is PostgreSQL (several hosts may share it).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub(crate) async fn close(&self) {
        on!(self, pool => pool.close().await)
    }
}
