//! A plugin: one component file, what it says of itself, its settings, its counters, and (while
//! loaded) its `InstancePre` and idle instances. Unloading drops everything but the file's
//! identity and the description, so the next call is a true cold start from the cached artifact.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::bindings::{self, WitHandlerInfo};
use super::host::HostState;
use super::instance::Instance;
use crate::config::Limits;

/// The file a plugin was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginFile {
    /// Its path.
    pub path: PathBuf,
    /// The sha256 of its bytes, as hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One method of a handler, as `describe()` gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Whether an instance serves more than one call.
    pub reuse_instances: bool,
    /// Configuration values granted to the plugin.
    pub config: Arc<BTreeMap<String, String>>,
}

/// Counters of a plugin since the host started.
#[derive(Debug, Default)]
pub struct PluginCounters {
    pub(super) calls: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) traps: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) cold_starts: AtomicU64,
    pub(super) instances_created: AtomicU64,
    pub(super) instances_discarded: AtomicU64,
}

/// A snapshot of a plugin's counters and state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginMetrics {
    /// Calls made.
    pub calls: u64,
    /// Calls that ended in an error (of any kind).
    pub errors: u64,
    /// Calls that trapped or hit the memory or fuel limit.
    pub traps: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Times the plugin was loaded from its artifact.
    pub cold_starts: u64,
    /// Instances created.
    pub instances_created: u64,
    /// Instances thrown away after a trap or limit.
    pub instances_discarded: u64,
    /// Instances alive and idle now.
    pub idle_instances: usize,
    /// Whether the plugin is loaded (hot) now.
    pub loaded: bool,
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
        let mut idle = self.idle();
        if idle.is_empty() {
            return false;
        }
        drop(idle.remove(0));
        true
    }
}

/// A plugin known to the runtime.
pub struct Plugin {
    pub(super) name: Arc<str>,
    pub(super) file: PluginFile,
    pub(super) info: HandlerInfo,
    pub(super) settings: PluginSettings,
    pub(super) slots: Arc<Semaphore>,
    /// Wakes one call waiting for an instance of this plugin when one comes back idle (one, not
    /// all: a thousand queued calls must not all wake for each returned instance).
    pub(super) returned: tokio::sync::Notify,
    pub(super) loaded: Mutex<Option<Arc<Loaded>>>,
    /// Held while the plugin is brought back from cold, so that it is loaded once.
    pub(super) load_lock: tokio::sync::Mutex<()>,
    pub(super) counters: PluginCounters,
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

    /// How it is run.
    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    pub(super) fn loaded(&self) -> MutexGuard<'_, Option<Arc<Loaded>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the plugin's `InstancePre` and idle instances: the next call is a cold start.
    /// Instances busy with a call finish it and are then dropped.
    pub fn unload(&self) {
        self.loaded().take();
    }

    /// A snapshot of its counters.
    pub fn metrics(&self) -> PluginMetrics {
        let c = &self.counters;
        let loaded = self.loaded().clone();
        PluginMetrics {
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            traps: c.traps.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            cold_starts: c.cold_starts.load(Ordering::Relaxed),
            instances_created: c.instances_created.load(Ordering::Relaxed),
            instances_discarded: c.instances_discarded.load(Ordering::Relaxed),
            idle_instances: loaded.as_ref().map_or(0, |l| l.idle().len()),
            loaded: loaded.is_some(),
        }
    }
}
