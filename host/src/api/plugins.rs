//! The runtime as the API shows it: plugins with their lifecycle state, settings and metrics
//! (`/api/v1/plugins`, `/api/v1/plugins/{name}`), their live instances
//! (`/api/v1/plugins/{name}/instances`), what happened to them (`/api/v1/events`), the host's
//! and the runtime's figures (`/api/v1/metrics`), their last hour (`/api/v1/metrics/history`),
//! and the Prometheus exposition (`/metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::json::Query;
use super::{AppState, views};
use crate::runtime::{Plugin, PluginMetrics, PluginState};
use crate::telemetry;

type Shared = State<Arc<AppState>>;

/// The routes of this module.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/plugins", get(list))
        .route("/api/v1/plugins/{name}", get(one))
        .route("/api/v1/plugins/{name}/instances", get(instances))
        .route("/api/v1/events", get(events))
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/metrics/history", get(history))
        .route("/metrics", get(prometheus))
}

/// A plugin's settings, as the API shows them.
fn settings(p: &Plugin) -> Value {
    let s = p.settings();
    json!({
        "idle_timeout_ms": s.idle_timeout.as_millis() as u64,
        "max_instances": s.max_instances,
        "max_queued": s.max_queued,
        "reuse_instances": s.reuse_instances,
        "limits": {
            "timeout_ms": s.limits.timeout.as_millis() as u64,
            "memory_mib": s.limits.memory_mib,
            "fuel": s.limits.fuel,
            "max_result_bytes": s.limits.max_result_bytes,
            "max_output_bytes": s.limits.max_output_bytes,
        },
    })
}

/// A plugin with its metrics; `detail` adds methods and latency histograms.
fn plugin_json(p: &Plugin, m: &PluginMetrics, detail: bool) -> Value {
    let mut v = json!({
        "name": p.name(),
        "version": p.info().version,
        "description": p.info().description,
        "state": m.state,
        "file": p.file(),
        "loaded_at": views::utc(p.loaded_at()),
        "settings": settings(p),
        "calls": m.calls,
        "errors": m.errors,
        "cold_starts": m.cold_starts,
        "warm_starts": m.warm_starts,
        "instances_created": m.instances_created,
        "instances_discarded": m.instances_discarded,
        "revivals": m.revivals,
        "unloads": m.unloads,
        "versions": m.versions,
        "live_instances": m.live_instances,
        "busy_instances": m.busy_instances,
        "idle_instances": m.idle_instances,
        "queued_calls": m.queued_calls,
        "memory_bytes": m.memory_bytes,
        "last_used": m.last_used.map(views::utc),
        "last_error": m.last_error,
        "cold_start_us_p50": m.cold_start_latency.p50_us,
        "call_us_p50": m.call_latency.p50_us,
    });
    if detail && let Some(obj) = v.as_object_mut() {
        obj.insert("methods".into(), json!(p.info().methods));
        obj.insert(
            "latency".into(),
            json!({
                "cold_start": m.cold_start_latency,
                "instantiate": m.instantiate_latency,
                "call": m.call_latency,
            }),
        );
    }
    v
}

async fn list(State(state): Shared) -> Response {
    let plugins: Vec<Value> = state
        .runtime
        .plugins()
        .iter()
        .map(|p| plugin_json(p, &p.metrics(), false))
        .collect();
    let rejected: Vec<Value> = state
        .runtime
        .rejected()
        .iter()
        .map(|r| json!({ "file": r.path, "error": r.error.to_string() }))
        .collect();
    axum::Json(json!({ "plugins": plugins, "rejected": rejected })).into_response()
}

fn find(state: &AppState, name: &str) -> Result<Arc<Plugin>, ApiError> {
    state.runtime.plugin(name).ok_or_else(|| {
        ApiError::not_found(
            "plugin_not_found",
            format!("no plugin named `{name}` in the plugins folder"),
        )
    })
}

async fn one(State(state): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    let p = find(&state, &name)?;
    let m = p.metrics();
    let mut v = plugin_json(&p, &m, true);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("instances".into(), json!(p.instances()));
    }
    Ok(axum::Json(v).into_response())
}

async fn instances(State(state): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    let p = find(&state, &name)?;
    Ok(axum::Json(json!({ "plugin": p.name(), "instances": p.instances() })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
    plugin: Option<String>,
}

async fn events(State(state): Shared, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events: Vec<_> = state
        .runtime
        .events(q.after.unwrap_or(0), usize::MAX)
        .into_iter()
        .filter(|e| q.plugin.as_deref().is_none_or(|p| e.plugin == p))
        .take(limit)
        .collect();
    let next = events.last().map(|e| e.seq);
    axum::Json(json!({ "events": events, "next_after": next })).into_response()
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

async fn metrics(State(state): Shared) -> Response {
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
    let mut by_state: BTreeMap<&str, usize> =
        PluginState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for (_, m) in &plugins {
        *by_state.entry(m.state.as_str()).or_default() += 1;
    }
    let sum = |f: fn(&PluginMetrics) -> u64| plugins.iter().map(|(_, m)| f(m)).sum::<u64>();
    let per_plugin: BTreeMap<&str, Value> = plugins
        .iter()
        .map(|(p, m)| {
            (
                p.name(),
                json!({
                    "state": m.state,
                    "calls": m.calls,
                    "errors": m.errors.total,
                    "cold_starts": m.cold_starts,
                    "warm_starts": m.warm_starts,
                    "live_instances": m.live_instances,
                    "queued_calls": m.queued_calls,
                    "memory_bytes": m.memory_bytes,
                    "cold_start_us_p50": m.cold_start_latency.p50_us,
                    "call_us_p50": m.call_latency.p50_us,
                    "call_us_p99": m.call_latency.p99_us,
                }),
            )
        })
        .collect();
    axum::Json(json!({
        "host": host,
        "runtime": {
            "allocator": state.runtime.allocator(),
            "plugins": plugins.len(),
            "plugins_by_state": by_state,
            "rejected_plugins": state.runtime.rejected().len(),
            "max_instances": state.config.pool.max_instances,
            "live_instances": sum(|m| m.live_instances as u64),
            "busy_instances": sum(|m| m.busy_instances as u64),
            "queued_calls": sum(|m| m.queued_calls as u64),
            "instance_memory_bytes": sum(|m| m.memory_bytes),
            "calls": sum(|m| m.calls),
            "errors": sum(|m| m.errors.total),
            "cold_starts": sum(|m| m.cold_starts),
            "warm_starts": sum(|m| m.warm_starts),
        },
        "plugins": per_plugin,
        "remote_handlers": remote(&state)
            .into_iter()
            .map(|(h, stats)| {
                (
                    h.id.clone(),
                    json!({
                        "status": h.status,
                        "address": h.address,
                        "methods": h.methods,
                        "calls": stats.calls,
                        "errors": stats.errors,
                        "last_latency_ms": stats.last_latency_ms,
                        "last_seen": stats.last_seen.map(views::utc),
                    }),
                )
            })
            .collect::<serde_json::Map<String, Value>>(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    after: Option<chrono::DateTime<chrono::Utc>>,
}

async fn history(State(state): Shared, Query(q): Query<HistoryQuery>) -> Response {
    axum::Json(json!({
        "interval_s": state.history.interval().as_secs_f64(),
        "span_s": crate::history::SPAN.as_secs(),
        "samples": state.history.after(q.after),
    }))
    .into_response()
}

async fn prometheus(State(state): Shared) -> Result<Response, ApiError> {
    let text = telemetry::render(&state.runtime, &state.host_metrics, remote(&state))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)], text).into_response())
}
