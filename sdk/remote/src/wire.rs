//! ScheduleZero's messages between a host and its remote handlers (the host's `COMPAT.md`). Every
//! message is one ZeroMQ frame of UTF-8 JSON.
//!
//! To the host's registration endpoint (REQ → REP), a handler sends
//!
//! ```json
//! {"method": "ping"}
//! {"method": "register", "params": {"handler_id": "gpu", "address": "tcp://10.0.0.5:5001", "methods": ["render"]}}
//! {"method": "report_status", "params": {"handler_id": "gpu", "status": "offline"}}
//! ```
//!
//! and the host calls the handler at its registered address (REQ → REP) with
//!
//! ```json
//! {"method": "render", "params": {...}, "request_id": "0199..."}
//! ```
//!
//! Every reply has a boolean `success`; a successful one carries its fields beside it (or its
//! value in `result`), a failed one an `error` text.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A handler's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The id schedules name it by.
    pub handler_id: String,
    /// Where it listens (`tcp://host:port`).
    pub address: String,
    /// The methods it serves.
    pub methods: Vec<String>,
}

/// A handler's report of its own status (`offline` when it shuts down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The handler.
    pub handler_id: String,
    /// Its status.
    pub status: String,
}

/// `{"method": "ping"}`.
pub fn ping() -> Value {
    json!({ "method": "ping" })
}

/// The `register` request.
pub fn register(registration: &Registration) -> Value {
    json!({ "method": "register", "params": registration })
}

/// The `report_status` request.
pub fn report_status(report: &StatusReport) -> Value {
    json!({ "method": "report_status", "params": report })
}

/// A successful reply carrying `result`: an object's fields go beside `success` (as ScheduleZero's
/// handlers answer), any other value, or an object that has a `success` field of its own, goes in
/// `result`.
pub fn success(result: Value) -> Value {
    let mut reply = Map::new();
    reply.insert("success".into(), Value::Bool(true));
    match result {
        Value::Object(fields) if !fields.contains_key("success") => reply.extend(fields),
        other => {
            reply.insert("result".into(), other);
        }
    }
    Value::Object(reply)
}

/// A failure reply.
pub fn failure(message: &str) -> Value {
    json!({ "success": false, "error": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_answered_as_schedulezero_handlers_answer() {
        assert_eq!(
            success(json!({"message": "hi"})),
            json!({"success": true, "message": "hi"})
        );
        assert_eq!(success(json!(5)), json!({"success": true, "result": 5}));
        assert_eq!(
            success(json!({"success": "mine"})),
            json!({"success": true, "result": {"success": "mine"}})
        );
        assert_eq!(failure("boom"), json!({"success": false, "error": "boom"}));
        let r = Registration {
            handler_id: "gpu".into(),
            address: "tcp://127.0.0.1:5001".into(),
            methods: vec!["render".into()],
        };
        assert_eq!(
            register(&r),
            json!({"method": "register", "params": {"handler_id": "gpu",
                "address": "tcp://127.0.0.1:5001", "methods": ["render"]}})
        );
    }
}
