//! A plugin's lifecycle: `cold` (file known, artifact on disk, nothing in memory) → `warming`
//! (loading; concurrent calls wait for the one load) → `hot` (component in memory, instances
//! kept) → `cooling` (idle timeout reached: idle instances dropped, calls in flight draining) →
//! `cold`, memory released. A call that arrives while cooling takes the plugin back to `hot`
//! without a load. The governor task sweeps the plugins and cools the idle ones; every
//! transition, and every change of the plugins folder, is an event kept for the API.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use super::plugin::Loaded;
use super::{Plugin, Runtime};

/// Where a plugin is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// Only the file and its cached artifact; nothing in memory.
    Cold,
    /// Being loaded from its artifact.
    Warming,
    /// In memory, with instances kept for reuse.
    Hot,
    /// Idle past its timeout: draining the calls in flight, then cold.
    Cooling,
}

impl PluginState {
    /// The state's name, as the API and the metrics give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Warming => "warming",
            Self::Hot => "hot",
            Self::Cooling => "cooling",
        }
    }

    /// Every state, in lifecycle order.
    pub const ALL: [PluginState; 4] = [Self::Cold, Self::Warming, Self::Hot, Self::Cooling];
}

/// A plugin's state and, while hot or cooling, what it has in memory.
pub(super) struct Life {
    pub(super) state: PluginState,
    pub(super) loaded: Option<Arc<Loaded>>,
}

/// Milliseconds since the process's first use of the runtime clock: cheap to store in an atomic.
pub(super) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Hands the memory the allocator keeps after plugins were freed back to the system. glibc's
/// malloc keeps freed memory in its per-thread arenas; a plugin's compiled code and tables are
/// many small allocations spread over them, so without a trim the host's RSS would stay at its
/// peak after every plugin has cooled down.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims the allocator's own free lists; it has no
        // preconditions and is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// What happened to a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new file was loaded and its plugin is available.
    Added,
    /// A changed file was loaded as a new version; calls in flight finish on the old one.
    Replaced,
    /// The file is gone; calls fail with `plugin_removed` until it returns.
    Removed,
    /// A file could not be loaded (the previous version, if any, stays in use).
    Rejected,
    /// Loaded from its artifact for a call (cold → hot).
    Warmed,
    /// Idle past its timeout with calls in flight: draining.
    Cooling,
    /// Taken back into use while cooling.
    Revived,
    /// Memory released (→ cold).
    Unloaded,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginEvent {
    /// Increasing number, for `?after=` paging.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The plugin.
    pub plugin: String,
    /// What happened.
    pub kind: EventKind,
    /// The version concerned, when known.
    pub version: Option<String>,
    /// The sha256 of the file concerned, when known.
    pub sha256: Option<String>,
    /// More about it (the error of a rejected file, why a plugin was unloaded).
    pub detail: Option<String>,
}

/// How many events are kept.
const EVENTS_KEPT: usize = 1000;

/// The recent events, and a channel for whoever follows them live (the host's store sync).
pub(super) struct Events {
    log: Mutex<(u64, VecDeque<PluginEvent>)>,
    live: broadcast::Sender<PluginEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            log: Mutex::new((0, VecDeque::new())),
            live: broadcast::channel(256).0,
        }
    }
}

impl Events {
    pub(super) fn push(
        &self,
        plugin: &str,
        kind: EventKind,
        file: Option<(&str, &str)>,
        detail: Option<String>,
    ) {
        let event = {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.0 += 1;
            let event = PluginEvent {
                seq: log.0,
                at: Utc::now(),
                plugin: plugin.to_owned(),
                kind,
                version: file.map(|f| f.0.to_owned()),
                sha256: file.map(|f| f.1.to_owned()),
                detail,
            };
            if log.1.len() == EVENTS_KEPT {
                log.1.pop_front();
            }
            log.1.push_back(event.clone());
            event
        };
        match kind {
            EventKind::Replaced | EventKind::Removed => tracing::info!(
                plugin = %event.plugin, event = ?kind, version = ?event.version, "plugins folder changed"
            ),
            EventKind::Rejected => tracing::warn!(
                plugin = %event.plugin, error = ?event.detail, "plugin file rejected"
            ),
            _ => {
                tracing::debug!(plugin = %event.plugin, event = ?kind, detail = ?event.detail, "plugin lifecycle")
            }
        }
        // Nobody listening is fine.
        let _ = self.live.send(event);
    }

    pub(super) fn after(&self, seq: u64, limit: usize) -> Vec<PluginEvent> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.1
            .iter()
            .filter(|e| e.seq > seq)
            .take(limit)
            .cloned()
            .collect()
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<PluginEvent> {
        self.live.subscribe()
    }
}

