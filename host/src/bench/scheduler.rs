//! `schedulezero bench scheduler`: starts a real host (this executable, `serve`, on a temporary
//! data dir and a free loopback port) and measures it over its REST API, as a client would:
//! - `schedule_create_per_s`: schedules created one after the other, each committed before its 201;
//!   `schedule_create_per_s_concurrent`: the same with 16 clients;
//! - `rss_mib_10k_schedules`: RSS of the host, restarted and idle, with 10,000 schedules stored;
//! - `run_now_ms_p50` / `_p99`: `POST /api/run_now` of `ding-dong.ping`, record committed;
//! - `fire_lateness_ms_p50` / `_p99`: attempt start minus fire time, 1,000 schedules due at once;
//! - `dispatch_per_s`: runs of a trivial method through scheduler, runtime and committed record,
//!   with many schedules due at once.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::{BenchError, BenchHost, err, percentile, rss_mib};

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    sequential_creates: usize,
    concurrent_creates: usize,
    run_now: usize,
    lateness_schedules: usize,
    dispatch_runs: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                sequential_creates: 2_000,
                concurrent_creates: 8_000,
                run_now: 300,
                lateness_schedules: 1_000,
                dispatch_runs: 5_000,
            }
        } else {
            Self {
                sequential_creates: 2_000,
                concurrent_creates: 8_000,
                run_now: 2_000,
                lateness_schedules: 1_000,
                dispatch_runs: 20_000,
            }
        }
    }
}

/// The results, with the JSON keys the issue tracker and the docs use.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchedulerFigures {
    /// Schedules created per second, one client, each committed before its 201.
    pub schedule_create_per_s: f64,
    /// The same with 16 concurrent clients.
    pub schedule_create_per_s_concurrent: f64,
    /// `POST /api/run_now` latency, median, in ms.
    pub run_now_ms_p50: f64,
    /// `POST /api/run_now` latency, 99th percentile, in ms.
    pub run_now_ms_p99: f64,
    /// Runs per second through scheduler, runtime and committed execution record.
    pub dispatch_per_s: f64,
    /// Attempt start minus fire time, 1,000 schedules due in the same instant: median, in ms.
    pub fire_lateness_ms_p50: f64,
    /// The same, 99th percentile.
    pub fire_lateness_ms_p99: f64,
    /// RSS of an idle host with 10,000 schedules stored, in MiB.
    pub rss_mib_10k_schedules: f64,
}

pub(super) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Value, BenchError> {
    let response = http.post(url).json(body).send().await.map_err(err)?;
    let status = response.status();
    let value: Value = response.json().await.map_err(err)?;
    if !status.is_success() {
        return Err(BenchError(format!("{url} answered {status}: {value}")));
    }
    Ok(value)
}

pub(super) async fn get(http: &reqwest::Client, url: &str) -> Result<Value, BenchError> {
    let response = http.get(url).send().await.map_err(err)?;
    response.json().await.map_err(err)
}

pub(super) fn idle_schedule(id: String) -> Value {
    json!({"id": id, "handler": "ding-dong", "method": "ping", "trigger": "0 0 1 1 *"})
}

pub(super) fn date_schedule(id: String, at: DateTime<Utc>) -> Value {
    json!({"id": id, "handler": "ding-dong", "method": "ping",
           "trigger": {"type": "date", "run_date": at.to_rfc3339()}})
}

