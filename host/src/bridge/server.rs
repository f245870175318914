//! The registration endpoint: a REP socket (the pure-Rust `zeromq` crate) where handlers `ping`,
//! `register` and `report_status`. One request at a time, as REQ/REP goes; every request gets an
//! answer, malformed ones included, and nothing a peer sends can stop the loop. The socket is
//! served from a thread of its own (see [`schedulezero_remote::on_own_thread`]: with many peers
//! coming and going, the `zeromq` crate can otherwise stall a worker of the host's runtime, and
//! the endpoint with it); the registry's work runs on the host's runtime.

use std::sync::Arc;

use std::future::Future;

use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use super::BridgeError;
use super::protocol;
use super::registry::Registry;
use crate::background::Stop;

/// Binds the registration endpoint. Returns the endpoint it is bound to (the real port when
/// `endpoint` asked for port 0) and the loop that answers on it until `stop`. `limits` are the
/// most bytes of a message and the longest a peer may take over the handshake: a peer past
/// either is disconnected, and the endpoint goes on serving the others.
pub async fn start(
    registry: Arc<Registry>,
    endpoint: &str,
    limits: (usize, std::time::Duration),
    mut stop: Stop,
) -> Result<(String, impl Future<Output = ()> + Send + 'static), BridgeError> {
    let (max_message, handshake) = limits;
    let mut socket = zeromq::RepSocket::with_options(super::socket_options(max_message, handshake));
    let bound = socket
        .bind(endpoint)
        .await
        .map_err(|e| BridgeError::Bind {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?
        .to_string();
    tracing::info!(endpoint = %bound, "remote handlers register here");
    let refused = Arc::new(RefusedPeers::default());
    let monitor = socket.monitor();
    let monitor_task = tokio::spawn(log_refused(monitor, refused.clone()));
    let runtime = tokio::runtime::Handle::current();
    let serve = async move {
        loop {
            let message = tokio::select! {
                _ = stop.wait() => break,
                m = socket.recv() => m,
            };
            let reply = match message {
                Ok(m) if m.len() == 1 => match m.get(0) {
                    Some(frame) => {
                        let (registry, frame) = (registry.clone(), frame.clone());
                        match runtime
                            .spawn(async move { registry.answer(&frame).await })
                            .await
                        {
                            Ok(reply) => reply,
                            Err(e) => {
                                protocol::failure(&format!("Internal error: {e}")).to_string()
                            }
                        }
                    }
                    None => protocol::failure("Invalid JSON").to_string(),
                },
                Ok(m) => protocol::failure(&format!("Expected one frame of JSON, got {}", m.len()))
                    .to_string(),
                Err(e) => {
                    refused.note(&e.to_string());
                    continue;
                }
            };
            if let Err(e) = socket.send(ZmqMessage::from(reply)).await {
                tracing::warn!(error = %e, "registration channel: cannot answer");
            }
        }
        let errors = socket.close().await;
        for e in errors {
            tracing::debug!(error = %e, "registration channel: closing");
        }
        monitor_task.abort();
    };
    let run = async move {
        if let Err(e) = schedulezero_remote::on_own_thread("sz-zmq-register", serve).await {
            tracing::error!(error = %e, "registration channel: cannot serve");
        }
    };
    Ok((bound, run))
}

/// Peers the endpoint dropped (a malformed or oversized message, a failed or slow handshake).
/// Each is logged at debug level; a warning says how many at most every [`REFUSED_LOG_EVERY`],
/// so a flood of bad connections cannot flood the log.
#[derive(Default)]
struct RefusedPeers {
    state: std::sync::Mutex<(u64, Option<std::time::Instant>)>,
}

const REFUSED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl RefusedPeers {
    fn note(&self, error: &str) {
        tracing::debug!(error, "registration channel: peer disconnected");
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (count, last) = &mut *state;
        *count += 1;
        if last.is_none_or(|t| t.elapsed() >= REFUSED_LOG_EVERY) {
            tracing::warn!(
                error,
                peers = *count,
                "registration channel: disconnected peers that broke the protocol (the last error shown)"
            );
            *count = 0;
            *last = Some(std::time::Instant::now());
        }
    }
}

async fn log_refused(
    mut monitor: futures::channel::mpsc::Receiver<zeromq::SocketEvent>,
    refused: Arc<RefusedPeers>,
) {
    use futures::StreamExt;
    while let Some(event) = monitor.next().await {
        if let zeromq::SocketEvent::AcceptFailed(e) = event {
            refused.note(&e.to_string());
        }
    }
}
