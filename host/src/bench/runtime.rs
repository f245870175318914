//! `schedulezero bench runtime`: the host's call path against bare wasmtime with the same
//! component, engine and artifact, measured in the same run (samples interleaved, so both see the
//! same machine):
//! - cold start: from the artifact on disk to the first result (host: plugin unloaded, then a
//!   call; bare: deserialize, `instantiate_pre`, store, instantiate, call);
//! - instantiate from a loaded plugin (host: a fresh instance per call; bare: store + instantiate);
//! - hot call on a kept instance (host: `Runtime::invoke`; bare: the typed export);
//! - memory per live instance (RSS growth with many instances alive);
//! - calls per second on one hot plugin with 1 and 2 worker threads;
//! - a real host (`serve`) with 100 plugins discovered and cold: its RSS idle, right after a burst
//!   of calls on all of them, and after they cooled down (idle timeout 2 s).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{BenchError, BenchHost, err, get_json, paused_schedule, rss_mib, spread, us};
use crate::config::{BUILTIN_PLUGINS_DIR, Config, PluginConfig};
use crate::runtime::bindings::{self, LogLevel, WitJobContext};
use crate::runtime::fleet;
use crate::runtime::{JobContext, Runtime};

/// The results, with the JSON keys the issue tracker and the docs use.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeFigures {
    /// Samples per latency figure.
    pub samples: usize,
    /// The instance allocator in use.
    pub allocator: String,
    /// Compiling ding-dong on first sight, in ms.
    pub compile_ms: f64,
    /// Host: artifact on disk to first result, median, in µs.
    pub cold_start_us_p50: f64,
    /// Host: the same, 99th percentile.
    pub cold_start_us_p99: f64,
    /// Bare wasmtime: the same, median.
    pub bare_cold_start_us_p50: f64,
    /// Bare wasmtime: the same, 99th percentile.
    pub bare_cold_start_us_p99: f64,
    /// Host median over bare median.
    pub cold_start_ratio: f64,
    /// Host: a new instance of a loaded plugin, median, in µs.
    pub instantiate_us_p50: f64,
    /// Host: the same, 99th percentile.
    pub instantiate_us_p99: f64,
    /// Bare wasmtime: store and instantiate, median.
    pub bare_instantiate_us_p50: f64,
    /// Bare wasmtime: the same, 99th percentile.
    pub bare_instantiate_us_p99: f64,
    /// Host median over bare median.
    pub instantiate_ratio: f64,
    /// Host: a call on a kept instance, median, in µs.
    pub hot_call_us_p50: f64,
    /// Host: the same, 99th percentile.
    pub hot_call_us_p99: f64,
    /// Bare wasmtime: the typed export on one instance, median.
    pub bare_hot_call_us_p50: f64,
    /// Bare wasmtime: the same, 99th percentile.
    pub bare_hot_call_us_p99: f64,
    /// Host median minus bare median, in µs.
    pub hot_call_overhead_us: f64,
    /// RSS per live instance (host bookkeeping and guest memory), in KiB.
    pub instance_kib: f64,
    /// Hot calls per second on one plugin, one worker thread.
    pub calls_per_s_1_thread: f64,
    /// The same with two worker threads.
    pub calls_per_s_2_threads: f64,
    /// RSS of a host with 100 plugins discovered, all cold, idle, in MiB.
    pub idle_rss_mib_100_plugins: f64,
    /// RSS of the same host after as many runs as the burst, at its concurrency, on 16 of the
    /// plugins, which then cooled down (all 100 cold again), in MiB: the baseline for the
    /// cool-down, with the API, scheduler, store and allocator warmed up.
    pub idle_rss_mib_warmed_up: f64,
    /// RSS of the same host right after calls on all 100 plugins, in MiB.
    pub rss_after_burst_mib: f64,
    /// RSS of the same host once all 100 plugins have cooled down, in MiB.
    pub rss_after_cooldown_mib: f64,
    /// ding-dong and its ports to Python and JavaScript, side by side (a port whose component
    /// is not built is left out and named in `languages_not_built`).
    pub languages: Vec<LanguageFigures>,
    /// The ports whose component was not found, with how to build it.
    pub languages_not_built: Vec<String>,
}

