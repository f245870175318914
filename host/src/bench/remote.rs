//! `schedulezero bench remote`: what a call to a remote handler costs next to the same call to a
//! hot plugin, through the host's own call path ([`Handlers`], as scheduled runs and run-now
//! use it). In one process, with samples interleaved so all see the same machine:
//! - a hot wasm plugin: ding-dong's `ping`;
//! - a native remote handler written with `schedulezero-remote` (its socket on a thread of its
//!   own, as the SDK runs it), registered at the host's real registration endpoint and called
//!   over TCP on loopback;
//! - a Python remote handler in plain pyzmq (libzmq), a process of its own, when `python3` with
//!   pyzmq is there.
//!
//! Each remote method is a no-op answering `{"pong": true}`, as ding-dong's `ping` does. Reported:
//! median and p99 round trip, and calls per second with 4 callers at once (a handler serves one
//! request at a time, so the callers queue on its connection).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use super::runtime::config;
use super::{BenchError, err, noop_remote_handler, spread, us};
use crate::bridge::{Connections, Registry, server};
use crate::handler::Handlers;
use crate::runtime::{JobContext, Runtime};
use crate::store::Store;

/// The results, with the JSON keys the docs use.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteFigures {
    /// Round trips measured per handler.
    pub samples: usize,
    /// A hot wasm plugin's no-op call, median, µs.
    pub wasm_call_us_p50: f64,
    /// The same, 99th percentile.
    pub wasm_call_us_p99: f64,
    /// A native (Rust SDK) remote handler's no-op call, median, µs.
    pub native_call_us_p50: f64,
    /// The same, 99th percentile.
    pub native_call_us_p99: f64,
    /// A pyzmq remote handler's no-op call, median, µs (absent without python3 and pyzmq).
    pub python_call_us_p50: Option<f64>,
    /// The same, 99th percentile.
    pub python_call_us_p99: Option<f64>,
    /// Calls per second to the hot plugin, 4 callers.
    pub wasm_calls_per_s: f64,
    /// Calls per second to the one native remote handler, 4 callers.
    pub native_calls_per_s: f64,
    /// Calls per second to the one pyzmq remote handler, 4 callers.
    pub python_calls_per_s: Option<f64>,
    /// Why the Python handler was not measured, when it was not.
    pub python_skipped: Option<String>,
}

/// A pyzmq handler with one no-op method; it registers and prints its address.
const PYTHON_NOOP: &str = r#"
import sys, zmq
context = zmq.Context()
rep, req = context.socket(zmq.REP), context.socket(zmq.REQ)
rep.bind("tcp://127.0.0.1:*")
me = rep.getsockopt_string(zmq.LAST_ENDPOINT)
req.setsockopt(zmq.RCVTIMEO, 10000)
req.connect(sys.argv[1])
req.send_json({"method": "register",
               "params": {"handler_id": "bench-python", "address": me, "methods": ["noop"]}})
req.recv_json()
print(me, flush=True)
while True:
    method = rep.recv_json().get("method")
    if method == "noop":
        rep.send_string('{"success": true, "pong": true}')
    else:
        rep.send_json({"success": False, "error": f"Unknown method: {method}"})
"#;

/// The pyzmq handler, registered; or why not.
async fn python_handler(endpoint: &str) -> Result<tokio::process::Child, String> {
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_NOOP, endpoint])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let first = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await;
    match first {
        Ok(Ok(Some(line))) if line.starts_with("tcp://") => Ok(child),
        _ => Err("python3 with pyzmq is not available (pip install pyzmq)".into()),
    }
}

async fn call(
    d: &Handlers,
    ctx: &JobContext,
    handler: &str,
    method: &str,
) -> Result<f64, BenchError> {
    let t = Instant::now();
    let (result, _) = d
        .call(handler, method, "{}", ctx, None)
        .await
        .map_err(|e| BenchError(format!("{handler}.{method}: {e}")))?;
    let took = us(t.elapsed());
    let reply: Value = serde_json::from_str(&result).map_err(err)?;
    if reply["pong"] != true {
        return Err(BenchError(format!("{handler}.{method} answered {result}")));
    }
    Ok(took)
}

