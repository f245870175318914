//! conductor: ScheduleZero's ConductorZero as a handler. It is scheduled like any job and sees
//! the other handlers only through the read-only `fleet` view the operator grants it; its
//! results land in the execution log, where the dashboard's Fleet view and scripts read them.
//!
//! ```toml
//! [plugins.conductor]
//! fleet = true                            # or { call_plugins = true } to ping plugins by a call
//! http = ["https://hooks.example.com"]    # for notify_on_unhealthy only
//! config = { webhook_url = "https://hooks.example.com/schedulezero" }
//! ```
//!
//! Scheduled as the original documents it:
//! `POST /api/schedule {"handler_id": "conductor", "job_method": "collect_metrics",
//! "trigger": {"type": "interval", "minutes": 5}}`.

use schedulezero_sdk::capabilities::{Capabilities, Fleet, Http, Setting};
use schedulezero_sdk::fleet::{self, HandlerKind, HandlerStatus};
use schedulezero_sdk::schemars::{self, JsonSchema};
use schedulezero_sdk::serde_json::{Map, Value, json};
use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods, config, export_handler, http};
use serde::Deserialize;

/// The default health below which `notify_on_unhealthy` reports, in percent.
const DEFAULT_THRESHOLD: f64 = 100.0;

#[derive(Default)]
struct Conductor;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PingParams {
    /// The handler to ping (a plugin's name or a remote handler's id).
    handler_id: String,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct CollectParams {
    /// Only these handlers; every handler when absent.
    handler_ids: Option<Vec<String>>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct NotifyParams {
    /// The health percentage below which the fleet is unhealthy (default 100: any handler down).
    threshold: Option<f64>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// Whether a handler is up, as far as its listing tells (a plugin that loads is; a remote
/// handler whose health checks answer is).
fn listed_alive(h: &HandlerStatus) -> bool {
    match &h.kind {
        HandlerKind::Plugin(p) => p.last_error.is_none() || p.calls > p.errors,
        HandlerKind::Remote(r) => r.status.eq_ignore_ascii_case("online"),
    }
}

impl Conductor {
    fn ping_handler(&mut self, _ctx: &JobContext, p: PingParams) -> Result<Value, HandlerError> {
        let r = fleet::ping(&p.handler_id)?;
        Ok(json!({
            "handler_id": p.handler_id,
            "alive": r.alive,
            "response_time_ms": r.round_trip_ms,
            "state": r.state,
            "error": r.error,
            "timestamp": now(),
        }))
    }

    fn collect_metrics(
        &mut self,
        _ctx: &JobContext,
        p: CollectParams,
    ) -> Result<Value, HandlerError> {
        let wanted = |name: &str| {
            p.handler_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| id == name))
        };
        let mut handlers = Map::new();
        let (mut alive, mut total, mut memory) = (0u64, 0u64, 0u64);
        for h in fleet::handlers()?.into_iter().filter(|h| wanted(&h.name)) {
            total += 1;
            let up = listed_alive(&h);
            alive += u64::from(up);
            let entry = match &h.kind {
                HandlerKind::Plugin(s) => {
                    memory += s.memory_bytes;
                    json!({
                        "kind": "plugin",
                        "alive": up,
                        "state": s.state,
                        "memory_mb": mib(s.memory_bytes),
                        "instances": s.instances,
                        "busy": s.busy,
                        "calls": s.calls,
                        "errors": s.errors,
                        "cold_starts": s.cold_starts,
                        "last_error": s.last_error,
                    })
                }
                HandlerKind::Remote(s) => {
                    // Only a handler that answers is asked for its own figures.
                    let reported = if up {
                        fleet::remote_metrics(&h.name).ok().flatten()
                    } else {
                        None
                    };
                    if let Some(rss) = reported.as_ref().and_then(|m| m.rss_bytes) {
                        memory += rss;
                    }
                    let process = match &reported {
                        Some(m) => json!({
                            "memory_mb": m.rss_bytes.map(mib),
                            "cpu_percent": m.cpu_percent.map(round1),
                            "threads": m.threads,
                            "uptime_seconds": m.uptime_seconds,
                            "calls_served": m.calls_served,
                            "status": m.status,
                        }),
                        None => json!("not reported"),
                    };
                    json!({
                        "kind": "remote",
                        "alive": up,
                        "status": s.status,
                        "address": s.address,
                        "last_round_trip_ms": s.last_round_trip_ms,
                        "calls": s.calls,
                        "errors": s.errors,
                        "metrics": process,
                    })
                }
            };
            handlers.insert(h.name.clone(), entry);
        }
        Ok(json!({
            "timestamp": now(),
            "handlers": handlers,
            "summary": {
                "total_handlers": total,
                "alive_count": alive,
                "total_memory_mb": mib(memory),
            },
        }))
    }

    fn get_system_metrics(
        &mut self,
        _ctx: &JobContext,
        _p: NoParams,
    ) -> Result<Value, HandlerError> {
        let h = fleet::host()?;
        let disk = match (h.disk_total_bytes, h.disk_available_bytes) {
            (Some(total), Some(free)) => {
                let used = total.saturating_sub(free);
                json!({"total": total, "free": free, "used": used, "percent": percent(used, total)})
            }
            _ => Value::Null,
        };
        Ok(json!({
            "cpu_percent": round1(h.cpu_percent),
            "cpus": h.cpus,
            "memory": {
                "total": h.memory_total_bytes,
                "available": h.memory_available_bytes,
                "used": h.memory_used_bytes,
                "percent": percent(h.memory_used_bytes, h.memory_total_bytes),
            },
            "disk": disk,
            "host": {
                "rss_bytes": h.process_rss_bytes,
                "cpu_percent": round1(h.process_cpu_percent),
                "threads": h.process_threads,
                "uptime_seconds": h.process_uptime_seconds,
            },
            "timestamp": now(),
        }))
    }

    fn health_check(&mut self, _ctx: &JobContext, _p: NoParams) -> Result<Value, HandlerError> {
        health()
    }

    fn notify_on_unhealthy(
        &mut self,
        ctx: &JobContext,
        p: NotifyParams,
    ) -> Result<Value, HandlerError> {
        let threshold = p.threshold.unwrap_or(DEFAULT_THRESHOLD);
        if !(0.0..=100.0).contains(&threshold) {
            return Err(HandlerError::invalid_params(
                "threshold is a percentage, between 0 and 100",
            ));
        }
        let report = health()?;
        let health = report["health_percentage"].as_f64().unwrap_or(0.0);
        let state = if health < threshold {
            "unhealthy"
        } else {
            "healthy"
        };
        // What the last successful run saw: a failed notification leaves it as it was, so the
        // next run tries again; a repeat of the same state sends nothing.
        let previous = fleet::last_result("notify_on_unhealthy")?
            .and_then(|text| {
                schedulezero_sdk::serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["state"].as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "healthy".to_owned());
        let changed = previous != state;
        let mut status = None;
        if changed {
            let url = config::require("webhook_url")?;
            let body = json!({
                "source": "schedulezero conductor",
                "state": state,
                "previous_state": previous,
                "threshold": threshold,
                "run_id": ctx.run_id,
                "health": report,
            });
            let response = http::post(url)
                // Retries of a run keep its id: the receiver can drop a repeat.
                .header("idempotency-key", ctx.run_id.as_str())
                .json(&body)?
                .send()?
                .error_for_status()?;
            status = Some(response.status());
        }
        Ok(json!({
            "state": state,
            "previous_state": previous,
            "changed": changed,
            "notified": status.is_some(),
            "webhook_status": status,
            "threshold": threshold,
            "health_percentage": health,
            "timestamp": now(),
        }))
    }
}

/// Pings every handler but this one, all at once.
fn health() -> Result<Value, HandlerError> {
    let names: Vec<String> = fleet::handlers()?
        .into_iter()
        .map(|h| h.name)
        .filter(|name| name != Conductor::NAME)
        .collect();
    let answers = fleet::ping_many(&names)?;
    let mut handlers = Map::new();
    let mut healthy = 0u64;
    let total = names.len() as u64;
    for (name, answer) in names.into_iter().zip(answers) {
        let entry = match answer {
            Ok(r) => {
                healthy += u64::from(r.alive);
                json!({
                    "alive": r.alive,
                    "response_time_ms": r.round_trip_ms,
                    "state": r.state,
                    "error": r.error,
                })
            }
            // Removed between the listing and the ping: down as far as this check can tell.
            Err(e) => json!({
                "alive": false,
                "response_time_ms": null,
                "state": "removed",
                "error": e.to_string(),
            }),
        };
        handlers.insert(name, entry);
    }
    Ok(json!({
        "timestamp": now(),
        "handlers": handlers,
        "healthy": healthy,
        "total": total,
        "health_percentage": if total == 0 { 100.0 } else { percent(healthy, total) },
    }))
}

impl Handler for Conductor {
    const NAME: &'static str = "conductor";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Watches the other handlers: pings them, collects their metrics and the machine's, checks their health and posts to a webhook when it drops.";
    const CAPABILITIES: Capabilities = Capabilities {
        http: &[Http::new(
            "*://*:*",
            "The webhook notify_on_unhealthy posts to: the operator grants its host.",
        )],
        config: &[Setting::value(
            "webhook_url",
            "Where notify_on_unhealthy posts a report when health changes.",
        )],
        fleet: Some(Fleet::new(
            "Lists, pings and measures the other handlers, the host and the machine.",
        )),
        ..Capabilities::NONE
    };

    fn methods(m: &mut Methods<Self>) {
        m.method(
            "ping_handler",
            "Pings one handler: alive, response time, state.",
            Self::ping_handler,
        );
        m.method(
            "collect_metrics",
            "Collects every handler's figures (remote handlers' own, when they report them) and a summary: total memory, alive count.",
            Self::collect_metrics,
        );
        m.method(
            "get_system_metrics",
            "The machine's CPU, memory and disk, and the host process's figures.",
            Self::get_system_metrics,
        );
        m.method(
            "health_check",
            "Pings every handler: alive, response time, error; healthy, total and health percentage.",
            Self::health_check,
        );
        m.method(
            "notify_on_unhealthy",
            "Checks health and posts a report to the granted webhook_url when it crosses the threshold, once per change.",
            Self::notify_on_unhealthy,
        );
    }
}

export_handler!(Conductor);
