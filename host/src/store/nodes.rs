//! Nodes: the hosts working on one store. Each process is a node with an id of its own, fresh
//! at every start (two processes on one machine, or one restarted, are never taken for each
//! other). A node records itself when it starts, then beats: every beat moves its heartbeat,
//! says which plugins it can run and how many runs it has in flight, renews the leases of the
//! runs it holds, and measures its clock against the database's (due times and leases are on
//! the database's clock; the difference is reported as the node's skew).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::db::{Db, Get, on, writing};
use super::{Store, StoreError, read_time};

/// This process's identity on the store, and the lease it takes runs for.
#[derive(Debug)]
pub struct Node {
    id: String,
    /// The id of the data directory it runs on, when it has one (a host).
    home: std::sync::OnceLock<String>,
    lease_us: AtomicI64,
    /// The database's clock minus this process's, in microseconds, as last measured.
    offset_us: AtomicI64,
}

/// How long a lease lasts unless set: the time after which another host takes over a dead
/// host's runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

impl Node {
    pub(super) fn fresh() -> Self {
        Self {
            id: uuid::Uuid::now_v7().simple().to_string(),
            home: std::sync::OnceLock::new(),
            lease_us: AtomicI64::new(micros(DEFAULT_LEASE)),
            offset_us: AtomicI64::new(0),
        }
    }

    /// Its id: fresh in every process.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id of the data directory it runs on, once named.
    pub fn home(&self) -> Option<&str> {
        self.home.get().map(String::as_str)
    }

    /// How long its leases last.
    pub fn lease(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.lease_us.load(Ordering::Relaxed)).unwrap_or(0))
    }

    /// The time on the database's clock, as this process reckons it.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::TimeDelta::microseconds(self.offset_us.load(Ordering::Relaxed))
    }

    /// This process's clock minus the database's.
    pub fn skew(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::microseconds(-self.offset_us.load(Ordering::Relaxed))
    }

    /// When a lease taken now ends (microseconds on the database's clock).
    pub(super) fn lease_end_us(&self) -> i64 {
        self.now()
            .timestamp_micros()
            .saturating_add(self.lease_us.load(Ordering::Relaxed))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// What a node says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Its name (the host's instance name).
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where its API listens.
    pub address: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// The plugins it can run.
    pub plugins: Vec<String>,
    /// Runs it is working on: their leases are renewed (no other run's: a run this node
    /// holds but no longer works on runs out its lease and is taken over).
    pub runs: Vec<String>,
}

/// A node as the store knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeRecord {
    /// Its id (fresh in every process).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where its API listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// The plugins it can run.
    pub plugins: Vec<String>,
    /// Runs it was working on at its last heartbeat.
    pub in_flight: u64,
    /// Its clock minus the database's at its last heartbeat, in milliseconds.
    pub skew_ms: f64,
    /// When it started.
    #[serde(with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (the database's clock).
    #[serde(with = "crate::time::rfc3339")]
    pub heartbeat_at: DateTime<Utc>,
    /// When it stopped cleanly, if it did.
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub stopped_at: Option<DateTime<Utc>>,
    /// `live` (it beat within a lease), `stopped` (it said so) or `lost` (silent for longer
    /// than a lease).
    pub state: NodeState,
}

/// Whether a node is working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// It beat within a lease.
    Live,
    /// It stopped cleanly.
    Stopped,
    /// Silent for longer than a lease: its runs are taken over.
    Lost,
}

fn read(row: &impl Get, now_us: i64, lease_us: i64) -> Result<NodeRecord, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt {
        table: "nodes",
        message: e.to_string(),
    };
    let heartbeat_us: i64 = row.col("heartbeat_us")?;
    let stopped_us: Option<i64> = row.col("stopped_us")?;
    let state = if stopped_us.is_some() {
        NodeState::Stopped
    } else if now_us.saturating_sub(heartbeat_us) > lease_us {
        NodeState::Lost
    } else {
        NodeState::Live
    };
    Ok(NodeRecord {
        id: row.col("id")?,
        name: row.col("name")?,
        version: row.col("version")?,
        address: row.col("address")?,
        pid: u32::try_from(row.col::<i64>("pid")?).map_err(|e| corrupt(&e))?,
        plugins: serde_json::from_str(&row.col::<String>("plugins")?).map_err(|e| corrupt(&e))?,
        in_flight: u64::try_from(row.col::<i64>("in_flight")?).unwrap_or(0),
        skew_ms: row.col::<i64>("skew_us")? as f64 / 1000.0,
        started_at: read_time("nodes", row.col("started_us")?)?,
        heartbeat_at: read_time("nodes", heartbeat_us)?,
        stopped_at: stopped_us.map(|us| read_time("nodes", us)).transpose()?,
        state,
    })
}

impl Store {
    /// This process's node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Names the data directory this node runs on (an id kept there), before its first beat:
    /// the nodes that ran on it before are gone (the directory's lock says so), and this one
    /// takes their runs back at once (see [`Store::take_over`]).
    pub fn set_home(&self, home: &str) {
        let _ = self.node.home.set(home.to_owned());
    }

    /// Sets how long this node's leases last (from the configuration, before it claims).
    pub fn set_lease(&self, lease: Duration) {
        self.node.lease_us.store(micros(lease), Ordering::Relaxed);
    }

