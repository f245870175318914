//! `schedulezero bench fleet`: what watching the fleet costs. A real host (`serve`) with 100
//! plugins (copies of ding-dong, as `bench runtime` makes them, all cold) and the conductor, and
//! 10 remote handlers written with `schedulezero-remote` (in this process, a socket each)
//! registered at its ZeroMQ endpoint. The conductor's methods run through the API (`POST
//! /api/v1/schedules/{id}/run?wait=true`) and are read from their execution records: the
//! attempt's duration and, in its usage, its fleet requests and the time spent in them.
//! - `health_check` over the 110 other handlers with the plain `fleet` grant (a plugin answered
//!   from its state, a remote handler pinged over ZeroMQ);
//! - the same with `call_plugins` (a plugin's ping is a no-op call): once with all 100 plugins
//!   cold, then hot;
//! - the same after 3 more remote handlers registered and went away without a word;
//! - `collect_metrics` (the listing, and each remote handler's own `get_metrics`);
//! - one request alone (`ping_handler`): a plugin's state, a remote handler's round trip, a hot
//!   plugin's no-op call.
//!
//! Runs of the different methods are interleaved, so all see the same machine.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::runtime::hundred_plugin_host;
use super::{BenchError, err, get_json, noop_remote_handler, paused_schedule, post_json, spread};

/// Remote handlers registered for the run.
const REMOTE_HANDLERS: usize = 10;

/// Remote handlers registered at the end, then gone.
const DEAD_HANDLERS: usize = 3;

/// The results, with the JSON keys the docs use. Times are the execution records' (the
/// attempt in the host, from its start to its result).
#[derive(Debug, Clone, Serialize)]
pub struct FleetFigures {
    /// Plugins beside the conductor.
    pub plugins: usize,
    /// Remote handlers registered.
    pub remote_handlers: usize,
    /// Runs per figure with a median.
    pub runs: usize,
    /// Fleet requests one health check makes (the listing, then a ping per handler).
    pub health_check_requests: u64,
    /// `health_check`, plugins answered from their state, median, in ms.
    pub health_check_ms_p50: f64,
    /// The same, 99th percentile.
    pub health_check_ms_p99: f64,
    /// The time of it spent in fleet requests, median, in ms.
    pub health_check_fleet_ms_p50: f64,
    /// `health_check` with `call_plugins`, all 100 plugins cold (loaded by their pings), in ms.
    pub health_check_called_cold_ms: f64,
    /// The time of it spent in fleet requests, in ms.
    pub health_check_called_cold_fleet_ms: f64,
    /// `health_check` with `call_plugins`, the plugins hot, median, in ms.
    pub health_check_called_ms_p50: f64,
    /// The same, 99th percentile.
    pub health_check_called_ms_p99: f64,
    /// The time of it spent in fleet requests, median, in ms.
    pub health_check_called_fleet_ms_p50: f64,
    /// `collect_metrics` (the listing and 10 `get_metrics`), median, in ms.
    pub collect_metrics_ms_p50: f64,
    /// The time of it spent in fleet requests, median, in ms.
    pub collect_metrics_fleet_ms_p50: f64,
    /// `health_check` with plugin calls after 3 more remote handlers registered and went away
    /// (their pings time out), median, in ms.
    pub health_check_3_down_ms_p50: f64,
    /// The time of it spent in fleet requests, median, in ms.
    pub health_check_3_down_fleet_ms_p50: f64,
    /// One ping of a plugin answered from its state, median, in µs.
    pub ping_plugin_state_us_p50: f64,
    /// One ping of a remote handler (a round trip over ZeroMQ), median, in µs.
    pub ping_remote_us_p50: f64,
    /// One ping of a hot plugin by a no-op call, median, in µs.
    pub ping_plugin_call_us_p50: f64,
}

/// One attempt as its execution record tells it.
struct Attempt {
    ms: f64,
    fleet_ms: f64,
    requests: u64,
    result: Value,
}

/// Runs schedule `id` now and waits for its outcome.
async fn run(http: &reqwest::Client, base: &str, id: &str) -> Result<Attempt, BenchError> {
    let r = http
        .post(format!("{base}/api/v1/schedules/{id}/run?wait=true"))
        .send()
        .await
        .map_err(err)?;
    let status = r.status();
    let v: Value = r.json().await.map_err(err)?;
    let e = &v["executions"][0];
    if !status.is_success() || e["status"] != "success" {
        return Err(BenchError(format!("{id} did not succeed: {status} {v}")));
    }
    let usage = &e["usage"];
    Ok(Attempt {
        ms: e["duration_ms"].as_f64().unwrap_or(f64::NAN),
        fleet_ms: usage["fleet_time_us"].as_f64().unwrap_or(0.0) / 1e3,
        requests: usage["fleet_requests"].as_u64().unwrap_or(0),
        result: e["result"].clone(),
    })
}

