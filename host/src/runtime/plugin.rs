//! A plugin: one version of one component file, what it says of itself, its settings, its
//! counters, and (while hot) its `InstancePre` and idle instances. Going cold drops everything but
//! the file's identity and the description, so the next call is a true cold start from the cached
//! artifact.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::bindings::{self, WitHandlerInfo};
use super::events::{Events, PluginState};
use super::grants::EffectiveCache;
use super::host::HostState;
use super::instance::Instance;
use super::metrics::{ErrorCounts, InstanceMetrics, LiveInstances, PluginCounters, PluginMetrics};
use super::outbound::Traffic;
use crate::capability::Manifest;
use crate::config::Limits;

/// The file a plugin was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PluginFile {
    /// Its path.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// The sha256 of its bytes, as hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

pub(super) use super::files::FileStamp;

/// One method of a handler, as `describe()` gave it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MethodInfo {
    /// The method's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its params, if the handler gave one.
    pub params_schema: Option<serde_json::Value>,
}

/// What a handler says of itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerInfo {
    /// Its name (the same as the file's).
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// Its methods.
    pub methods: Vec<MethodInfo>,
}

impl HandlerInfo {
    pub(super) fn from_wit(info: WitHandlerInfo) -> Self {
        let methods = info
            .methods
            .into_iter()
            .map(|m| {
                let params_schema = m.params_schema.and_then(|s| match serde_json::from_str(&s) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(plugin = %info.name, method = %m.name, error = %e, "ignoring a params schema that is not JSON");
                        None
                    }
                });
                MethodInfo { name: m.name, description: m.description, params_schema }
            })
            .collect();
        Self {
            name: info.name,
            version: info.version,
            description: info.description,
            methods,
        }
    }
}

/// How a plugin is run, from the host's configuration.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Limits on each call.
    pub limits: Limits,
    /// The most live instances.
    pub max_instances: u32,
    /// The most calls waiting for an instance; more are refused with `queue_full`.
    pub max_queued: u32,
    /// Whether an instance serves more than one call.
    pub reuse_instances: bool,
    /// How long without a call before the plugin cools down and its memory is released.
    pub idle_timeout: Duration,
}

/// A plugin's state and, while hot or cooling, what it has in memory.
pub(super) struct Life {
    pub(super) state: PluginState,
    pub(super) loaded: Option<Arc<Loaded>>,
}

/// What is in memory while a plugin is loaded.
pub(super) struct Loaded {
    pub(super) pre: bindings::PluginPre<HostState>,
    idle: Mutex<Vec<Instance>>,
}

