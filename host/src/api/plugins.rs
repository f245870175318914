//! The runtime as the API shows it: plugins with their lifecycle state, settings and metrics
//! (`/api/v1/plugins`, `/api/v1/plugins/{name}`), their live instances
//! (`/api/v1/plugins/{name}/instances`), what happened to them (`/api/v1/events`), the host's
//! and the runtime's figures (`/api/v1/metrics`), their last hour (`/api/v1/metrics/history`),
//! and the Prometheus exposition (`/metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::json::Query;
use super::views::{CompilingPlugin, Rejected};
use crate::history::Sample;
use crate::runtime::{
    AllocatorKind, ErrorCounts, HistogramSnapshot, InstanceMetrics, LastError, MethodInfo, Plugin,
    PluginEvent, PluginFile, PluginMetrics, PluginState,
};
use crate::telemetry::{self, HostFigures};

type Shared = State<Arc<AppState>>;

super::routes::api_routes! {
    (get, "/api/v1/plugins", list),
    (get, "/api/v1/plugins/{name}", one),
    (get, "/api/v1/plugins/{name}/instances", instances),
    (get, "/api/v1/events", events),
    (get, "/api/v1/metrics", metrics),
    (get, "/api/v1/metrics/history", history),
    (get, "/metrics", prometheus),
}

/// A call's limits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LimitsView {
    /// Wall-clock time a call may take, in milliseconds.
    pub timeout_ms: u64,
    /// The most linear memory an instance may use, in MiB.
    pub memory_mib: u64,
    /// Fuel a call may burn; `null`: unmetered.
    pub fuel: Option<u64>,
    /// The largest result, in bytes.
    pub max_result_bytes: usize,
    /// The most output a call may write, in bytes.
    pub max_output_bytes: usize,
}

/// A plugin's settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    /// How long without a call before it cools down, in milliseconds.
    pub idle_timeout_ms: u64,
    /// The most live instances.
    pub max_instances: u32,
    /// The most calls waiting for an instance.
    pub max_queued: u32,
    /// Whether an instance serves more than one call.
    pub reuse_instances: bool,
    /// Limits on each call.
    pub limits: LimitsView,
}

/// Latency histograms of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LatencyView {
    /// Load + instantiate, for cold starts.
    pub cold_start: HistogramSnapshot,
    /// Instantiate, for new instances of the loaded plugin.
    pub instantiate: HistogramSnapshot,
    /// Whole calls.
    pub call: HistogramSnapshot,
}

/// A plugin with its lifecycle state, settings and counters; one plugin's view adds its
/// methods, latency histograms and live instances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    /// Its name (the file's, without `.wasm`).
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// Its lifecycle state.
    pub state: PluginState,
    /// Its file.
    pub file: PluginFile,
    /// When this version was loaded.
    #[serde(with = "crate::time::rfc3339")]
    pub loaded_at: DateTime<Utc>,
    /// Its settings.
    pub settings: SettingsView,
    /// Calls made.
    pub calls: u64,
    /// Failed calls, by kind.
    pub errors: ErrorCounts,
    /// Calls that loaded it first.
    pub cold_starts: u64,
    /// Calls served by a kept instance.
    pub warm_starts: u64,
    /// Instances created.
    pub instances_created: u64,
    /// Instances thrown away after a trap, timeout or limit.
    pub instances_discarded: u64,
    /// Times a cooling plugin was taken back into use.
    pub revivals: u64,
    /// Times it cooled down to cold.
    pub unloads: u64,
    /// Versions of the file loaded.
    pub versions: u64,
    /// Instances alive now.
    pub live_instances: usize,
    /// Instances busy now.
    pub busy_instances: usize,
    /// Instances idle now.
    pub idle_instances: usize,
    /// Calls waiting for an instance now.
    pub queued_calls: usize,
    /// Linear memory of the live instances, in bytes.
    pub memory_bytes: u64,
    /// When a call last started or ended.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub last_used: Option<DateTime<Utc>>,
    /// The last failed call.
    pub last_error: Option<LastError>,
    /// Median cold start, in microseconds.
    pub cold_start_us_p50: f64,
    /// Median call, in microseconds.
    pub call_us_p50: f64,
    /// Its methods (one plugin's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<MethodInfo>>,
    /// Its latency histograms (one plugin's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyView>,
    /// Its live instances (one plugin's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceMetrics>>,
    /// What its component requests, each with the grants that meet it (none: missing), and
    /// grants it does not request (`/grants` has the history of changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<crate::capability::Review>,
    /// Its outbound HTTP since the host started, by destination host (`host:port`).
    pub http: BTreeMap<String, crate::runtime::Traffic>,
    /// Its component's signature, against the trusted keys when it was loaded.
    #[serde(default)]
    pub signature: crate::trust::Verdict,
}

