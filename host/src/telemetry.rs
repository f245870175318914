//! Host metrics and the Prometheus exposition. [`HostMetrics`] samples the process and the
//! machine (sysinfo: RSS, CPU, memory, load, the data directory's disk: what ScheduleZero's
//! `get_system_metrics` reported), at most once a second however often it is asked.
//! [`render`] writes the runtime's and the host's figures in the OpenMetrics text format, with
//! conventional names and units (`_seconds`, `_bytes`, `_total`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};

use crate::runtime::{HistogramSnapshot, PluginState, Runtime};

/// How long a sample is reused.
const SAMPLE_TTL: Duration = Duration::from_secs(1);

/// The host process, as sampled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProcessFigures {
    /// Its pid.
    pub pid: u32,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// Virtual memory, in bytes (the pooling allocator reserves a lot of address space).
    pub virtual_bytes: u64,
    /// CPU use since the previous sample, in percent of one core.
    pub cpu_percent: f32,
    /// CPU time used since it started, in seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Its threads.
    pub threads: Option<u64>,
    /// When it started, in seconds since the Unix epoch.
    pub start_time_seconds: u64,
    /// How long it has run, in seconds.
    pub uptime_seconds: u64,
}

/// The machine, as sampled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SystemFigures {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU use across all CPUs since the previous sample, in percent.
    pub cpu_percent: f32,
    /// Load average over 1, 5 and 15 minutes.
    pub load_average: [f64; 3],
    /// Memory in all, in bytes.
    pub memory_total_bytes: u64,
    /// Memory in use, in bytes.
    pub memory_used_bytes: u64,
    /// Memory available to new work, in bytes.
    pub memory_available_bytes: u64,
}

/// The disk the data directory is on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DiskFigures {
    /// Its mount point.
    #[schema(value_type = String)]
    pub mount_point: PathBuf,
    /// Its size, in bytes.
    pub total_bytes: u64,
    /// Space free for the host's user, in bytes.
    pub available_bytes: u64,
}

/// One sample of the host and the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HostFigures {
    /// The host process.
    pub process: ProcessFigures,
    /// The machine.
    pub system: SystemFigures,
    /// The data directory's disk, when it could be found.
    pub disk: Option<DiskFigures>,
}

/// Samples the host and the machine.
pub struct HostMetrics {
    data_dir: PathBuf,
    state: Mutex<Sampler>,
}

struct Sampler {
    system: Option<System>,
    pid: Option<Pid>,
    last: Option<(Instant, HostFigures)>,
}

impl HostMetrics {
    /// A sampler for this process; `data_dir` picks the disk reported.
    pub fn new(data_dir: &Path) -> Self {
        let system = System::new_with_specifics(RefreshKind::nothing())
            .map_err(|e| tracing::warn!(error = %e, "system figures unavailable"))
            .ok();
        let pid = sysinfo::get_current_pid().ok();
        Self {
            data_dir: data_dir.to_owned(),
            state: Mutex::new(Sampler {
                system,
                pid,
                last: None,
            }),
        }
    }

    /// The figures now (or from the last second).
    pub fn sample(&self) -> HostFigures {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, figures)) = &s.last
            && at.elapsed() < SAMPLE_TTL
        {
            return figures.clone();
        }
        let pid = s.pid;
        let figures = match s.system.as_mut() {
            Some(system) => HostFigures {
                process: process_figures(system, pid),
                system: system_figures(system),
                disk: disk_figures(&self.data_dir),
            },
            None => HostFigures::default(),
        };
        s.last = Some((Instant::now(), figures.clone()));
        figures
    }
}

fn process_figures(system: &mut System, pid: Option<Pid>) -> ProcessFigures {
    let Some(pid) = pid else {
        return ProcessFigures::default();
    };
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    let Some(p) = system.process(pid) else {
        return ProcessFigures::default();
    };
    ProcessFigures {
        pid: pid.as_u32(),
        rss_bytes: p.memory(),
        virtual_bytes: p.virtual_memory(),
        cpu_percent: p.cpu_usage(),
        cpu_seconds: p.accumulated_cpu_time() as f64 / 1e3,
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        threads: std::fs::read_dir("/proc/self/task")
            .ok()
            .map(|d| d.count() as u64),
        start_time_seconds: p.start_time(),
        uptime_seconds: p.run_time(),
    }
}

