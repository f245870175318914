//! Runtime benchmarks: `cargo bench -p schedulezero --bench runtime` prints a table.
//!
//! Measured through the host's own API (`Runtime::invoke`), so every number includes what the
//! host adds to bare wasmtime: params and result checks, limits, output capture, bookkeeping.
//! - compile: first sight of a component (Cranelift), and the same plugin loaded from its
//!   cached artifact by a fresh runtime;
//! - cold start: plugin unloaded (only the file and artifact on disk), then one call: deserialize
//!   the artifact, link, instantiate, call;
//! - fresh instance: plugin loaded, a new instance for the call (instance reuse off);
//! - hot call: a call on a reused instance;
//! - memory per live instance: RSS growth with many idle instances alive.

use std::time::{Duration, Instant};

use schedulezero::Runtime;
use schedulezero::config::{Config, PluginConfig};
use schedulezero::runtime::JobContext;

const SAMPLES: usize = 2000;
const LIVE_INSTANCES: u32 = 200;

struct Row {
    what: &'static str,
    samples: usize,
    median: Duration,
    p99: Duration,
    note: String,
}

fn summarize(what: &'static str, mut d: Vec<Duration>, note: String) -> Row {
    d.sort();
    let samples = d.len();
    let at = |q: f64| d[((samples as f64 - 1.0) * q).round() as usize];
    Row {
        what,
        samples,
        median: at(0.5),
        p99: at(0.99),
        note,
    }
}

fn config(data: &std::path::Path) -> Config {
    Config {
        plugins_dir: schedulezero::config::BUILTIN_PLUGINS_DIR.into(),
        data_dir: data.to_owned(),
        ..Config::default()
    }
}

/// A runtime whose one plugin has settings of its own.
fn runtime_with(data: &std::path::Path, plugin: &str, settings: PluginConfig) -> Runtime {
    let mut config = config(data);
    config.plugins.insert(plugin.to_owned(), settings);
    Runtime::new(config).expect("runtime")
}