impl PluginView {
    /// `p` with its metrics `m`; `detail` adds methods, histograms and instances.
    fn of(p: &Plugin, m: &PluginMetrics, detail: bool) -> Self {
        let s = p.settings();
        Self {
            name: p.name().to_owned(),
            signature: p.signature().clone(),
            version: p.info().version.clone(),
            description: p.info().description.clone(),
            state: m.state,
            file: p.file().clone(),
            loaded_at: p.loaded_at(),
            settings: SettingsView {
                idle_timeout_ms: s.idle_timeout.as_millis() as u64,
                max_instances: s.max_instances,
                max_queued: s.max_queued,
                reuse_instances: s.reuse_instances,
                limits: LimitsView {
                    timeout_ms: s.limits.timeout.as_millis() as u64,
                    memory_mib: s.limits.memory_mib,
                    fuel: s.limits.fuel,
                    max_result_bytes: s.limits.max_result_bytes,
                    max_output_bytes: s.limits.max_output_bytes,
                },
            },
            calls: m.calls,
            errors: m.errors.clone(),
            cold_starts: m.cold_starts,
            warm_starts: m.warm_starts,
            instances_created: m.instances_created,
            instances_discarded: m.instances_discarded,
            revivals: m.revivals,
            unloads: m.unloads,
            versions: m.versions,
            live_instances: m.live_instances,
            busy_instances: m.busy_instances,
            idle_instances: m.idle_instances,
            queued_calls: m.queued_calls,
            memory_bytes: m.memory_bytes,
            last_used: m.last_used,
            last_error: m.last_error.clone(),
            cold_start_us_p50: m.cold_start_latency.p50_us,
            call_us_p50: m.call_latency.p50_us,
            methods: detail.then(|| p.info().methods.clone()),
            latency: detail.then(|| LatencyView {
                cold_start: m.cold_start_latency.clone(),
                instantiate: m.instantiate_latency.clone(),
                call: m.call_latency.clone(),
            }),
            instances: detail.then(|| p.instances()),
            capabilities: None,
            http: p.http_traffic(),
        }
    }
}

/// The plugins, and the files refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    /// The plugins.
    pub plugins: Vec<PluginView>,
    /// Files in the plugins folder that are not usable plugins.
    pub rejected: Vec<Rejected>,
    /// Files being compiled in the background (new or changed); each becomes a plugin (or is
    /// rejected) when done, and calls for it wait for it meanwhile.
    pub compiling: Vec<CompilingPlugin>,
}

/// Every plugin with its state, settings and counters.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", operation_id = "listPlugins",
    responses((status = 200, description = "The plugins", body = PluginList)))]
async fn list(State(state): Shared) -> Json<PluginList> {
    Json(PluginList {
        plugins: state
            .runtime
            .plugins()
            .iter()
            .map(|p| {
                let mut view = PluginView::of(p, &p.metrics(), false);
                view.capabilities = state.runtime.review(p.name());
                view
            })
            .collect(),
        rejected: Rejected::all(&state.runtime),
        compiling: CompilingPlugin::all(&state.runtime),
    })
}

/// The plugin `name`, or `plugin_not_found`.
pub(crate) fn find(state: &AppState, name: &str) -> Result<Arc<Plugin>, ApiError> {
    state.runtime.plugin(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::PluginNotFound,
            format!("no plugin named `{name}` in the plugins folder"),
        )
    })
}

/// One plugin, with its methods, latency histograms and live instances.
#[utoipa::path(get, path = "/api/v1/plugins/{name}", tag = "plugins", operation_id = "getPlugin",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The plugin", body = PluginView),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    ))]
async fn one(State(state): Shared, Path(name): Path<String>) -> Result<Json<PluginView>, ApiError> {
    let p = find(&state, &name)?;
    let mut view = PluginView::of(&p, &p.metrics(), true);
    view.capabilities = state.runtime.review(&name);
    Ok(Json(view))
}