/// One handler language's figures, from ding-dong or its port (`ding-dong-py`, `ding-dong-js`).
#[derive(Debug, Clone, Serialize)]
pub struct LanguageFigures {
    /// `rust`, `python` or `javascript`.
    pub language: String,
    /// The plugin measured.
    pub plugin: String,
    /// Samples per latency figure.
    pub samples: usize,
    /// The component file's size, in MiB.
    pub component_mib: f64,
    /// Compiling it on first sight, in ms.
    pub compile_ms: f64,
    /// Artifact on disk to first result (load, instantiate, call `ping`), median, in µs.
    pub cold_start_us_p50: f64,
    /// The same, 99th percentile.
    pub cold_start_us_p99: f64,
    /// The instantiation within a cold start, median, in µs.
    pub instantiate_us_p50: f64,
    /// A call of `ping` on a kept instance, median, in µs.
    pub hot_call_us_p50: f64,
    /// The same, 99th percentile.
    pub hot_call_us_p99: f64,
    /// Linear memory of one hot instance, in MiB.
    pub instance_memory_mib: f64,
    /// RSS growth per live instance (pages the instance touched: its pre-initialised heap is
    /// shared copy-on-write), in MiB.
    pub instance_rss_mib: f64,
}

/// The Python ScheduleZero's handler process, measured once on the reference machine with its
/// own test handler: the seconds from start to registered, and its RSS (always on).
const PYTHON_SCHEDULEZERO_START_S: f64 = 0.55;
const PYTHON_SCHEDULEZERO_RSS_MIB: f64 = 18.5;

struct Sizes {
    samples: usize,
    /// Cold starts per handler language (a Python cold start costs milliseconds).
    language_samples: usize,
    live_instances: u32,
    throughput_for: Duration,
    calls_per_plugin: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                samples: 300,
                language_samples: 40,
                live_instances: 100,
                throughput_for: Duration::from_millis(700),
                calls_per_plugin: 3,
            }
        } else {
            Self {
                samples: 3000,
                language_samples: 300,
                live_instances: 200,
                throughput_for: Duration::from_secs(3),
                calls_per_plugin: 10,
            }
        }
    }
}

/// What a bare store carries: an empty WASI context, and the contract's imports doing nothing.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::schedulezero::handler::types::Host for Bare {}

impl bindings::schedulezero::handler::log::Host for Bare {
    fn log(&mut self, _level: LogLevel, _message: String) {}
}

impl bindings::schedulezero::handler::config::Host for Bare {
    fn get(&mut self, _key: String) -> Option<String> {
        None
    }

    fn keys(&mut self) -> Vec<String> {
        Vec::new()
    }
}

impl bindings::schedulezero::handler::fleet::Host for Bare {
    async fn handlers(&mut self) -> Result<Vec<fleet::HandlerStatus>, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn ping(&mut self, _handler: String) -> Result<fleet::PingResult, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn ping_many(
        &mut self,
        _handlers: Vec<String>,
    ) -> Result<Vec<Result<fleet::PingResult, fleet::FleetError>>, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn remote_metrics(
        &mut self,
        _handler: String,
    ) -> Result<Option<fleet::ProcessMetrics>, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn host(&mut self) -> Result<fleet::HostStatus, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn executions(
        &mut self,
        _window_seconds: u32,
    ) -> Result<Vec<fleet::HandlerExecutions>, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn nodes(&mut self) -> Result<Vec<fleet::NodeStatus>, fleet::FleetError> {
        Err(bare_fleet())
    }

    async fn last_result(&mut self, _method: String) -> Result<Option<String>, fleet::FleetError> {
        Err(bare_fleet())
    }
}

impl bindings::schedulezero::handler::outbound::Host for Bare {
    async fn send(
        &mut self,
        _request: bindings::schedulezero::handler::outbound::Request,
    ) -> Result<
        bindings::schedulezero::handler::outbound::Response,
        bindings::schedulezero::handler::outbound::OutboundError,
    > {
        Err(
            bindings::schedulezero::handler::outbound::OutboundError::Denied(
                "a bare store sends nothing".into(),
            ),
        )
    }
}

fn bare_fleet() -> fleet::FleetError {
    fleet::FleetError::Unavailable("a bare store has no fleet view".into())
}

fn bare_linker(engine: &Engine) -> Result<Linker<Bare>, BenchError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
    bindings::Plugin::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s).map_err(err)?;
    Ok(linker)
}