/// Checks that a health check saw every handler alive (and, with `called`, pinged every plugin
/// by a call).
fn all_healthy(a: &Attempt, total: usize, called: bool) -> Result<(), BenchError> {
    let r = &a.result;
    if r["total"] != total || r["healthy"] != total {
        return Err(BenchError(format!(
            "the health check saw {} of {total} handlers healthy",
            r["healthy"]
        )));
    }
    let unpinged = r["handlers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, h)| {
            let timed = !h["response_time_ms"].is_null();
            if name.starts_with("bench-remote-") {
                !timed
            } else {
                called != timed
            }
        })
        .count();
    if unpinged > 0 {
        return Err(BenchError(format!(
            "{unpinged} handlers were not pinged as expected: {r}"
        )));
    }
    Ok(())
}

/// The (median, 99th percentile) of a figure over attempts.
fn spread_of(attempts: &[Attempt], f: impl Fn(&Attempt) -> f64) -> (f64, f64) {
    spread(attempts.iter().map(f).collect())
}

/// Grants the conductor the fleet view, with or without plugin calls (replacing the grant).
async fn grant_fleet(
    http: &reqwest::Client,
    base: &str,
    call_plugins: bool,
) -> Result<(), BenchError> {
    let url = format!("{base}/api/v1/plugins/conductor/grants");
    http.delete(format!("{url}?kind=fleet&name=fleet"))
        .send()
        .await
        .map_err(err)?;
    post_json(
        http,
        &url,
        &json!({"kind": "fleet", "call_plugins": call_plugins}),
        "grant the fleet view",
    )
    .await?;
    Ok(())
}

