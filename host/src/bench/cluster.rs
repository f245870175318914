//! `schedulezero bench cluster`: hosts (this executable, `serve`) on one PostgreSQL server
//! started for the run in a temporary directory (durable, as in production: fsync on), measured
//! over their REST APIs and in the database:
//! - `cluster_dispatch_per_s_1` / `_3`: runs of a trivial method per second, from claim to
//!   committed record, with 1 and with 3 hosts on one database, many schedules due at once;
//!   `sqlite_dispatch_per_s`: the same with one host on SQLite, for comparison;
//! - `failover_s`: from SIGKILL of a host to its in-flight run (a 500 ms call) finishing on
//!   another, with a 3 s lease;
//! - `fire_lateness_ms_p50_cluster` / `_p99_cluster`: attempt start minus fire time, 10,000
//!   schedules due within one minute across 3 hosts;
//! - `rss_mib_1m_schedules_pg`: RSS of an idle host with 1,000,000 schedules in the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use super::scheduler::{
    NanosecondZero, create_all, date_schedule, get, post, records_since, sleep_until, time_of,
    wait_successes,
};
use super::{BenchError, BenchHost, err, percentile, rss_mib};
use crate::store::scratch::ScratchPostgres;

/// Whether PostgreSQL's server binaries are here (the benchmark starts a server of its own).
pub fn available() -> bool {
    crate::store::scratch::installed()
}

/// The lease of the failover measurement, in seconds.
const FAILOVER_LEASE_S: u64 = 3;

/// The results, with the JSON keys the issue tracker and the docs use.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterFigures {
    /// Runs per second, one host on PostgreSQL.
    pub cluster_dispatch_per_s_1: f64,
    /// Runs per second, three hosts on one PostgreSQL database.
    pub cluster_dispatch_per_s_3: f64,
    /// Runs per second, one host on SQLite (the same burst).
    pub sqlite_dispatch_per_s: f64,
    /// The runs of each burst.
    pub burst_runs: usize,
    /// From SIGKILL of a host to its in-flight run finishing on another host, in seconds.
    pub failover_s: f64,
    /// The lease the failover was measured with, in seconds.
    pub failover_lease_s: u64,
    /// Attempt start minus fire time across 3 hosts, schedules due within one minute: median.
    pub fire_lateness_ms_p50_cluster: f64,
    /// The same, 99th percentile.
    pub fire_lateness_ms_p99_cluster: f64,
    /// The schedules of the lateness measurement.
    pub lateness_schedules: usize,
    /// RSS of an idle host with `rss_schedules` schedules in PostgreSQL, in MiB.
    pub rss_mib_1m_schedules_pg: f64,
    /// The schedules stored for the RSS figure.
    pub rss_schedules: u64,
}

struct Sizes {
    burst: usize,
    lateness: usize,
    lateness_span_s: i64,
    rss_schedules: u64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                burst: 3_000,
                lateness: 2_000,
                lateness_span_s: 20,
                rss_schedules: 100_000,
            }
        } else {
            Self {
                burst: 20_000,
                lateness: 10_000,
                lateness_span_s: 60,
                rss_schedules: 1_000_000,
            }
        }
    }
}

/// Hosts of one measurement, each with a data dir of its own and a configuration file.
struct Hosts {
    hosts: Vec<BenchHost>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Hosts {
    fn start(n: usize, database_url: Option<&str>, toml: &str) -> Result<Self, BenchError> {
        let mut hosts = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().map_err(err)?;
            let config = dir.path().join("schedulezero.toml");
            std::fs::write(&config, toml).map_err(err)?;
            let config = config.display().to_string();
            let mut args = vec!["--config", config.as_str()];
            if let Some(url) = database_url {
                args.extend(["--database-url", url]);
            }
            hosts.push(BenchHost::start(dir.path(), &args)?);
            dirs.push(dir);
        }
        Ok(Self { hosts, _dirs: dirs })
    }

    fn urls(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.url.clone()).collect()
    }

    fn stop(&mut self) {
        for h in &mut self.hosts {
            h.stop();
        }
    }
}