/// Creates `bodies` with `clients` concurrent clients; returns the wall time.
pub(super) async fn create_all(
    http: &reqwest::Client,
    base: &str,
    bodies: Vec<Value>,
    clients: usize,
) -> Result<Duration, BenchError> {
    let url = format!("{base}/api/v1/schedules");
    let chunks: Vec<Vec<Value>> = bodies
        .chunks(bodies.len().div_ceil(clients).max(1))
        .map(<[Value]>::to_vec)
        .collect();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in chunks {
        let http = http.clone();
        let url = url.clone();
        tasks.spawn(async move {
            for body in chunk {
                post(&http, &url, &body).await?;
            }
            Ok::<(), BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(err)??;
    }
    Ok(started.elapsed())
}

pub(super) async fn success_count(http: &reqwest::Client, base: &str) -> Result<u64, BenchError> {
    let stats = get(http, &format!("{base}/api/v1/executions/stats")).await?;
    Ok(stats["success_count"].as_u64().unwrap_or(0))
}

pub(super) async fn wait_successes(
    http: &reqwest::Client,
    base: &str,
    target: u64,
    limit: Duration,
) -> Result<Instant, BenchError> {
    let deadline = Instant::now() + limit;
    loop {
        if success_count(http, base).await? >= target {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!("runs did not finish within {limit:?}")));
        }
        // Seldom: the stats query scans the log, and polling it often would slow the host being
        // measured (the figures come from the records, not from when this loop notices).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(super) fn time_of(v: &Value) -> Result<DateTime<Utc>, BenchError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError(format!("not a time: {v}")))
}

/// Every successful execution record started at or after `since`.
pub(super) async fn records_since(
    http: &reqwest::Client,
    base: &str,
    since: DateTime<Utc>,
) -> Result<Vec<Value>, BenchError> {
    let mut all = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut page = format!(
            "{base}/api/v1/executions?status=success&limit=1000&since={}",
            since.to_rfc3339().replace('+', "%2B")
        );
        if let Some(c) = cursor {
            page.push_str(&format!("&before={c}"));
        }
        let reply = get(http, &page).await?;
        all.extend(reply["executions"].as_array().cloned().unwrap_or_default());
        match reply["next"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// Sleeps until `at` (wall clock).
pub(super) async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// Runs the scheduler benchmark.
pub async fn scheduler(quick: bool) -> Result<SchedulerFigures, BenchError> {
    let sizes = Sizes::new(quick);
    let dir = tempfile::tempdir().map_err(err)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(err)?;
    let mut host = BenchHost::start(dir.path(), &[])?;
    let base = host.url.clone();

    // Warm up the connection and the plugin.
    for i in 0..20 {
        post(
            &http,
            &format!("{base}/api/v1/schedules"),
            &idle_schedule(format!("warm-{i}")),
        )
        .await?;
    }

    let bodies: Vec<Value> = (0..sizes.sequential_creates)
        .map(|i| idle_schedule(format!("seq-{i:06}")))
        .collect();
    let took = create_all(&http, &base, bodies, 1).await?;
    let schedule_create_per_s = sizes.sequential_creates as f64 / took.as_secs_f64();

    let left = 10_000 - sizes.sequential_creates - 20;
    let bodies: Vec<Value> = (0..left.min(sizes.concurrent_creates))
        .map(|i| idle_schedule(format!("conc-{i:06}")))
        .collect();
    let n = bodies.len();
    let took = create_all(&http, &base, bodies, 16).await?;
    let schedule_create_per_s_concurrent = n as f64 / took.as_secs_f64();

    // An idle host with 10,000 schedules: restart it so that the figure is the steady state.
    host.stop();
    host = BenchHost::start(dir.path(), &[])?;
    let base = host.url.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_mib_10k_schedules = rss_mib(host.pid())?;

    let run_now = json!({"handler_id": "ding-dong", "job_method": "ping", "job_params": {}});
    let url = format!("{base}/api/run_now");
    for _ in 0..50 {
        post(&http, &url, &run_now).await?;
    }
    let mut times = Vec::with_capacity(sizes.run_now);
    for _ in 0..sizes.run_now {
        let t = Instant::now();
        post(&http, &url, &run_now).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let (run_now_ms_p50, run_now_ms_p99) = (percentile(&times, 0.5), percentile(&times, 0.99));

    // Fire lateness: 1,000 schedules due in the same instant.
    let before = success_count(&http, &base).await?;
    let fire = (Utc::now() + TimeDelta::seconds(3)).with_nanosecond_zero();
    let bodies = (0..sizes.lateness_schedules)
        .map(|i| date_schedule(format!("late-{i:05}"), fire))
        .collect();
    create_all(&http, &base, bodies, 16).await?;
    sleep_until(fire).await;
    wait_successes(
        &http,
        &base,
        before + sizes.lateness_schedules as u64,
        Duration::from_secs(60),
    )
    .await?;
    let mut lateness = Vec::with_capacity(sizes.lateness_schedules);
    let mut cursor: Option<i64> = None;
    while lateness.len() < sizes.lateness_schedules {
        let mut page = format!(
            "{base}/api/v1/executions?status=success&limit=1000&since={}",
            fire.to_rfc3339().replace('+', "%2B")
        );
        if let Some(c) = cursor {
            page.push_str(&format!("&before={c}"));
        }
        let reply = get(&http, &page).await?;
        let list = reply["executions"].as_array().cloned().unwrap_or_default();
        for e in &list {
            if e["schedule_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("late-"))
            {
                let started: DateTime<Utc> = e["started_at"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| err("bad started_at"))?;
                lateness.push((started - fire).as_seconds_f64() * 1e3);
            }
        }
        match reply["next"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    lateness.sort_by(f64::total_cmp);
    let (fire_lateness_ms_p50, fire_lateness_ms_p99) =
        (percentile(&lateness, 0.5), percentile(&lateness, 0.99));

    // Dispatch throughput: many runs due at once, from claim to committed record.
    let before = success_count(&http, &base).await?;
    let create_rate = schedule_create_per_s_concurrent.max(500.0);
    let lead = Duration::from_secs_f64(sizes.dispatch_runs as f64 / create_rate * 1.5 + 2.0);
    let fire = (Utc::now() + TimeDelta::from_std(lead).map_err(err)?).with_nanosecond_zero();
    let bodies = (0..sizes.dispatch_runs)
        .map(|i| date_schedule(format!("burst-{i:06}"), fire))
        .collect();
    create_all(&http, &base, bodies, 16).await?;
    if Utc::now() >= fire {
        return Err(err("creating the burst took longer than planned"));
    }
    sleep_until(fire).await;
    wait_successes(
        &http,
        &base,
        before + sizes.dispatch_runs as u64,
        Duration::from_secs(300),
    )
    .await?;
    // From the fire time to the last attempt's end, as the records say (polling the host
    // faster to see the end would slow it down).
    let mut last_end = fire;
    for e in records_since(&http, &base, fire).await? {
        if e["schedule_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("burst-"))
        {
            last_end = last_end.max(time_of(&e["completed_at"])?);
        }
    }
    let dispatch_per_s = sizes.dispatch_runs as f64 / (last_end - fire).as_seconds_f64();

    host.stop();
    Ok(SchedulerFigures {
        schedule_create_per_s,
        schedule_create_per_s_concurrent,
        run_now_ms_p50,
        run_now_ms_p99,
        dispatch_per_s,
        fire_lateness_ms_p50,
        fire_lateness_ms_p99,
        rss_mib_10k_schedules,
    })
}

pub(super) trait NanosecondZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanosecondZero for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

/// The figures as a table, with the targets.
pub fn table(f: &SchedulerFigures) -> String {
    let rows = [
        (
            "schedule_create_per_s",
            format!("{:.0}", f.schedule_create_per_s),
            ">= 3000",
        ),
        (
            "schedule_create_per_s_concurrent",
            format!("{:.0}", f.schedule_create_per_s_concurrent),
            "",
        ),
        (
            "run_now_ms_p50",
            format!("{:.3}", f.run_now_ms_p50),
            "<= 0.5",
        ),
        ("run_now_ms_p99", format!("{:.3}", f.run_now_ms_p99), ""),
        (
            "dispatch_per_s",
            format!("{:.0}", f.dispatch_per_s),
            ">= 20000",
        ),
        (
            "fire_lateness_ms_p50",
            format!("{:.1}", f.fire_lateness_ms_p50),
            "",
        ),
        (
            "fire_lateness_ms_p99",
            format!("{:.1}", f.fire_lateness_ms_p99),
            "<= 50",
        ),
        (
            "rss_mib_10k_schedules",
            format!("{:.1}", f.rss_mib_10k_schedules),
            "<= 60",
        ),
    ];
    let mut out = format!("{:<34} {:>12}  {}\n", "scheduler", "value", "target");
    for (k, v, t) in rows {
        out.push_str(&format!("{k:<34} {v:>12}  {t}\n"));
    }
    out
}