    /// Reads the database's clock and keeps its difference to this process's.
    async fn measure_clock(&self) -> Result<(), StoreError> {
        let Db::Postgres(pool) = &self.db else {
            // SQLite's clock is this process's.
            return Ok(());
        };
        let before = Utc::now();
        let (db_us,): (i64,) = sqlx::query_as(
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
        )
        .fetch_one(pool)
        .await?;
        let after = Utc::now();
        let local_us =
            before.timestamp_micros() + (after - before).num_microseconds().unwrap_or(0) / 2;
        self.node
            .offset_us
            .store(db_us - local_us, Ordering::Relaxed);
        Ok(())
    }

    /// Records this node (at start), or beats (after): its heartbeat and what it reports,
    /// and the leases of the runs it holds renewed. Returns how many leases it renewed.
    pub async fn beat(&self, report: &NodeReport) -> Result<u64, StoreError> {
        self.measure_clock().await?;
        let now_us = self.node.now().timestamp_micros();
        let plugins = serde_json::to_string(&report.plugins).unwrap_or_else(|_| "[]".into());
        let skew_us = self.node.skew().num_microseconds().unwrap_or(0);
        let lease_end = self.node.lease_end_us();
        let mut turn = self.write_turn().await?;
        writing!(&mut turn, conn, DB => {
            let mut tx = conn.begin_with(<DB as super::db::Dialect>::BEGIN_WRITE).await?;
            sqlx::query(
                "INSERT INTO nodes (id, name, version, address, pid, plugins, in_flight, skew_us, \
                 started_us, heartbeat_us, home) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version, \
                 address = excluded.address, plugins = excluded.plugins, \
                 in_flight = excluded.in_flight, skew_us = excluded.skew_us, \
                 heartbeat_us = excluded.heartbeat_us, stopped_us = NULL",
            )
            .bind(&self.node.id)
            .bind(&report.name)
            .bind(&report.version)
            .bind(report.address.as_deref())
            .bind(i64::from(report.pid))
            .bind(&plugins)
            .bind(i64::try_from(report.runs.len()).unwrap_or(i64::MAX))
            .bind(skew_us)
            .bind(now_us)
            .bind(self.node.home.get())
            .execute(&mut *tx)
            .await?;
            let mut renewed = 0;
            // 1 parameter a run, plus 2.
            for chunk in report.runs.chunks(10_000) {
                let mut q = sqlx::QueryBuilder::<DB>::new("UPDATE runs SET lease_us = ");
                q.push_bind(lease_end)
                    .push(" WHERE node = ")
                    .push_bind(&self.node.id)
                    .push(" AND status IN ('pending', 'running') AND id IN (NULL");
                for run in chunk {
                    q.push(", ").push_bind(run.as_str());
                }
                q.push(")");
                renewed += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(renewed)
        })
    }

    /// Records that this node stopped cleanly, and lets go of the runs it still holds (cut
    /// short by the stop): another node takes them over at once instead of after the lease.
    pub async fn leave(&self) -> Result<u64, StoreError> {
        let now_us = self.node.now().timestamp_micros();
        let mut turn = self.write_turn().await?;
        writing!(&mut turn, conn, DB => {
            let mut tx = conn.begin_with(<DB as super::db::Dialect>::BEGIN_WRITE).await?;
            sqlx::query("UPDATE nodes SET stopped_us = $1, in_flight = 0 WHERE id = $2")
                .bind(now_us)
                .bind(&self.node.id)
                .execute(&mut *tx)
                .await?;
            let released = sqlx::query(
                "UPDATE runs SET lease_us = 0 WHERE node = $1 AND status IN ('pending', 'running')",
            )
            .bind(&self.node.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(released)
        })
    }

    /// The nodes recorded, live ones first, then by name; stopped and lost nodes stay listed
    /// for `keep` after their last heartbeat.
    pub async fn nodes(&self, keep: Duration) -> Result<Vec<NodeRecord>, StoreError> {
        let now_us = self.node.now().timestamp_micros();
        let lease_us = self.node.lease_us.load(Ordering::Relaxed);
        let since = now_us.saturating_sub(micros(keep));
        let mut nodes: Vec<NodeRecord> = on!(&self.db, pool => sqlx::query(
            "SELECT id, name, version, address, pid, plugins, in_flight, skew_us, started_us, \
             heartbeat_us, stopped_us FROM nodes WHERE heartbeat_us >= $1 ORDER BY name, id",
        )
        .bind(since)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| read(r, now_us, lease_us))
        .collect::<Result<_, _>>()?);
        nodes.sort_by_key(|n| n.state != NodeState::Live);
        Ok(nodes)
    }

    /// Forgets nodes silent for longer than `keep`. Returns how many.
    pub async fn prune_nodes(&self, keep: Duration) -> Result<u64, StoreError> {
        let before = self
            .node
            .now()
            .timestamp_micros()
            .saturating_sub(micros(keep));
        let mut turn = self.write_turn().await?;
        Ok(
            writing!(&mut turn, conn => sqlx::query("DELETE FROM nodes WHERE heartbeat_us < $1")
            .bind(before)
            .execute(&mut *conn)
            .await?
            .rows_affected()),
        )
    }
}