/// A plugin's live instances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    /// The plugin.
    pub plugin: String,
    /// Its live instances.
    pub instances: Vec<InstanceMetrics>,
}

/// A plugin's live instances: memory, calls, busy time of each.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/instances", tag = "plugins", operation_id = "pluginInstances",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The instances", body = InstanceList),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    ))]
async fn instances(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<InstanceList>, ApiError> {
    let p = find(&state, &name)?;
    Ok(Json(InstanceList {
        plugin: p.name().to_owned(),
        instances: p.instances(),
    }))
}

/// Which events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events after this one (the `next_after` of the previous page).
    after: Option<u64>,
    /// How many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only this plugin's.
    plugin: Option<String>,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// The events, oldest first.
    pub events: Vec<PluginEvent>,
    /// The `after` of the next page.
    pub next_after: Option<u64>,
}

/// What happened to plugins: files added, replaced, removed or rejected, and lifecycle
/// transitions.
#[utoipa::path(get, path = "/api/v1/events", tag = "plugins", operation_id = "events",
    params(EventsQuery),
    responses((status = 200, description = "A page of events", body = EventList)))]
async fn events(State(state): Shared, Query(q): Query<EventsQuery>) -> Json<EventList> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events: Vec<_> = state
        .runtime
        .events(q.after.unwrap_or(0), usize::MAX)
        .into_iter()
        .filter(|e| q.plugin.as_deref().is_none_or(|p| e.plugin == p))
        .take(limit)
        .collect();
    let next_after = events.last().map(|e| e.seq);
    Json(EventList { events, next_after })
}

/// Every remote handler with what was seen of it.
fn remote(state: &AppState) -> Vec<telemetry::RemoteFigures> {
    state
        .registry
        .all()
        .into_iter()
        .map(|h| {
            let stats = state.connections.stats(&h.id);
            (h, stats)
        })
        .collect()
}

/// The runtime's totals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuntimeTotals {
    /// The instance allocator.
    pub allocator: AllocatorKind,
    /// Plugins loaded.
    pub plugins: usize,
    /// Plugins by lifecycle state.
    pub plugins_by_state: BTreeMap<String, usize>,
    /// Files refused.
    pub rejected_plugins: usize,
    /// The most live instances across all plugins.
    pub max_instances: u32,
    /// Instances alive now.
    pub live_instances: u64,
    /// Instances busy now.
    pub busy_instances: u64,
    /// Calls waiting for an instance now.
    pub queued_calls: u64,
    /// Linear memory of the live instances, in bytes.
    pub instance_memory_bytes: u64,
    /// Calls made.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Warm starts.
    pub warm_starts: u64,
}

/// One plugin's summary in the metrics.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginSummary {
    /// Its lifecycle state.
    pub state: PluginState,
    /// Calls made.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Warm starts.
    pub warm_starts: u64,
    /// Instances alive now.
    pub live_instances: usize,
    /// Calls waiting now.
    pub queued_calls: usize,
    /// Linear memory of its live instances, in bytes.
    pub memory_bytes: u64,
    /// Median cold start, in microseconds.
    pub cold_start_us_p50: f64,
    /// Median call, in microseconds.
    pub call_us_p50: f64,
    /// 99th percentile call, in microseconds.
    pub call_us_p99: f64,
    /// Its outbound HTTP since the host started, by destination host (`host:port`).
    pub http: BTreeMap<String, crate::runtime::Traffic>,
}

/// One remote handler's summary in the metrics.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteSummary {
    /// `online`, `unreachable` or `offline`.
    pub status: String,
    /// Its endpoint.
    pub address: String,
    /// Its methods.
    pub methods: Vec<String>,
    /// Calls made.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// The last round trip, in milliseconds.
    pub last_latency_ms: Option<f64>,
    /// When it last answered.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// The host's, the runtime's, each plugin's and each remote handler's figures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Metrics {
    /// The host process and the machine.
    pub host: HostFigures,
    /// The runtime's totals.
    pub runtime: RuntimeTotals,
    /// Each plugin, by name.
    pub plugins: BTreeMap<String, PluginSummary>,
    /// Each remote handler, by id.
    pub remote_handlers: BTreeMap<String, RemoteSummary>,
}