fn bare_store(engine: &Engine) -> Store<Bare> {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        },
    );
    // The engine interrupts on epochs: give the store a deadline it never reaches.
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

async fn bare_ping(
    pre: &bindings::PluginPre<Bare>,
    ctx: &WitJobContext,
) -> Result<(Store<Bare>, bindings::Plugin), BenchError> {
    let mut store = bare_store(pre.engine());
    let plugin = pre.instantiate_async(&mut store).await.map_err(err)?;
    call_ping(&mut store, &plugin, ctx).await?;
    Ok((store, plugin))
}

async fn call_ping(
    store: &mut Store<Bare>,
    plugin: &bindings::Plugin,
    ctx: &WitJobContext,
) -> Result<(), BenchError> {
    plugin
        .schedulezero_handler_handler()
        .call_invoke(store, ctx, "ping", "null")
        .await
        .map_err(err)?
        .map(drop)
        .map_err(|e| BenchError(format!("ping failed: {e:?}")))
}

pub(super) fn config(data: &Path) -> Config {
    Config {
        plugins_dir: BUILTIN_PLUGINS_DIR.into(),
        data_dir: data.to_owned(),
        ..Config::default()
    }
}

fn runtime_with(data: &Path, plugin: &str, settings: PluginConfig) -> Result<Runtime, BenchError> {
    let mut c = config(data);
    c.plugins.insert(plugin.to_owned(), settings);
    Runtime::new(c).map_err(err)
}

