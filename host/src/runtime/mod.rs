//! The WebAssembly runtime: finds handler components in the plugins directory, compiles each once
//! (caching the artifact on disk), and runs calls on sandboxed instances under limits.
//!
//! Invariants: a plugin's instances run one call at a time; an instance that trapped, timed out or
//! hit a limit is never used again; the number of live instances never exceeds the pool (a call
//! waits for a slot, evicting idle instances first); only artifacts this host wrote are loaded.
//! A plugin is *cold* (file and artifact only), *loaded* (`InstancePre` in memory) or has *hot*
//! instances kept for reuse; [`Plugin::unload`] takes it back to cold.

mod bindings;
mod cache;
mod engine;
mod error;
mod host;
mod instance;
mod output;
mod plugin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use self::cache::{ArtifactCache, sha256_hex};
pub use self::engine::{AllocatorKind, EPOCH_TICK};
pub use self::error::{InvokeError, LoadError, RuntimeError};
pub use self::instance::CallMeasure;
pub use self::plugin::{
    HandlerInfo, MethodInfo, Plugin, PluginFile, PluginMetrics, PluginSettings,
};

use self::bindings::{WitJobContext, WitTimestamp};
use self::host::HostState;
use self::instance::{Instance, nanos};
use self::output::Capture;
use self::plugin::{Loaded, PluginCounters};
use crate::config::{Config, DEFAULT_PLUGIN_MAX_INSTANCES, is_valid_plugin_name};

/// The longest `describe()` may take when a plugin is loaded.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler is told about the run it executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    /// The job (schedule) id; `adhoc` for a call made by hand.
    pub job_id: String,
    /// The run's unique id.
    pub run_id: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// When the run was due.
    pub scheduled_time: SystemTime,
}

impl JobContext {
    /// A context for a call made by hand: job `adhoc`, a new run id, attempt 1, due now.
    pub fn adhoc() -> Self {
        Self {
            job_id: "adhoc".into(),
            run_id: uuid::Uuid::new_v4().to_string(),
            attempt: 1,
            scheduled_time: SystemTime::now(),
        }
    }

    fn to_wit(&self) -> WitJobContext {
        let scheduled_time = match self.scheduled_time.duration_since(UNIX_EPOCH) {
            Ok(d) => WitTimestamp {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanoseconds: d.subsec_nanos(),
            },
            Err(e) => {
                // Before 1970: whole seconds down, nanoseconds up, as the contract's timestamp reads.
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => WitTimestamp {
                        seconds: -secs,
                        nanoseconds: 0,
                    },
                    n => WitTimestamp {
                        seconds: -secs - 1,
                        nanoseconds: 1_000_000_000 - n,
                    },
                }
            }
        };
        WitJobContext {
            job_id: self.job_id.clone(),
            run_id: self.run_id.clone(),
            attempt: self.attempt,
            scheduled_time,
        }
    }
}

/// How one call went, as the host measured it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// The plugin had to be loaded from its artifact for this call.
    pub cold_start: bool,
    /// A new instance was created for this call (rather than a hot one reused).
    pub fresh_instance: bool,
    /// Time to load the plugin (deserialize the artifact, link), in nanoseconds.
    pub load_ns: u64,
    /// Time to instantiate, in nanoseconds.
    pub instantiate_ns: u64,
    /// From the call's start to its result, in nanoseconds.
    pub total_ns: u64,
    /// What was measured in the guest.
    #[serde(flatten)]
    pub measure: CallMeasure,
}

/// A successful call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// The result, as JSON text.
    pub result: String,
    /// How the call went.
    pub stats: CallStats,
}

/// A plugin loaded from its file, with how its artifact was obtained.
#[derive(Clone)]
pub struct LoadReport {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// The artifact came from the cache (no compilation).
    pub cache_hit: bool,
    /// How long compilation took, when it was needed.
    pub compile_time: Option<Duration>,
    /// How long loading took in all.
    pub load_time: Duration,
}

/// A file in the plugins directory that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: LoadError,
}

/// The result of scanning the plugins directory.
#[derive(Clone, Default)]
pub struct Discovery {
    /// Plugins loaded.
    pub loaded: Vec<LoadReport>,
    /// Files rejected, with the reason.
    pub rejected: Vec<Rejected>,
}

/// The runtime: engine, artifact cache, instance pool and plugins.
pub struct Runtime {
    config: Arc<Config>,
    engine: Engine,
    allocator: AllocatorKind,
    linker: Linker<HostState>,
    cache: ArtifactCache,
    pool: Arc<Semaphore>,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    rejected: Mutex<BTreeMap<PathBuf, LoadError>>,
    /// Serialises loads on first use, so concurrent first calls load a plugin once.
    first_use: tokio::sync::Mutex<()>,
}

