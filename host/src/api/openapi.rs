//! The OpenAPI document, generated from the routes and their types (utoipa): each route
//! declares its operation beside its code, and the bodies are the types the server answers
//! with. What every operation shares is added here once: the error replies each can give (by
//! whether it takes a body or a query), and bearer auth when the host has a token. A copy is
//! checked in at `docs/openapi.json`; a test keeps the two equal, so a change to the API shows
//! in review.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::code::ErrorCode;
use super::error::{CompatErrorBody, ErrorBody, ErrorDetail};

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ScheduleZero",
        description = "A job scheduler whose handlers are sandboxed WebAssembly components. \
            `/api/v1` is the clean API (stable error codes, typed bodies); the routes directly \
            under `/api` are ScheduleZero's, with its shapes, so existing clients keep working.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorCode, ErrorBody, ErrorDetail, CompatErrorBody)),
    tags(
        (name = "host", description = "Health, host info and this document"),
        (name = "schedules", description = "Schedules: create, list, change, pause, resume, run now"),
        (name = "runs", description = "Runs: the fire times claimed"),
        (name = "executions", description = "The execution log: one record per attempt"),
        (name = "handlers", description = "Plugins and remote handlers, as jobs see them"),
        (name = "triggers", description = "Trigger previews and checks"),
        (name = "plugins", description = "The runtime: plugins, instances, events, metrics"),
        (name = "catalog", description = "The service catalog: components from OCI registries, inspected, installed with consent, updated, rolled back, removed"),
        (name = "scheduleZero", description = "ScheduleZero's routes, with its shapes"),
    )
)]
pub struct ApiDoc;

/// Routes any caller may reach without a token.
const OPEN: &[&str] = &["/api/health", "/api/v1/health"];

fn error_reply(description: &str, compat: bool) -> Value {
    let schema = if compat {
        "CompatErrorBody"
    } else {
        "ErrorBody"
    };
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

/// Adds what every operation shares to the generated document: the error replies it can give
/// and, with a token, bearer auth.
pub fn finish(doc: utoipa::openapi::OpenApi, token: bool) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let compat = !path.starts_with("/api/v1") && path != "/metrics";
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                add_errors(op, compat, token && !OPEN.contains(&path.as_str()));
            }
        }
    }
    if token {
        doc["components"]["securitySchemes"] = json!({
            "bearer": { "type": "http", "scheme": "bearer",
                "description": "The host's API token (`server.api_token`)" }
        });
    }
    doc
}

fn add_errors(op: &mut Map<String, Value>, compat: bool, guarded: bool) {
    let has_body = op.contains_key("requestBody");
    let has_query = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let mut add = Vec::new();
    if has_body {
        add.push((
            "400",
            "`invalid_json` or `invalid_request` (and the route's own checks)",
        ));
        add.push(("413", "`payload_too_large`"));
    }
    if has_query {
        add.push(("400", "`invalid_query`"));
    }
    if guarded {
        add.push(("401", "`unauthorized`: a token is needed"));
    }
    add.push(("500", "`internal`: see the host's log"));
    add.push(("503", "`shutting_down`"));
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(responses) = responses {
        for (status, description) in add {
            responses
                .entry(status)
                .or_insert_with(|| error_reply(description, compat));
        }
    }
    if guarded {
        op.insert("security".into(), json!([{ "bearer": [] }]));
    }
}
