//! A plugin's lifecycle: `cold` (file known, artifact on disk, nothing in memory) → `warming`
//! (loading; concurrent calls wait for the one load) → `hot` (component in memory, instances
//! kept) → `cooling` (idle timeout reached: idle instances dropped, calls in flight draining) →
//! `cold`, memory released. A call that arrives while cooling takes the plugin back to `hot`
//! without a load. The governor task sweeps the plugins and cools the idle ones; every
//! transition, and every change of the plugins folder, is an event kept for the API.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::events::{EventKind, PluginEvent, PluginState};
use super::plugin::{Life, Loaded};
use super::{Plugin, Runtime};

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
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims the allocator's own free lists; it has no
        // preconditions and is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
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
    /// Cools every plugin idle past its timeout (see the [module](self)), and returns how many
    /// went cold. The governor calls this periodically; calling it by hand is harmless.
    pub fn sweep(&self) -> usize {
        self.plugins().iter().filter(|p| p.sweep()).count()
    }

    /// Starts the governor on its own task, until the runtime is dropped.
    pub fn start_governor(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.governor(crate::background::Stop::never()))
    }

    /// The loop that cools idle plugins, checking at a quarter of the shortest idle timeout
    /// (between 10 ms and 1 s), until `stop` or until the runtime is dropped.
    pub fn governor(
        self: &Arc<Self>,
        mut stop: crate::background::Stop,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let weak: Weak<Runtime> = Arc::downgrade(self);
        let shortest = self.config.shortest_idle_timeout();
        let every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tick.tick() => {}
                }
                let Some(runtime) = weak.upgrade() else {
                    return;
                };
                if runtime.sweep() > 0 {
                    // Trimming walks the allocator's arenas: not on a worker thread.
                    drop(tokio::task::spawn_blocking(release_freed_memory));
                }
            }
        }
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