/// Runs the benchmark and returns its figures.
pub async fn runtime(quick: bool) -> Result<RuntimeFigures, BenchError> {
    let sizes = Sizes::new(quick);
    let n = sizes.samples;
    let data = tempfile::tempdir().map_err(err)?;
    let ctx = JobContext::adhoc();
    let wit_ctx = ctx.to_wit();

    let rt = Arc::new(Runtime::new(config(data.path())).map_err(err)?);
    let report = rt.load("ding-dong").await.map_err(err)?;
    let compile_ms = report.compile_time.map_or(0.0, |t| t.as_secs_f64() * 1e3);
    let plugin = report.plugin;
    let engine = rt.engine().clone();
    let artifact = rt.cache().artifact_path(&plugin.file().sha256);
    let linker = bare_linker(&engine)?;

    // Cold starts, host and bare in turn.
    let (mut host_cold, mut bare_cold) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        plugin.unload();
        let t = Instant::now();
        let out = rt
            .invoke("ding-dong", "ping", "", &ctx)
            .await
            .map_err(err)?;
        host_cold.push(us(t.elapsed()));
        if !out.stats.cold_start {
            return Err(err("a host sample was not a cold start"));
        }
        let t = Instant::now();
        // SAFETY: the artifact was written by this runtime's cache a moment ago.
        let component = unsafe { Component::deserialize_file(&engine, &artifact) }.map_err(err)?;
        let pre = bindings::PluginPre::new(linker.instantiate_pre(&component).map_err(err)?)
            .map_err(err)?;
        let instance = bare_ping(&pre, &wit_ctx).await?;
        bare_cold.push(us(t.elapsed()));
        drop(instance);
    }

    // Instantiation from a loaded plugin: the host with a fresh instance per call.
    let fresh = runtime_with(
        data.path(),
        "ding-dong",
        PluginConfig {
            reuse_instances: Some(false),
            ..Default::default()
        },
    )?;
    fresh.load("ding-dong").await.map_err(err)?;
    // SAFETY: as above.
    let component = unsafe { Component::deserialize_file(&engine, &artifact) }.map_err(err)?;
    let pre =
        bindings::PluginPre::new(linker.instantiate_pre(&component).map_err(err)?).map_err(err)?;
    let (mut host_inst, mut bare_inst) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let out = fresh
            .invoke("ding-dong", "ping", "", &ctx)
            .await
            .map_err(err)?;
        host_inst.push(out.stats.instantiate_ns as f64 / 1e3);
        let t = Instant::now();
        let mut store = bare_store(&engine);
        let instance = pre.instantiate_async(&mut store).await.map_err(err)?;
        bare_inst.push(us(t.elapsed()));
        call_ping(&mut store, &instance, &wit_ctx).await?;
    }
    drop(fresh);

    // Hot calls on kept instances.
    let (mut store, instance) = bare_ping(&pre, &wit_ctx).await?;
    rt.invoke("ding-dong", "ping", "", &ctx)
        .await
        .map_err(err)?;
    let hot_n = n * 5;
    let (mut host_hot, mut bare_hot) = (Vec::with_capacity(hot_n), Vec::with_capacity(hot_n));
    for _ in 0..hot_n {
        let t = Instant::now();
        rt.invoke("ding-dong", "ping", "", &ctx)
            .await
            .map_err(err)?;
        host_hot.push(us(t.elapsed()));
        let t = Instant::now();
        call_ping(&mut store, &instance, &wit_ctx).await?;
        bare_hot.push(us(t.elapsed()));
    }
    drop((store, instance));

    let instance_kib = instance_kib(data.path(), sizes.live_instances).await?;
    let calls_per_s_1_thread = throughput(rt.clone(), 1, sizes.throughput_for)?;
    let calls_per_s_2_threads = throughput(rt.clone(), 2, sizes.throughput_for)?;
    let allocator = format!("{:?}", rt.allocator()).to_lowercase();
    drop(rt);

    let memory = hundred_plugins(data.path(), sizes.calls_per_plugin).await?;

    let mut languages = Vec::new();
    let mut languages_not_built = Vec::new();
    let ports = [
        ("rust", "ding-dong", PathBuf::from(BUILTIN_PLUGINS_DIR)),
        (
            "python",
            "ding-dong-py",
            Path::new(BUILTIN_PLUGINS_DIR).join("python"),
        ),
        (
            "javascript",
            "ding-dong-js",
            Path::new(BUILTIN_PLUGINS_DIR).join("js"),
        ),
    ];
    for (language, plugin, dir) in ports {
        if !dir.join(format!("{plugin}.wasm")).is_file() {
            languages_not_built.push(format!(
                "{plugin}: not built in {} (the test run builds it: tests/run, or sdk/python/README.md and sdk/js/README.md)",
                dir.display()
            ));
            continue;
        }
        languages.push(
            language_figures(data.path(), language, plugin, &dir, sizes.language_samples).await?,
        );
    }

    let (cold_start_us_p50, cold_start_us_p99) = spread(host_cold);
    let (bare_cold_start_us_p50, bare_cold_start_us_p99) = spread(bare_cold);
    let (instantiate_us_p50, instantiate_us_p99) = spread(host_inst);
    let (bare_instantiate_us_p50, bare_instantiate_us_p99) = spread(bare_inst);
    let (hot_call_us_p50, hot_call_us_p99) = spread(host_hot);
    let (bare_hot_call_us_p50, bare_hot_call_us_p99) = spread(bare_hot);
    Ok(RuntimeFigures {
        samples: n,
        allocator,
        compile_ms,
        cold_start_us_p50,
        cold_start_us_p99,
        bare_cold_start_us_p50,
        bare_cold_start_us_p99,
        cold_start_ratio: cold_start_us_p50 / bare_cold_start_us_p50,
        instantiate_us_p50,
        instantiate_us_p99,
        bare_instantiate_us_p50,
        bare_instantiate_us_p99,
        instantiate_ratio: instantiate_us_p50 / bare_instantiate_us_p50,
        hot_call_us_p50,
        hot_call_us_p99,
        bare_hot_call_us_p50,
        bare_hot_call_us_p99,
        hot_call_overhead_us: hot_call_us_p50 - bare_hot_call_us_p50,
        instance_kib,
        calls_per_s_1_thread,
        calls_per_s_2_threads,
        idle_rss_mib_100_plugins: memory.idle,
        idle_rss_mib_warmed_up: memory.warmed,
        rss_after_burst_mib: memory.burst,
        rss_after_cooldown_mib: memory.cooled,
        languages,
        languages_not_built,
    })
}