fn rss_bytes() -> u64 {
    // /proc/self/statm: size resident shared ... in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn run() -> Vec<Row> {
    let data = tempfile::tempdir().expect("temp dir");
    let ctx = JobContext::adhoc();
    let mut rows = Vec::new();

    // Compile on first sight, then load from the artifact cache in a fresh runtime.
    let runtime = Runtime::new(config(data.path())).expect("runtime");
    let first = runtime.load("ding-dong").await.expect("load");
    let compile = first.compile_time.expect("first sight compiles");
    drop(runtime);
    let mut loads = Vec::new();
    for _ in 0..20 {
        let runtime = Runtime::new(config(data.path())).expect("runtime");
        let r = runtime.load("ding-dong").await.expect("load");
        assert!(r.cache_hit);
        loads.push(r.load_time);
    }
    rows.push(summarize(
        "compile ding-dong (Cranelift)",
        vec![compile],
        format!("{} KiB component", first.plugin.file().size / 1024),
    ));
    rows.push(summarize(
        "load from cached artifact + describe",
        loads,
        "fresh runtime each time".into(),
    ));

    let runtime = Runtime::new(config(data.path())).expect("runtime");
    runtime.load("ding-dong").await.expect("load");
    let plugin = runtime.plugin("ding-dong").expect("loaded");
    eprintln!("allocator: {:?}", runtime.allocator());

    // Cold start: nothing in memory but the runtime; the artifact on disk.
    let mut cold = Vec::with_capacity(SAMPLES);
    let (mut load, mut inst, mut call) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        plugin.unload();
        let t = Instant::now();
        let out = runtime
            .invoke("ding-dong", "ping", "", &ctx)
            .await
            .expect("ping");
        cold.push(t.elapsed());
        assert!(out.stats.cold_start);
        load.push(Duration::from_nanos(out.stats.load_ns));
        inst.push(Duration::from_nanos(out.stats.instantiate_ns));
        call.push(Duration::from_nanos(out.stats.measure.call_ns));
    }
    let median = |v: Vec<Duration>| {
        format!(
            "{:.1}",
            summarize("", v, String::new()).median.as_secs_f64() * 1e6
        )
    };
    // The same artifact through bare wasmtime, for comparison with the host's load step.
    let artifact = runtime.cache().artifact_path(&plugin.file().sha256);
    let mut bare = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        // SAFETY: the artifact was written by this runtime's cache a moment ago.
        let component = unsafe {
            wasmtime::component::Component::deserialize_file(runtime.engine(), &artifact)
        };
        bare.push(t.elapsed());
        drop(component.expect("deserialize"));
    }
    let artifact_kib = std::fs::metadata(&artifact)
        .map(|m| m.len() / 1024)
        .unwrap_or(0);
    rows.push(summarize(
        "bare wasmtime deserialize_file",
        bare,
        format!("the same {artifact_kib} KiB artifact"),
    ));
    let parts = format!(
        "load {} + instantiate {} + call {} µs",
        median(load),
        median(inst),
        median(call)
    );
    rows.push(summarize("cold start: disk to first result", cold, parts));

    // Hot calls on one reused instance.
    let mut hot = Vec::with_capacity(SAMPLES * 5);
    let mut in_guest = Vec::with_capacity(SAMPLES * 5);
    for _ in 0..SAMPLES * 5 {
        let t = Instant::now();
        let out = runtime
            .invoke("ding-dong", "ping", "", &ctx)
            .await
            .expect("ping");
        hot.push(t.elapsed());
        assert!(!out.stats.fresh_instance);
        in_guest.push(Duration::from_nanos(out.stats.measure.call_ns));
    }
    let hot_total: Duration = hot.iter().sum();
    let per_sec = hot.len() as f64 / hot_total.as_secs_f64();
    let guest = summarize("", in_guest, String::new()).median;
    rows.push(summarize(
        "hot call (reused instance)",
        hot,
        format!(
            "{per_sec:.0} calls/s on one task; {:.1} µs of it in the wasm call",
            guest.as_secs_f64() * 1e6
        ),
    ));

    // A fresh instance for every call, plugin loaded.
    let fresh_rt = runtime_with(
        data.path(),
        "ding-dong",
        PluginConfig {
            reuse_instances: Some(false),
            ..Default::default()
        },
    );
    fresh_rt.load("ding-dong").await.expect("load");
    let mut fresh = Vec::with_capacity(SAMPLES);
    let mut instantiate = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let out = fresh_rt
            .invoke("ding-dong", "ping", "", &ctx)
            .await
            .expect("ping");
        fresh.push(t.elapsed());
        assert!(out.stats.fresh_instance);
        instantiate.push(Duration::from_nanos(out.stats.instantiate_ns));
    }
    rows.push(summarize(
        "instantiate from loaded plugin",
        instantiate,
        "store + WASI ctx + instantiate".into(),
    ));
    rows.push(summarize(
        "call on a fresh instance (total)",
        fresh,
        "instantiate + call + drop".into(),
    ));

    // Memory per live instance: many instances alive at once (each mid-call, then idle and hot).
    let mem_rt = runtime_with(
        data.path(),
        "misbehave",
        PluginConfig {
            max_instances: Some(LIVE_INSTANCES),
            ..Default::default()
        },
    );
    mem_rt.load("misbehave").await.expect("load");
    mem_rt
        .invoke("misbehave", "ok", "", &ctx)
        .await
        .expect("ok");
    let before = rss_bytes();
    let calls =
        (0..LIVE_INSTANCES).map(|_| mem_rt.invoke("misbehave", "sleep", r#"{"ms": 300}"#, &ctx));
    for r in futures::future::join_all(calls).await {
        r.expect("sleep");
    }
    let after = rss_bytes();
    let idle = mem_rt
        .plugin("misbehave")
        .expect("loaded")
        .metrics()
        .idle_instances as u64;
    let per = after.saturating_sub(before) / idle.max(1);
    rows.push(Row {
        what: "memory per live instance (RSS)",
        samples: idle as usize,
        median: Duration::ZERO,
        p99: Duration::ZERO,
        note: format!("{:.1} KiB each, guest memory included", per as f64 / 1024.0),
    });
    rows
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let rows = rt.block_on(run());
    println!();
    println!(
        "{:<40} {:>8} {:>12} {:>12}  note",
        "benchmark", "samples", "median", "p99"
    );
    for r in rows {
        let fmt = |d: Duration| {
            if d.is_zero() {
                "-".to_owned()
            } else {
                format!("{:.1} µs", d.as_secs_f64() * 1e6)
            }
        };
        println!(
            "{:<40} {:>8} {:>12} {:>12}  {}",
            r.what,
            r.samples,
            fmt(r.median),
            fmt(r.p99),
            r.note
        );
    }
}
