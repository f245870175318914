//! Calls to remote handlers: a REQ socket per handler, one request in flight on it at a time (a
//! ScheduleZero handler serves one request at a time). After a timeout or a transport error the
//! socket is dropped and the next call connects afresh (REQ sockets of the `zeromq` crate do not
//! reconnect on their own); a handler that re-registered elsewhere is called at its new address.
//! Nothing is sent twice here: retrying is the schedule's retry policy, one attempt each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use super::registry::RemoteHandler;
use crate::runtime::InvokeError;

/// The call timeout when the schedule sets none (ScheduleZero's handlers use 10 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest reply taken from a handler.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// One handler's connection.
#[derive(Default)]
struct Connection {
    address: String,
    socket: Option<zeromq::ReqSocket>,
    /// A request was sent and its reply not read (the call timed out, or was dropped): the
    /// socket is stuck in REQ's send-receive cycle and must not be used again.
    awaiting_reply: bool,
}

/// The connections to remote handlers, by handler id.
#[derive(Default)]
pub struct Connections {
    by_handler: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Connection>>>>,
}

impl Connections {
    fn of(&self, handler: &str) -> Arc<tokio::sync::Mutex<Connection>> {
        let mut map = self.by_handler.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(handler.to_owned()).or_default().clone()
    }

    /// Calls `method` of a remote handler with JSON `params`; returns the result as JSON text.
    /// `timeout` bounds the whole call, connecting and waiting for the turn included.
    pub async fn call(
        &self,
        handler: &RemoteHandler,
        method: &str,
        params: &str,
        run_id: &str,
        timeout: Duration,
    ) -> Result<String, InvokeError> {
        let params: Value = serde_json::from_str(params)
            .map_err(|e| InvokeError::InvalidParams(format!("params are not JSON: {e}")))?;
        let request = json!({ "method": method, "params": params, "request_id": run_id });
        let connection = self.of(&handler.id);
        let exchange = async {
            let mut conn = connection.lock().await;
            if conn.address != handler.address || conn.awaiting_reply {
                conn.socket = None;
                conn.awaiting_reply = false;
                conn.address.clone_from(&handler.address);
            }
            let result = exchange(&mut conn, &request).await;
            if result.is_err() {
                // Lazy pirate: a socket that failed or timed out is not used again.
                conn.socket = None;
            }
            result
        };
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                // The exchange (and the socket in it) was dropped mid-call.
                return Err(InvokeError::Timeout(timeout));
            }
        };
        read_reply(&reply, method)
    }
}

async fn exchange(conn: &mut Connection, request: &Value) -> Result<Vec<u8>, InvokeError> {
    let unreachable = |what: &str, e: &dyn std::fmt::Display| {
        InvokeError::Unreachable(format!("{what} {}: {e}", conn.address))
    };
    if conn.socket.is_none() {
        let mut socket = zeromq::ReqSocket::new();
        socket
            .connect(&conn.address)
            .await
            .map_err(|e| unreachable("cannot connect to", &e))?;
        conn.socket = Some(socket);
    }
    let Some(socket) = conn.socket.as_mut() else {
        return Err(InvokeError::Internal("no socket".into()));
    };
    conn.awaiting_reply = true;
    socket
        .send(ZmqMessage::from(request.to_string()))
        .await
        .map_err(|e| InvokeError::Unreachable(format!("cannot send: {e}")))?;
    let reply = socket
        .recv()
        .await
        .map_err(|e| InvokeError::Unreachable(format!("no reply: {e}")))?;
    conn.awaiting_reply = false;
    if reply.len() != 1 {
        return Err(InvokeError::InvalidResult(format!(
            "expected one frame of JSON, got {}",
            reply.len()
        )));
    }
    let frame = reply.get(0).map(|b| b.to_vec()).unwrap_or_default();
    if frame.len() > MAX_REPLY_BYTES {
        return Err(InvokeError::ResultTooLarge {
            size: frame.len(),
            limit: MAX_REPLY_BYTES,
        });
    }
    Ok(frame)
}

/// The result in a ScheduleZero handler's reply: the reply object without `success` (or the
/// `result` of a reply that has only that), or its `error`.
fn read_reply(frame: &[u8], method: &str) -> Result<String, InvokeError> {
    let reply: Value = serde_json::from_slice(frame)
        .map_err(|e| InvokeError::InvalidResult(format!("the reply is not JSON: {e}")))?;
    let Value::Object(mut fields) = reply else {
        return Err(InvokeError::InvalidResult(
            "the reply is not a JSON object".into(),
        ));
    };
    match fields.remove("success") {
        Some(Value::Bool(true)) => {
            let result = match fields.remove("result") {
                Some(v) if fields.is_empty() => v,
                Some(v) => {
                    fields.insert("result".into(), v);
                    Value::Object(fields)
                }
                None => Value::Object(fields),
            };
            Ok(result.to_string())
        }
        Some(Value::Bool(false)) => {
            let error = fields
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the handler failed without saying why")
                .to_owned();
            if error == format!("Unknown method: {method}") {
                return Err(InvokeError::UnknownMethod(method.to_owned()));
            }
            Err(InvokeError::Failed(error))
        }
        _ => Err(InvokeError::InvalidResult(
            "the reply has no boolean `success`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_schedulezero_handlers_give_them() {
        let ok = |frame: &str| read_reply(frame.as_bytes(), "m").unwrap();
        assert_eq!(
            ok(r#"{"success": true, "message": "hi"}"#),
            r#"{"message":"hi"}"#
        );
        assert_eq!(ok(r#"{"success": true, "result": 42}"#), "42");
        assert_eq!(
            ok(r#"{"success": true, "result": 1, "extra": 2}"#),
            r#"{"extra":2,"result":1}"#
        );
        let err = |frame: &str| read_reply(frame.as_bytes(), "m").unwrap_err();
        assert_eq!(
            err(r#"{"success": false, "error": "boom"}"#),
            InvokeError::Failed("boom".into())
        );
        assert_eq!(
            err(r#"{"success": false, "error": "Unknown method: m"}"#),
            InvokeError::UnknownMethod("m".into())
        );
        assert_eq!(err("[1]").code(), "invalid_result");
        assert_eq!(err("nope").code(), "invalid_result");
        assert_eq!(err(r#"{"result": 1}"#).code(), "invalid_result");
    }
}