fn system_figures(system: &mut System) -> SystemFigures {
    system.refresh_memory();
    system.refresh_cpu_usage();
    let load = System::load_average().unwrap_or_default();
    SystemFigures {
        cpus: system.cpus().len(),
        cpu_percent: system.global_cpu_usage(),
        load_average: [load.one, load.five, load.fifteen],
        memory_total_bytes: system.total_memory(),
        memory_used_bytes: system.used_memory(),
        memory_available_bytes: system.available_memory(),
    }
}

/// The mounted disk holding `dir`: the longest mount point it is under.
fn disk_figures(dir: &Path) -> Option<DiskFigures> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let disks = Disks::new_with_refreshed_list().ok()?;
    disks
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| DiskFigures {
            mount_point: d.mount_point().to_owned(),
            total_bytes: d.total_space(),
            // The figure the free-space floor goes by, so the two never disagree.
            available_bytes: crate::storage::free_bytes(&dir).unwrap_or(d.available_space()),
        })
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A remote handler and what was seen of it, for the exposition.
pub type RemoteFigures = (
    crate::bridge::RemoteHandler,
    crate::bridge::client::RemoteStats,
);

/// Writes every metric in the OpenMetrics text format.
pub fn render(
    runtime: &Arc<Runtime>,
    host: &Arc<HostMetrics>,
    remote: Vec<RemoteFigures>,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures {
        runtime: runtime.clone(),
        host: host.clone(),
        remote,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Which histogram of a plugin's metrics.
type PickHistogram = fn(&crate::runtime::PluginMetrics) -> &HistogramSnapshot;
/// Reads one figure of a plugin.
type Pick = fn(&crate::runtime::PluginMetrics) -> u64;

/// Reads the runtime and the host at each scrape.
struct Figures {
    runtime: Arc<Runtime>,
    host: Arc<HostMetrics>,
    remote: Vec<RemoteFigures>,
}

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Figures")
    }
}

/// One metric family: its descriptor, then its samples.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    ty: MetricType,
    samples: impl FnOnce(&mut MetricEncoder<'_>) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, unit.as_ref(), ty)?;
    samples(&mut metric)
}

fn histogram(m: &mut MetricEncoder<'_>, plugin: &str, h: &HistogramSnapshot) -> std::fmt::Result {
    m.encode_family(&[("plugin", plugin)])?
        .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.prometheus_buckets(), None)
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let plugins: Vec<_> = self
            .runtime
            .plugins()
            .into_iter()
            .map(|p| (p.clone(), p.metrics()))
            .collect();
        encode_plugins(&mut enc, &plugins)?;
        encode_instances(&mut enc, &self.runtime, &plugins)?;
        encode_remote(&mut enc, &self.remote)?;
        encode_host(&mut enc, &self.host.sample())
    }
}

/// A plugin with its metrics as read at one scrape.
type PluginFigures = (Arc<crate::runtime::Plugin>, crate::runtime::PluginMetrics);

/// Each plugin: its version, state, counters, errors, gauges and latency histograms.
fn encode_plugins(enc: &mut DescriptorEncoder<'_>, plugins: &[PluginFigures]) -> std::fmt::Result {
    encode_plugin_identity(enc, plugins)?;
    encode_plugin_counters(enc, plugins)?;
    encode_plugin_load(enc, plugins)?;
    encode_plugin_http(enc, plugins)
}

