//! What the `fleet` import shows in a running host: its plugins and remote handlers with their
//! figures, pings, the remote handlers' own figures, the host and the machine, recent
//! executions per handler and the nodes. Read-only: it asks and never changes anything.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::bridge::{Connections, Registry, RemoteHandler};
use crate::runtime::bindings::WitTimestamp;
use crate::runtime::fleet::{
    FleetError, FleetView, HandlerExecutions, HandlerKind, HandlerStatus, HostStatus, NodeStatus,
    PingResult, PluginStatus, ProcessMetrics, RemoteStatus,
};
use crate::runtime::{InvokeError, Runtime};
use crate::store::Store;
use crate::telemetry::HostMetrics;

/// The largest `get_metrics` reply kept, in bytes.
const MAX_METRICS_BYTES: usize = 16 * 1024;

/// The fleet view of one host.
pub(super) struct HostFleet {
    /// The runtime that holds this view (not kept alive by it).
    pub runtime: std::sync::Weak<Runtime>,
    pub registry: Arc<Registry>,
    pub connections: Arc<Connections>,
    pub store: Store,
    pub metrics: Arc<HostMetrics>,
    /// How long stopped and lost nodes stay listed.
    pub forget_nodes_after: Duration,
}

fn stamp(t: DateTime<Utc>) -> WitTimestamp {
    WitTimestamp {
        seconds: t.timestamp(),
        nanoseconds: t.timestamp_subsec_nanos(),
    }
}

fn store_error(e: &crate::store::StoreError) -> FleetError {
    FleetError::Unavailable(format!("the store cannot answer: {e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl HostFleet {
    fn runtime(&self) -> Result<Arc<Runtime>, FleetError> {
        self.runtime
            .upgrade()
            .ok_or_else(|| FleetError::Unavailable("the host is stopping".into()))
    }

    fn remote(&self, name: &str) -> Option<RemoteHandler> {
        self.registry.get(name)
    }

    fn remote_status(&self, r: &RemoteHandler) -> RemoteStatus {
        let stats = self.connections.stats(&r.id);
        RemoteStatus {
            status: r.status.clone(),
            address: r.address.clone(),
            last_seen: stats.last_seen.map(stamp),
            last_round_trip_ms: stats.last_latency_ms,
            calls: stats.calls,
            errors: stats.errors,
        }
    }
}

/// A reply to `get_metrics`, read leniently: every figure is optional, the rest kept as text.
fn process_metrics(reply: &str) -> ProcessMetrics {
    let v: serde_json::Value = serde_json::from_str(reply).unwrap_or(serde_json::Value::Null);
    let num = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(serde_json::Value::as_f64))
    };
    let whole = |keys: &[&str]| num(keys).filter(|n| *n >= 0.0).map(|n| n as u64);
    let mut raw = reply.to_owned();
    if raw.len() > MAX_METRICS_BYTES {
        let mut end = MAX_METRICS_BYTES;
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        raw.truncate(end);
    }
    ProcessMetrics {
        rss_bytes: whole(&["rss_bytes", "memory_rss_bytes"]).or_else(|| {
            // The Python ScheduleZero's handlers reported megabytes.
            num(&["memory_mb", "rss_mb"]).map(|mb| (mb * 1024.0 * 1024.0) as u64)
        }),
        cpu_percent: num(&["cpu_percent"]),
        threads: whole(&["threads", "num_threads"]).map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        uptime_seconds: whole(&["uptime_seconds", "uptime"]),
        calls_served: whole(&["calls_served", "calls"]),
        status: v
            .get("status")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        raw,
    }
}

