//! The OpenAPI document: generated from the code, equal to the copy checked in at
//! `docs/openapi.json` (so a change to the API shows in review), and true of the real
//! responses of every operation, each validated against its documented schema.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::host::TestHost;
use crate::support::repo_root;

/// `docs/openapi.json` is what the code generates; `SCHEDULEZERO_BLESS=1` rewrites it.
#[test]
fn the_checked_in_document_is_the_generated_one() {
    let generated = schedulezero::api::openapi_document(false);
    let path = repo_root().join("docs/openapi.json");
    if std::env::var_os("SCHEDULEZERO_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is not what the code generates: review the change and run \
         `SCHEDULEZERO_BLESS=1 cargo test --test all openapi::the_checked_in` to update it"
    );
}

/// Every stable code is in the document's `ErrorCode` and in README's table, with its status
/// and meaning, and nothing else is.
#[test]
fn the_error_codes_are_one_list() {
    use schedulezero::api::ErrorCode;
    let doc: Value = serde_json::from_str(&schedulezero::api::openapi_document(false)).unwrap();
    let listed: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let all: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(listed, all);
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| API error code |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let expected: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| format!("| `{c}` | {} | {} |", c.status().as_u16(), c.meaning()))
        .collect();
    assert_eq!(table, expected, "README's table of API error codes");
}

/// The document a host serves declares bearer auth on every route but health when it has a
/// token, and none without.
#[tokio::test]
async fn bearer_auth_is_declared_only_when_the_host_has_a_token() {
    let open = TestHost::start();
    let (_, doc) = open.get("/api/v1/openapi.json").await;
    assert!(doc["components"].get("securitySchemes").is_none());
    assert!(
        doc["paths"]["/api/v1/schedules"]["get"]
            .get("security")
            .is_none()
    );
    let guarded = TestHost::start_with(&["--api-token", "doc-token-0123456789abcdef"]);
    let (status, doc) = guarded.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/api/v1/schedules"]["get"]["security"],
        json!([{ "bearer": [] }])
    );
    assert!(
        doc["paths"]["/api/v1/health"]["get"]
            .get("security")
            .is_none()
    );
    assert!(
        doc["paths"]["/api/v1/schedules"]["get"]["responses"]
            .get("401")
            .is_some()
    );
}

/// Validates one reply against the document; returns the operation it belongs to.
fn check(doc: &Value, path: &str, method: &str, status: u16, body: &Value) -> String {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let reply = &op["responses"][status.to_string()];
    assert!(
        reply.is_object(),
        "{method} {path} answered {status}, which it does not document: {body}"
    );
    if let Some(schema) = reply["content"]["application/json"]["schema"].as_object() {
        let mut root = Value::Object(schema.clone());
        root["components"] = doc["components"].clone();
        let validator = jsonschema::validator_for(&root).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match its schema: {errors:?}\n{body}"
        );
    }
    format!("{method} {path}")
}