impl Plugin {
    pub(super) fn life(&self) -> std::sync::MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the plugin is in its lifecycle.
    pub fn state(&self) -> PluginState {
        self.life().state
    }

    /// Notes that a call started or ended now.
    pub(super) fn touch(&self) {
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// How long since a call last started or ended.
    pub(super) fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_used_ms.load(Ordering::Relaxed)))
    }

    /// Takes the plugin to cold: drops its component and idle instances. Calls in flight keep
    /// what they hold and drop it when they end.
    pub(super) fn go_cold(&self, life: &mut Life, why: &str) -> Option<Arc<Loaded>> {
        let loaded = life.loaded.take();
        life.state = PluginState::Cold;
        if loaded.is_some() {
            self.counters.unloads.fetch_add(1, Ordering::Relaxed);
            self.event(EventKind::Unloaded, Some(why.to_owned()));
        }
        loaded
    }

    pub(super) fn event(&self, kind: EventKind, detail: Option<String>) {
        if let Some(events) = self.events.upgrade() {
            events.push(
                &self.name,
                kind,
                Some((&self.info.version, &self.file.sha256)),
                detail,
            );
        }
    }

    /// The loaded component for a call if the plugin is hot, or cooling (it is then revived).
    pub(super) fn take_up(&self) -> Option<Arc<Loaded>> {
        let mut life = self.life();
        match life.state {
            PluginState::Hot => life.loaded.clone(),
            PluginState::Cooling => {
                life.state = PluginState::Hot;
                self.counters.revivals.fetch_add(1, Ordering::Relaxed);
                self.event(EventKind::Revived, None);
                life.loaded.clone()
            }
            PluginState::Cold | PluginState::Warming => None,
        }
    }

    /// Marks this version as no longer the plugin's (replaced or removed) and releases its
    /// memory; calls in flight on it finish and drop their instances.
    pub(super) fn retire(&self, why: &str) {
        self.retired.store(true, Ordering::Relaxed);
        let dropped = self.go_cold(&mut self.life(), why);
        drop(dropped);
    }

    /// Cools the plugin if it has been idle past its timeout: straight to cold when no call is
    /// in flight, else to cooling (idle instances dropped) until the last call ends.
    pub(super) fn sweep(&self) -> bool {
        let mut dropped = None;
        {
            let mut life = self.life();
            // Read under the lock: a call counts itself busy before it takes the lock.
            let busy = self.busy.load(Ordering::Acquire);
            match life.state {
                PluginState::Hot if self.idle_for() >= self.settings.idle_timeout => {
                    if busy == 0 {
                        dropped = self.go_cold(&mut life, "idle timeout");
                    } else {
                        life.state = PluginState::Cooling;
                        if let Some(loaded) = &life.loaded {
                            loaded.drop_idle();
                        }
                        self.event(
                            EventKind::Cooling,
                            Some(format!("idle timeout; {busy} call(s) in flight")),
                        );
                    }
                }
                PluginState::Cooling if busy == 0 => {
                    dropped = self.go_cold(&mut life, "drained after the idle timeout");
                }
                _ => {}
            }
        }
        // Instances and the component are freed outside the lock.
        let cooled = dropped.is_some();
        drop(dropped);
        cooled
    }

    /// A call ended: when it was the last one of a cooling plugin, the plugin goes cold.
    pub(super) fn call_ended(&self) {
        self.touch();
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            let dropped = {
                let mut life = self.life();
                if life.state == PluginState::Cooling && self.busy.load(Ordering::Acquire) == 0 {
                    self.go_cold(&mut life, "drained after the idle timeout")
                } else {
                    None
                }
            };
            drop(dropped);
        }
    }
}

impl Runtime {
    /// Cools every plugin idle past its timeout (see [`Plugin`]'s lifecycle). The governor calls
    /// this periodically; calling it by hand is harmless.
    pub fn sweep(&self) {
        let mut cooled = false;
        for plugin in self.plugins() {
            cooled |= plugin.sweep();
        }
        if cooled {
            release_freed_memory();
        }
    }

    /// Starts the task that cools idle plugins, checking at a quarter of the shortest idle
    /// timeout (between 10 ms and 1 s). It ends when the runtime is dropped.
    pub fn start_governor(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Runtime> = Arc::downgrade(self);
        let shortest = self.config.shortest_idle_timeout();
        let every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(runtime) = weak.upgrade() else {
                    return;
                };
                runtime.sweep();
            }
        })
    }

    /// Events after `seq` (0 for all kept), oldest first, at most `limit`.
    pub fn events(&self, after: u64, limit: usize) -> Vec<PluginEvent> {
        self.events.after(after, limit)
    }

    /// Follows events as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<PluginEvent> {
        self.events.subscribe()
    }
}
