//! Schedules in the store: insert with a conflict policy, read, list with keyset paging, pause,
//! delete, move the next fire time, and ask which are due.

use super::db::{Dialect, Get, on, writing};
use super::{Store, StoreError, read_time};
use crate::schedule::{ConflictPolicy, Schedule};
use chrono::{DateTime, Utc};

/// What an insert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The schedule is new.
    Created,
    /// A schedule with the id existed and was kept (it is returned unchanged).
    Kept(Box<Schedule>),
    /// A schedule with the id existed and was replaced.
    Replaced,
}

/// Which schedules to list, a page at a time (by id, after `after_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleQuery {
    /// Only this handler's schedules.
    pub handler_id: Option<String>,
    /// Only paused (or only unpaused) schedules.
    pub paused: Option<bool>,
    /// Only completed schedules, with no fire time left (or only those with one).
    pub completed: Option<bool>,
    /// Only ids after this one (the last id of the previous page).
    pub after_id: Option<String>,
    /// The page size.
    pub limit: u32,
}

/// The due schedules at `$1` (a claim adds the handler filter, order, limit and lock).
pub(super) const SELECT_DUE: &str = "SELECT id, handler_id, method, params, trigger_spec, policy, paused, next_fire_us, created_us, updated_us \
     FROM schedules WHERE paused = FALSE AND next_fire_us IS NOT NULL AND next_fire_us <= ";

const SELECT_BY_ID: &str = "SELECT id, handler_id, method, params, trigger_spec, policy, paused, next_fire_us, created_us, updated_us \
     FROM schedules WHERE id = $1";

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    read_time("schedules", us)
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table: "schedules",
        message: e.to_string(),
    }
}

pub(super) fn read(row: &impl Get) -> Result<Schedule, StoreError> {
    let text = |col: &str| row.col::<String>(col);
    Ok(Schedule {
        id: text("id")?,
        handler_id: text("handler_id")?,
        method: text("method")?,
        params: serde_json::from_str(&text("params")?).map_err(corrupt)?,
        trigger: serde_json::from_str(&text("trigger_spec")?).map_err(corrupt)?,
        policy: serde_json::from_str(&text("policy")?).map_err(corrupt)?,
        paused: row.col("paused")?,
        next_fire: row
            .col::<Option<i64>>("next_fire_us")?
            .map(from_micros)
            .transpose()?,
        created_at: from_micros(row.col("created_us")?)?,
        updated_at: from_micros(row.col("updated_us")?)?,
    })
}

/// A schedule's JSON columns, as text.
struct JsonColumns {
    params: String,
    trigger: String,
    policy: String,
}

impl JsonColumns {
    fn of(s: &Schedule) -> Result<Self, StoreError> {
        Ok(Self {
            params: serde_json::to_string(&s.params).map_err(corrupt)?,
            trigger: serde_json::to_string(&s.trigger).map_err(corrupt)?,
            policy: serde_json::to_string(&s.policy).map_err(corrupt)?,
        })
    }
}

/// The INSERT of one schedule row (`$sql`: [`INSERT`] or [`INSERT_OR_KEEP`]), for whichever
/// database it runs on.
macro_rules! insert_row {
    ($sql:expr, $s:expr, $columns:expr) => {
        sqlx::query($sql)
            .bind(&$s.id)
            .bind(&$s.handler_id)
            .bind(&$s.method)
            .bind(&$columns.params)
            .bind(&$columns.trigger)
            .bind(&$columns.policy)
            .bind($s.paused)
            .bind($s.next_fire.map(micros))
            .bind(micros($s.created_at))
            .bind(micros($s.updated_at))
    };
}

const INSERT: &str = "INSERT INTO schedules (id, handler_id, method, params, trigger_spec, policy, paused, next_fire_us, created_us, updated_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

const INSERT_OR_KEEP: &str = "INSERT INTO schedules (id, handler_id, method, params, trigger_spec, policy, paused, next_fire_us, created_us, updated_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING";