impl Runtime {
    /// Sets up the engine, the linker and the artifact cache. Plugins are found by
    /// [`Runtime::discover`], or loaded on first use by name.
    pub fn new(config: Config) -> Result<Self, RuntimeError> {
        let (engine, allocator) = engine::build(&config)?;
        engine::start_epoch_ticker(&engine);
        let linker = host::linker(&engine).map_err(|e| RuntimeError::Linker(format!("{e:#}")))?;
        let cache = ArtifactCache::open(&config.cache_dir(), &engine)?;
        let pool = Arc::new(Semaphore::new(config.pool.max_instances as usize));
        tracing::debug!(?allocator, cache = %cache.dir().display(), "runtime ready");
        Ok(Self {
            config: Arc::new(config),
            engine,
            allocator,
            linker,
            cache,
            pool,
            plugins: RwLock::new(BTreeMap::new()),
            rejected: Mutex::new(BTreeMap::new()),
            first_use: tokio::sync::Mutex::new(()),
        })
    }

    /// The configuration the runtime was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Which instance allocator is in use.
    pub fn allocator(&self) -> AllocatorKind {
        self.allocator
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The artifact cache.
    pub fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// Loads every `*.wasm` in the plugins directory. A file that cannot be loaded is reported
    /// in [`Discovery::rejected`] (and logged); the others load regardless.
    pub async fn discover(&self) -> Result<Discovery, RuntimeError> {
        let dir = &self.config.plugins_dir;
        let mut discovery = Discovery::default();
        for path in wasm_files(dir)? {
            match self.load_path(&path).await {
                Ok(report) => discovery.loaded.push(report),
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "plugin rejected");
                    discovery.rejected.push(Rejected { path, error });
                }
            }
        }
        Ok(discovery)
    }

    /// A loaded plugin by name.
    pub fn plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins_read().get(name).cloned()
    }

    /// All loaded plugins, by name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        self.plugins_read().values().cloned().collect()
    }

    /// Files that could not be loaded, with the reason.
    pub fn rejected(&self) -> Vec<Rejected> {
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        rejected
            .iter()
            .map(|(path, error)| Rejected {
                path: path.clone(),
                error: error.clone(),
            })
            .collect()
    }

    /// Loads (or reloads) the plugin `name` from `<plugins_dir>/<name>.wasm`.
    pub async fn load(&self, name: &str) -> Result<LoadReport, InvokeError> {
        let path = self.config.plugins_dir.join(format!("{name}.wasm"));
        if !is_valid_plugin_name(name) || !path.is_file() {
            return Err(InvokeError::UnknownPlugin {
                name: name.to_owned(),
                available: self.available(),
            });
        }
        self.load_path(&path)
            .await
            .map_err(|error| InvokeError::Unavailable {
                name: name.to_owned(),
                error,
            })
    }

    /// Calls `method` of plugin `name` with JSON `params`. The plugin is loaded on first use.
    pub async fn invoke(
        &self,
        name: &str,
        method: &str,
        params: &str,
        ctx: &JobContext,
    ) -> Result<CallOutcome, InvokeError> {
        let started = Instant::now();
        let plugin = match self.plugin(name) {
            Some(p) => p,
            None => self.load_on_first_use(name).await?,
        };
        let params = if params.trim().is_empty() {
            "null"
        } else {
            params
        };
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(params) {
            return Err(InvokeError::InvalidParams(format!(
                "params are not JSON: {e}"
            )));
        }
        let limits = &plugin.settings.limits;
        let deadline = started + limits.timeout;
        let counters = &plugin.counters;
        counters.calls.fetch_add(1, Ordering::Relaxed);

        let wit_ctx = ctx.to_wit();
        let call = async {
            let (loaded, load_ns) = self.ensure_loaded(&plugin)?;
            let reuse = plugin.settings.reuse_instances;
            let (mut instance, instantiate_ns) = match loaded.take_idle().filter(|_| reuse) {
                Some(instance) => (instance, None),
                None => {
                    let t = Instant::now();
                    let instance = self.instantiate(&plugin, &loaded, deadline).await?;
                    (instance, Some(nanos(t.elapsed())))
                }
            };
            let (result, measure) = instance
                .call(&wit_ctx, method, params, limits, deadline)
                .await;
            let discard = result
                .as_ref()
                .err()
                .is_some_and(InvokeError::discards_instance);
            if discard {
                counters.instances_discarded.fetch_add(1, Ordering::Relaxed);
            } else if reuse {
                loaded.put_idle(instance);
            }
            let stats = CallStats {
                cold_start: load_ns.is_some(),
                fresh_instance: instantiate_ns.is_some(),
                load_ns: load_ns.unwrap_or(0),
                instantiate_ns: instantiate_ns.unwrap_or(0),
                total_ns: nanos(started.elapsed()),
                measure,
            };
            result.map(|result| CallOutcome { result, stats })
        };
        let result = match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(r) => r,
            Err(_) => {
                // The call future (and the instance in it) was dropped mid-call: it is gone.
                counters.instances_discarded.fetch_add(1, Ordering::Relaxed);
                Err(InvokeError::Timeout(limits.timeout))
            }
        };
        if let Err(e) = &result {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            if e.discards_instance() {
                counters.traps.fetch_add(1, Ordering::Relaxed);
            }
            if matches!(e, InvokeError::Timeout(_)) {
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn load_on_first_use(&self, name: &str) -> Result<Arc<Plugin>, InvokeError> {
        let _one_at_a_time = self.first_use.lock().await;
        match self.plugin(name) {
            Some(p) => Ok(p),
            None => Ok(self.load(name).await?.plugin),
        }
    }

    fn plugins_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The names of loaded plugins and of `*.wasm` files in the plugins directory.
    fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plugins_read().keys().cloned().collect();
        if let Ok(files) = wasm_files(&self.config.plugins_dir) {
            names.extend(
                files
                    .iter()
                    .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned)),
            );
        }
        names.sort();
        names.dedup();
        names
    }

    fn settings_for(&self, name: &str) -> PluginSettings {
        let plugin = self.config.plugins.get(name);
        PluginSettings {
            limits: self.config.limits_for(name),
            max_instances: plugin
                .and_then(|p| p.max_instances)
                .unwrap_or(DEFAULT_PLUGIN_MAX_INSTANCES)
                .min(self.config.pool.max_instances),
            reuse_instances: plugin.and_then(|p| p.reuse_instances).unwrap_or(true),
            config: Arc::new(plugin.map(|p| p.config.clone()).unwrap_or_default()),
        }
    }

    /// Reads, compiles (or loads from the cache), links and describes one component file, and
    /// registers it as a plugin, replacing one of the same name.
    async fn load_path(&self, path: &Path) -> Result<LoadReport, LoadError> {
        let started = Instant::now();
        let result = self.load_path_inner(path, started).await;
        let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(report) => {
                rejected.remove(path);
                drop(rejected);
                let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
                plugins.insert(report.plugin.name.to_string(), report.plugin.clone());
            }
            Err(e) => {
                rejected.insert(path.to_owned(), e.clone());
            }
        }
        result
    }

    async fn load_path_inner(
        &self,
        path: &Path,
        started: Instant,
    ) -> Result<LoadReport, LoadError> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !is_valid_plugin_name(&name) {
            return Err(LoadError::BadName(name));
        }
        let wasm = tokio::fs::read(path)
            .await
            .map_err(|e| LoadError::Read(e.to_string()))?;
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let (file, component, compile_time) = tokio::task::spawn_blocking(move || {
            let sha256 = sha256_hex(&wasm);
            let (component, compile_time) = match cache.load(&engine, &sha256)? {
                Some(c) => (c, None),
                None => {
                    let (c, took) = cache.compile(&engine, &wasm, &sha256)?;
                    (c, Some(took))
                }
            };
            Ok::<_, LoadError>((sha256, wasm.len() as u64, component, compile_time))
        })
        .await
        .map_err(|e| LoadError::Read(format!("loader task failed: {e}")))?
        .map(|(sha256, size, component, compile_time)| {
            (
                PluginFile {
                    path: path.to_owned(),
                    sha256,
                    size,
                },
                component,
                compile_time,
            )
        })?;

        let pre = self.link(&component)?;
        let settings = self.settings_for(&name);
        let name: Arc<str> = name.into();
        let loaded = Arc::new(Loaded::new(pre));
        let mut plugin = Plugin {
            capture: Arc::new(Capture::new(name.clone())),
            slots: Arc::new(Semaphore::new(settings.max_instances as usize)),
            name: name.clone(),
            file,
            info: HandlerInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                methods: Vec::new(),
            },
            settings,
            loaded: Mutex::new(Some(loaded.clone())),
            counters: PluginCounters::default(),
        };

        let mut describe_limits = plugin.settings.limits.clone();
        describe_limits.timeout = describe_limits.timeout.min(DESCRIBE_TIMEOUT);
        let deadline = Instant::now() + describe_limits.timeout;
        let describe = async {
            let mut instance = self.instantiate(&plugin, &loaded, deadline).await?;
            let info = instance.describe(&describe_limits, deadline).await?;
            Ok::<_, InvokeError>((instance, info))
        };
        let (instance, info) = match tokio::time::timeout_at(deadline.into(), describe).await {
            Ok(Ok(described)) => described,
            Ok(Err(e)) => return Err(LoadError::Describe(e.to_string())),
            Err(_) => {
                return Err(LoadError::Describe(
                    InvokeError::Timeout(describe_limits.timeout).to_string(),
                ));
            }
        };
        if info.name != *name {
            return Err(LoadError::NameMismatch {
                file: name.to_string(),
                described: info.name,
            });
        }
        plugin.info = HandlerInfo::from_wit(info);
        if plugin.settings.reuse_instances {
            loaded.put_idle(instance);
        }
        let cache_hit = compile_time.is_none();
        tracing::info!(
            plugin = %name, version = %plugin.info.version, methods = plugin.info.methods.len(),
            cache_hit, load_ms = started.elapsed().as_secs_f64() * 1e3, "plugin loaded"
        );
        Ok(LoadReport {
            plugin: Arc::new(plugin),
            cache_hit,
            compile_time,
            load_time: started.elapsed(),
        })
    }

    fn link(&self, component: &Component) -> Result<bindings::PluginPre<HostState>, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        bindings::PluginPre::new(pre).map_err(|e| LoadError::Contract(format!("{e:#}")))
    }

    /// The plugin's loaded state, loading it from its cached artifact when it is cold.
    /// Returns the load time when it had to load.
    fn ensure_loaded(&self, plugin: &Plugin) -> Result<(Arc<Loaded>, Option<u64>), InvokeError> {
        if let Some(loaded) = plugin.loaded().clone() {
            return Ok((loaded, None));
        }
        let started = Instant::now();
        let unavailable = |error| InvokeError::Unavailable {
            name: plugin.name.to_string(),
            error,
        };
        let component = match self
            .cache
            .load(&self.engine, &plugin.file.sha256)
            .map_err(unavailable)?
        {
            Some(c) => c,
            None => {
                // The artifact went missing (cache cleared): rebuild it from the file, if the file
                // is still the one this plugin was loaded from.
                let wasm = std::fs::read(&plugin.file.path)
                    .map_err(|e| unavailable(LoadError::Read(e.to_string())))?;
                if sha256_hex(&wasm) != plugin.file.sha256 {
                    return Err(unavailable(LoadError::Read(
                        "the file changed since it was loaded; reload the plugin".into(),
                    )));
                }
                self.cache
                    .compile(&self.engine, &wasm, &plugin.file.sha256)
                    .map_err(unavailable)?
                    .0
            }
        };
        let loaded = Arc::new(Loaded::new(self.link(&component).map_err(unavailable)?));
        let mut slot = plugin.loaded();
        let loaded = slot.get_or_insert(loaded).clone();
        drop(slot);
        plugin.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        Ok((loaded, Some(nanos(started.elapsed()))))
    }

    async fn instantiate(
        &self,
        plugin: &Plugin,
        loaded: &Loaded,
        deadline: Instant,
    ) -> Result<Instance, InvokeError> {
        let slots = self.acquire_slots(plugin).await?;
        let instance = Instance::create(
            &self.engine,
            &loaded.pre,
            plugin.capture.clone(),
            plugin.settings.config.clone(),
            &plugin.settings.limits,
            deadline,
            slots,
            self.config.uses_fuel(),
        )
        .await?;
        plugin
            .counters
            .instances_created
            .fetch_add(1, Ordering::Relaxed);
        Ok(instance)
    }

    /// A slot of the plugin's own limit, then one of the shared pool. When the pool is full,
    /// idle instances (of any plugin, least recently used first) are evicted before waiting.
    async fn acquire_slots(
        &self,
        plugin: &Plugin,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), InvokeError> {
        let closed = |_| InvokeError::Internal("instance pool closed".into());
        let own = plugin.slots.clone().acquire_owned().await.map_err(closed)?;
        loop {
            if let Ok(pooled) = self.pool.clone().try_acquire_owned() {
                return Ok((own, pooled));
            }
            let evicted = self
                .plugins()
                .iter()
                .any(|p| p.loaded().clone().is_some_and(|l| l.evict_one()));
            if !evicted {
                let pooled = self.pool.clone().acquire_owned().await.map_err(closed)?;
                return Ok((own, pooled));
            }
        }
    }
}

/// The `*.wasm` files of a directory, sorted.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RuntimeError::PluginsDir {
        dir: dir.to_owned(),
        message: format!(
            "{e} (build the example plugins with `cargo build --release`, or pass --plugins-dir)"
        ),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_before_the_epoch_keep_nanoseconds_positive() {
        let mut ctx = JobContext::adhoc();
        ctx.scheduled_time = UNIX_EPOCH - Duration::from_millis(1500);
        let t = ctx.to_wit().scheduled_time;
        assert_eq!((t.seconds, t.nanoseconds), (-2, 500_000_000));
        ctx.scheduled_time = UNIX_EPOCH + Duration::new(5, 7);
        let t = ctx.to_wit().scheduled_time;
        assert_eq!((t.seconds, t.nanoseconds), (5, 7));
    }
}
