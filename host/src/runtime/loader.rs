//! Finding and loading plugins: scanning the plugins directory, compiling or loading the cached
//! artifact, linking, describing, and bringing a cold plugin back into memory. A file that cannot
//! be loaded is recorded with its reason and never affects the others.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use tokio::sync::Semaphore;
use wasmtime::component::Component;

use super::bindings;
use super::error::flat;
use super::events::{EventKind, PluginState};
use super::files;
use super::host::HostState;
use super::instance::Tracked;
use super::instance::nanos;
use super::lifecycle::now_ms;
use super::metrics::InstanceStats;
use super::plugin::{FileStamp, Life, Loaded};
use super::{
    HandlerInfo, InvokeError, LoadError, Plugin, PluginFile, PluginSettings, Runtime, RuntimeError,
    sha256_hex,
};
use crate::capability::Manifest;
use crate::config::{DEFAULT_PLUGIN_MAX_INSTANCES, is_valid_plugin_name};

/// The `fleet` import, by its interface name (any version).
const FLEET_IMPORT: &str = "schedulezero:handler/fleet";

/// The longest `describe()` may take when a plugin is loaded.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Files still compiling in the background ([`Runtime::discover_within`]).
    pub compiling: Vec<PathBuf>,
}

impl Discovery {
    /// Records the load of `path`.
    fn record(&mut self, path: PathBuf, result: Result<LoadReport, LoadError>) {
        match result {
            Ok(report) => self.loaded.push(report),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "plugin rejected");
                self.rejected.push(Rejected { path, error });
            }
        }
    }
}

/// A plugin being loaded in the background: its file appeared or changed, and it is read,
/// compiled (unless its artifact is cached), linked and described on a task of its own.
#[derive(Debug, Clone)]
pub struct Compiling {
    /// The plugin.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// When the load started.
    pub since: chrono::DateTime<Utc>,
    /// The file as it was when the load started.
    stamp: Option<FileStamp>,
    id: u64,
    done: tokio::sync::watch::Receiver<bool>,
}

/// Ends a background load however its task ends (a panic included): the plugin leaves the
/// compiling list, its name's lock is given back, and the calls waiting for it wake.
struct LoadEnd {
    runtime: Arc<Runtime>,
    name: String,
    id: u64,
    lock: Arc<tokio::sync::Mutex<()>>,
    done: tokio::sync::watch::Sender<bool>,
}

impl Drop for LoadEnd {
    fn drop(&mut self) {
        self.runtime.release_name_lock(&self.name, &self.lock);
        let mut compiling = self
            .runtime
            .compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if compiling.get(&self.name).is_some_and(|c| c.id == self.id) {
            compiling.remove(&self.name);
        }
        drop(compiling);
        let _ = self.done.send(true);
    }
}

/// The end of a background load: its report, or why the file was rejected.
pub type Loading = tokio::task::JoinHandle<Result<LoadReport, LoadError>>;