/// Measures `plugin` of `dir` (compiled afresh into a cache of its own): cold starts, hot
/// calls, and the memory of its instances.
async fn language_figures(
    data: &Path,
    language: &str,
    plugin: &str,
    dir: &Path,
    samples: usize,
) -> Result<LanguageFigures, BenchError> {
    let mut c = config(data);
    c.plugins_dir = dir.to_owned();
    c.cache_dir = Some(data.join(format!("artifacts-{language}")));
    let rt = Runtime::new(c).map_err(err)?;
    let report = rt.load(plugin).await.map_err(err)?;
    let compile_ms = report.compile_time.map_or(0.0, |t| t.as_secs_f64() * 1e3);
    let loaded = report.plugin;
    let ctx = JobContext::adhoc();
    let (mut cold, mut instantiate) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        loaded.unload();
        let t = Instant::now();
        let out = rt.invoke(plugin, "ping", "", &ctx).await.map_err(err)?;
        cold.push(us(t.elapsed()));
        if !out.stats.cold_start {
            return Err(err(format!("a {plugin} sample was not a cold start")));
        }
        instantiate.push(out.stats.instantiate_ns as f64 / 1e3);
    }
    let mut hot = Vec::with_capacity(samples * 5);
    for _ in 0..samples * 5 {
        let t = Instant::now();
        rt.invoke(plugin, "ping", "", &ctx).await.map_err(err)?;
        hot.push(us(t.elapsed()));
    }
    let m = loaded.metrics();
    let instance_memory_mib = m.memory_bytes as f64 / m.live_instances.max(1) as f64 / 1048576.0;

    // RSS per live instance: instances of its artifact kept alive at once, each after a call.
    let engine = rt.engine().clone();
    let artifact = rt.cache().artifact_path(&loaded.file().sha256);
    // SAFETY: the artifact was written by this runtime's cache a moment ago.
    let component = unsafe { Component::deserialize_file(&engine, &artifact) }.map_err(err)?;
    let linker = bare_linker(&engine)?;
    let pre =
        bindings::PluginPre::new(linker.instantiate_pre(&component).map_err(err)?).map_err(err)?;
    let wit_ctx = ctx.to_wit();
    let live = 16;
    let before = rss_mib(std::process::id())?;
    let mut alive = Vec::with_capacity(live);
    for _ in 0..live {
        alive.push(bare_ping(&pre, &wit_ctx).await?);
    }
    let after = rss_mib(std::process::id())?;
    drop(alive);

    let (cold_start_us_p50, cold_start_us_p99) = spread(cold);
    let (instantiate_us_p50, _) = spread(instantiate);
    let (hot_call_us_p50, hot_call_us_p99) = spread(hot);
    Ok(LanguageFigures {
        language: language.to_owned(),
        plugin: plugin.to_owned(),
        samples,
        component_mib: loaded.file().size as f64 / 1048576.0,
        compile_ms,
        cold_start_us_p50,
        cold_start_us_p99,
        instantiate_us_p50,
        hot_call_us_p50,
        hot_call_us_p99,
        instance_memory_mib,
        instance_rss_mib: (after - before).max(0.0) / live as f64,
    })
}

/// RSS growth per instance with `live` instances of misbehave alive at once (each mid-call,
/// then kept idle).
async fn instance_kib(data: &Path, live: u32) -> Result<f64, BenchError> {
    let rt = runtime_with(
        data,
        "misbehave",
        PluginConfig {
            max_instances: Some(live),
            ..Default::default()
        },
    )?;
    let ctx = JobContext::adhoc();
    rt.invoke("misbehave", "ok", "", &ctx).await.map_err(err)?;
    let pid = std::process::id();
    let before = rss_mib(pid)?;
    let calls = (0..live).map(|_| rt.invoke("misbehave", "sleep", r#"{"ms": 300}"#, &ctx));
    for r in futures::future::join_all(calls).await {
        r.map_err(err)?;
    }
    let after = rss_mib(pid)?;
    let alive = rt
        .plugin("misbehave")
        .map_or(0, |p| p.metrics().live_instances);
    Ok((after - before).max(0.0) * 1024.0 / alive.max(1) as f64)
}

/// Hot calls per second on ding-dong, from a tokio runtime with `threads` workers running four
/// callers per thread for `run_for`.
fn throughput(rt: Arc<Runtime>, threads: usize, run_for: Duration) -> Result<f64, BenchError> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let tokio = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
                    .map_err(err)?;
                tokio.block_on(async move {
                    let done = Arc::new(AtomicU64::new(0));
                    let started = Instant::now();
                    let until = started + run_for;
                    let callers: Vec<_> = (0..threads * 4)
                        .map(|_| {
                            let (rt, done) = (rt.clone(), done.clone());
                            tokio::spawn(async move {
                                let ctx = JobContext::adhoc();
                                while Instant::now() < until {
                                    rt.invoke("ding-dong", "ping", "", &ctx)
                                        .await
                                        .map_err(err)?;
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok::<_, BenchError>(())
                            })
                        })
                        .collect();
                    for c in callers {
                        c.await.map_err(err)??;
                    }
                    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
                })
            })
            .join()
            .map_err(|_| err("the throughput thread panicked"))?
    })
}