/// Each plugin's outbound HTTP, by destination host.
fn encode_plugin_http(
    enc: &mut DescriptorEncoder<'_>,
    plugins: &[PluginFigures],
) -> std::fmt::Result {
    type PickTraffic = fn(&crate::runtime::Traffic) -> u64;
    let traffic: Vec<_> = plugins.iter().map(|(p, _)| (p, p.http_traffic())).collect();
    let families: [(&str, &str, Option<Unit>, PickTraffic); 5] = [
        (
            "schedulezero_plugin_http_requests",
            "Outbound HTTP requests sent, by destination host.",
            None,
            |t| t.requests,
        ),
        (
            "schedulezero_plugin_http_denied",
            "Outbound HTTP requests refused before anything was sent (not granted, an address not named, over the per-call count).",
            None,
            |t| t.denied,
        ),
        (
            "schedulezero_plugin_http_errors",
            "Outbound HTTP requests that failed (connection, TLS, timeout, too large).",
            None,
            |t| t.errors,
        ),
        (
            "schedulezero_plugin_http_sent",
            "Bytes of outbound request bodies.",
            Some(Unit::Bytes),
            |t| t.bytes_out,
        ),
        (
            "schedulezero_plugin_http_received",
            "Bytes of response bodies received.",
            Some(Unit::Bytes),
            |t| t.bytes_in,
        ),
    ];
    for (name, help, unit, pick) in families {
        family(enc, name, help, unit, MetricType::Counter, |m| {
            for (p, by_host) in &traffic {
                for (host, t) in by_host {
                    m.encode_family(&[("plugin", p.name()), ("host", host.as_str())])?
                        .encode_counter::<NoLabelSet, _, u64>(&pick(t), None)?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Each plugin's version and lifecycle state.
fn encode_plugin_identity(
    enc: &mut DescriptorEncoder<'_>,
    plugins: &[PluginFigures],
) -> std::fmt::Result {
    let gauge = MetricType::Gauge;

    family(
        enc,
        "schedulezero_plugin",
        "A WebAssembly plugin and the version of its file.",
        None,
        MetricType::Info,
        |m| {
            for (p, _) in plugins {
                m.encode_info(&[
                    ("plugin", p.name()),
                    ("version", p.info().version.as_str()),
                    ("sha256", p.file().sha256.as_str()),
                ])?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        "schedulezero_plugin_state",
        "1 for the lifecycle state the plugin is in, 0 for the others.",
        None,
        gauge,
        |m| {
            for (p, pm) in plugins {
                for state in PluginState::ALL {
                    m.encode_family(&[("plugin", p.name()), ("state", state.as_str())])?
                        .encode_gauge(&u64::from(pm.state == state))?;
                }
            }
            Ok(())
        },
    )?;

    Ok(())
}

/// Each plugin's counters and errors by kind.
fn encode_plugin_counters(
    enc: &mut DescriptorEncoder<'_>,
    plugins: &[PluginFigures],
) -> std::fmt::Result {
    let counter = MetricType::Counter;
    let counters: [(&str, &str, Pick); 8] = [
        (
            "schedulezero_plugin_calls",
            "Calls made to the plugin.",
            |m| m.calls,
        ),
        (
            "schedulezero_plugin_cold_starts",
            "Calls that loaded the plugin from its artifact first.",
            |m| m.cold_starts,
        ),
        (
            "schedulezero_plugin_warm_starts",
            "Calls served by an instance kept from an earlier call.",
            |m| m.warm_starts,
        ),
        (
            "schedulezero_plugin_instances_created",
            "Instances created.",
            |m| m.instances_created,
        ),
        (
            "schedulezero_plugin_instances_discarded",
            "Instances discarded after a trap, timeout or limit.",
            |m| m.instances_discarded,
        ),
        (
            "schedulezero_plugin_revivals",
            "Times a cooling plugin was taken back into use.",
            |m| m.revivals,
        ),
        (
            "schedulezero_plugin_unloads",
            "Times the plugin's memory was released.",
            |m| m.unloads,
        ),
        (
            "schedulezero_plugin_versions",
            "Versions of the plugin's file loaded.",
            |m| m.versions,
        ),
    ];
    for (name, help, pick) in counters {
        family(enc, name, help, None, counter, |m| {
            for (p, pm) in plugins {
                m.encode_family(&[("plugin", p.name())])?
                    .encode_counter::<NoLabelSet, _, u64>(&pick(pm), None)?;
            }
            Ok(())
        })?;
    }
    family(
        enc,
        "schedulezero_plugin_errors",
        "Failed calls, by kind.",
        None,
        counter,
        |m| {
            for (p, pm) in plugins {
                let e = &pm.errors;
                for (kind, n) in [
                    ("trap", e.trap),
                    ("timeout", e.timeout),
                    ("memory_limit", e.memory_limit),
                    ("fuel_exhausted", e.fuel_exhausted),
                    ("handler_error", e.handler_error),
                    ("queue_full", e.queue_full),
                ] {
                    m.encode_family(&[("plugin", p.name()), ("kind", kind)])?
                        .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Each plugin's instances, queue and memory now, and its latency histograms.
fn encode_plugin_load(
    enc: &mut DescriptorEncoder<'_>,
    plugins: &[PluginFigures],
) -> std::fmt::Result {
    let gauge = MetricType::Gauge;
    let gauges: [(&str, &str, Option<Unit>, Pick); 4] = [
        (
            "schedulezero_plugin_live_instances",
            "Instances alive now.",
            None,
            |m| m.live_instances as u64,
        ),
        (
            "schedulezero_plugin_busy_instances",
            "Instances in a call now.",
            None,
            |m| m.busy_instances as u64,
        ),
        (
            "schedulezero_plugin_queued_calls",
            "Calls waiting for an instance now.",
            None,
            |m| m.queued_calls as u64,
        ),
        (
            "schedulezero_plugin_memory",
            "Linear memory of the live instances.",
            Some(Unit::Bytes),
            |m| m.memory_bytes,
        ),
    ];
    for (name, help, unit, pick) in gauges {
        family(enc, name, help, unit, gauge, |m| {
            for (p, pm) in plugins {
                m.encode_family(&[("plugin", p.name())])?
                    .encode_gauge(&pick(pm))?;
            }
            Ok(())
        })?;
    }
    let histograms: [(&str, &str, PickHistogram); 3] = [
        (
            "schedulezero_plugin_cold_start",
            "Load and instantiate, for calls that found the plugin cold.",
            |m| &m.cold_start_latency,
        ),
        (
            "schedulezero_plugin_instantiate",
            "Instantiation, for calls that created an instance of the loaded plugin.",
            |m| &m.instantiate_latency,
        ),
        (
            "schedulezero_plugin_call_duration",
            "Calls, from arrival to result.",
            |m| &m.call_latency,
        ),
    ];
    for (name, help, pick) in histograms {
        family(
            enc,
            name,
            help,
            Some(Unit::Seconds),
            MetricType::Histogram,
            |m| {
                for (p, pm) in plugins {
                    histogram(m, p.name(), pick(pm))?;
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// Each live instance's memory, and the instance pool.
fn encode_instances(
    enc: &mut DescriptorEncoder<'_>,
    runtime: &Runtime,
    plugins: &[PluginFigures],
) -> std::fmt::Result {
    let gauge = MetricType::Gauge;
    family(
        enc,
        "schedulezero_instance_memory",
        "Linear memory of one live instance.",
        Some(Unit::Bytes),
        gauge,
        |m| {
            for (p, _) in plugins {
                for i in p.instances() {
                    m.encode_family(&[("plugin", p.name()), ("instance", i.id.as_str())])?
                        .encode_gauge(&i.memory_bytes)?;
                }
            }
            Ok(())
        },
    )?;
    let live: u64 = plugins.iter().map(|(_, m)| m.live_instances as u64).sum();
    family(
        enc,
        "schedulezero_pool_live_instances",
        "Instances alive now, all plugins.",
        None,
        gauge,
        |m| m.encode_gauge(&live),
    )?;
    let max = u64::from(runtime.config().pool.max_instances);
    family(
        enc,
        "schedulezero_pool_max_instances",
        "The most instances alive at once.",
        None,
        gauge,
        |m| m.encode_gauge(&max),
    )?;

    Ok(())
}

/// Each remote handler: up, calls, errors, last latency.
fn encode_remote(enc: &mut DescriptorEncoder<'_>, remote: &[RemoteFigures]) -> std::fmt::Result {
    let counter = MetricType::Counter;
    let gauge = MetricType::Gauge;
    family(
        enc,
        "schedulezero_remote_up",
        "1 while a remote handler answers (online), else 0.",
        None,
        gauge,
        |m| {
            for (h, _) in remote {
                m.encode_family(&[("handler", h.id.as_str())])?
                    .encode_gauge(&u64::from(h.status == crate::bridge::registry::ONLINE))?;
            }
            Ok(())
        },
    )?;
    type PickRemote = fn(&crate::bridge::client::RemoteStats) -> u64;
    let remote_counters: [(&str, &str, PickRemote); 2] = [
        (
            "schedulezero_remote_calls",
            "Calls made to a remote handler.",
            |s| s.calls,
        ),
        (
            "schedulezero_remote_errors",
            "Calls to a remote handler that failed.",
            |s| s.errors,
        ),
    ];
    for (name, help, pick) in remote_counters {
        family(enc, name, help, None, counter, |m| {
            for (h, stats) in remote {
                m.encode_family(&[("handler", h.id.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&pick(stats), None)?;
            }
            Ok(())
        })?;
    }
    family(
        enc,
        "schedulezero_remote_last_latency",
        "Round trip of a remote handler's last reply.",
        Some(Unit::Seconds),
        gauge,
        |m| {
            for (h, stats) in remote {
                if let Some(ms) = stats.last_latency_ms {
                    m.encode_family(&[("handler", h.id.as_str())])?
                        .encode_gauge(&(ms / 1e3))?;
                }
            }
            Ok(())
        },
    )?;

    Ok(())
}

/// The host process and the machine.
fn encode_host(enc: &mut DescriptorEncoder<'_>, h: &HostFigures) -> std::fmt::Result {
    let counter = MetricType::Counter;
    let gauge = MetricType::Gauge;
    let (p, s) = (&h.process, &h.system);
    family(
        enc,
        "process_cpu_seconds",
        "CPU time of the host process.",
        None,
        counter,
        |m| m.encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None),
    )?;
    // (name, help, unit, value): the host's gauges, those it could read.
    let mut host_gauges: Vec<(&str, &str, Option<Unit>, f64)> = vec![
        (
            "process_resident_memory",
            "Resident memory of the host process.",
            Some(Unit::Bytes),
            p.rss_bytes as f64,
        ),
        (
            "process_virtual_memory",
            "Virtual memory of the host process.",
            Some(Unit::Bytes),
            p.virtual_bytes as f64,
        ),
        (
            "process_start_time",
            "When the host process started, since the Unix epoch.",
            Some(Unit::Seconds),
            p.start_time_seconds as f64,
        ),
        (
            "schedulezero_system_memory_total",
            "Memory of the machine.",
            Some(Unit::Bytes),
            s.memory_total_bytes as f64,
        ),
        (
            "schedulezero_system_memory_available",
            "Memory of the machine available to new work.",
            Some(Unit::Bytes),
            s.memory_available_bytes as f64,
        ),
        (
            "schedulezero_system_cpu_usage",
            "CPU use of the machine since the previous sample.",
            Some(Unit::Ratios),
            f64::from(s.cpu_percent) / 100.0,
        ),
        (
            "schedulezero_system_load1",
            "Load average of the machine over one minute.",
            None,
            s.load_average[0],
        ),
    ];
    if let Some(fds) = p.open_fds {
        host_gauges.push((
            "process_open_fds",
            "Open file descriptors of the host process.",
            None,
            fds as f64,
        ));
    }
    if let Some(d) = &h.disk {
        host_gauges.push((
            "schedulezero_data_disk_total",
            "Size of the disk holding the data directory.",
            Some(Unit::Bytes),
            d.total_bytes as f64,
        ));
        host_gauges.push((
            "schedulezero_data_disk_available",
            "Free space on the disk holding the data directory.",
            Some(Unit::Bytes),
            d.available_bytes as f64,
        ));
    }
    for (name, help, unit, value) in host_gauges {
        family(enc, name, help, unit, gauge, |m| m.encode_gauge(&value))?;
    }
    Ok(())
}
