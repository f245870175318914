//! Runs: the fire times a scheduler has claimed. Claiming is one transaction that moves a
//! schedule's next fire time on (only if it is still the one the scheduler read) and records the
//! runs for the fire times it passed, so a fire time is claimed once even with several
//! schedulers on one database, and a crash between the two writes is impossible.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::db::{Get, Turn, on, per_database, writing};
use super::{Store, StoreError, Write, read_time};
use crate::schedule::{Run, RunStatus};

/// Rows per multi-row statement (6 parameters a row).
const ROWS_PER_STATEMENT: usize = 1000;

/// A claim: move a schedule from the next fire time the scheduler read to the following one,
/// recording runs for the fire times passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The schedule.
    pub schedule_id: String,
    /// The next fire time the scheduler read; the claim fails if it changed since.
    pub expected_next: DateTime<Utc>,
    /// The next fire time after the claimed ones (`None`: the trigger has no more).
    pub new_next: Option<DateTime<Utc>>,
    /// The fire times claimed, each with its starting status (`Pending` to run, `Missed` or
    /// `Skipped` to record only).
    pub runs: Vec<(DateTime<Utc>, RunStatus)>,
}

/// Which runs to list, newest fire time first, a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only this schedule's runs.
    pub schedule_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only fire times at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only fire times before this.
    pub until: Option<DateTime<Utc>>,
    /// Only runs before this one in the listing (the last of the previous page): its fire time
    /// and id.
    pub before: Option<(DateTime<Utc>, String)>,
    /// The page size.
    pub limit: u32,
}

fn time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    read_time("runs", us)
}

fn read(row: &impl Get) -> Result<Run, StoreError> {
    Ok(Run {
        id: row.col("id")?,
        schedule_id: row.col("schedule_id")?,
        fire_time: time(row.col("fire_us")?)?,
        status: RunStatus::parse(&row.col::<String>("status")?).map_err(|e| {
            StoreError::Corrupt {
                table: "runs",
                message: e.to_string(),
            }
        })?,
        created_at: time(row.col("created_us")?)?,
        updated_at: time(row.col("updated_us")?)?,
        node: row.col("node")?,
        fence: row.col("fence")?,
    })
}

impl Store {
    /// Makes a claim. `Ok(None)`: the schedule's next fire time is no longer `expected_next`
    /// (another scheduler claimed it, or it was paused, edited or deleted) and nothing changed.
    /// Otherwise the runs recorded, in fire-time order (a fire time that already has a run is not
    /// recorded again). Committed on return.
    pub async fn claim(
        &self,
        claim: &Claim,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Run>>, StoreError> {
        Ok(self
            .claim_all(std::slice::from_ref(claim), now)
            .await?
            .pop()
            .flatten())
    }

    /// Makes several claims in one transaction (one commit for a whole pass of the scheduler);
    /// one answer per claim, as [`Store::claim`] gives it.
    pub async fn claim_all(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<Vec<Run>>>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut turn = self.write_turn().await?;
        let holder = self.claimer(now);
        Ok(match &mut turn {
            Turn::Sqlite(conn) => sqlite::claim_all(conn, claims, &holder).await?,
            Turn::Postgres(conn) => postgres::claim_all(conn, claims, &holder).await?,
        })
    }

    /// Claims what is due at `now`, in one transaction: up to `limit` active schedules whose
    /// next fire time has come, soonest first, of the handlers in `only` (every handler when
    /// `None`), each locked while `plan` says what to claim of it (`None`: nothing). On
    /// PostgreSQL the schedules are locked `FOR UPDATE SKIP LOCKED`: hosts claiming at the
    /// same time each take different schedules instead of waiting for each other; on SQLite the
    /// write connection reads them, its cache warm. Returns each claim with the runs it
    /// recorded.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        only: Option<&[String]>,
        plan: &mut (dyn FnMut(&DueSchedule) -> Option<Claim> + Send),
    ) -> Result<Vec<(Claim, Vec<Run>)>, StoreError> {
        if only.is_some_and(<[String]>::is_empty) || limit == 0 {
            return Ok(Vec::new());
        }
        let holder = self.claimer(now);
        let mut turn = self.write_turn().await?;
        match &mut turn {
            Turn::Sqlite(conn) => sqlite::claim_due(conn, &holder, limit, only, plan).await,
            Turn::Postgres(conn) => postgres::claim_due(conn, &holder, limit, only, plan).await,
        }
    }