/// Copies of ding-dong under 100 other names: the name `describe()` gives is patched in place
/// (same length), so each copy is a plugin of its own, with a file and artifact of its own.
fn write_hundred_plugins(dir: &Path) -> Result<Vec<String>, BenchError> {
    let original =
        std::fs::read(Path::new(BUILTIN_PLUGINS_DIR).join("ding-dong.wasm")).map_err(err)?;
    let from = b"ding-dong";
    let at: Vec<usize> = original
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| w == from)
        .map(|(i, _)| i)
        .collect();
    if at.is_empty() {
        return Err(err("ding-dong.wasm does not name itself"));
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut names = Vec::new();
    for i in 1..=100 {
        let name = format!("bench-{i:03}");
        let mut bytes = original.clone();
        for &a in &at {
            bytes[a..a + from.len()].copy_from_slice(name.as_bytes());
        }
        std::fs::write(dir.join(format!("{name}.wasm")), bytes).map_err(err)?;
        names.push(name);
    }
    Ok(names)
}

/// Where the benchmarks' hosts keep their compiled artifacts: `SCHEDULEZERO_BENCH_CACHE_DIR`,
/// or a folder of the system's temporary directory that survives between runs.
fn artifact_cache() -> std::path::PathBuf {
    std::env::var_os("SCHEDULEZERO_BENCH_CACHE_DIR").map_or_else(
        || std::env::temp_dir().join("schedulezero-bench-artifacts"),
        std::path::PathBuf::from,
    )
}

/// A real host (`serve`) on `data` with 100 plugins (copies of ding-dong named `bench-001` to
/// `bench-100`, all cold) and the built-in plugins named in `builtin` beside them, configured
/// by `config` (TOML, after `[pool] watch = false`). Their artifacts are compiled into a cache
/// that survives between runs of the benchmarks ([`artifact_cache`]: compiling 100 components
/// is not what they measure) by a first start, and the host returned is a second start on the
/// warm cache.
pub(super) async fn hundred_plugin_host(
    data: &Path,
    builtin: &[&str],
    config: &str,
) -> Result<(BenchHost, Vec<String>), BenchError> {
    let plugins = data.join("hundred");
    let names = write_hundred_plugins(&plugins)?;
    for name in builtin {
        let file = format!("{name}.wasm");
        std::fs::copy(
            Path::new(BUILTIN_PLUGINS_DIR).join(&file),
            plugins.join(&file),
        )
        .map_err(|e| BenchError(format!("{file}: {e} (build the plugins first)")))?;
    }
    let host_data = data.join("host");
    let cache = artifact_cache();
    let file = data.join("bench.toml");
    std::fs::write(&file, format!("[pool]\nwatch = false\n{config}")).map_err(err)?;
    let args = [
        "--config",
        file.to_str().unwrap_or_default(),
        "--plugins-dir",
        plugins.to_str().unwrap_or_default(),
        "--cache-dir",
        cache.to_str().unwrap_or_default(),
    ];
    // The first start compiles the plugins (in the background once it serves) into the cache
    // the second loads them from.
    let mut first = BenchHost::start(&host_data, &args)?;
    first.loaded().await?;
    first.stop();
    let host = BenchHost::start(&host_data, &args)?;
    host.loaded().await?;
    Ok((host, names))
}

/// Plugins the warm-up burst runs: as many as the burst runs at once.
const WARM_UP_PLUGINS: usize = 16;

