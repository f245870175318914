//! What the runtime counts: per plugin ([`PluginCounters`], kept across versions of the file),
//! per live instance ([`InstanceStats`]), and latency histograms. Everything is atomics written on
//! the call path and read as snapshots ([`PluginMetrics`], [`InstanceMetrics`]) by the API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::InvokeError;
use super::events::PluginState;

/// Bucket bounds grow by √2 from 1 µs: 54 buckets reach about 95 s; slower observations land
/// in the last, open bucket.
const BUCKETS: usize = 54;
const FIRST_BOUND_NS: f64 = 1_000.0;

/// The upper bound of bucket `i`, in nanoseconds (`+inf` for the last).
fn bound_ns(i: usize) -> f64 {
    if i + 1 >= BUCKETS {
        f64::INFINITY
    } else {
        // Exact powers of two at even steps, so the exposed bounds are round numbers.
        let doubled = FIRST_BOUND_NS * 2f64.powi((i / 2) as i32);
        if i.is_multiple_of(2) {
            doubled
        } else {
            doubled * std::f64::consts::SQRT_2
        }
    }
}

/// A latency histogram with fixed bounds, lock-free to record into.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one observation, in nanoseconds.
    pub fn record(&self, ns: u64) {
        let i = if ns as f64 <= FIRST_BOUND_NS {
            0
        } else {
            // log base √2 of ns / 1 µs, rounded up: the first bound at or over the value.
            let steps = (2.0 * (ns as f64 / FIRST_BOUND_NS).log2()).ceil() as usize;
            let mut i = steps.min(BUCKETS - 1);
            // Float rounding may land one bucket off at a bound.
            if i > 0 && (ns as f64) <= bound_ns(i - 1) {
                i -= 1;
            }
            i
        };
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// A copy of the histogram as it is now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let sum_ns = self.sum_ns.load(Ordering::Relaxed);
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        let quantile = |q: f64| quantile_ns(&counts, count, max_ns, q);
        HistogramSnapshot {
            count,
            sum_seconds: sum_ns as f64 / 1e9,
            mean_us: if count == 0 {
                0.0
            } else {
                sum_ns as f64 / count as f64 / 1e3
            },
            p50_us: quantile(0.5) / 1e3,
            p90_us: quantile(0.9) / 1e3,
            p99_us: quantile(0.99) / 1e3,
            max_us: max_ns as f64 / 1e3,
            counts,
        }
    }
}

/// Estimates a quantile from bucket counts, interpolating inside the bucket it falls in (as
/// Prometheus's `histogram_quantile` does); never above the largest value seen.
fn quantile_ns(counts: &[u64], count: u64, max_ns: u64, q: f64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let rank = q * count as f64;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let low = if i == 0 { 0.0 } else { bound_ns(i - 1) };
            let high = bound_ns(i).min(max_ns as f64).max(low);
            let within = (rank - seen as f64) / c as f64;
            return low + (high - low) * within.clamp(0.0, 1.0);
        }
        seen += c;
    }
    max_ns as f64
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HistogramSnapshot {
    /// Observations.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
    /// Their mean, in microseconds.
    pub mean_us: f64,
    /// Median estimate, in microseconds.
    pub p50_us: f64,
    /// 90th percentile estimate, in microseconds.
    pub p90_us: f64,
    /// 99th percentile estimate, in microseconds.
    pub p99_us: f64,
    /// The largest observation, in microseconds.
    pub max_us: f64,
    /// Observations per bucket (not cumulative); see [`HistogramSnapshot::buckets`].
    #[serde(skip)]
    pub counts: Vec<u64>,
}

impl HistogramSnapshot {
    /// Buckets as `(upper bound in seconds, observations in it)` (not cumulative), bounds
    /// doubling from 1 µs, the last one `+inf`: the classic Prometheus shape, which the
    /// exposition makes cumulative.
    pub fn prometheus_buckets(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::new();
        let mut in_bucket = 0;
        for (i, c) in self.counts.iter().enumerate() {
            in_bucket += c;
            // Every other bound (a factor of 2), and the open last one.
            if i.is_multiple_of(2) || i + 1 == self.counts.len() {
                out.push((bound_ns(i) / 1e9, in_bucket));
                in_bucket = 0;
            }
        }
        out
    }
}

/// Counters of a plugin since the host started; a new version of the file keeps them.
#[derive(Debug, Default)]
pub struct PluginCounters {
    pub(super) calls: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) traps: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) memory_limits: AtomicU64,
    pub(super) fuel_exhausted: AtomicU64,
    pub(super) handler_errors: AtomicU64,
    pub(super) rejected_calls: AtomicU64,
    pub(super) cold_starts: AtomicU64,
    pub(super) warm_starts: AtomicU64,
    pub(super) revivals: AtomicU64,
    pub(super) unloads: AtomicU64,
    pub(super) versions: AtomicU64,
    pub(super) instances_created: AtomicU64,
    pub(super) instances_discarded: AtomicU64,
    /// Load and instantiate, for calls that found the plugin cold.
    pub(super) cold_start_latency: LatencyHistogram,
    /// Instantiate, for calls that created an instance of a loaded plugin.
    pub(super) instantiate_latency: LatencyHistogram,
    /// From the call's start to its result (or error).
    pub(super) call_latency: LatencyHistogram,
    pub(super) last_error: Mutex<Option<LastError>>,
    /// Outbound HTTP, by destination host.
    pub(super) http: std::sync::Arc<super::outbound::HttpMeter>,
}

