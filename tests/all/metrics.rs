//! The runtime's lifecycle and metrics through a real host: plugins, instances, events and host
//! figures as JSON under `/api/v1`, the OpenMetrics exposition at `/metrics` (checked with the
//! official Prometheus client's strict parser), and a plugin removed from a watched folder.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::host::TestHost;
use crate::support::plugins_dir_with;

/// Parses an OpenMetrics exposition with `prometheus_client.openmetrics.parser` (strict: it
/// refuses anything out of the format) into `{family: {type, unit, samples: [[name, labels,
/// value]]}}`.
fn parse_openmetrics(text: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "unit": f.unit,
                   "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (see tests/requirements.txt)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the exposition");
    let out = child.wait_with_output().expect("parser ran");
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The value of the sample `name` with these labels (among others).
fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}"));
    samples
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .and_then(|s| s[2].as_f64())
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {family}"))
}

async fn paused_schedule(host: &TestHost, id: &str, handler: &str, method: &str) {
    let (status, s) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": id, "handler": handler, "method": method,
                    "trigger": {"type": "interval", "every_seconds": 3600}, "paused": true}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
}

#[tokio::test]
async fn plugins_instances_and_metrics_follow_the_calls() {
    let host = TestHost::start();
    let (status, listed) = host.get("/api/v1/plugins").await;
    assert_eq!(status, 200);
    let states: Vec<(&str, &str)> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert!(
        states.contains(&("ding-dong", "cold")),
        "discovered, then cold: {states:?}"
    );
    assert!(states.contains(&("misbehave", "cold")), "{states:?}");

    paused_schedule(&host, "pinger", "ding-dong", "ping").await;
    assert_eq!(
        host.run_schedule("pinger").await["run"]["status"],
        "success"
    );

    let (_, dd) = host.get("/api/v1/plugins/ding-dong").await;
    assert_eq!(dd["state"], "hot", "{dd}");
    assert_eq!(
        (dd["calls"].clone(), dd["cold_starts"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(dd["latency"]["call"]["count"], 1);
    assert_eq!(dd["latency"]["cold_start"]["count"], 1);
    assert!(dd["latency"]["cold_start"]["p50_us"].as_f64().unwrap() > 0.0);
    assert_eq!(dd["settings"]["idle_timeout_ms"], 300_000);
    assert!(
        dd["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "ping")
    );
    let (status, inst) = host.get("/api/v1/plugins/ding-dong/instances").await;
    assert_eq!(status, 200);
    let instances = inst["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{inst}");
    assert_eq!(instances[0]["calls"], 1);
    assert_eq!(instances[0]["state"], "idle");
    assert!(instances[0]["memory_bytes"].as_u64().unwrap() > 0);
    // The execution record names the same instance.
    let record = &host.executions_of("pinger").await[0];
    assert_eq!(
        record["instance"],
        format!("wasm:{}", instances[0]["id"].as_str().unwrap())
    );

    let (status, handler) = host.get("/api/v1/handlers/ding-dong").await;
    assert_eq!((status, handler["state"].clone()), (200, json!("hot")));

    let (_, m) = host.get("/api/v1/metrics").await;
    assert!(
        m["host"]["process"]["rss_bytes"].as_u64().unwrap() > 1 << 20,
        "{m}"
    );
    assert!(m["host"]["system"]["memory_total_bytes"].as_u64().unwrap() > 0);
    assert!(m["host"]["system"]["cpus"].as_u64().unwrap() >= 1);
    assert!(m["host"]["disk"]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(m["runtime"]["plugins_by_state"]["hot"], 1);
    assert_eq!(m["runtime"]["calls"], 1);
    assert_eq!(m["plugins"]["ding-dong"]["live_instances"], 1);

    let (_, events) = host.get("/api/v1/events?plugin=ding-dong").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["added", "warmed"], "{events}");

    let (status, missing) = host.get("/api/v1/plugins/nope").await;
    assert_eq!(
        (status, missing["error"]["code"].clone()),
        (404, json!("plugin_not_found"))
    );
    let (status, bad) = host.get("/api/v1/events?since=3").await;
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (400, json!("invalid_query"))
    );
}

#[tokio::test]
async fn the_prometheus_exposition_parses_and_moves() {
    let host = TestHost::start();
    paused_schedule(&host, "pinger", "ding-dong", "ping").await;
    paused_schedule(&host, "crasher", "misbehave", "trap").await;
    host.run_schedule("pinger").await;

    let (status, ty, text) = host.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(ty.starts_with("application/openmetrics-text"), "{ty}");
    let first = parse_openmetrics(&text);
    let dd = [("plugin", "ding-dong")];
    assert_eq!(first["schedulezero_plugin_calls"]["type"], "counter");
    assert_eq!(
        sample(
            &first,
            "schedulezero_plugin_calls",
            "schedulezero_plugin_calls_total",
            &dd
        ),
        1.0
    );
    let hist = &first["schedulezero_plugin_call_duration_seconds"];
    assert_eq!(
        (hist["type"].clone(), hist["unit"].clone()),
        (json!("histogram"), json!("seconds"))
    );
    assert_eq!(
        sample(
            &first,
            "schedulezero_plugin_call_duration_seconds",
            "schedulezero_plugin_call_duration_seconds_count",
            &dd
        ),
        1.0
    );
    assert_eq!(
        sample(
            &first,
            "schedulezero_plugin_state",
            "schedulezero_plugin_state",
            &[("plugin", "ding-dong"), ("state", "hot")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &first,
            "schedulezero_plugin_state",
            "schedulezero_plugin_state",
            &[("plugin", "misbehave"), ("state", "cold")]
        ),
        1.0
    );
    assert!(
        sample(
            &first,
            "process_resident_memory_bytes",
            "process_resident_memory_bytes",
            &[]
        ) > 1e6
    );
    assert_eq!(first["process_resident_memory_bytes"]["unit"], "bytes");
    assert!(
        sample(
            &first,
            "schedulezero_plugin_memory_bytes",
            "schedulezero_plugin_memory_bytes",
            &dd
        ) > 0.0
    );

    host.run_schedule("pinger").await;
    let ran = host.run_schedule("crasher").await;
    assert_eq!(ran["error"]["code"], "trap", "{ran}");
    let (_, _, text) = host.get_text("/metrics").await;
    let second = parse_openmetrics(&text);
    assert_eq!(
        sample(
            &second,
            "schedulezero_plugin_calls",
            "schedulezero_plugin_calls_total",
            &dd
        ),
        2.0
    );
    assert_eq!(
        sample(
            &second,
            "schedulezero_plugin_errors",
            "schedulezero_plugin_errors_total",
            &[("plugin", "misbehave"), ("kind", "trap")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &second,
            "schedulezero_plugin_instances_discarded",
            "schedulezero_plugin_instances_discarded_total",
            &[("plugin", "misbehave")]
        ),
        1.0
    );
    let plus_inf = sample(
        &second,
        "schedulezero_plugin_call_duration_seconds",
        "schedulezero_plugin_call_duration_seconds_bucket",
        &[("plugin", "ding-dong"), ("le", "+Inf")],
    );
    assert_eq!(plus_inf, 2.0);
}

#[tokio::test]
async fn a_plugin_removed_from_the_folder_fails_its_runs_until_it_returns() {
    let plugins = plugins_dir_with(&["ding-dong"]);
    let dir = plugins.path().to_str().unwrap();
    let host = TestHost::start_with(&["--plugins-dir", dir]);
    paused_schedule(&host, "pinger", "ding-dong", "ping").await;
    assert_eq!(
        host.run_schedule("pinger").await["run"]["status"],
        "success"
    );

    let wasm = std::fs::read(plugins.path().join("ding-dong.wasm")).unwrap();
    std::fs::remove_file(plugins.path().join("ding-dong.wasm")).unwrap();
    host.wait_for(Duration::from_secs(15), || async {
        if crate::support::on_postgres() {
            // On a shared store one host's folder does not make a plugin missing: no live host
            // has it, which the schedule says.
            let (_, s) = host.get("/api/v1/schedules/pinger").await;
            (s["runnable"] == false).then_some(())
        } else {
            let (_, h) = host.get("/api/v1/handlers/ding-dong").await;
            (h["status"] == "missing").then_some(())
        }
    })
    .await;
    let ran = host.run_schedule("pinger").await;
    assert_eq!(ran["run"]["status"], "error", "{ran}");
    assert_eq!(ran["error"]["code"], "plugin_removed");
    let (_, events) = host.get("/api/v1/events?plugin=ding-dong").await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "removed")
    );

    std::fs::write(plugins.path().join("ding-dong.wasm"), &wasm).unwrap();
    host.wait_for(Duration::from_secs(15), || async {
        let (_, h) = host.get("/api/v1/handlers/ding-dong").await;
        let (_, s) = host.get("/api/v1/schedules/pinger").await;
        (h["status"] == "available" && s["runnable"] == true).then_some(())
    })
    .await;
    assert_eq!(
        host.run_schedule("pinger").await["run"]["status"],
        "success"
    );
}

#[tokio::test]
async fn plugins_list_shows_a_running_hosts_plugins_with_their_state() {
    let host = TestHost::start();
    paused_schedule(&host, "pinger", "ding-dong", "ping").await;
    host.run_schedule("pinger").await;
    let data = tempfile::tempdir().unwrap();
    let out = crate::support::run_cli(
        data.path(),
        &["plugins", "list", "--url", host.url.as_str()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(table.starts_with("NAME"), "{table}");
    // NAME VERSION STATE INSTANCES(busy/live) MEMORY(n unit) CALLS ...
    let dd = row("ding-dong");
    assert_eq!((dd[2].as_str(), dd[3].as_str()), ("hot", "0/1"), "{table}");
    assert_eq!(dd[6], "1", "one call: {table}");
    let mb = row("misbehave");
    assert_eq!((mb[2].as_str(), mb[3].as_str()), ("cold", "0/0"), "{table}");

    let out = crate::support::run_cli(
        data.path(),
        &["plugins", "list", "--json", "--url", host.url.as_str()],
        &[],
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["plugins"].as_array().unwrap().len(), 4);
}
