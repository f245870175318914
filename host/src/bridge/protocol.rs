//! The registration channel's messages, as ScheduleZero's handlers speak them (see COMPAT.md):
//! one frame of UTF-8 JSON, `{"method": ..., "params": {...}}`, answered with `success` and either
//! the fields of the reply or an `error` text. [`answer`] is the whole protocol, without sockets.

use serde::Deserialize;
use serde_json::{Value, json};

pub use schedulezero_remote::wire::{Registration, StatusReport, failure};

/// A request on the registration channel.
#[derive(Debug, Deserialize)]
struct Request {
    method: String,
    #[serde(default)]
    params: Option<Value>,
}

/// What a request asks of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `ping`: answered at once.
    Ping,
    /// `register`.
    Register(Registration),
    /// `report_status`.
    ReportStatus(StatusReport),
}

/// Reads one message: what it asks, or the error reply to send back.
pub fn read(frame: &[u8]) -> Result<Ask, Value> {
    let request: Request = std::str::from_utf8(frame)
        .ok()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| failure("Invalid JSON"))?;
    let params = request.params.unwrap_or(Value::Null);
    match request.method.as_str() {
        "ping" => Ok(Ask::Ping),
        "register" => serde_json::from_value::<Registration>(params)
            .map_err(|e| failure(&format!("Invalid registration: {e}")))
            .and_then(|r| check_registration(r).map(Ask::Register)),
        "report_status" => serde_json::from_value::<StatusReport>(params)
            .map(Ask::ReportStatus)
            .map_err(|e| failure(&format!("Invalid status report: {e}"))),
        other => Err(failure(&format!("Unknown method: {other}"))),
    }
}

/// The most methods one registration may list.
pub const MAX_METHODS: usize = 256;
/// The most characters of a handler id, a method name or an address.
pub const MAX_NAME_CHARS: usize = 200;

fn check_registration(r: Registration) -> Result<Registration, Value> {
    if r.handler_id.trim().is_empty() {
        return Err(failure("Invalid registration: handler_id is empty"));
    }
    if r.handler_id.chars().count() > MAX_NAME_CHARS || r.address.chars().count() > MAX_NAME_CHARS {
        return Err(failure(&format!(
            "Invalid registration: handler_id and address have at most {MAX_NAME_CHARS} characters"
        )));
    }
    if r.methods.len() > MAX_METHODS {
        return Err(failure(&format!(
            "Invalid registration: {} methods, at most {MAX_METHODS}",
            r.methods.len()
        )));
    }
    if let Some(m) = r
        .methods
        .iter()
        .find(|m| m.is_empty() || m.chars().count() > MAX_NAME_CHARS)
    {
        return Err(failure(&format!(
            "Invalid registration: method name `{}` is empty or longer than {MAX_NAME_CHARS} characters",
            m.chars().take(40).collect::<String>()
        )));
    }
    let Some(rest) = r.address.strip_prefix("tcp://") else {
        return Err(failure(&format!(
            "Invalid registration: address `{}` is not tcp://host:port",
            r.address
        )));
    };
    let port = rest.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
    if !matches!(port, Some(Ok(p)) if p > 0) {
        return Err(failure(&format!(
            "Invalid registration: address `{}` is not tcp://host:port",
            r.address
        )));
    }
    Ok(r)
}

/// The reply to `ping`.
pub fn pong() -> Value {
    json!({ "success": true, "message": "pong" })
}

/// The reply to a registration; `again` when the handler was known before.
pub fn registered(r: &Registration, again: bool) -> Value {
    let status = if again { "re-registered" } else { "registered" };
    json!({
        "success": true,
        "handler_id": r.handler_id,
        "address": r.address,
        "status": status,
        "methods": r.methods,
        "message": format!("Handler '{}' {status} successfully", r.handler_id),
    })
}

/// The reply to a status report; `known` false when the handler never registered.
pub fn status_reported(r: &StatusReport, known: bool) -> Value {
    if !known {
        return failure("Handler not registered");
    }
    json!({ "success": true, "handler_id": r.handler_id, "status": r.status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_carries_a_bounded_load() {
        let register = |methods: Vec<String>| {
            let msg = json!({"method": "register", "params": {"handler_id": "h",
                "address": "tcp://127.0.0.1:5000", "methods": methods}});
            read(msg.to_string().as_bytes())
        };
        assert!(register((0..MAX_METHODS).map(|i| format!("m{i}")).collect()).is_ok());
        let too_many = register((0..5000).map(|i| format!("m{i}")).collect()).unwrap_err();
        assert!(
            too_many["error"].as_str().unwrap().contains("5000 methods"),
            "{too_many}"
        );
        let long = register(vec!["x".repeat(MAX_NAME_CHARS + 1)]).unwrap_err();
        assert!(
            long["error"].as_str().unwrap().contains("longer than"),
            "{long}"
        );
    }

    #[test]
    fn messages_read_as_schedulezero_handlers_send_them() {
        assert_eq!(read(br#"{"method": "ping"}"#), Ok(Ask::Ping));
        let r = read(br#"{"method":"register","params":{"handler_id":"gpu","address":"tcp://127.0.0.1:5001","methods":["render"]}}"#);
        assert_eq!(
            r,
            Ok(Ask::Register(Registration {
                handler_id: "gpu".into(),
                address: "tcp://127.0.0.1:5001".into(),
                methods: vec!["render".into()],
            }))
        );
        let s =
            read(br#"{"method":"report_status","params":{"handler_id":"gpu","status":"offline"}}"#);
        assert!(matches!(s, Ok(Ask::ReportStatus(r)) if r.status == "offline"));
    }

    #[test]
    fn bad_messages_get_the_documented_errors() {
        let err = |frame: &[u8]| {
            read(frame).unwrap_err()["error"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(err(b"not json"), "Invalid JSON");
        assert_eq!(err(&[0xff, 0xfe]), "Invalid JSON");
        assert_eq!(err(br#"{"params": {}}"#), "Invalid JSON");
        assert_eq!(err(br#"{"method": "dance"}"#), "Unknown method: dance");
        assert!(
            err(br#"{"method": "register", "params": {"handler_id": "x"}}"#)
                .starts_with("Invalid registration")
        );
        assert!(err(br#"{"method":"register","params":{"handler_id":"x","address":"udp://a:1","methods":[]}}"#)
            .contains("not tcp://host:port"));
        assert_eq!(read(b"x").unwrap_err()["success"], false);
    }

    #[test]
    fn replies_are_the_ones_schedulezero_handlers_expect() {
        let r = Registration {
            handler_id: "gpu".into(),
            address: "tcp://127.0.0.1:5001".into(),
            methods: vec!["render".into()],
        };
        assert_eq!(
            registered(&r, false)["message"],
            "Handler 'gpu' registered successfully"
        );
        assert_eq!(registered(&r, true)["status"], "re-registered");
        assert_eq!(pong(), json!({"success": true, "message": "pong"}));
        let s = StatusReport {
            handler_id: "gpu".into(),
            status: "offline".into(),
        };
        assert_eq!(
            status_reported(&s, false),
            json!({"success": false, "error": "Handler not registered"})
        );
        assert_eq!(status_reported(&s, true)["status"], "offline");
    }
}