    fn claimer(&self, now: DateTime<Utc>) -> Claimer {
        Claimer {
            node: self.node.id().to_owned(),
            lease_us: self.node.lease_end_us(),
            now,
        }
    }

    /// Records a run of a schedule at `fire_time` outside its trigger (run now). `None` when the
    /// schedule already has a run at that instant. Committed on return.
    pub async fn insert_run(
        &self,
        schedule_id: &str,
        fire_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Run>, StoreError> {
        let mut turn = self.write_turn().await?;
        let id = uuid::Uuid::now_v7().to_string();
        let done = writing!(&mut turn, conn => sqlx::query(
            "INSERT INTO runs (id, schedule_id, fire_us, status, created_us, updated_us, node, lease_us) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7) ON CONFLICT (schedule_id, fire_us) DO NOTHING",
        )
        .bind(&id)
        .bind(schedule_id)
        .bind(fire_time.timestamp_micros())
        .bind(now.timestamp_micros())
        .bind(now.timestamp_micros())
        .bind(self.node.id())
        .bind(self.node.lease_end_us())
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok((done == 1).then(|| Run {
            id,
            schedule_id: schedule_id.to_owned(),
            fire_time,
            status: RunStatus::Pending,
            created_at: now,
            updated_at: now,
            node: Some(self.node.id().to_owned()),
            fence: 0,
        }))
    }

    /// How many runs of each of these schedules are in progress (pending or running, on any
    /// host), by schedule id; schedules with none are left out.
    pub async fn runs_in_progress(
        &self,
        schedule_ids: &[&str],
    ) -> Result<HashMap<String, u32>, StoreError> {
        let mut out = HashMap::new();
        for ids in schedule_ids.chunks(10_000) {
            on!(&self.db, pool, DB => {
                let mut q = QueryBuilder::<DB>::new(
                    "SELECT schedule_id, COUNT(*) AS n FROM runs \
                     WHERE status IN ('pending', 'running') AND schedule_id IN (NULL",
                );
                for id in ids {
                    q.push(", ").push_bind(*id);
                }
                q.push(") GROUP BY schedule_id");
                for row in q.build().fetch_all(pool).await? {
                    let n: i64 = row.col("n")?;
                    out.insert(row.col("schedule_id")?, u32::try_from(n).unwrap_or(u32::MAX));
                }
            });
        }
        Ok(out)
    }

    /// Lets go of a run this node holds, for whichever host can run it to take over at once.
    pub async fn release_run(&self, id: &str) -> Result<bool, StoreError> {
        let mut turn = self.write_turn().await?;
        let done = writing!(&mut turn, conn => sqlx::query(
            "UPDATE runs SET lease_us = 0 WHERE id = $1 AND node = $2",
        )
        .bind(id)
        .bind(self.node.id())
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// The run with this id.
    pub async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, schedule_id, fire_us, status, created_us, updated_us, node, fence FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| read(&r))
        .transpose())
    }

    /// The newest run of each of these schedules that started (or was skipped or missed):
    /// their last outcomes, by schedule id, in one query. Schedules never run are left out.
    pub async fn last_runs(
        &self,
        schedule_ids: &[&str],
    ) -> Result<HashMap<String, Run>, StoreError> {
        let mut out = HashMap::with_capacity(schedule_ids.len());
        // SQLite takes at most 32,766 parameters a statement.
        for ids in schedule_ids.chunks(10_000) {
            on!(&self.db, pool, DB => {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT id, schedule_id, fire_us, status, created_us, updated_us, node, fence FROM runs r \
                 WHERE r.status <> 'pending' AND r.fire_us = (SELECT MAX(fire_us) FROM runs \
                 WHERE schedule_id = r.schedule_id AND status <> 'pending') \
                 AND r.schedule_id IN (",
            );
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(")");
            for row in q.build().fetch_all(pool).await? {
                let run = read(&row)?;
                out.insert(run.schedule_id.clone(), run);
            }
            });
        }
        Ok(out)
    }

    /// A page of runs, newest fire time first.
    pub async fn list_runs(&self, q: &RunQuery) -> Result<Vec<Run>, StoreError> {
        let (before_us, before_id) = match &q.before {
            Some((t, id)) => (Some(t.timestamp_micros()), Some(id.as_str())),
            None => (None, None),
        };
        on!(&self.db, pool => sqlx::query(
            "SELECT id, schedule_id, fire_us, status, created_us, updated_us, node, fence FROM runs \
             WHERE ($1 IS NULL OR schedule_id = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR fire_us >= $3) AND ($4 IS NULL OR fire_us < $4) \
             AND ($5 IS NULL OR fire_us < $5 OR (fire_us = $5 AND id < $6)) \
             ORDER BY fire_us DESC, id DESC LIMIT $7",
        )
        .bind(q.schedule_id.as_deref())
        .bind(q.status.map(RunStatus::as_str))
        .bind(q.since.map(|t| t.timestamp_micros()))
        .bind(q.until.map(|t| t.timestamp_micros()))
        .bind(before_us)
        .bind(before_id)
        .bind(i64::from(q.limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }

    /// Sets a run's status; false when there is no such run.
    pub async fn set_run_status(
        &self,
        id: &str,
        status: RunStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = self
            .record(vec![Write::RunStatus {
                run_id: id.to_owned(),
                status,
                at: now,
                holder: None,
            }])
            .await?;
        Ok(done.first().is_some_and(|n| *n > 0))
    }

    /// A schedule's runs, newest fire time first.
    pub async fn runs_of(&self, schedule_id: &str, limit: u32) -> Result<Vec<Run>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, schedule_id, fire_us, status, created_us, updated_us, node, fence FROM runs WHERE schedule_id = $1 \
             ORDER BY fire_us DESC LIMIT $2",
        )
        .bind(schedule_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }

    /// Takes over up to `limit` unfinished runs (pending or running) from the nodes that held
    /// them: every other node's (`expired_only` false: a single host starting again after a
    /// crash), or only those whose lease has run out (a node died, or stopped and let go). Only runs of
    /// the handlers in `only` (every handler when `None`), and runs whose schedule is gone.
    /// Each run taken over is held by this node with its fence moved on, so the node that lost
    /// it can record nothing more about it. Oldest fire time first; committed on return.
    ///
    /// With `expired_only`, the runs of nodes that ran on this node's data directory before it
    /// count as expired too: the directory's lock proves them gone.
    pub async fn take_over(
        &self,
        limit: u32,
        expired_only: bool,
        only: Option<&[String]>,
    ) -> Result<Vec<Run>, StoreError> {
        let now_us = self.node.now().timestamp_micros();
        let lease_us = self.node.lease_end_us();
        let node = self.node.id();
        let mut turn = self.write_turn().await?;
        writing!(&mut turn, conn, DB => {
            let mut q = QueryBuilder::<DB>::new("UPDATE runs SET node = ");
            q.push_bind(node)
                .push(", lease_us = ")
                .push_bind(lease_us)
                .push(
                    ", fence = fence + 1 WHERE id IN (SELECT id FROM runs r \
                     WHERE r.status IN ('pending', 'running')",
                );
            if expired_only {
                q.push(" AND (r.lease_us IS NULL OR r.lease_us < ")
                    .push_bind(now_us);
                if let Some(home) = self.node.home() {
                    q.push(" OR r.node IN (SELECT id FROM nodes WHERE home = ")
                        .push_bind(home)
                        .push(" AND id <> ")
                        .push_bind(node)
                        .push(")");
                }
                q.push(")");
            } else {
                // Taken in batches: not the ones this node took already.
                q.push(" AND (r.node IS NULL OR r.node <> ")
                    .push_bind(node)
                    .push(")");
            }
            if let Some(handlers) = only {
                q.push(
                    " AND (NOT EXISTS (SELECT 1 FROM schedules s WHERE s.id = r.schedule_id) \
                     OR r.schedule_id IN (SELECT id FROM schedules WHERE handler_id IN (NULL",
                );
                for h in handlers {
                    q.push(", ").push_bind(h.as_str());
                }
                q.push(")))");
            }
            q.push(" ORDER BY r.fire_us, r.id LIMIT ")
                .push_bind(i64::from(limit))
                .push(<DB as super::db::Dialect>::LOCK_SKIPPING_LOCKED)
                .push(
                    ") RETURNING id, schedule_id, fire_us, status, created_us, updated_us, node, fence",
                );
            let mut runs = q
                .build()
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(read)
                .collect::<Result<Vec<_>, _>>()?;
            runs.sort_by(|a, b| (a.fire_time, &a.id).cmp(&(b.fire_time, &b.id)));
            Ok(runs)
        })
    }

    /// Runs claimed but not finished (pending or running), oldest fire time first: what a host
    /// picks up again after a crash.
    pub async fn unfinished_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, schedule_id, fire_us, status, created_us, updated_us, node, fence FROM runs \
             WHERE status IN ('pending', 'running') ORDER BY fire_us, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }
}

/// A due schedule as a claim pass sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    /// The schedule.
    pub schedule: crate::schedule::Schedule,
    /// Its runs in progress now (pending or running, on any host), on a shared store; 0 on
    /// SQLite, whose one host counts its runs itself.
    pub in_flight: u32,
}

/// Who claims, and when: the runs it records are held by `node` until `lease_us`.
struct Claimer {
    node: String,
    lease_us: i64,
    now: DateTime<Utc>,
}

per_database! {
use sqlx::{QueryBuilder, Transaction};

use super::super::db::Dialect;

/// The claim of what is due, in one transaction: the due schedules read (and locked, `SKIP
/// LOCKED`, on PostgreSQL), the runs in progress counted where several hosts share the store,
/// the plan made and applied.
/// Pushes the SELECT of up to `limit` schedules due at `now_us`, of the handlers in `only`,
/// soonest first (locked where the database locks rows).
pub(super) fn push_select_due(
    q: &mut QueryBuilder<DB>,
    now_us: i64,
    limit: u32,
    only: Option<&[String]>,
) {
    q.push(super::super::schedules::SELECT_DUE).push_bind(now_us);
    if let Some(handlers) = only {
        q.push(" AND ").push(DB::NO_INDEX).push("handler_id IN (");
        let mut list = q.separated(", ");
        for h in handlers {
            list.push_bind(h.as_str());
        }
        q.push(")");
    }
    q.push(" ORDER BY next_fire_us, id LIMIT ")
        .push_bind(i64::from(limit))
        .push(DB::LOCK_SKIPPING_LOCKED);
}

pub(super) async fn claim_due(
    conn: &mut <DB as sqlx::Database>::Connection,
    holder: &Claimer,
    limit: u32,
    only: Option<&[String]>,
    plan: &mut (dyn FnMut(&DueSchedule) -> Option<Claim> + Send),
) -> Result<Vec<(Claim, Vec<Run>)>, StoreError> {
    let mut tx = sqlx::Connection::begin_with(conn, DB::BEGIN_WRITE).await?;
    let mut q = QueryBuilder::<DB>::new("");
    push_select_due(&mut q, holder.now.timestamp_micros(), limit, only);
    let rows = q.build().fetch_all(&mut *tx).await?;
    let schedules = rows
        .iter()
        .map(super::super::schedules::read)
        .collect::<Result<Vec<_>, _>>()?;
    if schedules.is_empty() {
        return Ok(Vec::new());
    }
    // Their runs in progress on any host, for their overlap limits, where several hosts share
    // the store (one host counts its own).
    let mut in_flight = HashMap::new();
    for chunk in schedules
        .chunks(ROWS_PER_STATEMENT)
        .filter(|_| DB::SHARED)
    {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT schedule_id, COUNT(*) AS n FROM runs WHERE status IN ('pending', 'running') \
             AND schedule_id IN (",
        );
        let mut list = q.separated(", ");
        for s in chunk {
            list.push_bind(s.id.as_str());
        }
        q.push(") GROUP BY schedule_id");
        for row in q.build().fetch_all(&mut *tx).await? {
            let n: i64 = row.col("n")?;
            in_flight.insert(
                row.col::<String>("schedule_id")?,
                u32::try_from(n).unwrap_or(u32::MAX),
            );
        }
    }
    let claims: Vec<Claim> = schedules
        .into_iter()
        .filter_map(|schedule| {
            let in_flight = in_flight.get(&schedule.id).copied().unwrap_or(0);
            plan(&DueSchedule {
                schedule,
                in_flight,
            })
        })
        .collect();
    let answers = apply(&mut tx, &claims, holder).await?;
    tx.commit().await?;
    Ok(claims
        .into_iter()
        .zip(answers)
        .filter_map(|(claim, runs)| runs.map(|runs| (claim, runs)))
        .collect())
}


pub(super) async fn claim_all(
    conn: &mut <DB as sqlx::Database>::Connection,
    claims: &[Claim],
    holder: &Claimer,
) -> Result<Vec<Option<Vec<Run>>>, StoreError> {
    let mut tx = sqlx::Connection::begin_with(conn, DB::BEGIN_WRITE).await?;
    let answers = apply(&mut tx, claims, holder).await?;
    tx.commit().await?;
    Ok(answers)
}

/// The statement that moves the schedules of `claims` to their new next fire times, each only
/// if its next fire time is still the one the claim read; it returns the ids of those it moved.
pub(super) fn push_move(q: &mut QueryBuilder<DB>, claims: &[Claim], now_us: i64) {
    q.push("UPDATE schedules SET next_fire_us = v.column2, updated_us = ")
        .push_bind(now_us)
        .push(" FROM (");
    q.push_values(claims, |mut b, c| {
        b.push_bind(&c.schedule_id)
            .push_bind(c.new_next.map(|t| t.timestamp_micros()))
            .push_bind(c.expected_next.timestamp_micros());
    });
    // Each claim looked up by id, through the primary key. The fire time compared is kept out
    // of SQLite's index choice on both sides: it would look the schedules up through the due
    // index (whose entries this update moves: many times slower), or scan every schedule with
    // a next fire time against an index of the list by fire time (the same for a whole batch
    // due at one instant).
    q.push(") AS v WHERE schedules.id = v.column1 AND ")
        .push(DB::NO_INDEX)
        .push("schedules.next_fire_us = ")
        .push(DB::NO_INDEX)
        .push("v.column3 AND schedules.paused = FALSE RETURNING schedules.id");
}

/// Makes `claims` in `tx`: moves every schedule whose next fire time is still the one read,
/// and records the runs of those it moved (a fire time that already has a run is not
/// recorded again).
pub(super) async fn apply(
    tx: &mut Transaction<'_, DB>,
    claims: &[Claim],
    holder: &Claimer,
) -> Result<Vec<Option<Vec<Run>>>, sqlx::Error> {
    let now_us = holder.now.timestamp_micros();
    let mut moved = HashSet::new();
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<DB>::new("");
        push_move(&mut q, chunk, now_us);
        let ids: Vec<(String,)> = q.build_query_as().fetch_all(&mut **tx).await?;
        moved.extend(ids.into_iter().map(|(id,)| id));
    }
    let mut planned: Vec<Vec<Run>> = Vec::with_capacity(claims.len());
    for claim in claims {
        let mut fires = claim.runs.clone();
        fires.sort_by_key(|(t, _)| *t);
        // The store keeps microseconds: two fire times within one are one fire time.
        fires.dedup_by_key(|(t, _)| t.timestamp_micros());
        let runs = if moved.contains(&claim.schedule_id) {
            fires
                .into_iter()
                .map(|(fire, status)| Run {
                    id: uuid::Uuid::now_v7().to_string(),
                    schedule_id: claim.schedule_id.clone(),
                    fire_time: fire,
                    status,
                    created_at: holder.now,
                    updated_at: holder.now,
                    node: Some(holder.node.clone()),
                    fence: 0,
                })
                .collect()
        } else {
            Vec::new()
        };
        planned.push(runs);
    }
    let all: Vec<&Run> = planned.iter().flatten().collect();
    let mut inserted = HashSet::new();
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO runs (id, schedule_id, fire_us, status, created_us, updated_us, node, lease_us) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id)
                .push_bind(&r.schedule_id)
                .push_bind(r.fire_time.timestamp_micros())
                .push_bind(r.status.as_str())
                .push_bind(now_us)
                .push_bind(now_us)
                .push_bind(holder.node.as_str())
                .push_bind(holder.lease_us);
        });
        q.push(" ON CONFLICT (schedule_id, fire_us) DO NOTHING RETURNING id");
        let ids: Vec<(String,)> = q.build_query_as().fetch_all(&mut **tx).await?;
        inserted.extend(ids.into_iter().map(|(id,)| id));
    }
    Ok(claims
        .iter()
        .zip(planned)
        .map(|(claim, runs)| {
            moved.contains(&claim.schedule_id).then(|| {
                runs.into_iter()
                    .filter(|r| inserted.contains(&r.id))
                    .collect()
            })
        })
        .collect())
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::TriggerSpec;
    use crate::schedule::{ConflictPolicy, Schedule, SchedulePolicy};
    use crate::store::db::Db;
    use crate::store::testing::on_both;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    async fn with_schedule(db: &Store, next: &str) {
        let s = Schedule {
            id: "tick".into(),
            handler_id: "ding-dong".into(),
            method: "ping".into(),
            params: serde_json::json!({}),
            trigger: TriggerSpec::Cron {
                expression: "* * * * *".into(),
                timezone: None,
                start_time: None,
                end_time: None,
                compat_fields: false,
                iso_week: None,
            },
            policy: SchedulePolicy::default(),
            paused: false,
            next_fire: Some(at(next)),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
        };
        db.insert_schedule(&s, ConflictPolicy::Error).await.unwrap();
    }

    fn claim(expected: &str, new_next: &str, runs: &[(&str, RunStatus)]) -> Claim {
        Claim {
            schedule_id: "tick".into(),
            expected_next: at(expected),
            new_next: Some(at(new_next)),
            runs: runs.iter().map(|(t, s)| (at(t), *s)).collect(),
        }
    }

    on_both! {
    #[tokio::test]
    async fn a_claim_moves_the_schedule_and_records_its_runs_once(db) {
        with_schedule(&db, "2026-01-01T00:01:00Z").await;
        let now = at("2026-01-01T00:03:10Z");
        let c = claim(
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:04:00Z",
            &[
                ("2026-01-01T00:03:00Z", RunStatus::Pending),
                ("2026-01-01T00:01:00Z", RunStatus::Missed),
                ("2026-01-01T00:02:00Z", RunStatus::Missed),
            ],
        );
        let runs = db.claim(&c, now).await.unwrap().unwrap();
        assert_eq!(
            runs.iter().map(|r| r.fire_time).collect::<Vec<_>>(),
            [
                at("2026-01-01T00:01:00Z"),
                at("2026-01-01T00:02:00Z"),
                at("2026-01-01T00:03:00Z")
            ]
        );
        assert_eq!(
            db.schedule("tick").await.unwrap().unwrap().next_fire,
            Some(at("2026-01-01T00:04:00Z"))
        );
        // The same claim again: the schedule moved on, nothing changes.
        assert_eq!(db.claim(&c, now).await.unwrap(), None);
        assert_eq!(db.runs_of("tick", 10).await.unwrap().len(), 3);

        let pending: Vec<Run> = db.unfinished_runs(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert!(
            db.set_run_status(&pending[0].id, RunStatus::Success, now)
                .await
                .unwrap()
        );
        assert!(db.unfinished_runs(10).await.unwrap().is_empty());
        assert!(
            !db.set_run_status("nope", RunStatus::Error, now)
                .await
                .unwrap()
        );
    }
    }

    on_both! {
    #[tokio::test]
    async fn concurrent_schedulers_claim_a_fire_time_once(db) {
        with_schedule(&db, "2026-01-01T00:01:00Z").await;
        let c = claim(
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            &[("2026-01-01T00:01:00Z", RunStatus::Pending)],
        );
        let claims = (0..8).map(|_| {
            let (db, c) = (db.clone(), c.clone());
            tokio::spawn(async move { db.claim(&c, at("2026-01-01T00:01:00Z")).await })
        });
        let won = futures::future::join_all(claims)
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(Ok(Some(_)))))
            .count();
        assert_eq!(won, 1);
        assert_eq!(db.runs_of("tick", 10).await.unwrap().len(), 1);
    }
    }

    on_both! {
    #[tokio::test]
    async fn paused_schedules_and_repeated_fire_times_are_not_claimed(db) {
        with_schedule(&db, "2026-01-01T00:01:00Z").await;
        let now = at("2026-01-01T00:01:00Z");
        db.set_paused("tick", true, Some(at("2026-01-01T00:01:00Z")), now)
            .await
            .unwrap();
        let c = claim(
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            &[("2026-01-01T00:01:00Z", RunStatus::Pending)],
        );
        assert_eq!(db.claim(&c, now).await.unwrap(), None);
        db.set_paused("tick", false, Some(at("2026-01-01T00:01:00Z")), now)
            .await
            .unwrap();
        assert_eq!(db.claim(&c, now).await.unwrap().unwrap().len(), 1);
        // A schedule set back to a fire time it already ran: the run is not recorded twice.
        db.set_next_fire("tick", Some(at("2026-01-01T00:01:00Z")), now)
            .await
            .unwrap();
        assert_eq!(db.claim(&c, now).await.unwrap(), Some(vec![]));
    }
    }

    on_both! {
    #[tokio::test]
    async fn runs_are_taken_over_in_batches_with_their_fence_moved_on(db) {
        with_schedule(&db, "2026-01-01T00:01:00Z").await;
        let now = at("2026-01-01T00:05:00Z");
        let mut held = Vec::new();
        for minute in 1..=3 {
            let fire = at(&format!("2026-01-01T00:0{minute}:00Z"));
            held.push(db.insert_run("tick", fire, now).await.unwrap().unwrap());
        }
        // Another process on the same database: a node of its own.
        let other = db.reopen().await;
        assert_ne!(other.node().id(), db.node().id());
        // Their leases have not run out: nothing to rescue yet.
        assert!(other.take_over(10, true, None).await.unwrap().is_empty());
        let first = other.take_over(2, false, None).await.unwrap();
        let second = other.take_over(2, false, None).await.unwrap();
        assert_eq!((first.len(), second.len()), (2, 1));
        assert!(other.take_over(2, false, None).await.unwrap().is_empty(), "its own runs stay");
        for run in first.iter().chain(&second) {
            assert_eq!(run.node.as_deref(), Some(other.node().id()));
            assert_eq!(run.fence, 1);
        }
        // Only runs of the handlers named are taken.
        assert!(
            other
                .take_over(10, true, Some(&["absent".to_owned()]))
                .await
                .unwrap()
                .is_empty()
        );
        // The first holder's writes about them are refused now.
        let refused = other
            .record(vec![Write::RunStatus {
                run_id: held[0].id.clone(),
                status: RunStatus::Success,
                at: now,
                holder: held[0].holder(),
            }])
            .await;
        assert!(matches!(refused, Err(StoreError::LeaseLost(_))), "{refused:?}");
        let run = other.run(&held[0].id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Pending);
    }
    }

    /// SQLite keeps no statistics: unless told, its planner walks every schedule of the
    /// handlers a claim names (and sorts them) instead of the due ones in order.
    #[tokio::test]
    async fn the_claim_walks_the_due_schedules_in_order_on_sqlite() {
        let db = crate::store::testing::TestStore::sqlite().await;
        let Db::Sqlite(pool) = &db.store.db else {
            panic!("a SQLite store")
        };
        let plan_of = |mut q: QueryBuilder<sqlx::Sqlite>| async move {
            q.build()
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|row| row.col::<String>("detail").unwrap())
                .collect::<Vec<String>>()
        };
        // The due schedules, read in the claim's order straight from the index: neither every
        // schedule of the handler, nor every schedule due at one instant sorted by id.
        let only = vec!["ding-dong".to_owned(), "other".to_owned()];
        let mut q = QueryBuilder::<sqlx::Sqlite>::new("EXPLAIN QUERY PLAN ");
        sqlite::push_select_due(&mut q, 0, 1000, Some(&only));
        let plan = plan_of(q).await;
        assert!(
            plan.iter().any(|step| step.contains("INDEX schedules_due")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("schedules_handler") || step.contains("B-TREE")),
            "{plan:?}"
        );
        // Moved by id, not through the index whose entries the update moves.
        let claims: Vec<Claim> = (0..ROWS_PER_STATEMENT)
            .map(|i| Claim {
                schedule_id: format!("s{i}"),
                expected_next: at("2026-01-01T00:00:00Z"),
                new_next: None,
                runs: Vec::new(),
            })
            .collect();
        let mut q = QueryBuilder::<sqlx::Sqlite>::new("EXPLAIN QUERY PLAN ");
        sqlite::push_move(&mut q, &claims, 0);
        let plan = plan_of(q).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("SEARCH schedules USING INDEX sqlite_autoindex")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("schedules_due") || step.starts_with("SCAN schedules")),
            "{plan:?}"
        );
    }
}
