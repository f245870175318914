//! The WebAssembly runtime: finds handler components in the plugins directory, compiles each once
//! (caching the artifact on disk), and runs calls on sandboxed instances under limits.
//!
//! Invariants: a plugin's instances run one call at a time; an instance that trapped, timed out or
//! hit a limit is never used again; the number of live instances never exceeds the pool (a call
//! waits for a slot, evicting idle instances first, and at most `max_queued` calls wait per
//! plugin); only artifacts this host wrote are loaded. A plugin goes cold → warming → hot →
//! cooling → cold (see [`lifecycle`]); the plugins folder is watched ([`watch`]) and a replaced
//! file becomes a new version while calls in flight finish on the old one.

pub(crate) mod bindings;
mod cache;
mod call;
mod engine;
mod error;
mod events;
mod files;
pub mod fleet;
mod grants;
mod host;
mod instance;
pub mod lifecycle;
mod loader;
pub mod metrics;
pub mod outbound;
mod output;
mod plugin;
pub mod watch;

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
pub use self::error::{InvokeError, LoadError, RuntimeError, one_line};
pub use self::events::{EventKind, PluginEvent, PluginState};
pub use self::grants::CONFIG_FILE;
pub use self::instance::CallMeasure;
pub use self::loader::{Compiling, Discovery, LoadReport, Loading, Rejected};
pub use self::metrics::{
    ErrorCounts, HistogramSnapshot, InstanceMetrics, LastError, PluginMetrics,
};
pub use self::outbound::Traffic;
pub use self::plugin::{HandlerInfo, MethodInfo, Plugin, PluginFile, PluginSettings};
pub use crate::capability::CallUsage;

use self::events::Events;
use self::grants::GrantBook;
use self::host::HostState;
use self::instance::{Instance, Tracked, nanos};
use self::metrics::InstanceStats;
use self::outbound::{CallLimits, CallNet, Tls};
use self::output::Capture;
use self::plugin::Loaded;
use crate::capability::{Effective, Grant, Review};
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
    rejected: Mutex<BTreeMap<PathBuf, (LoadError, Option<plugin::FileStamp>)>>,
    /// One lock per plugin name being loaded on first use, so concurrent first calls load it once.
    first_use: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Plugins whose file was removed, with when (RFC 3339).
    removed: Mutex<BTreeMap<String, String>>,
    /// Plugins being loaded in the background (their file appeared or changed), by name.
    compiling: Mutex<BTreeMap<String, loader::Compiling>>,
    /// Background loads at once: one per core (each compiles on a blocking thread).
    compile_slots: Arc<Semaphore>,
    /// Numbers the background loads.
    compile_seq: std::sync::atomic::AtomicU64,
    events: Arc<Events>,
    /// What the operator granted each plugin.
    grants: GrantBook,
    /// TLS settings of handlers' outbound requests.
    tls: Arc<Tls>,
    /// The keys trusted to sign components.
    trust: Arc<crate::trust::TrustStore>,
    /// What the `fleet` import shows, once the host has set it.
    fleet: std::sync::OnceLock<Arc<dyn fleet::FleetView>>,
}

/// What runtimes over one engine share: everything that costs to build.
struct Shared {
    engine: Engine,
    allocator: AllocatorKind,
    linker: Linker<HostState>,
    cache: ArtifactCache,
    tls: Arc<Tls>,
    trust: Arc<crate::trust::TrustStore>,
}

impl Runtime {
    /// Sets up the engine, the linker and the artifact cache. Plugins are found by
    /// [`Runtime::discover`], or loaded on first use by name.
    pub fn new(config: Config) -> Result<Self, RuntimeError> {
        let (engine, allocator) = engine::build(&config)?;
        engine::start_epoch_ticker(&engine);
        let linker = host::linker(&engine).map_err(|e| RuntimeError::Linker(format!("{e:#}")))?;
        let cache = ArtifactCache::open(&config.cache_dir(), &engine)?;
        let tls = Tls::new(config.outbound.ca_files.clone()).map_err(RuntimeError::Outbound)?;
        tracing::debug!(?allocator, cache = %cache.dir().display(), "runtime ready");
        let trust = config
            .trust_store()
            .map_err(|e| RuntimeError::Trust(e.to_string()))?;
        let shared = Shared {
            engine,
            allocator,
            linker,
            cache,
            tls: Arc::new(tls),
            trust: Arc::new(trust),
        };
        Ok(Self::assemble(config, shared))
    }