impl Runtime {
    /// Loads `path` on a task of its own and returns at once (the folder watch does not wait
    /// for a compile of seconds). Until the load ends the plugin is listed as compiling
    /// ([`Runtime::compiling`]); a call for it meanwhile waits for it (up to the describe
    /// timeout, then `plugin_compiling`, retryable), and a version already loaded keeps serving
    /// until the new one replaces it. Loads of one name run one after the other; at most one
    /// per core runs at once.
    pub fn load_in_background(self: &Arc<Self>, path: PathBuf) -> Loading {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let id = self.compile_seq.fetch_add(1, Ordering::Relaxed);
        self.compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                name.clone(),
                Compiling {
                    name: name.clone(),
                    path: path.clone(),
                    since: Utc::now(),
                    stamp: FileStamp::of(&path),
                    id,
                    done,
                },
            );
        let end = LoadEnd {
            runtime: self.clone(),
            lock: self.name_lock(&name),
            name,
            id,
            done: done_tx,
        };
        tokio::spawn(async move {
            let runtime = &end.runtime;
            let result = {
                let _one_at_a_time = end.lock.lock().await;
                let _slot = runtime.compile_slots.clone().acquire_owned().await;
                runtime.load_path(&path).await
            };
            let gone = FileStamp::of(&path).is_none();
            match &result {
                // Removed while it compiled: not a plugin any more.
                Ok(_) if gone => {
                    runtime.remove(&end.name);
                }
                // Known and ready, but nothing in memory until a call needs it.
                Ok(report) => report.plugin.park(),
                Err(_) if gone => {
                    runtime.forget_rejected(&path);
                }
                Err(_) => {}
            }
            result
        })
    }

    /// Whether `path`, as it is now (`stamp`), is being loaded in the background.
    pub(super) fn compiling_as(&self, path: &Path, stamp: Option<FileStamp>) -> bool {
        let compiling = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        stamp.is_some()
            && compiling
                .values()
                .any(|c| c.path == path && c.stamp == stamp)
    }

    /// The plugins being loaded in the background, by name.
    pub fn compiling(&self) -> Vec<Compiling> {
        let compiling = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        compiling.values().cloned().collect()
    }

    /// Waits for the background load of `name`, if one is under way, up to `limit`:
    /// `plugin_compiling` when it is still going then.
    async fn wait_for_compile(&self, name: &str, limit: Duration) -> Result<(), InvokeError> {
        let job = {
            let compiling = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
            compiling.get(name).cloned()
        };
        let Some(job) = job else { return Ok(()) };
        let mut done = job.done.clone();
        match tokio::time::timeout(limit, done.wait_for(|d| *d)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(InvokeError::Compiling {
                name: name.to_owned(),
                since: job.since.to_rfc3339(),
                waited_s: limit.as_secs(),
            }),
        }
    }

    /// Loads every `*.wasm` in the plugins directory in the background (see
    /// [`Runtime::load_in_background`]) and waits up to `budget` for them: what loaded and what
    /// was rejected by then is reported; the rest go on compiling, and are listed as such.
    pub async fn discover_within(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<Discovery, RuntimeError> {
        let deadline = tokio::time::Instant::now() + budget;
        let loads: Vec<(PathBuf, Loading)> = wasm_files(&self.config.plugins_dir)?
            .into_iter()
            .map(|path| (path.clone(), self.load_in_background(path)))
            .collect();
        let mut discovery = Discovery::default();
        for (path, load) in loads {
            match tokio::time::timeout_at(deadline, load).await {
                Ok(Ok(result)) => discovery.record(path, result),
                Ok(Err(e)) => {
                    tracing::error!(file = %path.display(), error = %e, "plugin load task failed")
                }
                // Still compiling: it becomes a plugin when done (an `added` event).
                Err(_) => discovery.compiling.push(path),
            }
        }
        Ok(discovery)
    }

    /// Loads every `*.wasm` in the plugins directory, and leaves each plugin cold: described and
    /// ready, nothing in memory (so discovering many plugins never holds many of them at once).
    /// A file that cannot be loaded is reported in [`Discovery::rejected`] (and logged); the
    /// others load regardless.
    pub async fn discover(&self) -> Result<Discovery, RuntimeError> {
        let dir = &self.config.plugins_dir;
        let mut discovery = Discovery::default();
        for path in wasm_files(dir)? {
            let result = self.load_path(&path).await;
            if let Ok(report) = &result {
                report.plugin.park();
            }
            discovery.record(path, result);
        }
        Ok(discovery)
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

    pub(super) async fn load_on_first_use(&self, name: &str) -> Result<Arc<Plugin>, InvokeError> {
        // A file that appeared and is being compiled: wait for it rather than compile it twice.
        self.wait_for_compile(name, DESCRIBE_TIMEOUT).await?;
        let lock = self.name_lock(name);
        let result = {
            let _one_at_a_time = lock.lock().await;
            match self.plugin(name) {
                Some(p) => Ok(p),
                None => match self.rejected_unchanged(name) {
                    // Rejected, and the file has not changed since: do not compile it again.
                    Some(error) => Err(InvokeError::Unavailable {
                        name: name.to_owned(),
                        error,
                    }),
                    None => match self.load(name).await {
                        Ok(r) => Ok(r.plugin),
                        Err(InvokeError::UnknownPlugin { name, available }) => {
                            Err(match self.removed_since(&name) {
                                Some(since) => InvokeError::Removed { name, since },
                                None => InvokeError::UnknownPlugin { name, available },
                            })
                        }
                        Err(e) => Err(e),
                    },
                },
            }
        };
        self.release_name_lock(name, &lock);
        result
    }

    /// The lock of plugin `name`'s loads: one load per name at a time; loads of different
    /// plugins do not wait for each other.
    fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.first_use.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// Gives back a lock [`Runtime::name_lock`] gave (the caller drops its handle after).
    fn release_name_lock(&self, name: &str, lock: &Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.first_use.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(lock) == 2 {
            // Nobody else is waiting on it: forget it, so unknown names do not pile up.
            locks.remove(name);
        }
    }

    /// When the file of plugin `name` was removed, if it was and has not come back.
    fn removed_since(&self, name: &str) -> Option<String> {
        let removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        removed.get(name).cloned()
    }

    /// Forgets plugin `name` because its file is gone: calls in flight finish, its instances are
    /// dropped as they end, and new calls fail with `plugin_removed` until the file returns.
    pub fn remove(&self, name: &str) -> bool {
        let Some(plugin) = self
            .plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        else {
            return false;
        };
        self.removed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), Utc::now().to_rfc3339());
        plugin.retire("file removed");
        plugin.event(EventKind::Removed, None);
        true
    }

    /// The stamp of every file the runtime knows: the plugins as loaded, and the files rejected.
    pub(super) fn known_stamps(&self) -> std::collections::HashMap<PathBuf, FileStamp> {
        let mut known: std::collections::HashMap<PathBuf, FileStamp> = self
            .plugins()
            .iter()
            .filter_map(|p| Some((p.file.path.clone(), p.stamp?)))
            .collect();
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(
            rejected
                .iter()
                .filter_map(|(path, (_, stamp))| Some((path.clone(), (*stamp)?))),
        );
        drop(rejected);
        // A file being loaded in the background is known as it was when its load started.
        let compiling = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(
            compiling
                .values()
                .filter_map(|c| Some((c.path.clone(), c.stamp?))),
        );
        known
    }

    /// Whether `path` was rejected as it is now (`stamp`).
    pub(super) fn rejected_as(&self, path: &Path, stamp: Option<FileStamp>) -> bool {
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        stamp.is_some() && rejected.get(path).is_some_and(|(_, s)| *s == stamp)
    }

    /// Forgets a file that was rejected and is now gone.
    pub(super) fn forget_rejected(&self, path: &Path) -> bool {
        let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        rejected.remove(path).is_some()
    }

    /// The error a plugin file was rejected with, if it is unchanged since.
    fn rejected_unchanged(&self, name: &str) -> Option<LoadError> {
        let path = self.config.plugins_dir.join(format!("{name}.wasm"));
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        let (error, stamp) = rejected.get(&path)?;
        (stamp.is_some() && *stamp == FileStamp::of(&path)).then(|| error.clone())
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
            max_queued: plugin
                .and_then(|p| p.max_queued)
                .unwrap_or(self.config.pool.max_queued),
            reuse_instances: plugin.and_then(|p| p.reuse_instances).unwrap_or(true),
            idle_timeout: self.config.idle_timeout_for(name),
        }
    }

    /// Reads, compiles (or loads from the cache), links and describes one component file, and
    /// registers it as a plugin. One of the same name is replaced: it becomes an old version
    /// whose calls in flight finish on it, and whose counters the new version carries on.
    pub(super) async fn load_path(&self, path: &Path) -> Result<LoadReport, LoadError> {
        let started = Instant::now();
        let result = self.load_path_inner(path, started).await;
        let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(report) => {
                rejected.remove(path);
                drop(rejected);
                let name = report.plugin.name.to_string();
                self.removed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
                let old = self
                    .plugins
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name, report.plugin.clone());
                match old {
                    Some(old) if !Arc::ptr_eq(&old, &report.plugin) => {
                        old.retire("replaced by a new version");
                        report.plugin.event(
                            EventKind::Replaced,
                            Some(format!(
                                "was version {} ({})",
                                old.info.version,
                                &old.file.sha256[..12]
                            )),
                        );
                    }
                    _ => report.plugin.event(EventKind::Added, None),
                }
            }
            Err(e) => {
                rejected.insert(path.to_owned(), (e.clone(), FileStamp::of(path)));
                drop(rejected);
                let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
                self.events
                    .push(name, EventKind::Rejected, None, Some(e.to_string()));
            }
        }
        result
    }

    async fn load_path_inner(
        &self,
        path: &Path,
        started: Instant,
    ) -> Result<LoadReport, LoadError> {
        let name = files::plugin_name(path)?;
        let (file, component, compile_time, stamp, manifest, signature) =
            self.read_and_compile(path, &name).await?;
        let loaded = Arc::new(Loaded::new(self.link(&component)?));
        let mut plugin = self.new_version(name.into(), file, stamp, loaded.clone(), manifest);
        plugin.signature = signature;
        let instance = self.describe(&mut plugin, &loaded).await?;
        if plugin.settings.reuse_instances {
            self.check_in(&plugin, &loaded, instance);
        }
        let cache_hit = compile_time.is_none();
        tracing::info!(
            plugin = %plugin.name, version = %plugin.info.version, methods = plugin.info.methods.len(),
            cache_hit, load_ms = started.elapsed().as_secs_f64() * 1e3, "plugin loaded"
        );
        Ok(LoadReport {
            plugin: Arc::new(plugin),
            cache_hit,
            compile_time,
            load_time: started.elapsed(),
        })
    }

    /// Reads the file (vetted, bounded) and gets its compiled component: from the artifact
    /// cache, or compiled now (the compile time is returned then). Off the async workers.
    async fn read_and_compile(
        &self,
        path: &Path,
        name: &str,
    ) -> Result<
        (
            PluginFile,
            Component,
            Option<Duration>,
            FileStamp,
            Manifest,
            crate::trust::Verdict,
        ),
        LoadError,
    > {
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let (dir, file_path) = (self.config.plugins_dir.clone(), path.to_owned());
        let max_size = self.config.pool.max_component_size;
        let (trust, required) = (self.trust.clone(), self.config.pool.require_signatures);
        let name = name.to_owned();
        let (sha256, size, component, compile_time, stamp, manifest, signature) =
            tokio::task::spawn_blocking(move || {
                // The stamp is of the descriptor that was read: a file that changes afterwards
                // differs from it, and the folder watch loads it again.
                let (wasm, stamp) = files::read(&dir, &file_path, max_size)?;
                // The signature is checked on the bytes that are compiled, before anything is
                // done with them.
                let signature = trust.verify(&wasm, &name);
                if required && !signature.is_verified() {
                    return Err(LoadError::Signature(signature.to_string()));
                }
                let sha256 = sha256_hex(&wasm);
                let (component, compile_time) = cache.load_or_compile(&engine, &wasm, &sha256)?;
                // Read once the bytes are known to be a component (a file that is not one is
                // rejected by the compiler, with its reason).
                let manifest = Manifest::read(&wasm)
                    .map_err(|e| LoadError::Manifest(e.to_string()))?
                    .unwrap_or_default();
                // The fleet view is only for a component that says it wants it: one that imports
                // it without asking is refused before it runs.
                let imports_fleet = component
                    .component_type()
                    .imports(&engine)
                    .any(|(name, _)| name.starts_with(FLEET_IMPORT));
                if imports_fleet && manifest.fleet.is_none() {
                    return Err(LoadError::Manifest(format!(
                        "the component imports `{FLEET_IMPORT}` but its manifest does not request \
                         `fleet`: request it (with the SDK, `fleet` in `Handler::CAPABILITIES`)"
                    )));
                }
                Ok::<_, LoadError>((
                    sha256,
                    wasm.len() as u64,
                    component,
                    compile_time,
                    stamp,
                    manifest,
                    signature,
                ))
            })
            .await
            .map_err(|e| LoadError::Read(format!("loader task failed: {e}")))??;
        let file = PluginFile {
            path: path.to_owned(),
            sha256,
            size,
        };
        Ok((file, component, compile_time, stamp, manifest, signature))
    }

    /// A new version of plugin `name`, hot with `loaded`, not yet described. It carries on the
    /// counters and the instance list of the version it replaces.
    fn new_version(
        &self,
        name: Arc<str>,
        file: PluginFile,
        stamp: FileStamp,
        loaded: Arc<Loaded>,
        manifest: Manifest,
    ) -> Plugin {
        let settings = self.settings_for(&name);
        let (counters, live) = match self.plugin(&name) {
            Some(p) => (p.counters.clone(), p.live.clone()),
            None => Default::default(),
        };
        Plugin {
            slots: Arc::new(Semaphore::new(settings.max_instances as usize)),
            returned: tokio::sync::Notify::new(),
            name,
            file,
            info: HandlerInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                methods: Vec::new(),
            },
            manifest: Arc::new(manifest),
            signature: crate::trust::Verdict::Unsigned,
            effective: Default::default(),
            settings,
            loaded_at: Utc::now(),
            stamp: Some(stamp),
            life: Mutex::new(Life {
                state: PluginState::Hot,
                loaded: Some(loaded),
            }),
            load_lock: tokio::sync::Mutex::new(()),
            counters,
            live,
            busy: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            last_used_ms: AtomicU64::new(now_ms()),
            retired: AtomicBool::new(false),
            events: Arc::downgrade(&self.events),
        }
    }

    /// Asks the plugin's first instance what it is (`describe`, under a short timeout), checks
    /// it names itself as its file does, and fills the plugin's info; returns the instance,
    /// listed under the version it reported.
    async fn describe(
        &self,
        plugin: &mut Plugin,
        loaded: &Arc<Loaded>,
    ) -> Result<super::instance::Instance, LoadError> {
        let mut describe_limits = plugin.settings.limits.clone();
        describe_limits.timeout = describe_limits.timeout.min(DESCRIBE_TIMEOUT);
        let deadline = Instant::now() + describe_limits.timeout;
        let grants = self.effective_for(plugin);
        let describe = async {
            let mut instance = self
                .checkout(plugin, loaded, false, deadline, 0, &grants)
                .await?
                .0;
            let info = instance.describe(&describe_limits, deadline).await?;
            Ok::<_, InvokeError>((instance, info))
        };
        let (mut instance, info) = match tokio::time::timeout_at(deadline.into(), describe).await {
            Ok(Ok(described)) => described,
            Ok(Err(e)) => return Err(LoadError::Describe(flat(&e))),
            Err(_) => {
                return Err(LoadError::Describe(
                    InvokeError::Timeout(describe_limits.timeout).to_string(),
                ));
            }
        };
        if info.name != *plugin.name {
            return Err(LoadError::NameMismatch {
                file: plugin.name.to_string(),
                described: info.name,
            });
        }
        plugin.info = HandlerInfo::from_wit(info);
        plugin.counters.versions.fetch_add(1, Ordering::Relaxed);
        // It was created before the version was known: list it under the version now.
        if let Some(old) = instance.tracked.take() {
            let stats = InstanceStats::new(
                old.stats.serial,
                plugin.info.version.clone(),
                old.stats.cold_start_ns,
            );
            drop(old);
            instance.tracked = Some(Tracked::new(stats, plugin.live.clone()));
        }
        Ok(instance)
    }

    fn link(&self, component: &Component) -> Result<bindings::PluginPre<HostState>, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Contract(flat(&e)))?;
        bindings::PluginPre::new(pre).map_err(|e| LoadError::Contract(flat(&e)))
    }

    /// The plugin's loaded state, loading it from its cached artifact when it is cold (one load
    /// at a time per plugin: calls that arrive while it is warming wait for that load). A
    /// cooling plugin is taken back to hot. Returns the load time when it had to load.
    pub(super) async fn ensure_loaded(
        &self,
        plugin: &Plugin,
    ) -> Result<(Arc<Loaded>, Option<u64>), InvokeError> {
        if let Some(loaded) = plugin.take_up() {
            return Ok((loaded, None));
        }
        let _one_at_a_time = plugin.load_lock.lock().await;
        if let Some(loaded) = plugin.take_up() {
            return Ok((loaded, None));
        }
        let warming = Warming::start(plugin);
        let started = Instant::now();
        let unavailable = |error| InvokeError::Unavailable {
            name: plugin.name.to_string(),
            error,
        };
        // Deserializing maps the artifact and reads its tables (about 0.1 ms): done in place.
        let component = match self
            .cache
            .load(&self.engine, &plugin.file.sha256)
            .map_err(unavailable)?
        {
            Some(c) => c,
            None => self.rebuild(plugin).await.map_err(unavailable)?,
        };
        let loaded = Arc::new(Loaded::new(self.link(&component).map_err(unavailable)?));
        warming.done(loaded.clone());
        plugin.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        let load_ns = nanos(started.elapsed());
        plugin.event(
            EventKind::Warmed,
            Some(format!("loaded in {:.1} µs", load_ns as f64 / 1e3)),
        );
        Ok((loaded, Some(load_ns)))
    }

    /// Compiles a plugin again when its artifact went missing (the cache was cleared), on a
    /// blocking thread, if its file is still the one it was loaded from.
    async fn rebuild(&self, plugin: &Plugin) -> Result<Component, LoadError> {
        let (engine, cache, file) = (self.engine.clone(), self.cache.clone(), plugin.file.clone());
        let (dir, max_size) = (
            self.config.plugins_dir.clone(),
            self.config.pool.max_component_size,
        );
        tokio::task::spawn_blocking(move || {
            let (wasm, _) = files::read(&dir, &file.path, max_size)?;
            if sha256_hex(&wasm) != file.sha256 {
                return Err(LoadError::Read(
                    "the file changed since it was loaded; reload the plugin".into(),
                ));
            }
            Ok(cache.load_or_compile(&engine, &wasm, &file.sha256)?.0)
        })
        .await
        .map_err(|e| LoadError::Read(format!("compile task failed: {e}")))?
    }
}

/// A plugin in the `warming` state; back to `cold` if the load fails or is abandoned (its call
/// timed out).
struct Warming<'a>(&'a Plugin, bool);

impl<'a> Warming<'a> {
    fn start(plugin: &'a Plugin) -> Self {
        plugin.life().state = PluginState::Warming;
        Self(plugin, false)
    }

    fn done(mut self, loaded: Arc<Loaded>) {
        let mut life = self.0.life();
        life.loaded = Some(loaded);
        life.state = PluginState::Hot;
        self.1 = true;
    }
}

impl Drop for Warming<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.life().state = PluginState::Cold;
        }
    }
}

/// The `*.wasm` files of a directory, sorted.
pub(super) fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RuntimeError::PluginsDir {
        dir: dir.to_owned(),
        message: format!(
            "{e} (build the example plugins with `cargo build --release`, or pass --plugins-dir)"
        ),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| files::is_candidate(p))
        .collect();
    files.sort();
    Ok(files)
}