impl Store {
    /// Inserts a schedule; `conflict` says what happens when the id exists. Committed on return.
    pub async fn insert_schedule(
        &self,
        s: &Schedule,
        conflict: ConflictPolicy,
    ) -> Result<Inserted, StoreError> {
        let mut turn = self.write_turn().await?;
        let columns = JsonColumns::of(s)?;
        if conflict != ConflictPolicy::Replace {
            // One statement, one commit: the common case (a new id) costs a single fsync.
            let inserted = writing!(&mut turn, conn => insert_row!(INSERT_OR_KEEP, s, columns)
                .execute(&mut *conn)
                .await?
                .rows_affected());
            if inserted == 1 {
                return Ok(Inserted::Created);
            }
            if conflict == ConflictPolicy::Error {
                return Err(StoreError::Conflict(s.id.clone()));
            }
            // Schedules are never changed in place but by a replace, which keeps the id: the
            // one found is the one that stopped the insert (or its replacement).
            return match self.schedule(&s.id).await? {
                Some(old) => Ok(Inserted::Kept(Box::new(old))),
                None => Err(StoreError::Conflict(s.id.clone())),
            };
        }
        // Replace: read then write; take the write lock up front, so that a concurrent writer
        // makes this wait (busy timeout) instead of failing the upgrade from a read transaction.
        let existed = writing!(&mut turn, conn, DB => {
            let mut tx = conn.begin_with(<DB as Dialect>::BEGIN_WRITE).await?;
            let existed = sqlx::query("DELETE FROM schedules WHERE id = $1")
                .bind(&s.id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            insert_row!(INSERT, s, columns).execute(&mut *tx).await?;
            tx.commit().await?;
            existed
        });
        Ok(if existed {
            Inserted::Replaced
        } else {
            Inserted::Created
        })
    }

    /// The schedule with this id.
    pub async fn schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        on!(&self.db, pool => sqlx::query(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| read(&r))
            .transpose())
    }