    /// A runtime over another plugins folder that shares this one's engine, linker, artifact
    /// cache, TLS settings and trusted keys (nothing that costs to build), with no grants and a
    /// pool of its own: to compile and describe a component before it is placed (the catalog's
    /// staging), so that the artifact is this engine's.
    pub fn sibling(&self, plugins_dir: std::path::PathBuf) -> Self {
        let mut config = (*self.config).clone();
        config.plugins_dir = plugins_dir;
        config.cache_dir = Some(self.cache.dir().to_owned());
        config.plugins.clear();
        config.pool.max_instances = 1;
        let shared = Shared {
            engine: self.engine.clone(),
            allocator: self.allocator,
            linker: self.linker.clone(),
            cache: self.cache.clone(),
            tls: self.tls.clone(),
            trust: self.trust.clone(),
        };
        Self::assemble(config, shared)
    }

    /// A runtime of `config` over built parts, with nothing loaded yet.
    fn assemble(config: Config, shared: Shared) -> Self {
        Self {
            metered: config.uses_fuel(),
            pool: Arc::new(Semaphore::new(config.pool.max_instances as usize)),
            grants: GrantBook::from_config(&config),
            config: Arc::new(config),
            engine: shared.engine,
            allocator: shared.allocator,
            linker: shared.linker,
            cache: shared.cache,
            plugins: RwLock::new(BTreeMap::new()),
            idle_returned: tokio::sync::Notify::new(),
            rejected: Mutex::new(BTreeMap::new()),
            first_use: Mutex::default(),
            removed: Mutex::default(),
            compiling: Mutex::default(),
            compile_slots: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            )),
            compile_seq: std::sync::atomic::AtomicU64::new(0),
            events: Arc::default(),
            tls: shared.tls,
            trust: shared.trust,
            fleet: std::sync::OnceLock::new(),
        }
    }

    /// Sets what the `fleet` import shows (once: the host's handlers, store and samplers, built
    /// after the runtime). Until then, and in a runtime outside a host, it answers `unavailable`.
    pub fn set_fleet(&self, view: Arc<dyn fleet::FleetView>) {
        if self.fleet.set(view).is_err() {
            tracing::warn!("the fleet view was set twice; the first one stays");
        }
    }

    /// The keys trusted to sign components.
    pub fn trust(&self) -> &Arc<crate::trust::TrustStore> {
        &self.trust
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

    /// The names of the loaded plugins, in order.
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins_read().keys().cloned().collect()
    }

    /// The grants of plugin `name`.
    pub fn grants(&self, name: &str) -> Vec<Grant> {
        self.grants.get(name).1.to_vec()
    }

    /// Replaces the grants of plugin `name`. The next call uses them: idle instances (created
    /// under the old ones) are dropped, busy ones are dropped when their call ends.
    pub fn set_grants(&self, name: &str, grants: Vec<Grant>) {
        self.grants.set(name, grants);
        if let Some(loaded) = self.plugin(name).and_then(|p| p.loaded()) {
            loaded.drop_idle();
        }
    }

    /// What plugin `name` requests beside what it is granted, when it is known.
    pub fn review(&self, name: &str) -> Option<Review> {
        let plugin = self.plugin(name)?;
        Some(crate::capability::grant::review(
            &plugin.manifest,
            &self.grants.get(name).1,
        ))
    }

    /// What a call of `plugin` may use now, and the grants generation it comes from (the grants
    /// themselves are read only when they changed since the last call).
    fn effective_for(&self, plugin: &Plugin) -> (u64, Arc<Effective>) {
        let generation = self.grants.generation(&plugin.name);
        let effective = plugin.effective.get(generation, || {
            Effective::new(&plugin.manifest, &self.grants.get(&plugin.name).1)
        });
        (generation, effective)
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
        self.invoke_within(name, method, params, ctx, None).await
    }

    /// [`Runtime::invoke`] with a caller's time limit (a schedule's `policy.timeout`) besides
    /// the plugin's own: the shorter one applies, and its expiry is the plugin's timeout in
    /// every respect (counted, the instance discarded).
    pub async fn invoke_within(
        &self,
        name: &str,
        method: &str,
        params: &str,
        ctx: &JobContext,
        timeout: Option<std::time::Duration>,
    ) -> Result<CallOutcome, InvokeError> {
        self.invoke_reporting(name, method, params, ctx, timeout)
            .await
            .0
    }

    /// [`Runtime::invoke_within`], with what the call used outside its instance (HTTP requests,
    /// hosts, directories), whether it succeeded or not; none when it used nothing.
    pub async fn invoke_reporting(
        &self,
        name: &str,
        method: &str,
        params: &str,
        ctx: &JobContext,
        timeout: Option<std::time::Duration>,
    ) -> (Result<CallOutcome, InvokeError>, Option<CallUsage>) {
        let mut usage = None;
        let result = self
            .invoke_measured(name, method, params, ctx, timeout, &mut usage)
            .await;
        (result, usage.filter(|u: &CallUsage| !u.is_empty()))
    }

    async fn invoke_measured(
        &self,
        name: &str,
        method: &str,
        params: &str,
        ctx: &JobContext,
        timeout: Option<std::time::Duration>,
        usage: &mut Option<CallUsage>,
    ) -> Result<CallOutcome, InvokeError> {
        let started = Instant::now();
        let plugin = self.plugin_or_load(name).await?;
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
        let limit = timeout.map_or(limits.timeout, |t| t.min(limits.timeout));
        // The clock starts once the plugin is known: compiling a component on first sight is
        // the host's one-time cost, not the call's (and is bounded on its own).
        let deadline = Instant::now() + limit;
        let counters = &plugin.counters;
        counters.calls.fetch_add(1, Ordering::Relaxed);
        // Busy before the plugin's state is looked at, so that it cannot go cold under the call.
        plugin.touch();
        plugin.busy.fetch_add(1, Ordering::AcqRel);
        let _ended = CallEnds(&plugin);

        let wit_ctx = ctx.to_wit();
        let grants = self.effective_for(&plugin);
        let net = Arc::new(CallNet {
            plugin: plugin.name.clone(),
            run_id: ctx.run_id.clone(),
            effective: grants.1.clone(),
            limits: CallLimits::of(limits),
            usage: outbound::Usage::default(),
            meter: counters.http.clone(),
            tls: self.tls.clone(),
            fleet: self.fleet.get().cloned(),
        });
        // Set once an instance is running the call: a timeout before that discarded nothing.
        let in_guest = AtomicBool::new(false);
        let call = async {
            let reuse = plugin.settings.reuse_instances;
            let (loaded, mut instance, load_ns, instantiate_ns) =
                self.instance_for(&plugin, deadline, &grants).await?;
            match (load_ns, instantiate_ns) {
                (Some(load), Some(inst)) => counters.cold_start_latency.record(load + inst),
                (None, Some(inst)) => counters.instantiate_latency.record(inst),
                (_, None) => {
                    counters.warm_starts.fetch_add(1, Ordering::Relaxed);
                }
            }
            in_guest.store(true, Ordering::Relaxed);
            let (result, measure) = instance
                .call(&wit_ctx, method, params, limits, deadline, net.clone())
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
                Err(InvokeError::Timeout(limit))
            }
        };
        counters.call_latency.record(nanos(started.elapsed()));
        if let Err(e) = &result {
            counters.count_error(e);
        }
        let directories = grants
            .1
            .directories
            .iter()
            .map(|m| m.name.clone())
            .collect();
        let used = net.usage.used(directories);
        let result = result.map(|mut outcome| {
            outcome.stats.measure.usage = used.clone();
            outcome
        });
        *usage = Some(used);
        result
    }

    /// A no-op call of plugin `name` (its `describe`), within `timeout`: loads it when cold,
    /// takes an instance as a call would, and returns how long that took. Not counted among its
    /// calls (a health check would otherwise be most of an idle plugin's traffic).
    pub async fn probe(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<std::time::Duration, InvokeError> {
        let started = Instant::now();
        let plugin = self.plugin_or_load(name).await?;
        let limits = &plugin.settings.limits;
        let limit = timeout.min(limits.timeout);
        let deadline = Instant::now() + limit;
        plugin.touch();
        plugin.busy.fetch_add(1, Ordering::AcqRel);
        let _ended = CallEnds(&plugin);
        let grants = self.effective_for(&plugin);
        let probe = async {
            let reuse = plugin.settings.reuse_instances;
            let (loaded, mut instance, _, _) =
                self.instance_for(&plugin, deadline, &grants).await?;
            let described = instance.describe(limits, deadline).await;
            if described.is_ok() && reuse {
                self.check_in(&plugin, &loaded, instance);
            }
            described.map(drop)
        };
        match tokio::time::timeout_at(deadline.into(), probe).await {
            Ok(r) => r.map(|()| started.elapsed()),
            Err(_) => Err(InvokeError::Timeout(limit)),
        }
    }

    /// Plugin `name`, loaded on first use.
    async fn plugin_or_load(&self, name: &str) -> Result<Arc<Plugin>, InvokeError> {
        match self.plugin(name) {
            Some(p) => Ok(p),
            None => self.load_on_first_use(name).await,
        }
    }

    /// The plugin loaded (from its artifact when cold) and an instance for a call; with the load
    /// and instantiation times when it had to load or instantiate.
    async fn instance_for(
        &self,
        plugin: &Plugin,
        deadline: Instant,
        grants: &(u64, Arc<Effective>),
    ) -> Result<(Arc<Loaded>, Instance, Option<u64>, Option<u64>), InvokeError> {
        let (loaded, load_ns) = self.ensure_loaded(plugin).await?;
        let (instance, instantiate_ns) = self
            .checkout(
                plugin,
                &loaded,
                plugin.settings.reuse_instances,
                deadline,
                load_ns.unwrap_or(0),
                grants,
            )
            .await?;
        Ok((loaded, instance, load_ns, instantiate_ns))
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
        load_ns: u64,
        grants: &(u64, Arc<Effective>),
    ) -> Result<(Instance, Option<u64>), InvokeError> {
        let closed = |_| InvokeError::Internal("instance pool closed".into());
        let mut waiting: Option<Queued<'_>> = None;
        loop {
            // Listen before looking, so an instance returned in between is not missed.
            let returned = plugin.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if reuse && let Some(instance) = loaded.take_idle() {
                if instance.grants == grants.0 {
                    return Ok((instance, None));
                }
                // Created under grants since changed: its slots free up for a new one.
                drop(instance);
                continue;
            }
            let slots = match self.try_slots(plugin) {
                Ok(slots) => slots,
                // Wait for what is missing, and only for that: the other one may well be free,
                // and waiting on a free semaphore would spin.
                Err(Blocked::Plugin) => {
                    if waiting.is_none() {
                        waiting = Some(Queued::join(plugin)?);
                    }
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
                            if waiting.is_none() {
                                waiting = Some(Queued::join(plugin)?);
                            }
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
                grants.clone(),
                &plugin.settings.limits,
                deadline,
                slots,
                self.metered,
            )
            .await?;
            drop(waiting);
            let instantiate_ns = nanos(started.elapsed());
            let serial = plugin
                .counters
                .instances_created
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            instance.serial = serial;
            let stats = InstanceStats::new(
                serial,
                plugin.info.version.clone(),
                load_ns + instantiate_ns,
            );
            stats
                .memory_bytes
                .store(instance.memory_bytes() as u64, Ordering::Relaxed);
            instance.tracked = Some(Tracked::new(stats, plugin.live.clone()));
            return Ok((instance, Some(instantiate_ns)));
        }
    }

    /// Gives an instance back to its plugin's idle list and wakes one call waiting for it (or
    /// lets the next call that waits find it at once).
    fn check_in(&self, plugin: &Plugin, loaded: &Arc<Loaded>, instance: Instance) {
        // Kept only for the version and the load it came from, while that is hot; otherwise
        // dropped here, which frees its slots.
        let keep = !plugin.retired.load(Ordering::Relaxed)
            && instance.grants == self.grants.generation(&plugin.name)
            && {
                let life = plugin.life();
                life.state == PluginState::Hot
                    && life.loaded.as_ref().is_some_and(|l| Arc::ptr_eq(l, loaded))
            };
        if keep {
            loaded.put_idle(instance);
        } else {
            drop(instance);
        }
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
                .any(|p| p.loaded().is_some_and(|l| l.evict_one()));
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

/// Ends a call's stay in its plugin, however the call ends (even dropped by a timeout).
struct CallEnds<'a>(&'a Plugin);

impl Drop for CallEnds<'_> {
    fn drop(&mut self) {
        self.0.call_ended();
    }
}

/// A call counted among those waiting for an instance of its plugin, while it waits.
struct Queued<'a>(&'a Plugin);

impl<'a> Queued<'a> {
    /// Joins the plugin's queue, or refuses the call when the queue is full.
    fn join(plugin: &'a Plugin) -> Result<Self, InvokeError> {
        let max = plugin.settings.max_queued as usize;
        let joined = plugin
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < max).then_some(q + 1)
            });
        match joined {
            Ok(_) => Ok(Self(plugin)),
            Err(queued) => Err(InvokeError::QueueFull {
                name: plugin.name.to_string(),
                queued: u32::try_from(queued).unwrap_or(u32::MAX),
                max_instances: plugin.settings.max_instances,
            }),
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}
