//! The two databases the store runs on, and what lets one query serve both: the pool of either
//! kind ([`Db`]), a macro that runs a block once per kind ([`on!`](crate::store::db::on)), rows
//! read the same way from either ([`Get`]), and the few statements that differ ([`Dialect`]).
//!
//! The SQL is written once where it can be: `$1`-style parameters (SQLite takes them too),
//! times as BIGINT microseconds, JSON as text, booleans as BOOLEAN, `ON CONFLICT`, `RETURNING`
//! and `UPDATE ... FROM (VALUES ...)` (whose columns both name `column1`, `column2`, ...).

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, PgPool, Postgres, Sqlite, SqlitePool, Type};

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
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const RESERVE_EXECUTION_IDS: Option<&'static str> = None;
    const LOCK_SKIPPING_LOCKED: &'static str = "";
    const TRY_MAINTENANCE_LOCK: Option<&'static str> = None;
    fn last_id(done: &Self::QueryResult) -> Option<i64> {
        Some(done.last_insert_rowid())
    }
}

impl Dialect for Postgres {
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