impl PluginCounters {
    /// Counts a failed call by its kind.
    pub(super) fn count_error(&self, e: &InvokeError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let kind = match e {
            InvokeError::Trap(_) => &self.traps,
            InvokeError::MemoryLimit { .. } => &self.memory_limits,
            InvokeError::FuelExhausted(_) => &self.fuel_exhausted,
            InvokeError::Timeout(_) => &self.timeouts,
            InvokeError::QueueFull { .. } => &self.rejected_calls,
            _ => &self.handler_errors,
        };
        kind.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastError {
            at: Utc::now(),
            code: e.code().to_owned(),
            message: e.to_string(),
        });
    }
}

/// The last error of a plugin's calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LastError {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its stable code.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// Calls that failed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorCounts {
    /// All of them.
    pub total: u64,
    /// The guest trapped (panic, unreachable, stack overflow).
    pub trap: u64,
    /// The call ran past its timeout.
    pub timeout: u64,
    /// The guest hit its memory cap.
    pub memory_limit: u64,
    /// The guest burned its fuel budget.
    pub fuel_exhausted: u64,
    /// The handler returned an error (or the call was refused: bad params, unknown method).
    pub handler_error: u64,
    /// Calls refused because the plugin's queue was full.
    pub queue_full: u64,
}

/// A snapshot of a plugin's state and counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginMetrics {
    /// Its lifecycle state.
    pub state: PluginState,
    /// Calls made.
    pub calls: u64,
    /// Failed calls, by kind.
    pub errors: ErrorCounts,
    /// Calls that loaded the plugin from its artifact first (cold → warming → hot).
    pub cold_starts: u64,
    /// Calls served by an instance kept from an earlier call.
    pub warm_starts: u64,
    /// Calls that created an instance of the loaded plugin.
    pub instances_created: u64,
    /// Instances thrown away after a trap, timeout or limit.
    pub instances_discarded: u64,
    /// Times a cooling plugin was taken back into use by a call.
    pub revivals: u64,
    /// Times the plugin cooled down to cold (idle timeout, or unloaded by hand).
    pub unloads: u64,
    /// Versions of the file loaded (1 unless it was replaced).
    pub versions: u64,
    /// Instances alive now (busy or idle).
    pub live_instances: usize,
    /// Instances busy with a call now.
    pub busy_instances: usize,
    /// Instances alive and idle now.
    pub idle_instances: usize,
    /// Calls waiting for an instance now.
    pub queued_calls: usize,
    /// Linear memory of the live instances now, in bytes.
    pub memory_bytes: u64,
    /// When a call last started or ended.
    pub last_used: Option<DateTime<Utc>>,
    /// Load + instantiate for cold starts.
    pub cold_start_latency: HistogramSnapshot,
    /// Instantiate for new instances of the loaded plugin.
    pub instantiate_latency: HistogramSnapshot,
    /// Whole calls, start to result.
    pub call_latency: HistogramSnapshot,
    /// The last failed call.
    pub last_error: Option<LastError>,
}

impl PluginMetrics {
    /// Whether the plugin is in memory (hot or cooling).
    pub fn loaded(&self) -> bool {
        matches!(self.state, PluginState::Hot | PluginState::Cooling)
    }
}

/// What is counted for one live instance.
#[derive(Debug)]
pub struct InstanceStats {
    pub(super) serial: u64,
    pub(super) version: String,
    pub(super) created_at: DateTime<Utc>,
    /// Load (when the instance came with a cold start) and instantiate, in nanoseconds.
    pub(super) cold_start_ns: u64,
    pub(super) busy: AtomicBool,
    pub(super) last_used_ms: AtomicU64,
    pub(super) calls: AtomicU64,
    pub(super) handler_errors: AtomicU64,
    pub(super) memory_bytes: AtomicU64,
    pub(super) memory_peak_bytes: AtomicU64,
    pub(super) fuel_used: AtomicU64,
    pub(super) busy_ns: AtomicU64,
}

impl InstanceStats {
    pub(super) fn new(serial: u64, version: String, cold_start_ns: u64) -> Self {
        let now = Utc::now();
        Self {
            serial,
            version,
            created_at: now,
            cold_start_ns,
            busy: AtomicBool::new(false),
            last_used_ms: AtomicU64::new(now.timestamp_millis().max(0) as u64),
            calls: AtomicU64::new(0),
            handler_errors: AtomicU64::new(0),
            memory_bytes: AtomicU64::new(0),
            memory_peak_bytes: AtomicU64::new(0),
            fuel_used: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        }
    }