/// The host process and machine, the runtime's totals, a summary per plugin and per remote
/// handler.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "plugins", operation_id = "metrics",
    responses((status = 200, description = "The figures", body = Metrics)))]
async fn metrics(State(state): Shared) -> Json<Metrics> {
    let host = state.host_metrics.sample();
    let plugins: Vec<(Arc<Plugin>, PluginMetrics)> = state
        .runtime
        .plugins()
        .into_iter()
        .map(|p| {
            let m = p.metrics();
            (p, m)
        })
        .collect();
    let mut by_state: BTreeMap<String, usize> = PluginState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for (_, m) in &plugins {
        *by_state.entry(m.state.as_str().to_owned()).or_default() += 1;
    }
    let sum = |f: fn(&PluginMetrics) -> u64| plugins.iter().map(|(_, m)| f(m)).sum::<u64>();
    let runtime = RuntimeTotals {
        allocator: state.runtime.allocator(),
        plugins: plugins.len(),
        plugins_by_state: by_state,
        rejected_plugins: state.runtime.rejected().len(),
        max_instances: state.config.pool.max_instances,
        live_instances: sum(|m| m.live_instances as u64),
        busy_instances: sum(|m| m.busy_instances as u64),
        queued_calls: sum(|m| m.queued_calls as u64),
        instance_memory_bytes: sum(|m| m.memory_bytes),
        calls: sum(|m| m.calls),
        errors: sum(|m| m.errors.total),
        cold_starts: sum(|m| m.cold_starts),
        warm_starts: sum(|m| m.warm_starts),
    };
    let per_plugin = plugins
        .iter()
        .map(|(p, m)| {
            (
                p.name().to_owned(),
                PluginSummary {
                    state: m.state,
                    calls: m.calls,
                    errors: m.errors.total,
                    cold_starts: m.cold_starts,
                    warm_starts: m.warm_starts,
                    live_instances: m.live_instances,
                    queued_calls: m.queued_calls,
                    memory_bytes: m.memory_bytes,
                    cold_start_us_p50: m.cold_start_latency.p50_us,
                    call_us_p50: m.call_latency.p50_us,
                    call_us_p99: m.call_latency.p99_us,
                    http: p.http_traffic(),
                },
            )
        })
        .collect();
    let remote_handlers = remote(&state)
        .into_iter()
        .map(|(h, stats)| {
            (
                h.id.clone(),
                RemoteSummary {
                    status: h.status.clone(),
                    address: h.address.clone(),
                    methods: h.methods.clone(),
                    calls: stats.calls,
                    errors: stats.errors,
                    last_latency_ms: stats.last_latency_ms,
                    last_seen: stats.last_seen,
                },
            )
        })
        .collect();
    Json(Metrics {
        host,
        runtime,
        plugins: per_plugin,
        remote_handlers,
    })
}

/// From when.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only samples after this.
    after: Option<DateTime<Utc>>,
}

/// The host's figures over the last hour.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    /// Seconds between samples.
    pub interval_s: f64,
    /// Seconds the history reaches back.
    pub span_s: u64,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
}

/// The host's figures over the last hour, a sample per interval.
#[utoipa::path(get, path = "/api/v1/metrics/history", tag = "plugins", operation_id = "metricsHistory",
    params(HistoryQuery),
    responses((status = 200, description = "The samples", body = HistoryView)))]
async fn history(State(state): Shared, Query(q): Query<HistoryQuery>) -> Json<HistoryView> {
    Json(HistoryView {
        interval_s: state.history.interval().as_secs_f64(),
        span_s: crate::history::SPAN.as_secs(),
        samples: state.history.after(q.after),
    })
}

/// The same figures in the OpenMetrics text format, for Prometheus.
#[utoipa::path(get, path = "/metrics", tag = "plugins", operation_id = "prometheus",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
async fn prometheus(State(state): Shared) -> Result<Response, ApiError> {
    let text = telemetry::render(&state.runtime, &state.host_metrics, remote(&state))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)], text).into_response())
}