    /// A page of schedules, by id.
    pub async fn list_schedules(&self, q: &ScheduleQuery) -> Result<Vec<Schedule>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, handler_id, method, params, trigger_spec, policy, paused, next_fire_us, created_us, updated_us \
             FROM schedules \
             WHERE ($1 IS NULL OR handler_id = $1) AND ($2 IS NULL OR paused = $2) AND ($3 IS NULL OR id > $3) \
             AND ($5 IS NULL OR (next_fire_us IS NULL) = $5) \
             ORDER BY id LIMIT $4",
        )
        .bind(q.handler_id.as_deref())
        .bind(q.paused)
        .bind(q.after_id.as_deref())
        .bind(i64::from(q.limit))
        .bind(q.completed)
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }

    /// How many schedules there are.
    pub async fn count_schedules(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = on!(&self.db, pool => sqlx::query_as("SELECT COUNT(*) FROM schedules")
            .fetch_one(pool)
            .await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes a schedule; false when there was none.
    pub async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let mut turn = self.write_turn().await?;
        let done = writing!(&mut turn, conn => sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Pauses or resumes a schedule, setting its next fire time; false when there is none.
    pub async fn set_paused(
        &self,
        id: &str,
        paused: bool,
        next_fire: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut turn = self.write_turn().await?;
        let done = writing!(&mut turn, conn => sqlx::query(
            "UPDATE schedules SET paused = $1, next_fire_us = $2, updated_us = $3 WHERE id = $4",
        )
        .bind(paused)
        .bind(next_fire.map(micros))
        .bind(micros(now))
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// Moves a schedule's next fire time (`None`: it will not fire again).
    pub async fn set_next_fire(
        &self,
        id: &str,
        next_fire: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut turn = self.write_turn().await?;
        let done = writing!(&mut turn, conn => sqlx::query(
            "UPDATE schedules SET next_fire_us = $1, updated_us = $2 WHERE id = $3",
        )
        .bind(next_fire.map(micros))
        .bind(micros(now))
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// The soonest next fire time of an active schedule.
    pub async fn next_fire_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (us,): (Option<i64>,) = on!(&self.db, pool => sqlx::query_as(
            "SELECT MIN(next_fire_us) FROM schedules WHERE paused = FALSE AND next_fire_us IS NOT NULL",
        )
        .fetch_one(pool)
        .await?);
        us.map(from_micros).transpose()
    }

    /// How many schedules are active and how many paused.
    pub async fn count_schedules_by_state(&self) -> Result<(u64, u64), StoreError> {
        let (active, paused): (i64, i64) = on!(&self.db, pool => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN paused THEN 0 ELSE 1 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN paused THEN 1 ELSE 0 END), 0) AS BIGINT) FROM schedules",
        )
        .fetch_one(pool)
        .await?);
        Ok((
            u64::try_from(active).unwrap_or(0),
            u64::try_from(paused).unwrap_or(0),
        ))
    }

    /// Active schedules whose next fire time is at or before `now`, soonest first.
    pub async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, handler_id, method, params, trigger_spec, policy, paused, next_fire_us, created_us, updated_us \
             FROM schedules WHERE paused = FALSE AND next_fire_us IS NOT NULL AND next_fire_us <= $1 \
             ORDER BY next_fire_us, id LIMIT $2",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule::{SchedulePolicy, TriggerSpec};
    use crate::store::testing::on_both;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedule(id: &str, handler: &str, next: Option<&str>) -> Schedule {
        Schedule {
            id: id.into(),
            handler_id: handler.into(),
            method: "ping".into(),
            params: json!({"n": 1}),
            trigger: TriggerSpec::Cron {
                expression: "*/5 * * * *".into(),
                timezone: Some("Europe/Paris".into()),
                start_time: None,
                end_time: None,
                compat_fields: false,
                iso_week: None,
            },
            policy: SchedulePolicy {
                max_attempts: 3,
                misfire_grace_time: Some(Duration::from_secs(30)),
                ..Default::default()
            },
            paused: false,
            next_fire: next.map(at),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
        }
    }

    on_both! {
    #[tokio::test]
    async fn schedules_round_trip_and_survive_a_reopen(db) {
        let s = schedule("nightly", "ding-dong", Some("2026-01-01T00:05:00.123456Z"));
        assert_eq!(
            db.insert_schedule(&s, ConflictPolicy::Error).await.unwrap(),
            Inserted::Created
        );
        assert_eq!(db.schedule("nightly").await.unwrap().as_ref(), Some(&s));
        let db = db.reopen().await;
        assert_eq!(db.schedule("nightly").await.unwrap(), Some(s));
        assert_eq!(db.schedule("other").await.unwrap(), None);
    }
    }

    on_both! {
    #[tokio::test]
    async fn conflicts_follow_the_policy(db) {
        let first = schedule("job", "ding-dong", None);
        db.insert_schedule(&first, ConflictPolicy::Error)
            .await
            .unwrap();
        let mut second = schedule("job", "misbehave", None);
        second.method = "ok".into();
        assert!(
            matches!(db.insert_schedule(&second, ConflictPolicy::Error).await, Err(StoreError::Conflict(id)) if id == "job")
        );
        assert_eq!(
            db.insert_schedule(&second, ConflictPolicy::DoNothing)
                .await
                .unwrap(),
            Inserted::Kept(Box::new(first.clone()))
        );
        assert_eq!(
            db.schedule("job").await.unwrap().unwrap().handler_id,
            "ding-dong"
        );
        assert_eq!(
            db.insert_schedule(&second, ConflictPolicy::Replace)
                .await
                .unwrap(),
            Inserted::Replaced
        );
        assert_eq!(db.schedule("job").await.unwrap(), Some(second));
        assert_eq!(db.count_schedules().await.unwrap(), 1);
    }
    }

    on_both! {
    #[tokio::test]
    async fn concurrent_inserts_of_one_id_leave_one_schedule(db) {
        let inserts = (0..8).map(|i| {
            let db = db.clone();
            let mut s = schedule("same", "ding-dong", None);
            s.method = format!("m{i}");
            tokio::spawn(async move { db.insert_schedule(&s, ConflictPolicy::DoNothing).await })
        });
        let mut created = 0;
        for r in futures::future::join_all(inserts).await {
            if r.unwrap().unwrap() == Inserted::Created {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        assert_eq!(db.count_schedules().await.unwrap(), 1);
    }
    }

    on_both! {
    #[tokio::test]
    async fn lists_page_by_id_with_filters(db) {
        for i in 0..25 {
            let handler = if i % 5 == 0 { "misbehave" } else { "ding-dong" };
            db.insert_schedule(
                &schedule(&format!("s{i:02}"), handler, None),
                ConflictPolicy::Error,
            )
            .await
            .unwrap();
        }
        let mut q = ScheduleQuery {
            limit: 10,
            ..Default::default()
        };
        let mut ids = Vec::new();
        loop {
            let page = db.list_schedules(&q).await.unwrap();
            if page.is_empty() {
                break;
            }
            q.after_id = page.last().map(|s| s.id.clone());
            ids.extend(page.into_iter().map(|s| s.id));
        }
        assert_eq!(ids.len(), 25);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let q = ScheduleQuery {
            handler_id: Some("misbehave".into()),
            limit: 100,
            ..Default::default()
        };
        let ids: Vec<String> = db
            .list_schedules(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["s00", "s05", "s10", "s15", "s20"]);
    }
    }

    on_both! {
    #[tokio::test]
    async fn due_schedules_skip_paused_and_finished_ones(db) {
        let now = at("2026-01-01T12:00:00Z");
        for (id, next) in [
            ("late", Some("2026-01-01T11:00:00Z")),
            ("now", Some("2026-01-01T12:00:00Z")),
            ("soon", Some("2026-01-01T12:00:01Z")),
            ("done", None),
            ("paused", Some("2026-01-01T10:00:00Z")),
        ] {
            db.insert_schedule(&schedule(id, "ding-dong", next), ConflictPolicy::Error)
                .await
                .unwrap();
        }
        assert!(db.set_paused("paused", true, None, now).await.unwrap());
        let due: Vec<String> = db
            .due_schedules(now, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(due, ["late", "now"]);

        assert!(
            db.set_next_fire("late", Some(at("2026-01-01T13:00:00Z")), now)
                .await
                .unwrap()
        );
        assert!(
            db.set_paused("paused", false, Some(at("2026-01-01T11:59:00Z")), now)
                .await
                .unwrap()
        );
        let due: Vec<String> = db
            .due_schedules(now, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(due, ["paused", "now"]);
        assert_eq!(db.schedule("late").await.unwrap().unwrap().updated_at, now);

        assert!(db.delete_schedule("now").await.unwrap());
        assert!(!db.delete_schedule("now").await.unwrap());
        assert!(!db.set_paused("now", true, None, now).await.unwrap());
        assert_eq!(db.count_schedules().await.unwrap(), 4);
    }
    }

    on_both! {
    #[tokio::test]
    async fn a_corrupt_row_is_reported_not_panicked_on(db) {
        db.insert_schedule(&schedule("x", "ding-dong", None), ConflictPolicy::Error)
            .await
            .unwrap();
        on!(&db.db, pool => sqlx::query("UPDATE schedules SET trigger_spec = '{\"type\":\"weekly\"}'")
            .execute(pool)
            .await
            .unwrap()
            .rows_affected());
        assert!(matches!(
            db.schedule("x").await,
            Err(StoreError::Corrupt {
                table: "schedules",
                ..
            })
        ));
    }
    }

    /// Every write of a SQLite store goes through one connection outside the pool: as durable
    /// as the pool's, replaced when a failed write leaves it in a transaction, and closed with
    /// the store (later writes fail rather than open it again).
    #[tokio::test]
    async fn sqlite_writes_go_through_one_durable_connection_that_recovers() {
        use crate::store::db::Turn;
        use sqlx::Connection as _;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("sz.db")).await.unwrap();
        let schedule = |id: &str| schedule(id, "ding-dong", None);
        {
            let mut turn = store.write_turn().await.unwrap();
            let Turn::Sqlite(conn) = &mut turn else {
                panic!("SQLite's write connection")
            };
            let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(sync, 2, "synchronous=FULL on the write connection");
            let (temp, cache): (i64, i64) = (
                sqlx::query_scalar("PRAGMA temp_store")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap(),
                sqlx::query_scalar("PRAGMA cache_size")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap(),
            );
            assert_eq!(
                (temp, cache),
                (2, -16384),
                "statement journals in memory, 16 MiB cache"
            );
            // A write left hanging in its transaction: the next turn must not inherit it.
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("DELETE FROM schedules")
                .execute(&mut *tx)
                .await
                .unwrap();
            std::mem::forget(tx);
        }
        store
            .insert_schedule(&schedule("a"), ConflictPolicy::Error)
            .await
            .unwrap();
        {
            let mut turn = store.write_turn().await.unwrap();
            let Turn::Sqlite(conn) = &mut turn else {
                panic!("SQLite's write connection")
            };
            assert!(!conn.is_in_transaction(), "a fresh connection");
        }
        assert!(store.schedule("a").await.unwrap().is_some());

        // Concurrent writers take turns; all of them commit.
        let writers: Vec<_> = (0..32)
            .map(|k| {
                let store = store.clone();
                let s = schedule(&format!("w{k}"));
                tokio::spawn(async move { store.insert_schedule(&s, ConflictPolicy::Error).await })
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        assert_eq!(store.count_schedules().await.unwrap(), 33);

        store.close().await;
        assert!(
            store
                .insert_schedule(&schedule("late"), ConflictPolicy::Error)
                .await
                .is_err()
        );
        let again = Store::open_sqlite(&dir.path().join("sz.db")).await.unwrap();
        assert!(again.schedule("late").await.unwrap().is_none());
        assert_eq!(again.count_schedules().await.unwrap(), 33);
        again.close().await;
    }
}