    fn snapshot(&self, plugin: &str) -> InstanceMetrics {
        let last_used = self.last_used_ms.load(Ordering::Relaxed);
        InstanceMetrics {
            id: format!("{plugin}#{}", self.serial),
            plugin: plugin.to_owned(),
            version: self.version.clone(),
            state: if self.busy.load(Ordering::Relaxed) {
                "busy"
            } else {
                "idle"
            }
            .to_owned(),
            created_at: self.created_at,
            last_used: DateTime::from_timestamp_millis(last_used as i64).unwrap_or(self.created_at),
            calls: self.calls.load(Ordering::Relaxed),
            handler_errors: self.handler_errors.load(Ordering::Relaxed),
            memory_bytes: self.memory_bytes.load(Ordering::Relaxed),
            memory_peak_bytes: self.memory_peak_bytes.load(Ordering::Relaxed),
            fuel_used: self.fuel_used.load(Ordering::Relaxed),
            busy_seconds: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)).as_secs_f64(),
            cold_start_us: self.cold_start_ns as f64 / 1e3,
        }
    }
}

/// A live instance as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct InstanceMetrics {
    /// `<plugin>#<serial>`: the name execution records give the instance.
    pub id: String,
    /// Its plugin.
    pub plugin: String,
    /// The plugin's version it runs.
    pub version: String,
    /// `busy` (in a call) or `idle` (kept for the next call).
    pub state: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a call on it last started or ended.
    pub last_used: DateTime<Utc>,
    /// Calls it served.
    pub calls: u64,
    /// Calls on it that the handler failed (instances that trap or time out are discarded, so
    /// those errors are counted per plugin).
    pub handler_errors: u64,
    /// Its linear memory now, in bytes (from the limiter).
    pub memory_bytes: u64,
    /// The most linear memory it has used, in bytes.
    pub memory_peak_bytes: u64,
    /// Fuel it burned, when the engine meters fuel.
    pub fuel_used: u64,
    /// Time spent in calls, in seconds.
    pub busy_seconds: f64,
    /// How long creating it took (load included when it came with a cold start), in µs.
    pub cold_start_us: f64,
}

/// The live instances of a plugin (busy or idle), by serial.
#[derive(Debug, Default)]
pub struct LiveInstances(Mutex<BTreeMap<u64, Arc<InstanceStats>>>);

impl LiveInstances {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<InstanceStats>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn add(&self, stats: Arc<InstanceStats>) {
        self.map().insert(stats.serial, stats);
    }

    pub(super) fn remove(&self, serial: u64) {
        self.map().remove(&serial);
    }

    /// Snapshots of every live instance.
    pub fn snapshot(&self, plugin: &str) -> Vec<InstanceMetrics> {
        self.map().values().map(|s| s.snapshot(plugin)).collect()
    }

    /// (live, busy, linear memory in bytes).
    pub(super) fn totals(&self) -> (usize, usize, u64) {
        let map = self.map();
        let busy = map
            .values()
            .filter(|s| s.busy.load(Ordering::Relaxed))
            .count();
        let memory = map
            .values()
            .map(|s| s.memory_bytes.load(Ordering::Relaxed))
            .sum();
        (map.len(), busy, memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = LatencyHistogram::default();
        for ns in [500, 1_000, 1_001, 2_000, 2_001, 1_000_000] {
            h.record(ns);
        }
        h.record(u64::MAX / 4);
        let s = h.snapshot();
        assert_eq!(s.count, 7);
        // 500 and 1000 in the first bucket (≤ 1 µs); 1001 in the next (≤ 1.41 µs).
        assert_eq!(&s.counts[..3], &[2, 1, 1]);
        assert_eq!(s.counts[2], 1, "2000 ns is at the 2 µs bound");
        assert_eq!(s.counts[BUCKETS - 1], 1, "the open bucket takes the rest");
        let b = s.prometheus_buckets();
        // ≤ 1 µs: 2; (1, 2] µs: 2 (bounds 1.41 and 2 merged); the open bucket: 1.
        assert_eq!(&b[..2], &[(1e-6, 2), (2e-6, 2)]);
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 7);
        assert_eq!(b.last().map(|x| x.1), Some(1));
        assert!(b.last().is_some_and(|x| x.0.is_infinite()));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
        // The median falls in the 1.41–2 µs bucket.
        assert!((1.414..=2.0).contains(&s.p50_us), "{}", s.p50_us);
        assert!(s.p99_us <= s.max_us);
        let empty = LatencyHistogram::default().snapshot();
        assert_eq!((empty.count, empty.p50_us, empty.mean_us), (0, 0.0, 0.0));
    }
}