#[tokio::test]
async fn every_operation_answers_as_its_document_says() {
    let host = TestHost::start();
    let (_, doc) = host.get("/api/v1/openapi.json").await;
    let mut seen = BTreeSet::new();
    let mut call = |path: &str, method: &str, status: u16, body: &Value| {
        seen.insert(check(&doc, path, method, status, body));
    };
    macro_rules! hit {
        ($method:literal, $template:literal, $concrete:expr, $body:expr) => {{
            let concrete = $concrete;
            let (status, reply) = host
                .call_json($method, AsRef::<str>::as_ref(&concrete), $body)
                .await;
            call($template, &$method.to_lowercase(), status, &reply);
            (status, reply)
        }};
        ($method:literal, $template:literal, $body:expr) => {
            hit!($method, $template, $template, $body)
        };
    }
    let none = &Value::Null;
    hit!("GET", "/api/health", none);
    hit!("GET", "/api/v1/health", none);
    hit!("GET", "/api/v1/host", none);
    hit!("GET", "/api/v1/nodes", none);
    hit!("GET", "/api/v1/handlers", none);
    hit!("GET", "/api/handlers", none);
    hit!("GET", "/api/config", none);
    hit!(
        "GET",
        "/api/v1/handlers/{id}",
        "/api/v1/handlers/ding-dong",
        none
    );
    hit!(
        "GET",
        "/api/v1/handlers/{id}",
        "/api/v1/handlers/nope",
        none
    );
    hit!(
        "DELETE",
        "/api/v1/handlers/{id}",
        "/api/v1/handlers/nope",
        none
    );
    hit!(
        "DELETE",
        "/api/v1/handlers/{id}",
        "/api/v1/handlers/ding-dong",
        none
    );
    let (status, called) = hit!(
        "POST",
        "/api/v1/handlers/{id}/call",
        "/api/v1/handlers/ding-dong/call",
        &json!({"method": "echo", "params": {"x": 1}})
    );
    assert_eq!(
        (status, called["error"].clone()),
        (200, Value::Null),
        "{called}"
    );
    let (status, failed) = hit!(
        "POST",
        "/api/v1/handlers/{id}/call",
        "/api/v1/handlers/misbehave/call",
        &json!({"method": "panic"})
    );
    assert_eq!(
        (status, failed["error"]["code"].clone()),
        (200, json!("trap")),
        "{failed}"
    );
    hit!(
        "POST",
        "/api/v1/handlers/{id}/call",
        "/api/v1/handlers/nope/call",
        &json!({"method": "echo"})
    );
    let new = json!({
        "id": "doc-check", "handler": "ding-dong", "method": "echo", "params": {"x": 1},
        "trigger": {"type": "cron", "expression": "0 * * * *", "timezone": "Europe/London"},
        "policy": {"max_attempts": 2, "retry_backoff": "1s"},
    });
    let (status, _) = hit!("POST", "/api/v1/schedules", &new);
    assert_eq!(status, 201);
    hit!("POST", "/api/v1/schedules", &new);
    hit!(
        "POST",
        "/api/v1/schedules",
        &json!({"handler": "nope", "method": "x", "trigger": {}})
    );
    let mut clash = new.clone();
    clash["conflict_policy"] = json!("error");
    hit!("POST", "/api/v1/schedules", &clash);
    hit!("POST", "/api/v1/schedules", &json!({"handler": 1}));
    hit!("GET", "/api/v1/schedules", none);
    hit!(
        "GET",
        "/api/v1/schedules",
        "/api/v1/schedules?limit=nope",
        none
    );
    hit!(
        "GET",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/doc-check",
        none
    );
    hit!(
        "GET",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/nope",
        none
    );
    hit!(
        "PATCH",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/doc-check",
        &json!({"trigger": {"type": "interval", "every_seconds": 3600}})
    );
    hit!(
        "PATCH",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/nope",
        &json!({})
    );
    hit!(
        "POST",
        "/api/v1/schedules/{id}/pause",
        "/api/v1/schedules/doc-check/pause",
        none
    );
    hit!(
        "POST",
        "/api/v1/schedules/{id}/pause",
        "/api/v1/schedules/nope/pause",
        none
    );
    hit!(
        "POST",
        "/api/v1/schedules/{id}/resume",
        "/api/v1/schedules/doc-check/resume",
        &json!({"catch_up": false})
    );
    hit!(
        "POST",
        "/api/v1/schedules/{id}/resume",
        "/api/v1/schedules/nope/resume",
        none
    );
    let (status, ended) = hit!(
        "POST",
        "/api/v1/schedules/{id}/run",
        "/api/v1/schedules/doc-check/run?wait=true",
        none
    );
    assert_eq!(status, 200, "{ended}");
    let (status, started) = hit!(
        "POST",
        "/api/v1/schedules/{id}/run",
        "/api/v1/schedules/doc-check/run",
        none
    );
    assert_eq!(status, 202);
    hit!(
        "POST",
        "/api/v1/schedules/{id}/run",
        "/api/v1/schedules/nope/run",
        none
    );
    let run = started["run"]["id"].as_str().unwrap().to_owned();
    hit!("GET", "/api/v1/runs", none);
    hit!("GET", "/api/v1/runs", "/api/v1/runs?before=bad", none);
    hit!(
        "GET",
        "/api/v1/runs/{id}",
        format!("/api/v1/runs/{run}"),
        none
    );
    hit!("GET", "/api/v1/runs/{id}", "/api/v1/runs/nope", none);
    let (_, list) = hit!("GET", "/api/v1/executions", none);
    let record = list["executions"][0]["id"].as_i64().unwrap();
    hit!(
        "GET",
        "/api/v1/executions/{id}",
        format!("/api/v1/executions/{record}"),
        none
    );
    hit!(
        "GET",
        "/api/v1/executions/{id}",
        "/api/v1/executions/0",
        none
    );
    hit!("GET", "/api/v1/executions/stats", none);
    hit!("GET", "/api/v1/executions/timeline", none);
    hit!(
        "GET",
        "/api/v1/executions/timeline",
        "/api/v1/executions/timeline?bucket_s=0",
        none
    );
    let trigger = json!({"trigger": {"type": "cron", "expression": "*/5 * * * *"}, "count": 3});
    hit!("POST", "/api/v1/triggers/preview", &trigger);
    hit!(
        "POST",
        "/api/v1/triggers/preview",
        &json!({"trigger": {"type": "cron", "expression": "61 * * * *"}})
    );
    hit!("POST", "/api/v1/triggers/check", &trigger);
    hit!(
        "POST",
        "/api/v1/triggers/check",
        &json!({"trigger": {"type": "cron", "expression": "61 * * * *"}})
    );
    hit!("GET", "/api/v1/plugins", none);
    hit!(
        "GET",
        "/api/v1/plugins/{name}",
        "/api/v1/plugins/ding-dong",
        none
    );
    hit!(
        "GET",
        "/api/v1/plugins/{name}",
        "/api/v1/plugins/nope",
        none
    );
    hit!(
        "GET",
        "/api/v1/plugins/{name}/instances",
        "/api/v1/plugins/ding-dong/instances",
        none
    );
    hit!(
        "GET",
        "/api/v1/plugins/{name}/grants",
        "/api/v1/plugins/ding-dong/grants",
        none
    );
    hit!(
        "POST",
        "/api/v1/plugins/{name}/grants",
        "/api/v1/plugins/ding-dong/grants",
        &json!({"kind": "config", "key": "location", "value": "the docs"})
    );
    hit!(
        "POST",
        "/api/v1/plugins/{name}/grants",
        "/api/v1/plugins/ding-dong/grants",
        &json!({"kind": "config", "key": "nope", "value": "x"})
    );
    hit!(
        "DELETE",
        "/api/v1/plugins/{name}/grants",
        "/api/v1/plugins/ding-dong/grants?kind=config&name=location",
        none
    );
    hit!(
        "DELETE",
        "/api/v1/plugins/{name}/grants",
        "/api/v1/plugins/ding-dong/grants?kind=config&name=location",
        none
    );
    hit!("GET", "/api/v1/events", none);
    hit!("GET", "/api/v1/metrics", none);
    hit!("GET", "/api/v1/metrics/history", none);
    let compat = json!({
        "handler_id": "ding-dong", "job_method": "echo", "job_params": {"x": 2},
        "trigger": {"type": "interval", "seconds": 3600}, "job_id": "compat-doc",
    });
    hit!("POST", "/api/schedule", &compat);
    hit!(
        "POST",
        "/api/schedule",
        &json!({"handler_id": "nope", "job_method": "x", "job_params": {}, "trigger": {"type": "date"}})
    );
    hit!(
        "POST",
        "/api/run_now",
        &json!({"handler_id": "ding-dong", "job_method": "echo", "job_params": {"y": 1}})
    );
    hit!("POST", "/api/run_now", &json!({"handler_id": "ding-dong"}));
    hit!("GET", "/api/schedules", none);
    hit!("GET", "/api/executions", none);
    hit!("GET", "/api/executions/stats", none);
    hit!("GET", "/api/executions/errors", none);
    hit!(
        "DELETE",
        "/api/schedules/{id}",
        "/api/schedules/compat-doc",
        none
    );
    hit!(
        "DELETE",
        "/api/schedules/{id}",
        "/api/schedules/compat-doc",
        none
    );
    hit!(
        "DELETE",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/doc-check",
        none
    );
    hit!(
        "DELETE",
        "/api/v1/schedules/{id}",
        "/api/v1/schedules/doc-check",
        none
    );
    hit!("POST", "/api/executions/clear", none);
    // The catalog (its successes against a real registry are in tests/all/catalog.rs).
    let (status, _) = hit!("GET", "/api/v1/catalog", none);
    assert_eq!(status, 200);
    let (status, _) = hit!(
        "POST",
        "/api/v1/catalog/inspect",
        &json!({"reference": "127.0.0.1:1/acme/x:latest"})
    );
    assert_eq!(status, 400);
    let (status, _) = hit!(
        "POST",
        "/api/v1/catalog/install",
        &json!({"reference": "127.0.0.1:1/acme/x:1.0.0", "digest": "sha256:00", "consent": true})
    );
    assert_eq!(status, 502);
    for (method, template) in [
        ("GET", "/api/v1/catalog/{name}/update"),
        ("POST", "/api/v1/catalog/{name}/rollback"),
        ("DELETE", "/api/v1/catalog/{name}"),
    ] {
        let concrete = template.replace("{name}", "nope");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, reply) = host.call_json(m.as_str(), &concrete, none).await;
        assert_eq!(status, 404, "{reply}");
        call(template, &method.to_lowercase(), status, &reply);
    }
    // The two that are not JSON.
    let (status, ty, _) = host.get_text("/metrics").await;
    assert_eq!(
        (status, ty.starts_with("application/openmetrics-text")),
        (200, true)
    );
    seen.insert("get /metrics".into());
    seen.insert("get /api/v1/openapi.json".into());
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{m} {path}"))
        })
        .collect();
    let missed: Vec<_> = documented.difference(&seen).collect();
    assert!(missed.is_empty(), "operations not exercised: {missed:?}");
}
