//! Calls to remote handlers: a REQ socket per handler, one request in flight on it at a time (a
//! ScheduleZero handler serves one request at a time). After a timeout or a transport error the
//! socket is dropped and the next call connects afresh (REQ sockets of the `zeromq` crate do not
//! reconnect on their own); a handler that re-registered elsewhere is called at its new address.
//! Nothing is sent twice here: retrying is the schedule's retry policy, one attempt each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use super::registry::RemoteHandler;
use super::signing::Signer;
use crate::runtime::InvokeError;

/// The call timeout when the schedule sets none (ScheduleZero's handlers use 10 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting to a handler may take (a handler on a working link is there in
/// milliseconds).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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

/// What the host saw of one remote handler since it started.
#[derive(Debug, Default)]
pub struct HandlerStats {
    calls: AtomicU64,
    errors: AtomicU64,
    last_latency_us: AtomicU64,
    /// Unix milliseconds of the last reply (call or ping); 0 for never.
    last_seen_ms: AtomicU64,
}

/// A snapshot of [`HandlerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoteStats {
    /// Calls made (pings not counted).
    pub calls: u64,
    /// Calls that failed (the handler's failures, timeouts, broken connections).
    pub errors: u64,
    /// The last reply's round trip, in milliseconds.
    pub last_latency_ms: Option<f64>,
    /// When it last answered.
    pub last_seen: Option<DateTime<Utc>>,
}

impl HandlerStats {
    fn seen(&self, latency: Duration) {
        self.last_latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
        self.last_seen_ms.store(
            Utc::now().timestamp_millis().max(0) as u64,
            Ordering::Relaxed,
        );
    }

    fn snapshot(&self) -> RemoteStats {
        let seen = self.last_seen_ms.load(Ordering::Relaxed);
        RemoteStats {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_latency_ms: (seen > 0)
                .then(|| self.last_latency_us.load(Ordering::Relaxed) as f64 / 1e3),
            last_seen: DateTime::from_timestamp_millis(seen as i64).filter(|_| seen > 0),
        }
    }
}

#[derive(Default)]
struct Slot {
    connection: Arc<tokio::sync::Mutex<Connection>>,
    stats: Arc<HandlerStats>,
}

/// The connections to remote handlers, by handler id.
#[derive(Default)]
pub struct Connections {
    by_handler: Mutex<HashMap<String, Slot>>,
    signer: Option<Arc<Signer>>,
}

impl Connections {
    /// Connections that sign their requests (and check the replies) when given a signer.
    pub fn new(signer: Option<Arc<Signer>>) -> Self {
        Self {
            by_handler: Mutex::default(),
            signer,
        }
    }

    fn of(&self, handler: &str) -> (Arc<tokio::sync::Mutex<Connection>>, Arc<HandlerStats>) {
        let mut map = self.by_handler.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(handler.to_owned()).or_default();
        (slot.connection.clone(), slot.stats.clone())
    }

    /// What was seen of a handler since the host started.
    pub fn stats(&self, handler: &str) -> RemoteStats {
        self.of(handler).1.snapshot()
    }

    /// Pings a handler on its invocation channel, unless a call is in flight on it (then it is
    /// plainly alive, and a ping would only queue behind the call). `Ok(None)`: skipped.
    pub async fn ping(
        &self,
        handler: &RemoteHandler,
        timeout: Duration,
    ) -> Result<Option<Duration>, InvokeError> {
        let (connection, stats) = self.of(&handler.id);
        let Ok(mut conn) = connection.try_lock() else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let request = schedulezero_remote::wire::ping();
        let result = tokio::time::timeout(timeout, async {
            prepare(&mut conn, &handler.address);
            let r = exchange(&mut conn, &request, self.signer.as_deref()).await;
            if r.is_err() {
                conn.socket = None;
            }
            r
        })
        .await
        .unwrap_or(Err(InvokeError::Timeout(timeout)));
        result?;
        let took = started.elapsed();
        stats.seen(took);
        Ok(Some(took))
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
        let (connection, stats) = self.of(&handler.id);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let exchange = async {
            let mut conn = connection.lock().await;
            prepare(&mut conn, &handler.address);
            let result = exchange(&mut conn, &request, self.signer.as_deref()).await;
            if result.is_err() {
                // Lazy pirate: a socket that failed or timed out is not used again.
                conn.socket = None;
            }
            result
        };
        // On a timeout the exchange (and the socket in it) is dropped mid-call.
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(InvokeError::Timeout(timeout)),
        };
        let result = result.and_then(|reply| {
            stats.seen(started.elapsed());
            read_reply(&reply, method)
        });
        if result.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Readies a connection for a request to `address`: a new address, or a socket left waiting for
/// a reply, means a fresh socket.
fn prepare(conn: &mut Connection, address: &str) {
    if conn.address != address || conn.awaiting_reply {
        conn.socket = None;
        conn.awaiting_reply = false;
        address.clone_into(&mut conn.address);
    }
}

async fn exchange(
    conn: &mut Connection,
    request: &Value,
    signer: Option<&Signer>,
) -> Result<Vec<u8>, InvokeError> {
    let unreachable = |what: &str, e: &dyn std::fmt::Display| {
        InvokeError::Unreachable(format!("{what} {}: {e}", conn.address))
    };
    if conn.socket.is_none() {
        let mut options = super::socket_options(MAX_REPLY_BYTES, super::HANDSHAKE_TIMEOUT);
        // A refused connection is retried by the crate until this passes: a handler whose port
        // is closed is `handler_unreachable` in about this long, not a timeout of the call.
        options.connect_timeout(CONNECT_TIMEOUT);
        let mut socket = zeromq::ReqSocket::with_options(options);
        socket
            .connect(&conn.address)
            .await
            .map_err(|e| unreachable("cannot connect to", &e))?;
        conn.socket = Some(socket);
    }
    let Some(socket) = conn.socket.as_mut() else {
        return Err(InvokeError::Internal("no socket".into()));
    };
    let frame = match signer {
        Some(signer) => signer.seal(&request.to_string(), Utc::now().timestamp()),
        None => request.to_string(),
    };
    conn.awaiting_reply = true;
    socket
        .send(ZmqMessage::from(frame))
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
    // No longer than MAX_REPLY_BYTES: the socket refuses a longer reply before reading it.
    let frame = reply.get(0).map(|b| b.to_vec()).unwrap_or_default();
    match signer {
        Some(signer) => signer
            .open(&frame, Utc::now().timestamp())
            .map(String::into_bytes)
            .map_err(|why| InvokeError::InvalidResult(format!("reply refused: {why}"))),
        None => Ok(frame),
    }
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