/// Creates `bodies` through every host in turn (16 clients in all).
async fn create_across(
    http: &reqwest::Client,
    urls: &[String],
    bodies: Vec<Value>,
) -> Result<(), BenchError> {
    let per_host = bodies.len().div_ceil(urls.len()).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (url, chunk) in urls.iter().zip(bodies.chunks(per_host)) {
        let (http, url, chunk) = (http.clone(), url.clone(), chunk.to_vec());
        let clients = (16 / urls.len()).max(1);
        tasks.spawn(async move { create_all(&http, &url, chunk, clients).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(err)??;
    }
    Ok(())
}

/// Runs `n` schedules due in the same instant on the hosts and returns runs per second, from
/// the fire time to the last record's end.
async fn burst(http: &reqwest::Client, urls: &[String], n: usize) -> Result<f64, BenchError> {
    // Creating runs at about 1,500 a second here; the fire time leaves room for it.
    let lead = Duration::from_secs_f64(n as f64 / 1_000.0 * 1.5 + 3.0);
    let fire = (Utc::now() + TimeDelta::from_std(lead).map_err(err)?).with_nanosecond_zero();
    let bodies = (0..n)
        .map(|i| date_schedule(format!("burst-{i:06}"), fire))
        .collect();
    create_across(http, urls, bodies).await?;
    if Utc::now() >= fire {
        return Err(err("creating the burst took longer than planned"));
    }
    sleep_until(fire).await;
    wait_successes(http, &urls[0], n as u64, Duration::from_secs(600)).await?;
    let mut last_end = fire;
    for e in records_since(http, &urls[0], fire).await? {
        last_end = last_end.max(time_of(&e["completed_at"])?);
    }
    Ok(n as f64 / (last_end - fire).as_seconds_f64())
}

/// Kills the host running a 500 ms call and times its run to its end on another host.
async fn failover(http: &reqwest::Client, server: &ScratchPostgres) -> Result<f64, BenchError> {
    let url = server.fresh_database().await.map_err(err)?;
    let toml = format!("[cluster]\nlease = \"{FAILOVER_LEASE_S}s\"\n");
    let mut hosts = Hosts::start(2, Some(&url), &toml)?;
    let urls = hosts.urls();
    let at = Utc::now() + TimeDelta::seconds(2);
    let body = json!({"id": "slow", "handler": "misbehave", "method": "sleep", "params": {"ms": 500},
        "trigger": {"type": "date", "run_date": at.to_rfc3339()}, "policy": {"max_attempts": 3}});
    post(http, &format!("{}/api/v1/schedules", urls[0]), &body).await?;
    let executions = |base: &str| format!("{base}/api/v1/executions?schedule=slow&limit=10");
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = loop {
        let reply = get(http, &executions(&urls[0])).await?;
        let running = reply["executions"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["status"] == "running").cloned());
        if let Some(e) = running {
            break e["node"].as_str().unwrap_or_default().to_owned();
        }
        if Instant::now() > deadline {
            return Err(err("the run did not start"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut victim = None;
    for (i, base) in urls.iter().enumerate() {
        if get(http, &format!("{base}/api/v1/host")).await?["node"] == node.as_str() {
            victim = Some(i);
        }
    }
    let victim = victim.ok_or_else(|| err("no host runs it"))?;
    let survivor = &urls[1 - victim];
    hosts.hosts[victim].kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(60);
    loop {
        let reply = get(http, &executions(survivor)).await?;
        let done = reply["executions"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["status"] == "success"));
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(err("the run was not taken over"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = killed.elapsed().as_secs_f64();
    hosts.stop();
    Ok(took)
}

/// `n` schedules due within `span_s` across 3 hosts: (p50, p99) of attempt start minus fire
/// time, in ms.
async fn lateness(
    http: &reqwest::Client,
    server: &ScratchPostgres,
    n: usize,
    span_s: i64,
) -> Result<(f64, f64), BenchError> {
    let url = server.fresh_database().await.map_err(err)?;
    let mut hosts = Hosts::start(3, Some(&url), "")?;
    let urls = hosts.urls();
    let lead = TimeDelta::from_std(Duration::from_secs_f64(n as f64 / 1_000.0 * 1.5 + 3.0))
        .map_err(err)?;
    let start = (Utc::now() + lead).with_nanosecond_zero();
    let step = TimeDelta::microseconds(span_s * 1_000_000 / n as i64);
    let mut fires = HashMap::with_capacity(n);
    let bodies = (0..n)
        .map(|i| {
            let id = format!("late-{i:06}");
            let fire = start + step * i32::try_from(i).unwrap_or(i32::MAX);
            fires.insert(id.clone(), fire);
            date_schedule(id, fire)
        })
        .collect();
    create_across(http, &urls, bodies).await?;
    if Utc::now() >= start {
        return Err(err("creating the schedules took longer than planned"));
    }
    sleep_until(start + TimeDelta::seconds(span_s)).await;
    wait_successes(http, &urls[0], n as u64, Duration::from_secs(300)).await?;
    let mut late = Vec::with_capacity(n);
    for e in records_since(http, &urls[0], start).await? {
        let Some(fire) = e["schedule_id"].as_str().and_then(|id| fires.get(id)) else {
            continue;
        };
        late.push((time_of(&e["started_at"])? - *fire).as_seconds_f64() * 1e3);
    }
    hosts.stop();
    late.sort_by(f64::total_cmp);
    Ok((percentile(&late, 0.5), percentile(&late, 0.99)))
}

/// An idle host's RSS with `n` schedules stored in PostgreSQL (written with one statement).
async fn rss_with(server: &ScratchPostgres, n: u64) -> Result<f64, BenchError> {
    use crate::schedule::{SchedulePolicy, TriggerSpec};
    let url = server.fresh_database().await.map_err(err)?;
    // Migrated by a store, then filled directly.
    crate::store::Store::open_url(&url)
        .await
        .map_err(err)?
        .close()
        .await;
    let trigger = serde_json::to_string(&TriggerSpec::Cron {
        expression: "0 0 1 1 *".into(),
        timezone: None,
        start_time: None,
        end_time: None,
        compat_fields: false,
        iso_week: None,
    })
    .map_err(err)?;
    let policy = serde_json::to_string(&SchedulePolicy::default()).map_err(err)?;
    let next = (Utc::now() + TimeDelta::days(300)).timestamp_micros();
    let now = Utc::now().timestamp_micros();
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .map_err(err)?;
    // One statement writes them all; it is slow by design, not worth a warning.
    let pool = sqlx::PgPool::connect_with(sqlx::ConnectOptions::disable_statement_logging(options))
        .await
        .map_err(err)?;
    sqlx::query(
        "INSERT INTO schedules (id, handler_id, method, params, trigger_spec, policy, paused, \
         next_fire_us, created_us, updated_us) \
         SELECT 'idle-' || g, 'ding-dong', 'ping', '{}', $1, $2, FALSE, $3 + g, $4, $4 \
         FROM generate_series(1, $5::BIGINT) AS g",
    )
    .bind(trigger)
    .bind(policy)
    .bind(next)
    .bind(now)
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .execute(&pool)
    .await
    .map_err(err)?;
    pool.close().await;
    // Started once to compile its plugins into the artifact cache, then again: the figure is
    // the steady state of a host restarted on its data dir, as `bench scheduler` measures it.
    let dir = tempfile::tempdir().map_err(err)?;
    let args = ["--database-url", url.as_str()];
    let mut host = BenchHost::start(dir.path(), &args)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.stop();
    let mut host = BenchHost::start(dir.path(), &args)?;
    // Let it settle: a few scheduler passes and heartbeats.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = rss_mib(host.pid())?;
    host.stop();
    Ok(rss)
}

/// Runs the cluster benchmark.
pub async fn cluster(quick: bool) -> Result<ClusterFigures, BenchError> {
    let sizes = Sizes::new(quick);
    // initdb and the server's start take a second or two: off the async workers.
    let server = tokio::task::spawn_blocking(|| ScratchPostgres::start(true))
        .await
        .map_err(err)?
        .map_err(err)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(err)?;

    let mut dispatch = Vec::new();
    for n_hosts in [1, 3] {
        let url = server.fresh_database().await.map_err(err)?;
        let mut hosts = Hosts::start(n_hosts, Some(&url), "")?;
        dispatch.push(burst(&http, &hosts.urls(), sizes.burst).await?);
        hosts.stop();
    }
    let mut sqlite = Hosts::start(1, None, "")?;
    let sqlite_dispatch_per_s = burst(&http, &sqlite.urls(), sizes.burst).await?;
    sqlite.stop();

    let failover_s = failover(&http, &server).await?;
    let (fire_lateness_ms_p50_cluster, fire_lateness_ms_p99_cluster) =
        lateness(&http, &server, sizes.lateness, sizes.lateness_span_s).await?;
    let rss_mib_1m_schedules_pg = rss_with(&server, sizes.rss_schedules).await?;
    Ok(ClusterFigures {
        cluster_dispatch_per_s_1: dispatch[0],
        cluster_dispatch_per_s_3: dispatch[1],
        sqlite_dispatch_per_s,
        burst_runs: sizes.burst,
        failover_s,
        failover_lease_s: FAILOVER_LEASE_S,
        fire_lateness_ms_p50_cluster,
        fire_lateness_ms_p99_cluster,
        lateness_schedules: sizes.lateness,
        rss_mib_1m_schedules_pg,
        rss_schedules: sizes.rss_schedules,
    })
}

/// The figures as a table, with the targets.
pub fn table(f: &ClusterFigures) -> String {
    let rows = [
        (
            "cluster_dispatch_per_s_1".to_owned(),
            format!("{:.0}", f.cluster_dispatch_per_s_1),
            String::new(),
        ),
        (
            "cluster_dispatch_per_s_3".to_owned(),
            format!("{:.0}", f.cluster_dispatch_per_s_3),
            ">= 10000".to_owned(),
        ),
        (
            "sqlite_dispatch_per_s".to_owned(),
            format!("{:.0}", f.sqlite_dispatch_per_s),
            format!("({} runs a burst)", f.burst_runs),
        ),
        (
            "failover_s".to_owned(),
            format!("{:.2}", f.failover_s),
            format!(
                "<= {} (lease {} s + 2)",
                f.failover_lease_s + 2,
                f.failover_lease_s
            ),
        ),
        (
            "fire_lateness_ms_p50_cluster".to_owned(),
            format!("{:.1}", f.fire_lateness_ms_p50_cluster),
            format!("({} schedules)", f.lateness_schedules),
        ),
        (
            "fire_lateness_ms_p99_cluster".to_owned(),
            format!("{:.1}", f.fire_lateness_ms_p99_cluster),
            "<= 100".to_owned(),
        ),
        (
            "rss_mib_1m_schedules_pg".to_owned(),
            format!("{:.1}", f.rss_mib_1m_schedules_pg),
            format!("<= 60 ({} schedules)", f.rss_schedules),
        ),
    ];
    let mut out = format!("{:<34} {:>12}  {}\n", "cluster", "value", "target");
    for (k, v, t) in rows {
        out.push_str(&format!("{k:<34} {v:>12}  {t}\n"));
    }
    out
}