impl Loaded {
    pub(super) fn new(pre: bindings::PluginPre<HostState>) -> Self {
        Self {
            pre,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Instance>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn take_idle(&self) -> Option<Instance> {
        self.idle().pop()
    }

    pub(super) fn put_idle(&self, instance: Instance) {
        self.idle().push(instance);
    }

    /// Drops the least recently used idle instance, freeing its slots.
    pub(super) fn evict_one(&self) -> bool {
        let evicted = {
            let mut idle = self.idle();
            if idle.is_empty() {
                return false;
            }
            idle.remove(0)
        };
        drop(evicted);
        true
    }

    /// Drops every idle instance.
    pub(super) fn drop_idle(&self) {
        let idle = std::mem::take(&mut *self.idle());
        drop(idle);
    }
}

/// A plugin known to the runtime: one version of one file.
pub struct Plugin {
    pub(super) name: Arc<str>,
    pub(super) file: PluginFile,
    pub(super) info: HandlerInfo,
    /// What the component requests, from its file.
    pub(super) manifest: Arc<Manifest>,
    /// Its signature, against the trusted keys when it was loaded.
    pub(super) signature: crate::trust::Verdict,
    /// What its calls may use, for the current grants.
    pub(super) effective: EffectiveCache,
    pub(super) settings: PluginSettings,
    /// When this version was loaded.
    pub(super) loaded_at: DateTime<Utc>,
    /// The file's size and modification time when it was read, for the folder watch.
    pub(super) stamp: Option<FileStamp>,
    pub(super) slots: Arc<Semaphore>,
    /// Wakes one call waiting for an instance of this plugin when one comes back idle (one, not
    /// all: a thousand queued calls must not all wake for each returned instance).
    pub(super) returned: tokio::sync::Notify,
    pub(super) life: Mutex<Life>,
    /// Held while the plugin is brought back from cold, so that it is loaded once.
    pub(super) load_lock: tokio::sync::Mutex<()>,
    /// Shared by every version of the plugin.
    pub(super) counters: Arc<PluginCounters>,
    /// Shared by every version of the plugin: instances of an old version still finishing a
    /// call are listed with their version.
    pub(super) live: Arc<LiveInstances>,
    /// Calls in flight (from arrival to result).
    pub(super) busy: AtomicUsize,
    /// Calls waiting for an instance.
    pub(super) queued: AtomicUsize,
    pub(super) last_used_ms: AtomicU64,
    /// Replaced by a new version or removed: instances are dropped as their calls end.
    pub(super) retired: AtomicBool,
    pub(super) events: Weak<Events>,
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it came from.
    pub fn file(&self) -> &PluginFile {
        &self.file
    }

    /// What `describe()` said.
    pub fn info(&self) -> &HandlerInfo {
        &self.info
    }

    /// What its signature says, against the trusted keys when it was loaded.
    pub fn signature(&self) -> &crate::trust::Verdict {
        &self.signature
    }

    /// What the component requests (empty when it has no manifest).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its outbound HTTP so far (every version), by destination host.
    pub fn http_traffic(&self) -> std::collections::BTreeMap<String, Traffic> {
        self.counters.http.snapshot()
    }

    /// How it is run.
    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    /// When this version of the file was loaded.
    pub fn loaded_at(&self) -> DateTime<Utc> {
        self.loaded_at
    }

    /// The loaded component, while hot or cooling.
    pub(super) fn loaded(&self) -> Option<Arc<Loaded>> {
        self.life().loaded.clone()
    }

    /// Drops the plugin's component and idle instances: the next call is a cold start.
    /// Instances busy with a call finish it and are then dropped.
    pub fn unload(&self) {
        let dropped = self.go_cold(&mut self.life(), "unloaded");
        drop(dropped);
    }

    /// Puts a plugin just loaded (to be described) back to cold, without counting an unload:
    /// known and ready, but nothing in memory until a call needs it.
    pub fn park(&self) {
        let dropped = {
            let mut life = self.life();
            life.state = PluginState::Cold;
            life.loaded.take()
        };
        drop(dropped);
    }

    /// Its live instances (busy or idle), with what each has done.
    pub fn instances(&self) -> Vec<InstanceMetrics> {
        self.live.snapshot(&self.name)
    }

    /// A snapshot of its state and counters.
    pub fn metrics(&self) -> PluginMetrics {
        let c = &*self.counters;
        let (state, idle_instances) = {
            let life = self.life();
            (
                life.state,
                life.loaded.as_ref().map_or(0, |l| l.idle().len()),
            )
        };
        let (live_instances, busy_instances, memory_bytes) = self.live.totals();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last_used_ago = self.idle_for();
        PluginMetrics {
            state,
            calls: get(&c.calls),
            errors: ErrorCounts {
                total: get(&c.errors),
                trap: get(&c.traps),
                timeout: get(&c.timeouts),
                memory_limit: get(&c.memory_limits),
                fuel_exhausted: get(&c.fuel_exhausted),
                handler_error: get(&c.handler_errors),
                queue_full: get(&c.rejected_calls),
            },
            cold_starts: get(&c.cold_starts),
            warm_starts: get(&c.warm_starts),
            instances_created: get(&c.instances_created),
            instances_discarded: get(&c.instances_discarded),
            revivals: get(&c.revivals),
            unloads: get(&c.unloads),
            versions: get(&c.versions),
            live_instances,
            busy_instances,
            idle_instances,
            queued_calls: self.queued.load(Ordering::Relaxed),
            memory_bytes,
            last_used: (get(&c.calls) > 0).then(|| {
                Utc::now() - chrono::Duration::from_std(last_used_ago).unwrap_or_default()
            }),
            cold_start_latency: c.cold_start_latency.snapshot(),
            instantiate_latency: c.instantiate_latency.snapshot(),
            call_latency: c.call_latency.snapshot(),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