/// A real host with 100 plugins: its RSS idle and all cold, then with its API and store warmed
/// up (and all cold again), right after a burst on all of them, and after they cooled down.
async fn hundred_plugins(data: &Path, calls_per_plugin: usize) -> Result<HostMemory, BenchError> {
    let (host, names) = hundred_plugin_host(data, &[], "idle_timeout = \"2s\"\n").await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(err)?;
    let base = host.url.clone();
    let cold_count = |m: &Value| {
        m["runtime"]["plugins_by_state"]["cold"]
            .as_u64()
            .unwrap_or(0)
    };
    let metrics_url = format!("{base}/api/v1/metrics");
    let metrics = || get_json(&http, &metrics_url);
    let all_cold = || async {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let m = metrics().await?;
            if m["runtime"]["plugins"] == 100 && cold_count(&m) == 100 {
                return Ok::<_, BenchError>(());
            }
            if Instant::now() > until {
                return Err(err(format!(
                    "plugins did not all go cold: {}",
                    m["runtime"]
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let settled_rss = || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut reads = Vec::new();
        for _ in 0..3 {
            reads.push(rss_mib(host.pid())?);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<_, BenchError>(reads.iter().sum::<f64>() / reads.len() as f64)
    };

    all_cold().await?;
    let idle = settled_rss().await?;

    // The API, the scheduler, the store (its page cache grows with the runs recorded) and the
    // allocator's per-thread arenas take memory that has nothing to do with how many plugins
    // ran: warm them up with as many runs, at the same concurrency, on 16 of the plugins (which
    // then cool down) before the baseline is taken. The burst then differs only in running all
    // 100 plugins.
    for name in &names {
        paused_schedule(&http, &base, name, (name, "ping"), &json!({})).await?;
    }
    let rounds = (names.len() * calls_per_plugin).div_ceil(WARM_UP_PLUGINS);
    let warm_up: Vec<&String> = (0..rounds)
        .flat_map(|_| names.iter().take(WARM_UP_PLUGINS))
        .collect();
    run_now_all(&http, &base, &warm_up).await?;
    all_cold().await?;
    let warmed = settled_rss().await?;
    // Round after round over all plugins: one run of a schedule at a time (its overlap limit).
    let burst: Vec<&String> = (0..calls_per_plugin).flat_map(|_| names.iter()).collect();
    run_now_all(&http, &base, &burst).await?;
    let m = metrics().await?;
    if m["runtime"]["plugins_by_state"]["hot"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        return Err(err("no plugin went hot during the burst"));
    }
    let burst = rss_mib(host.pid())?;
    all_cold().await?;
    let cooled = settled_rss().await?;
    Ok(HostMemory {
        idle,
        warmed,
        burst,
        cooled,
    })
}

/// Runs the schedules named, 16 at a time, each waiting for its outcome.
async fn run_now_all(
    http: &reqwest::Client,
    base: &str,
    schedules: &[&String],
) -> Result<(), BenchError> {
    for chunk in schedules.chunks(16) {
        let calls = chunk.iter().map(|name| {
            http.post(format!("{base}/api/v1/schedules/{name}/run?wait=true"))
                .send()
        });
        for r in futures::future::join_all(calls).await {
            let r = r.map_err(err)?;
            if !r.status().is_success() {
                return Err(err(format!("a run failed: {}", r.status())));
            }
        }
    }
    Ok(())
}

/// A host's RSS with 100 plugins, in MiB.
struct HostMemory {
    idle: f64,
    warmed: f64,
    burst: f64,
    cooled: f64,
}

/// The figures as a table.
pub fn table(f: &RuntimeFigures) -> String {
    let mut out = format!(
        "{:<34} {:>12} {:>12} {:>8}  target\n",
        format!("runtime ({} samples, {})", f.samples, f.allocator),
        "host",
        "bare",
        "ratio"
    );
    let row = |out: &mut String, what: &str, host: f64, bare: f64, ratio: String, target: &str| {
        out.push_str(&format!(
            "{what:<34} {:>12} {:>12} {ratio:>8}  {target}\n",
            format!("{host:.1} µs"),
            format!("{bare:.1} µs"),
        ));
    };
    row(
        &mut out,
        "cold start p50 (disk to result)",
        f.cold_start_us_p50,
        f.bare_cold_start_us_p50,
        format!("{:.2}", f.cold_start_ratio),
        "ratio <= 1.5",
    );
    row(
        &mut out,
        "cold start p99",
        f.cold_start_us_p99,
        f.bare_cold_start_us_p99,
        String::new(),
        "",
    );
    row(
        &mut out,
        "instantiate p50 (loaded plugin)",
        f.instantiate_us_p50,
        f.bare_instantiate_us_p50,
        format!("{:.2}", f.instantiate_ratio),
        "ratio <= 1.5",
    );
    row(
        &mut out,
        "instantiate p99",
        f.instantiate_us_p99,
        f.bare_instantiate_us_p99,
        String::new(),
        "",
    );
    row(
        &mut out,
        "hot call p50",
        f.hot_call_us_p50,
        f.bare_hot_call_us_p50,
        format!("+{:.1}µs", f.hot_call_overhead_us),
        "overhead < 5 µs",
    );
    row(
        &mut out,
        "hot call p99",
        f.hot_call_us_p99,
        f.bare_hot_call_us_p99,
        String::new(),
        "",
    );
    let cooled_target = format!(
        "<= {:.1} MiB (warmed up + 10%)",
        f.idle_rss_mib_warmed_up * 1.1
    );
    let mib = |v: f64| format!("{v:.1} MiB");
    let singles: [(&str, String, &str); 8] = [
        ("compile ding-dong", format!("{:.0} ms", f.compile_ms), ""),
        (
            "memory per live instance",
            format!("{:.0} KiB", f.instance_kib),
            "",
        ),
        (
            "calls/s, one plugin, 1 thread",
            format!("{:.0}", f.calls_per_s_1_thread),
            "",
        ),
        (
            "calls/s, one plugin, 2 threads",
            format!("{:.0}", f.calls_per_s_2_threads),
            "",
        ),
        (
            "host RSS, 100 plugins, all cold",
            mib(f.idle_rss_mib_100_plugins),
            "< 40 MiB",
        ),
        (
            "host RSS, API and store warmed up",
            mib(f.idle_rss_mib_warmed_up),
            "",
        ),
        (
            "host RSS right after a burst",
            mib(f.rss_after_burst_mib),
            "",
        ),
        (
            "host RSS after cool-down",
            mib(f.rss_after_cooldown_mib),
            &cooled_target,
        ),
    ];
    for (what, value, target) in &singles {
        out.push_str(&format!(
            "{what:<34} {value:>12} {:>12} {:>8}  {target}\n",
            "", ""
        ));
    }
    out.push_str(&language_table(f));
    out
}

/// The languages side by side, beside the Python ScheduleZero's handler process.
fn language_table(f: &RuntimeFigures) -> String {
    let mut out = format!(
        "\n{:<13} {:>9} {:>9} {:>21} {:>12} {:>19} {:>10} {:>9}\n",
        "handler",
        "component",
        "compile",
        "cold start p50 / p99",
        "instantiate",
        "hot call p50 / p99",
        "memory",
        "RSS"
    );
    for l in &f.languages {
        out.push_str(&format!(
            "{:<13} {:>9} {:>9} {:>21} {:>12} {:>19} {:>10} {:>9}\n",
            l.plugin,
            format!("{:.1} MiB", l.component_mib),
            format!("{:.0} ms", l.compile_ms),
            format!(
                "{} / {}",
                time(l.cold_start_us_p50),
                time(l.cold_start_us_p99)
            ),
            time(l.instantiate_us_p50),
            format!("{} / {}", time(l.hot_call_us_p50), time(l.hot_call_us_p99)),
            format!("{:.1} MiB", l.instance_memory_mib),
            format!("{:.1} MiB", l.instance_rss_mib),
        ));
    }
    out.push_str(&format!(
        "{:<13} {:>9} {:>9} {:>21} {:>12} {:>19} {:>10} {:>9}\n",
        "Python SZ",
        "",
        "",
        format!("{:.0} ms to register", PYTHON_SCHEDULEZERO_START_S * 1e3),
        "",
        "",
        "always on",
        format!("{PYTHON_SCHEDULEZERO_RSS_MIB:.1} MB"),
    ));
    out.push_str(
        "targets: cold start p50 <= 10 ms (Python), <= 5 ms (JavaScript); hot call p50 <= 1 ms\n\
         memory: linear memory of one hot instance; RSS: what each live instance adds (its\n\
         pre-initialised heap is shared copy-on-write). Python SZ: the Python ScheduleZero's handler\n\
         process, measured once on the reference machine.\n",
    );
    for missing in &f.languages_not_built {
        out.push_str(&format!("not measured: {missing}\n"));
    }
    out
}

/// A duration in µs, shown in µs or ms.
fn time(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