/// Runs the benchmark and returns its figures.
pub async fn fleet(quick: bool) -> Result<FleetFigures, BenchError> {
    let runs = if quick { 5 } else { 30 };
    let data = tempfile::tempdir().map_err(err)?;
    let (host, plugins) = hundred_plugin_host(data.path(), &["conductor"], "").await?;
    let base = host.url.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(err)?;
    let about = get_json(&http, &format!("{base}/api/v1/host")).await?;
    let endpoint = about["zmq_endpoint"]
        .as_str()
        .ok_or_else(|| err("the host does not say where remote handlers register"))?
        .to_owned();

    let (stop, stopped) = watch::channel(false);
    let mut remote = Vec::new();
    for i in 1..=REMOTE_HANDLERS {
        let handler = noop_remote_handler(&format!("bench-remote-{i:02}"), &endpoint).await?;
        let mut stopped = stopped.clone();
        remote.push(tokio::spawn(handler.serve_until(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }

    let remote_one = "bench-remote-01";
    let schedules = [
        ("fleet-health", "health_check", json!({})),
        ("fleet-metrics", "collect_metrics", json!({})),
        (
            "fleet-ping-plugin",
            "ping_handler",
            json!({"handler_id": plugins[0]}),
        ),
        (
            "fleet-ping-remote",
            "ping_handler",
            json!({"handler_id": remote_one}),
        ),
    ];
    for (id, method, params) in &schedules {
        paused_schedule(&http, &base, id, ("conductor", method), params).await?;
    }
    let others = plugins.len() + REMOTE_HANDLERS;

    // The plain grant: plugins answer from their state and stay cold.
    grant_fleet(&http, &base, false).await?;
    // The conductor's own cold start and the remote handlers' first connections are not
    // measured.
    for (id, ..) in &schedules {
        run(&http, &base, id).await?;
    }
    let (mut health, mut metrics, mut ping_plugin, mut ping_remote) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let h = run(&http, &base, "fleet-health").await?;
        all_healthy(&h, others, false)?;
        health.push(h);
        let m = run(&http, &base, "fleet-metrics").await?;
        let reported = m.result["handlers"][remote_one]["metrics"]["memory_mb"].as_f64();
        if !reported.is_some_and(|mb| mb > 0.0) {
            return Err(BenchError(format!(
                "{remote_one} reported no figures: {}",
                m.result
            )));
        }
        metrics.push(m);
        ping_plugin.push(run(&http, &base, "fleet-ping-plugin").await?);
        ping_remote.push(run(&http, &base, "fleet-ping-remote").await?);
    }

    // With plugin calls: the first health check loads every plugin.
    grant_fleet(&http, &base, true).await?;
    let cold = run(&http, &base, "fleet-health").await?;
    all_healthy(&cold, others, true)?;
    let (mut called, mut ping_call) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let h = run(&http, &base, "fleet-health").await?;
        all_healthy(&h, others, true)?;
        called.push(h);
        ping_call.push(run(&http, &base, "fleet-ping-plugin").await?);
    }

    // Three more remote handlers registered, then gone without a word (their sockets closed):
    // each of their pings waits for `fleet_ping_timeout` (2 s).
    for i in 1..=DEAD_HANDLERS {
        drop(noop_remote_handler(&format!("bench-dead-{i:02}"), &endpoint).await?);
    }
    let mut down = Vec::new();
    for _ in 0..if quick { 1 } else { 3 } {
        let h = run(&http, &base, "fleet-health").await?;
        if h.result["total"] != others + DEAD_HANDLERS || h.result["healthy"] != others {
            return Err(BenchError(format!(
                "the health check did not see the {DEAD_HANDLERS} handlers down: {}",
                h.result
            )));
        }
        down.push(h);
    }

    let _ = stop.send(true);
    for task in remote {
        task.await.map_err(err)?.map_err(err)?;
    }
    drop(host);
    let one_us = |a: &Attempt| a.fleet_ms * 1e3;
    Ok(FleetFigures {
        plugins: plugins.len(),
        remote_handlers: REMOTE_HANDLERS,
        runs,
        health_check_requests: health.first().map_or(0, |a| a.requests),
        health_check_ms_p50: spread_of(&health, |a| a.ms).0,
        health_check_ms_p99: spread_of(&health, |a| a.ms).1,
        health_check_fleet_ms_p50: spread_of(&health, |a| a.fleet_ms).0,
        health_check_called_cold_ms: cold.ms,
        health_check_called_cold_fleet_ms: cold.fleet_ms,
        health_check_called_ms_p50: spread_of(&called, |a| a.ms).0,
        health_check_called_ms_p99: spread_of(&called, |a| a.ms).1,
        health_check_called_fleet_ms_p50: spread_of(&called, |a| a.fleet_ms).0,
        health_check_3_down_ms_p50: spread_of(&down, |a| a.ms).0,
        health_check_3_down_fleet_ms_p50: spread_of(&down, |a| a.fleet_ms).0,
        collect_metrics_ms_p50: spread_of(&metrics, |a| a.ms).0,
        collect_metrics_fleet_ms_p50: spread_of(&metrics, |a| a.fleet_ms).0,
        ping_plugin_state_us_p50: spread_of(&ping_plugin, one_us).0,
        ping_remote_us_p50: spread_of(&ping_remote, one_us).0,
        ping_plugin_call_us_p50: spread_of(&ping_call, one_us).0,
    })
}

/// The figures as a table.
pub fn table(f: &FleetFigures) -> String {
    let mut out = format!(
        "fleet: the conductor over {} plugins and {} remote handlers ({} runs each)\n",
        f.plugins, f.remote_handlers, f.runs
    );
    out.push_str(&format!(
        "{:<46} {:>10} {:>10} {:>14}\n",
        "", "p50 ms", "p99 ms", "in fleet ms"
    ));
    let mut row = |what: &str, p50: f64, p99: Option<f64>, fleet: f64| {
        out.push_str(&format!(
            "{what:<46} {p50:>10.2} {:>10} {fleet:>14.2}\n",
            p99.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
        ));
    };
    row(
        &format!("health_check ({} requests)", f.health_check_requests),
        f.health_check_ms_p50,
        Some(f.health_check_ms_p99),
        f.health_check_fleet_ms_p50,
    );
    row(
        "health_check, call_plugins, all plugins cold",
        f.health_check_called_cold_ms,
        None,
        f.health_check_called_cold_fleet_ms,
    );
    row(
        "health_check, call_plugins, plugins hot",
        f.health_check_called_ms_p50,
        Some(f.health_check_called_ms_p99),
        f.health_check_called_fleet_ms_p50,
    );
    row(
        "health_check, call_plugins, 3 more remote down",
        f.health_check_3_down_ms_p50,
        None,
        f.health_check_3_down_fleet_ms_p50,
    );
    row(
        "collect_metrics (10 get_metrics)",
        f.collect_metrics_ms_p50,
        None,
        f.collect_metrics_fleet_ms_p50,
    );
    out.push_str(&format!(
        "one ping, p50: plugin state {:.1} µs, remote round trip {:.1} µs, hot plugin call {:.1} µs\n",
        f.ping_plugin_state_us_p50, f.ping_remote_us_p50, f.ping_plugin_call_us_p50
    ));
    out
}
