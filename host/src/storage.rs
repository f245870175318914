//! Free space on the data directory's volume. A full disk must not cost a committed write, stop
//! the host for good or keep it from starting: the host samples the free bytes, and below
//! `server.min_free_space` it takes no new work (schedule writes answer `storage_full`, the
//! scheduler claims nothing) while reads go on, before SQLite itself runs out of room. When
//! space returns, all of it resumes by itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// How often the free space is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What the API tells a client refused for lack of space to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 30;

/// The volume's state, as the health check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpaceState {
    /// Above the floor.
    Ok,
    /// Below the floor: no new work until space returns.
    Low,
}

/// A snapshot for the health check.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SpaceReport {
    /// `ok` or `low`.
    pub state: SpaceState,
    /// Bytes free for this process on the data directory's volume (`None` when unknown).
    pub free_bytes: Option<u64>,
    /// The floor, `server.min_free_space`.
    pub floor_bytes: u64,
}

/// The data directory's volume, sampled.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    floor: u64,
    /// The last sample; `u64::MAX` until the first one (and when it cannot be read).
    free: AtomicU64,
    /// The state, for those who read it and those who follow it.
    state: watch::Sender<SpaceState>,
}

impl Storage {
    /// Watches the volume of `dir`, refusing new work below `floor` bytes (0: never). Takes a
    /// first sample at once.
    pub fn new(dir: &Path, floor: u64) -> Arc<Self> {
        let storage = Arc::new(Self {
            dir: dir.to_owned(),
            floor,
            free: AtomicU64::new(u64::MAX),
            state: watch::channel(SpaceState::Ok).0,
        });
        storage.sample();
        storage
    }

    /// Samples the free space now; returns the state it leaves.
    pub fn sample(&self) -> SpaceState {
        let free = free_bytes(&self.dir);
        self.free.store(free.unwrap_or(u64::MAX), Ordering::Relaxed);
        let low = free.is_some_and(|f| f < self.floor);
        let state = if low { SpaceState::Low } else { SpaceState::Ok };
        let changed = self
            .state
            .send_if_modified(|s| std::mem::replace(s, state) != state);
        if changed {
            match free {
                Some(free) if low => tracing::warn!(
                    free_bytes = free,
                    floor_bytes = self.floor,
                    dir = %self.dir.display(),
                    "free space below server.min_free_space: no new work until space returns"
                ),
                _ => {
                    tracing::info!(dir = %self.dir.display(), "free space is back: taking new work again")
                }
            }
        }
        state
    }

    /// Whether new work is refused now.
    pub fn is_low(&self) -> bool {
        *self.state.borrow() == SpaceState::Low
    }

    /// The state for the health check.
    pub fn report(&self) -> SpaceReport {
        let free = self.free.load(Ordering::Relaxed);
        SpaceReport {
            state: *self.state.borrow(),
            free_bytes: (free != u64::MAX).then_some(free),
            floor_bytes: self.floor,
        }
    }

    /// Follows the state as it changes.
    pub fn subscribe(&self) -> watch::Receiver<SpaceState> {
        self.state.subscribe()
    }

    /// Samples every [`SAMPLE_EVERY`] until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: crate::background::Stop) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait() => return,
                _ = every.tick() => {}
            }
            self.sample();
        }
    }
}

/// The bytes an unprivileged writer may still use on the volume of `dir`: the one figure of free
/// space the host goes by (the floor, the health check, the metrics).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_floor_is_low_and_a_floor_of_zero_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let never = Storage::new(dir.path(), 0);
        assert!(!never.is_low());
        let always = Storage::new(dir.path(), u64::MAX);
        assert!(always.is_low());
        let report = always.report();
        assert_eq!(report.state, SpaceState::Low);
        assert!(report.free_bytes.is_some());
    }
}