/// Calls per second with `callers` calling at once for `run_for`.
async fn throughput(
    d: &Arc<Handlers>,
    handler: &str,
    method: &str,
    callers: usize,
    run_for: Duration,
) -> Result<f64, BenchError> {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + run_for;
    let tasks = (0..callers).map(|_| {
        let (d, done) = (d.clone(), done.clone());
        let (handler, method) = (handler.to_owned(), method.to_owned());
        tokio::spawn(async move {
            let ctx = JobContext::adhoc();
            while Instant::now() < until {
                call(&d, &ctx, &handler, &method).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, BenchError>(())
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.map_err(err)??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Runs the benchmark and returns its figures.
pub async fn remote(quick: bool) -> Result<RemoteFigures, BenchError> {
    let (samples, run_for) = if quick {
        (500, Duration::from_secs(1))
    } else {
        (5000, Duration::from_secs(3))
    };
    let data = tempfile::tempdir().map_err(err)?;
    let store = Store::open_sqlite(&data.path().join("bench.db"))
        .await
        .map_err(err)?;
    let runtime = Arc::new(Runtime::new(config(data.path())).map_err(err)?);
    let registry = Arc::new(Registry::load(store, None).await.map_err(err)?);
    let handlers = Arc::new(
        Handlers::new(runtime).with_remote(registry.clone(), Arc::new(Connections::new(None))),
    );
    let mut loops = crate::background::Loops::new();
    let (endpoint, registration) = server::start(
        registry,
        "tcp://127.0.0.1:0",
        {
            let defaults = crate::config::ServerConfig::default();
            (
                defaults.remote_max_message,
                defaults.remote_handshake_timeout,
            )
        },
        loops.stop_signal(),
    )
    .await
    .map_err(err)?;
    loops.start("registration", |_| registration);

    let native = noop_remote_handler("bench-native", &endpoint).await?;
    let (stop_native, mut native_stopped) = watch::channel(false);
    let native_task = tokio::spawn(native.serve_until(async move {
        let _ = native_stopped.wait_for(|s| *s).await;
    }));
    let python = python_handler(&endpoint).await;

    let ctx = JobContext::adhoc();
    let d = &handlers;
    // First calls: the plugin loads, sockets connect.
    call(d, &ctx, "ding-dong", "ping").await?;
    call(d, &ctx, "bench-native", "noop").await?;
    if python.is_ok() {
        call(d, &ctx, "bench-python", "noop").await?;
    }
    let (mut wasm, mut native, mut py) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        wasm.push(call(d, &ctx, "ding-dong", "ping").await?);
        native.push(call(d, &ctx, "bench-native", "noop").await?);
        if python.is_ok() {
            py.push(call(d, &ctx, "bench-python", "noop").await?);
        }
    }
    let wasm_calls_per_s = throughput(d, "ding-dong", "ping", 4, run_for).await?;
    let native_calls_per_s = throughput(d, "bench-native", "noop", 4, run_for).await?;
    let python_calls_per_s = match &python {
        Ok(_) => Some(throughput(d, "bench-python", "noop", 4, run_for).await?),
        Err(_) => None,
    };

    // The handler goes first, so that its `offline` report finds the endpoint.
    let _ = stop_native.send(true);
    native_task.await.map_err(err)?.map_err(err)?;
    loops.stop(std::time::Duration::from_secs(5)).await;
    let (wasm_call_us_p50, wasm_call_us_p99) = spread(wasm);
    let (native_call_us_p50, native_call_us_p99) = spread(native);
    let python_spread = (!py.is_empty()).then(|| spread(py));
    Ok(RemoteFigures {
        samples,
        wasm_call_us_p50,
        wasm_call_us_p99,
        native_call_us_p50,
        native_call_us_p99,
        python_call_us_p50: python_spread.map(|s| s.0),
        python_call_us_p99: python_spread.map(|s| s.1),
        wasm_calls_per_s,
        native_calls_per_s,
        python_calls_per_s,
        python_skipped: python.err(),
    })
}

/// The figures as a table.
pub fn table(f: &RemoteFigures) -> String {
    let mut out = format!(
        "{:<38} {:>10} {:>10} {:>12} {:>10}\n",
        format!("remote ({} samples)", f.samples),
        "p50",
        "p99",
        "calls/s (4)",
        "p50/wasm"
    );
    let mut row = |what: &str, p50: f64, p99: f64, per_s: f64| {
        out.push_str(&format!(
            "{what:<38} {:>10} {:>10} {:>12} {:>10}\n",
            format!("{p50:.1} µs"),
            format!("{p99:.1} µs"),
            format!("{per_s:.0}"),
            format!("{:.0}x", p50 / f.wasm_call_us_p50),
        ));
    };
    row(
        "hot wasm plugin (ding-dong ping)",
        f.wasm_call_us_p50,
        f.wasm_call_us_p99,
        f.wasm_calls_per_s,
    );
    row(
        "native remote handler (Rust SDK)",
        f.native_call_us_p50,
        f.native_call_us_p99,
        f.native_calls_per_s,
    );
    match (
        f.python_call_us_p50,
        f.python_call_us_p99,
        f.python_calls_per_s,
    ) {
        (Some(p50), Some(p99), Some(per_s)) => {
            row("python remote handler (pyzmq)", p50, p99, per_s);
        }
        _ => out.push_str(&format!(
            "{:<38} not measured: {}\n",
            "python remote handler (pyzmq)",
            f.python_skipped.as_deref().unwrap_or("unknown")
        )),
    }
    out
}
