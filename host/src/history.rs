//! The metrics history behind the dashboard's charts: every `server.history_interval` the host
//! samples its memory and CPU, its live instances and their memory, and what its plugins did
//! since the previous sample (calls, errors, cold starts, and the mean latency of those cold
//! starts and calls). An hour of samples is kept in memory and served at
//! `/api/v1/metrics/history`; a host that restarts starts a new history (the execution log,
//! which is durable, gives the longer view).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::background::Stop;
use crate::runtime::{PluginMetrics, PluginState, Runtime};
use crate::telemetry::{HostFigures, HostMetrics};

/// How far back the history reaches.
pub const SPAN: Duration = Duration::from_secs(3600);

/// One sample: the host as it was at `at`, and what happened since the previous sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Sample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The host's resident memory, in bytes.
    pub rss_bytes: u64,
    /// The host's CPU use since the previous sample, in percent of one core (from the CPU
    /// time it used, whoever else samples the host meanwhile).
    pub cpu_percent: f32,
    /// Live instances, all plugins.
    pub live_instances: u64,
    /// Their linear memory, in bytes.
    pub instance_memory_bytes: u64,
    /// Calls made since the previous sample.
    pub calls: u64,
    /// Calls that failed since the previous sample.
    pub errors: u64,
    /// Cold starts since the previous sample.
    pub cold_starts: u64,
    /// Their mean latency, in microseconds (none without cold starts).
    pub cold_start_us_mean: Option<f64>,
    /// The mean latency of the calls since the previous sample, in microseconds.
    pub call_us_mean: Option<f64>,
    /// Plugins with live instances, by name.
    pub plugins: BTreeMap<String, PluginSample>,
}

/// A plugin with live instances, in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PluginSample {
    /// Its lifecycle state.
    pub state: PluginState,
    /// Its live instances.
    pub live_instances: u64,
    /// Their linear memory, in bytes.
    pub memory_bytes: u64,
}

/// The samples of the last hour.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// An empty history sampled every `interval`.
    pub fn new(interval: Duration) -> Self {
        let per_span = SPAN.as_secs_f64() / interval.as_secs_f64().max(0.001);
        let capacity = (per_span.ceil() as usize).clamp(1, 36_000);
        Self {
            interval,
            capacity,
            samples: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    /// How often it is sampled.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Adds a sample, dropping the oldest beyond an hour's worth.
    pub fn record(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        while samples.len() >= self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples taken after `after` (all of them without it), oldest first.
    pub fn after(&self, after: Option<DateTime<Utc>>) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .filter(|s| after.is_none_or(|a| s.at > a))
            .cloned()
            .collect()
    }
}

/// A plugin's counters as last seen, to tell what happened since.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    calls: u64,
    errors: u64,
    cold_starts: u64,
    cold_count: u64,
    cold_seconds: f64,
    call_count: u64,
    call_seconds: f64,
}

impl Totals {
    fn of(m: &PluginMetrics) -> Self {
        Self {
            calls: m.calls,
            errors: m.errors.total,
            cold_starts: m.cold_starts,
            cold_count: m.cold_start_latency.count,
            cold_seconds: m.cold_start_latency.sum_seconds,
            call_count: m.call_latency.count,
            call_seconds: m.call_latency.sum_seconds,
        }
    }
}

/// Turns the runtime's counters, which only grow, into what happened between two samples.
#[derive(Debug, Default)]
pub struct Recorder {
    previous: HashMap<String, Totals>,
    /// When the previous sample was taken, and the CPU seconds the host had used by then.
    cpu: Option<(DateTime<Utc>, f64)>,
}

impl Recorder {
    /// A recorder whose first sample counts from now (`host` as it is now).
    pub fn new(runtime: &Runtime, host: &HostFigures) -> Self {
        let mut recorder = Self {
            cpu: Some((Utc::now(), host.process.cpu_seconds)),
            ..Self::default()
        };
        for p in runtime.plugins() {
            recorder
                .previous
                .insert(p.name().to_owned(), Totals::of(&p.metrics()));
        }
        recorder
    }

    /// The sample for now.
    pub fn sample(&mut self, runtime: &Runtime, host: &HostFigures, at: DateTime<Utc>) -> Sample {
        let cpu_percent = match self.cpu {
            Some((then, used)) if at > then => {
                let wall = (at - then).as_seconds_f64();
                ((host.process.cpu_seconds - used).max(0.0) / wall * 100.0) as f32
            }
            _ => host.process.cpu_percent,
        };
        self.cpu = Some((at, host.process.cpu_seconds));
        let mut sample = Sample {
            at,
            rss_bytes: host.process.rss_bytes,
            cpu_percent,
            ..Sample::default()
        };
        let (mut cold_count, mut cold_seconds, mut call_count, mut call_seconds) = (0, 0.0, 0, 0.0);
        let mut seen = HashMap::new();
        for p in runtime.plugins() {
            let m = p.metrics();
            let now = Totals::of(&m);
            let before = self.previous.get(p.name()).copied().unwrap_or_default();
            sample.calls += now.calls.saturating_sub(before.calls);
            sample.errors += now.errors.saturating_sub(before.errors);
            sample.cold_starts += now.cold_starts.saturating_sub(before.cold_starts);
            if now.cold_count > before.cold_count {
                cold_count += now.cold_count - before.cold_count;
                cold_seconds += (now.cold_seconds - before.cold_seconds).max(0.0);
            }
            if now.call_count > before.call_count {
                call_count += now.call_count - before.call_count;
                call_seconds += (now.call_seconds - before.call_seconds).max(0.0);
            }
            let live = m.live_instances as u64;
            sample.live_instances += live;
            sample.instance_memory_bytes += m.memory_bytes;
            if live > 0 {
                sample.plugins.insert(
                    p.name().to_owned(),
                    PluginSample {
                        state: m.state,
                        live_instances: live,
                        memory_bytes: m.memory_bytes,
                    },
                );
            }
            seen.insert(p.name().to_owned(), now);
        }
        let mean_us = |count: u64, seconds: f64| (count > 0).then(|| seconds * 1e6 / count as f64);
        sample.cold_start_us_mean = mean_us(cold_count, cold_seconds);
        sample.call_us_mean = mean_us(call_count, call_seconds);
        self.previous = seen;
        sample
    }
}

/// Samples into `history` every interval until `stop`.
pub async fn run(
    history: Arc<History>,
    runtime: Arc<Runtime>,
    host: Arc<HostMetrics>,
    mut stop: Stop,
) {
    let mut recorder = Recorder::new(&runtime, &host.sample());
    let mut ticks = tokio::time::interval(history.interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait() => return,
        }
        let figures = host.sample();
        history.record(recorder.sample(&runtime, &figures, Utc::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: DateTime<Utc>) -> Sample {
        Sample {
            at,
            ..Sample::default()
        }
    }

    #[test]
    fn an_hour_is_kept_and_read_after_a_time() {
        let h = History::new(Duration::from_secs(60));
        let t0 = Utc::now();
        for i in 0..100 {
            h.record(sample(t0 + chrono::Duration::seconds(60 * i)));
        }
        let all = h.after(None);
        assert_eq!(all.len(), 60);
        assert_eq!(all[0].at, t0 + chrono::Duration::seconds(60 * 40));
        let later = h.after(Some(t0 + chrono::Duration::seconds(60 * 97)));
        assert_eq!(later.len(), 2);
        assert_eq!(later[0].at, t0 + chrono::Duration::seconds(60 * 98));
    }
}
