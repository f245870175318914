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
mod call;
mod engine;
mod error;
mod host;
mod instance;
mod loader;
mod output;
mod plugin;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use self::cache::{ArtifactCache, sha256_hex};
pub use self::call::{CallOutcome, CallStats, JobContext};
pub use self::engine::{AllocatorKind, EPOCH_TICK};
pub use self::error::{InvokeError, LoadError, RuntimeError};
pub use self::instance::CallMeasure;
pub use self::loader::{Discovery, LoadReport, Rejected};
pub use self::plugin::{
    HandlerInfo, MethodInfo, Plugin, PluginFile, PluginMetrics, PluginSettings,
};

use self::host::HostState;
use self::instance::{Instance, nanos};
use self::output::Capture;
use self::plugin::Loaded;
use crate::config::Config;

/// The runtime: engine, artifact cache, instance pool and plugins.
pub struct Runtime {
    config: Arc<Config>,
    engine: Engine,
    allocator: AllocatorKind,
    /// Whether the engine meters fuel (decided once, from the configuration).
    metered: bool,
    linker: Linker<HostState>,
    cache: ArtifactCache,
    pool: Arc<Semaphore>,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    /// Wakes the calls waiting for room in a full pool whenever any instance goes idle (it can
    /// then be evicted for them).
    idle_returned: tokio::sync::Notify,
    rejected: Mutex<BTreeMap<PathBuf, (LoadError, Option<loader::FileStamp>)>>,
    /// One lock per plugin name being loaded on first use, so concurrent first calls load it once.
    first_use: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
            metered: config.uses_fuel(),
            config: Arc::new(config),
            engine,
            allocator,
            linker,
            cache,
            pool,
            plugins: RwLock::new(BTreeMap::new()),
            idle_returned: tokio::sync::Notify::new(),
            rejected: Mutex::new(BTreeMap::new()),
            first_use: Mutex::default(),
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
            .map(|(path, (error, _))| Rejected {
                path: path.clone(),
                error: error.clone(),
            })
            .collect()
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
        // The clock starts once the plugin is known: compiling a component on first sight is
        // the host's one-time cost, not the call's (and is bounded on its own).
        let deadline = Instant::now() + limits.timeout;
        let counters = &plugin.counters;
        counters.calls.fetch_add(1, Ordering::Relaxed);

        let wit_ctx = ctx.to_wit();
        // Set once an instance is running the call: a timeout before that discarded nothing.
        let in_guest = AtomicBool::new(false);
        let call = async {
            let (loaded, load_ns) = self.ensure_loaded(&plugin).await?;
            let reuse = plugin.settings.reuse_instances;
            let (mut instance, instantiate_ns) =
                self.checkout(&plugin, &loaded, reuse, deadline).await?;
            in_guest.store(true, Ordering::Relaxed);
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
                self.check_in(&plugin, &loaded, instance);
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
                if in_guest.load(Ordering::Relaxed) {
                    // The call future, and the instance in it, was dropped mid-call: it is gone.
                    counters.instances_discarded.fetch_add(1, Ordering::Relaxed);
                }
                Err(InvokeError::Timeout(limits.timeout))
            }
        };
        if let Err(e) = &result {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            match e {
                InvokeError::Trap(_)
                | InvokeError::MemoryLimit { .. }
                | InvokeError::FuelExhausted(_) => {
                    counters.traps.fetch_add(1, Ordering::Relaxed);
                }
                InvokeError::Timeout(_) => {
                    counters.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        result
    }

    fn plugins_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner())
    }

    /// An instance for a call: an idle one of the plugin when it reuses instances, else a new
    /// one. When no slot is free it waits, holding nothing, for an instance to come back idle or
    /// a slot to free up. Returns the instantiation time when it created one.
    async fn checkout(
        &self,
        plugin: &Plugin,
        loaded: &Loaded,
        reuse: bool,
        deadline: Instant,
    ) -> Result<(Instance, Option<u64>), InvokeError> {
        let closed = |_| InvokeError::Internal("instance pool closed".into());
        loop {
            // Listen before looking, so an instance returned in between is not missed.
            let returned = plugin.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if reuse && let Some(instance) = loaded.take_idle() {
                return Ok((instance, None));
            }
            let slots = match self.try_slots(plugin) {
                Ok(slots) => slots,
                // Wait for what is missing, and only for that: the other one may well be free,
                // and waiting on a free semaphore would spin.
                Err(Blocked::Plugin) => {
                    tokio::select! {
                        _ = &mut returned => {}
                        permit = plugin.slots.clone().acquire_owned() => drop(permit.map_err(closed)?),
                    }
                    continue;
                }
                Err(Blocked::Pool) => {
                    // The pool is full: an instance of any plugin going idle can be evicted to
                    // make room, so listen for those too, then look once more.
                    let idle = self.idle_returned.notified();
                    tokio::pin!(idle);
                    idle.as_mut().enable();
                    match self.try_slots(plugin) {
                        Ok(slots) => slots,
                        Err(_) => {
                            tokio::select! {
                                _ = &mut returned => {}
                                _ = &mut idle => {}
                                permit = self.pool.clone().acquire_owned() => drop(permit.map_err(closed)?),
                            }
                            continue;
                        }
                    }
                }
            };
            let started = Instant::now();
            let mut instance = Instance::create(
                &self.engine,
                &loaded.pre,
                Arc::new(Capture::new(plugin.name.clone())),
                plugin.settings.config.clone(),
                &plugin.settings.limits,
                deadline,
                slots,
                self.metered,
            )
            .await?;
            instance.serial = plugin
                .counters
                .instances_created
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            return Ok((instance, Some(nanos(started.elapsed()))));
        }
    }

    /// Gives an instance back to its plugin's idle list and wakes one call waiting for it (or
    /// lets the next call that waits find it at once).
    fn check_in(&self, plugin: &Plugin, loaded: &Loaded, instance: Instance) {
        loaded.put_idle(instance);
        plugin.returned.notify_one();
        // Calls waiting for room in a full pool (rare; none waiting costs nothing).
        self.idle_returned.notify_waiters();
    }

    /// A slot of the plugin's own limit and one of the shared pool, without waiting. When the pool
    /// is full, idle instances (of any plugin, least recently used first) are evicted to make room.
    fn try_slots(
        &self,
        plugin: &Plugin,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Blocked> {
        let own = plugin
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Blocked::Plugin)?;
        loop {
            if let Ok(pooled) = self.pool.clone().try_acquire_owned() {
                return Ok((own, pooled));
            }
            let evicted = self
                .plugins()
                .iter()
                .any(|p| p.loaded().clone().is_some_and(|l| l.evict_one()));
            if !evicted {
                return Err(Blocked::Pool);
            }
        }
    }
}

/// Why no instance could be created for a call now.
enum Blocked {
    /// The plugin has `max_instances` live instances.
    Plugin,
    /// The shared pool is full and nothing idle could be evicted.
    Pool,
}