#[async_trait::async_trait]
impl FleetView for HostFleet {
    async fn handlers(&self) -> Result<Vec<HandlerStatus>, FleetError> {
        let mut out: Vec<HandlerStatus> = self
            .runtime()?
            .plugins()
            .iter()
            .map(|p| {
                let m = p.metrics();
                HandlerStatus {
                    name: p.name().to_owned(),
                    methods: p.info().methods.iter().map(|m| m.name.clone()).collect(),
                    kind: HandlerKind::Plugin(PluginStatus {
                        state: m.state.as_str().to_owned(),
                        instances: u32::try_from(m.live_instances).unwrap_or(u32::MAX),
                        busy: u32::try_from(m.busy_instances).unwrap_or(u32::MAX),
                        memory_bytes: m.memory_bytes,
                        calls: m.calls,
                        errors: m.errors.total,
                        cold_starts: m.cold_starts,
                        last_used: m.last_used.map(stamp),
                        last_error: m.last_error.map(|e| format!("{}: {}", e.code, e.message)),
                    }),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        let mut remote = self.registry.all();
        remote.sort_by(|a, b| a.id.cmp(&b.id));
        out.extend(remote.iter().map(|r| HandlerStatus {
            name: r.id.clone(),
            methods: r.methods.clone(),
            kind: HandlerKind::Remote(self.remote_status(r)),
        }));
        Ok(out)
    }

    async fn ping(
        &self,
        caller: &str,
        handler: &str,
        call_plugins: bool,
        timeout: Duration,
    ) -> Result<PingResult, FleetError> {
        if let Some(r) = self.remote(handler) {
            // It said it shut down, and has not registered since: nothing would answer.
            if r.status == crate::bridge::registry::OFFLINE {
                return Ok(PingResult {
                    alive: false,
                    round_trip_ms: None,
                    state: r.status,
                    error: Some("handler_offline: it reported itself offline".into()),
                });
            }
            let pinged = self.connections.ping(&r, timeout).await;
            let status = self
                .registry
                .get(handler)
                .map_or_else(|| r.status.clone(), |r| r.status);
            return Ok(match pinged {
                Ok(Some(rtt)) => PingResult {
                    alive: true,
                    round_trip_ms: Some(ms(rtt)),
                    state: status,
                    error: None,
                },
                // A call is in flight on it: it is plainly alive.
                Ok(None) => PingResult {
                    alive: true,
                    round_trip_ms: None,
                    state: status,
                    error: None,
                },
                Err(e) => PingResult {
                    alive: false,
                    round_trip_ms: None,
                    state: status,
                    error: Some(format!("{}: {e}", e.code())),
                },
            });
        }
        let runtime = self.runtime()?;
        let Some(plugin) = runtime.plugin(handler) else {
            return Err(FleetError::UnknownHandler(format!(
                "no plugin or remote handler named `{handler}`"
            )));
        };
        let state = |p: &crate::runtime::Plugin| p.metrics().state.as_str().to_owned();
        // A handler pinging itself is running: calling it again could only wait for its own
        // instance.
        if !call_plugins || handler == caller {
            return Ok(PingResult {
                alive: true,
                round_trip_ms: None,
                state: state(&plugin),
                error: None,
            });
        }
        let probed = runtime.probe(handler, timeout).await;
        let after = runtime.plugin(handler);
        let state = after.as_deref().map_or_else(|| "removed".to_owned(), state);
        Ok(match probed {
            Ok(took) => PingResult {
                alive: true,
                round_trip_ms: Some(ms(took)),
                state,
                error: None,
            },
            Err(e) => PingResult {
                alive: false,
                round_trip_ms: None,
                state,
                error: Some(format!("{}: {e}", e.code())),
            },
        })
    }

    async fn remote_metrics(
        &self,
        handler: &str,
        timeout: Duration,
    ) -> Result<Option<ProcessMetrics>, FleetError> {
        let Some(r) = self.remote(handler) else {
            return Err(if self.runtime()?.plugin(handler).is_some() {
                FleetError::UnknownHandler(format!(
                    "`{handler}` is a plugin: its figures are in `handlers`"
                ))
            } else {
                FleetError::UnknownHandler(format!("no remote handler named `{handler}`"))
            });
        };
        let run_id = format!("fleet-{}", uuid::Uuid::now_v7());
        match self
            .connections
            .call(&r, "get_metrics", "{}", &run_id, timeout)
            .await
        {
            Ok(reply) => Ok(Some(process_metrics(&reply))),
            // Handlers written for the Python ScheduleZero do not have it: not reported.
            Err(InvokeError::UnknownMethod(_)) => Ok(None),
            Err(e) => Err(FleetError::Unavailable(format!(
                "`{handler}` did not answer get_metrics: {}: {e}",
                e.code()
            ))),
        }
    }

    async fn host(&self) -> Result<HostStatus, FleetError> {
        let metrics = self.metrics.clone();
        let f = tokio::task::spawn_blocking(move || metrics.sample())
            .await
            .map_err(|e| FleetError::Unavailable(format!("sampling failed: {e}")))?;
        Ok(HostStatus {
            sampled_at: stamp(Utc::now()),
            process_rss_bytes: f.process.rss_bytes,
            process_cpu_percent: f64::from(f.process.cpu_percent),
            process_threads: f.process.threads,
            process_uptime_seconds: f.process.uptime_seconds,
            cpus: u32::try_from(f.system.cpus).unwrap_or(u32::MAX),
            cpu_percent: f64::from(f.system.cpu_percent),
            memory_total_bytes: f.system.memory_total_bytes,
            memory_used_bytes: f.system.memory_used_bytes,
            memory_available_bytes: f.system.memory_available_bytes,
            disk_total_bytes: f.disk.as_ref().map(|d| d.total_bytes),
            disk_available_bytes: f.disk.as_ref().map(|d| d.available_bytes),
        })
    }

    async fn executions(&self, window: Duration) -> Result<Vec<HandlerExecutions>, FleetError> {
        let since = Utc::now() - chrono::TimeDelta::from_std(window).unwrap_or_default();
        let rows = self
            .store
            .executions_by_handler_since(since)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(rows
            .into_iter()
            .map(|w| HandlerExecutions {
                handler: w.handler_id,
                total: w.total,
                success: w.success,
                failed: w.failed,
                running: w.running,
                mean_ms: w.mean_ms,
                max_ms: w.max_ms,
            })
            .collect())
    }

    async fn nodes(&self) -> Result<Vec<NodeStatus>, FleetError> {
        let me = self.store.node().id().to_owned();
        let nodes = self
            .store
            .nodes(self.forget_nodes_after)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(nodes
            .into_iter()
            .map(|n| NodeStatus {
                this_node: n.id == me,
                state: serde_json::to_value(n.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                id: n.id,
                name: n.name,
                version: n.version,
                in_flight: n.in_flight,
                heartbeat: stamp(n.heartbeat_at),
                plugins: n.plugins,
            })
            .collect())
    }

    async fn last_result(&self, plugin: &str, method: &str) -> Result<Option<String>, FleetError> {
        self.store
            .last_result(plugin, method)
            .await
            .map_err(|e| store_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_figures_are_read_leniently() {
        let m = process_metrics(
            r#"{"rss_bytes": 1048576, "cpu_percent": 2.5, "threads": 3, "uptime_seconds": 60,
                "calls_served": 7, "status": "ok", "extra": [1, 2]}"#,
        );
        assert_eq!(m.rss_bytes, Some(1_048_576));
        assert_eq!(m.cpu_percent, Some(2.5));
        assert_eq!(m.threads, Some(3));
        assert_eq!(m.uptime_seconds, Some(60));
        assert_eq!(m.calls_served, Some(7));
        assert_eq!(m.status.as_deref(), Some("ok"));
        assert!(m.raw.contains("extra"));
        // The original handlers' shape: megabytes.
        let old = process_metrics(r#"{"memory_mb": 18.5, "cpu_percent": 0.0}"#);
        assert_eq!(old.rss_bytes, Some((18.5 * 1024.0 * 1024.0) as u64));
        // Not JSON: nothing read, the text kept (bounded).
        let junk = process_metrics(&"x".repeat(MAX_METRICS_BYTES * 2));
        assert_eq!(junk.rss_bytes, None);
        assert_eq!(junk.raw.len(), MAX_METRICS_BYTES);
    }
}
