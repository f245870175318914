//! The `fleet` capability and the conductor: a real host, the real conductor component, real
//! remote handlers over ZeroMQ and a webhook receiver on 127.0.0.1. Beside each allowed case,
//! the refusal: no grant, no request in the manifest, past the per-call limit, no webhook grant.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::bridge::{PYTHON_WORKER, endpoint, python_peer, rust_peer};
use crate::host::TestHost;
use crate::support::{TestConfig, builtin_plugins};

/// A webhook receiver: a real HTTP server on 127.0.0.1 that keeps every body posted to it.
struct Webhook {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    async fn start() -> Self {
        async fn receive(State(seen): State<Arc<Mutex<Vec<Value>>>>, body: String) -> &'static str {
            let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
            seen.lock().unwrap().push(v);
            "ok"
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(seen.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen, task }
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

/// Calls `method` of the conductor on `host`; the reply's `result`, or its `error`.
async fn conductor(host: &TestHost, method: &str, params: Value) -> Result<Value, Value> {
    let (status, v) = host
        .post(
            "/api/v1/handlers/conductor/call",
            &json!({"method": method, "params": params}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    if v["error"].is_null() {
        Ok(v["result"].clone())
    } else {
        Err(v["error"].clone())
    }
}

#[tokio::test]
async fn the_conductor_sees_the_fleet_only_once_granted() {
    let host = TestHost::start();
    // Requested in its manifest, not granted yet: refused, saying what is missing.
    let denied = conductor(&host, "health_check", json!({}))
        .await
        .unwrap_err();
    assert_eq!(denied["code"], "capability_denied", "{denied}");
    let message = denied["message"].as_str().unwrap();
    assert!(
        message.contains("`fleet` is requested but not granted"),
        "{message}"
    );
    // Said once, not repeated by the host's note.
    assert_eq!(message.matches("not granted").count(), 1, "{message}");

    // The review shows the request; a grant for a plugin that does not ask is refused.
    let (_, view) = host.get("/api/v1/plugins/conductor/grants").await;
    let fleet = view["capabilities"]["requested"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "fleet")
        .cloned()
        .expect("fleet is listed among the requests");
    assert_eq!(fleet["granted"], json!([]), "{view}");
    let (status, refused) = host
        .post(
            "/api/v1/plugins/ding-dong/grants",
            &json!({"kind": "fleet"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.to_string().contains("does not request `fleet`"),
        "{refused}"
    );
    let (status, granted) = host
        .post(
            "/api/v1/plugins/conductor/grants",
            &json!({"kind": "fleet"}),
        )
        .await;
    assert_eq!(status, 201, "{granted}");

    let health = conductor(&host, "health_check", json!({})).await.unwrap();
    assert_eq!(health["total"], 3, "every handler but itself: {health}");
    assert_eq!(health["healthy"], 3, "{health}");
    assert_eq!(health["health_percentage"], 100.0, "{health}");
    for name in ["cloud-processor", "ding-dong", "misbehave"] {
        let h = &health["handlers"][name];
        assert_eq!(h["alive"], true, "{health}");
        // Without `call_plugins`, a plugin's ping is its state, not a call.
        assert_eq!(h["response_time_ms"], Value::Null, "{health}");
    }

    // A plugin it has called shows its calls; the summary adds up.
    let (status, _) = host
        .post(
            "/api/v1/handlers/ding-dong/call",
            &json!({"method": "ping", "params": {}}),
        )
        .await;
    assert_eq!(status, 200);
    let metrics = conductor(&host, "collect_metrics", json!({}))
        .await
        .unwrap();
    assert_eq!(metrics["summary"]["total_handlers"], 4, "{metrics}");
    assert_eq!(metrics["summary"]["alive_count"], 4, "{metrics}");
    let dd = &metrics["handlers"]["ding-dong"];
    assert_eq!(
        (dd["kind"].as_str(), dd["state"].as_str()),
        (Some("plugin"), Some("hot")),
        "{dd}"
    );
    assert_eq!(dd["calls"], 1, "{dd}");
    assert!(dd["memory_mb"].as_f64().unwrap() > 0.0, "{dd}");
    let only = conductor(
        &host,
        "collect_metrics",
        json!({"handler_ids": ["ding-dong"]}),
    )
    .await
    .unwrap();
    assert_eq!(only["summary"]["total_handlers"], 1, "{only}");

    let system = conductor(&host, "get_system_metrics", json!({}))
        .await
        .unwrap();
    assert!(system["memory"]["total"].as_u64().unwrap() > 0, "{system}");
    let percent = system["memory"]["percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&percent), "{system}");
    assert!(system["disk"]["total"].as_u64().unwrap() > 0, "{system}");
    assert!(system["cpus"].as_u64().unwrap() >= 1, "{system}");
    assert!(
        system["host"]["rss_bytes"].as_u64().unwrap() > 0,
        "{system}"
    );

    let ping = conductor(&host, "ping_handler", json!({"handler_id": "ding-dong"}))
        .await
        .unwrap();
    assert_eq!(
        (ping["alive"].clone(), ping["state"].clone()),
        (json!(true), json!("hot"))
    );
    let unknown = conductor(&host, "ping_handler", json!({"handler_id": "nobody"}))
        .await
        .unwrap_err();
    assert_eq!(unknown["code"], "invalid_params", "{unknown}");

    // Its fleet requests are recorded with each execution's usage.
    let (_, log) = host
        .get("/api/v1/executions?handler=conductor&status=success&limit=1")
        .await;
    let usage = &log["executions"][0]["usage"];
    assert!(usage["fleet_requests"].as_u64().unwrap() >= 1, "{log}");

    // Revoked: refused again from the next call.
    let (status, _) = host
        .http
        .delete(format!(
            "{}/api/v1/plugins/conductor/grants?kind=fleet&name=fleet",
            host.url
        ))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    let denied = conductor(&host, "get_system_metrics", json!({}))
        .await
        .unwrap_err();
    assert_eq!(denied["code"], "capability_denied", "{denied}");
}

#[tokio::test]
async fn pings_call_plugins_only_when_the_grant_says_so_and_requests_are_bounded() {
    let host = TestHost::start_with_config(
        "[plugins.conductor]\nfleet = { call_plugins = true }\n\
         [plugins.conductor.limits]\nfleet_max_requests = 3\n",
    );
    // A cold plugin is loaded by the ping's no-op call, which is timed and not counted as a call.
    let ping = conductor(&host, "ping_handler", json!({"handler_id": "misbehave"}))
        .await
        .unwrap();
    assert_eq!(ping["alive"], true, "{ping}");
    assert!(ping["response_time_ms"].as_f64().unwrap() > 0.0, "{ping}");
    // The time in fleet requests is recorded with the execution: at least the ping's call.
    let (_, log) = host
        .get("/api/v1/executions?handler=conductor&status=success&limit=1")
        .await;
    let usage = &log["executions"][0]["usage"];
    assert_eq!(usage["fleet_requests"], 1, "{log}");
    let pinged_us = ping["response_time_ms"].as_f64().unwrap() * 1000.0;
    assert!(
        usage["fleet_time_us"].as_f64().unwrap() >= pinged_us.floor(),
        "{log} {ping}"
    );
    let (_, plugin) = host.get("/api/v1/plugins/misbehave").await;
    assert_eq!(plugin["calls"], 0, "{plugin}");
    assert_eq!(plugin["state"], "hot", "{plugin}");

    // A health check asks once for the list and once per handler (all pinged at once): 4
    // requests, one too many.
    let limited = conductor(&host, "health_check", json!({}))
        .await
        .unwrap_err();
    assert_eq!(limited["code"], "handler_failed", "{limited}");
    assert!(
        limited["message"].as_str().unwrap().contains(
            "fleet.ping-many: 3 requests (up to 4) refused: at most 3 fleet requests per call (limits.fleet_max_requests)"
        ),
        "{limited}"
    );
    // The limit is per call: the next one starts again.
    conductor(&host, "ping_handler", json!({"handler_id": "ding-dong"}))
        .await
        .unwrap();
}

/// A component that imports `fleet` without asking for it in its manifest is refused when it
/// loads (here: the conductor with its manifest section renamed away).
#[tokio::test]
async fn a_component_importing_fleet_without_asking_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut wasm = std::fs::read(builtin_plugins().join("conductor.wasm")).unwrap();
    let name = b"schedulezero-manifest";
    let at = wasm
        .windows(name.len())
        .position(|w| w == name)
        .expect("the manifest section");
    // The same length: the file stays valid, it only no longer holds a manifest.
    wasm[at..at + name.len()].copy_from_slice(b"schedulezero-unrelate");
    std::fs::write(dir.path().join("conductor.wasm"), wasm).unwrap();
    let mut config = TestConfig::new();
    config.config.plugins_dir = dir.path().to_owned();
    let rt = config.start();
    let err = rt
        .call("conductor", "health_check", "{}")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "imports `schedulezero:handler/fleet` but its manifest does not request `fleet`"
        ),
        "{text}"
    );
    // The unmodified component, beside it, loads.
    std::fs::copy(
        builtin_plugins().join("ding-dong.wasm"),
        dir.path().join("ding-dong.wasm"),
    )
    .unwrap();
    rt.call("ding-dong", "ping", "{}").await.unwrap();
}

/// Health drops when a remote handler dies and comes back when it returns: the webhook gets one
/// report per change, none for a repeat; without the webhook's grant, the report is refused.
#[tokio::test]
async fn notify_on_unhealthy_posts_once_per_change_of_health() {
    let hook = Webhook::start().await;
    let url = format!("http://{}/hook", hook.addr);
    let host = TestHost::start_with_config(&format!(
        "[server]\nremote_ping_interval = \"300ms\"\n\
         [plugins.conductor]\nfleet = true\nconfig = {{ webhook_url = \"{url}\" }}\n\
         [plugins.conductor.limits]\nfleet_ping_timeout = \"500ms\"\n"
    ));
    let zmq = endpoint(&host).await;
    let env = [
        ("SCHEDULEZERO_ZMQ", zmq.as_str()),
        ("HANDLER_ID", "rs-watched"),
    ];
    let (mut handler, line) = rust_peer(&env).await;
    assert!(line.starts_with("rs-watched registered"), "{line}");

    let notify = || conductor(&host, "notify_on_unhealthy", json!({}));
    let first = notify().await.unwrap();
    assert_eq!(first["state"], "healthy", "{first}");
    assert_eq!(
        (first["changed"].clone(), first["notified"].clone()),
        (json!(false), json!(false))
    );

    handler.kill().await.unwrap();
    // Unhealthy, but the webhook is not granted yet: the run fails and nothing is recorded as
    // reported, so the next run tries again.
    let refused = notify().await.unwrap_err();
    assert_eq!(refused["code"], "capability_denied", "{refused}");
    let (status, _) = host
        .post(
            "/api/v1/plugins/conductor/grants",
            &json!({"kind": "http", "destination": format!("http://{}", hook.addr)}),
        )
        .await;
    assert_eq!(status, 201);
    let down = notify().await.unwrap();
    assert_eq!(down["state"], "unhealthy", "{down}");
    assert_eq!(down["notified"], true, "{down}");
    assert_eq!(down["health_percentage"], 75.0, "{down}");
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["state"], "unhealthy");
    assert_eq!(
        seen[0]["health"]["handlers"]["rs-watched"]["alive"], false,
        "{seen:?}"
    );

    // The same state again: nothing sent.
    let again = notify().await.unwrap();
    assert_eq!(
        (again["changed"].clone(), again["notified"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(hook.seen().len(), 1);

    // Back: one report of the recovery.
    let (_handler, line) = rust_peer(&env).await;
    assert!(line.starts_with("rs-watched registered"), "{line}");
    let mut up = Value::Null;
    for _ in 0..20 {
        up = notify().await.unwrap();
        if up["state"] == "healthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        (up["state"].clone(), up["notified"].clone()),
        (json!("healthy"), json!(true)),
        "{up}"
    );
    let seen = hook.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["previous_state"], "unhealthy");
}

/// Scheduled as the original ScheduleZero documents it, and read back from its execution log.
#[tokio::test]
async fn the_conductor_is_scheduled_through_the_compatible_api() {
    let host = TestHost::start_with_config("[plugins.conductor]\nfleet = true\n");
    let (status, created) = host
        .post(
            "/api/schedule",
            &json!({"handler_id": "conductor", "job_method": "collect_metrics", "job_params": {},
                    "job_id": "fleet-metrics", "trigger": {"type": "interval", "minutes": 5}}),
        )
        .await;
    assert_eq!(
        (status, created),
        (201, json!({"status": "success", "job_id": "fleet-metrics"}))
    );
    // An interval trigger fires first when it is created (as APScheduler's does), then every
    // five minutes.
    let log = host
        .wait_for(Duration::from_secs(20), || async {
            let (_, log) = host
                .get("/api/executions?handler_id=conductor&limit=1")
                .await;
            (log["records"][0]["status"] == "success").then_some(log)
        })
        .await;
    assert_eq!(log["count"], 1, "{log}");
    let latest = &log["records"][0];
    assert_eq!(latest["method_name"], "collect_metrics", "{log}");
    assert_eq!(latest["result"]["summary"]["total_handlers"], 4, "{log}");
    assert_eq!(latest["result"]["summary"]["alive_count"], 4, "{log}");
}

/// Remote handlers report their own process figures when they implement `get_metrics` (the
/// Python example and every handler of the Rust SDK do); a handler written for the Python
/// ScheduleZero that does not is shown as "not reported" and keeps working.
#[tokio::test]
async fn remote_handlers_report_their_own_figures_or_are_shown_as_not_reporting() {
    let host = TestHost::start_with_config("[plugins.conductor]\nfleet = true\n");
    let zmq = endpoint(&host).await;
    let example = crate::support::repo_root().join("examples/python/hello_handler.py");
    let (_py, line) = python_peer(
        &[example.to_str().unwrap()],
        &[
            ("SCHEDULEZERO_ZMQ", zmq.as_str()),
            ("HANDLER_ID", "py-hello"),
        ],
    )
    .await;
    assert!(line.starts_with("py-hello registered"), "{line}");
    let (mut rs, line) = rust_peer(&[
        ("SCHEDULEZERO_ZMQ", zmq.as_str()),
        ("HANDLER_ID", "rs-hello"),
    ])
    .await;
    assert!(line.starts_with("rs-hello registered"), "{line}");
    let (_old, _) = python_peer(&["-c", PYTHON_WORKER, zmq.as_str()], &[]).await;

    // A call each, counted by the handlers themselves.
    for (handler, method, params) in [
        ("py-hello", "add", json!({"a": 1, "b": 2})),
        ("rs-hello", "add", json!({"a": 1, "b": 2})),
    ] {
        let (status, v) = host
            .post(
                &format!("/api/v1/handlers/{handler}/call"),
                &json!({"method": method, "params": params}),
            )
            .await;
        assert_eq!((status, &v["error"]), (200, &Value::Null), "{v}");
    }
    let metrics = conductor(&host, "collect_metrics", json!({}))
        .await
        .unwrap();
    for handler in ["py-hello", "rs-hello"] {
        let m = &metrics["handlers"][handler];
        assert_eq!(
            (m["kind"].as_str(), m["alive"].as_bool()),
            (Some("remote"), Some(true)),
            "{m}"
        );
        let own = &m["metrics"];
        assert!(own["memory_mb"].as_f64().unwrap() > 1.0, "{handler}: {m}");
        assert!(own["threads"].as_u64().unwrap() >= 1, "{handler}: {m}");
        assert_eq!(own["calls_served"], 1, "{handler}: {m}");
        assert_eq!(own["status"], "ok", "{handler}: {m}");
    }
    assert_eq!(
        metrics["handlers"]["py-worker"]["metrics"], "not reported",
        "{metrics}"
    );
    assert_eq!(metrics["handlers"]["py-worker"]["alive"], true, "{metrics}");
    assert_eq!(metrics["summary"]["alive_count"], 7, "{metrics}");
    // The plugins' memory and the two reporting processes' resident memory.
    assert!(
        metrics["summary"]["total_memory_mb"].as_f64().unwrap() > 2.0,
        "{metrics}"
    );
    // It still serves its own methods.
    let (status, v) = host
        .post(
            "/api/v1/handlers/py-worker/call",
            &json!({"method": "add", "params": {"a": 2, "b": 3}}),
        )
        .await;
    assert_eq!((status, v["result"].clone()), (200, json!(5)), "{v}");

    // One that shut down and said so is down, answered from its status without a round trip.
    crate::bridge::sigterm(&rs);
    assert!(rs.wait().await.unwrap().success());
    let ping = conductor(&host, "ping_handler", json!({"handler_id": "rs-hello"}))
        .await
        .unwrap();
    assert_eq!(
        (ping["alive"].clone(), ping["state"].clone()),
        (json!(false), json!("offline")),
        "{ping}"
    );
    assert!(
        ping["error"]
            .as_str()
            .unwrap()
            .starts_with("handler_offline"),
        "{ping}"
    );
}

/// `bench fleet` measures what it says: a health check over 100 plugins and 10 remote handlers
/// makes 111 fleet requests and spends part of its time in them; pinging every plugin by a call
/// costs more when they are all cold; handlers that never answer are waited for at once.
#[tokio::test]
async fn the_fleet_benchmark_times_a_health_check_over_110_handlers() {
    let f = crate::support::run_bench("fleet", Duration::from_secs(300)).await;
    assert_eq!(
        (
            f["plugins"].as_u64(),
            f["remote_handlers"].as_u64(),
            f["health_check_requests"].as_u64()
        ),
        (Some(100), Some(10), Some(111)),
        "{f}"
    );
    let figure = |key: &str| f[key].as_f64().unwrap_or(f64::NAN);
    for (total, in_fleet) in [
        ("health_check_ms_p50", "health_check_fleet_ms_p50"),
        (
            "health_check_called_cold_ms",
            "health_check_called_cold_fleet_ms",
        ),
        (
            "health_check_called_ms_p50",
            "health_check_called_fleet_ms_p50",
        ),
        ("collect_metrics_ms_p50", "collect_metrics_fleet_ms_p50"),
    ] {
        assert!(
            0.0 < figure(in_fleet) && figure(in_fleet) < figure(total),
            "{in_fleet} within {total}: {f}"
        );
    }
    assert!(
        figure("health_check_called_cold_ms") > figure("health_check_called_ms_p50"),
        "{f}"
    );
    assert!(
        figure("ping_remote_us_p50") > figure("ping_plugin_state_us_p50"),
        "a round trip over ZeroMQ costs more than reading a plugin's state: {f}"
    );
    assert!(figure("ping_plugin_call_us_p50") > 0.0, "{f}");
    // Three handlers that never answer: their pings run at once, so the check waits about one
    // `fleet_ping_timeout` (2 s), not three.
    let down = figure("health_check_3_down_ms_p50");
    assert!((2000.0..4000.0).contains(&down), "{f}");
}
