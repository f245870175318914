//! The registration endpoint: a REP socket (the pure-Rust `zeromq` crate) where handlers `ping`,
//! `register` and `report_status`. One request at a time, as REQ/REP goes; every request gets an
//! answer, malformed ones included, and nothing a peer sends can stop the loop. The socket is
//! served from a thread of its own (see [`schedulezero_remote::on_own_thread`]: with many peers
//! coming and going, the `zeromq` crate can otherwise stall a worker of the host's runtime, and
//! the endpoint with it); the registry's work runs on the host's runtime.

use std::sync::Arc;

use tokio::sync::watch;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use super::BridgeError;
use super::protocol;
use super::registry::Registry;

/// Binds the registration endpoint and answers on it until `stopped` turns true. Returns the
/// endpoint it is bound to (the real port when `endpoint` asked for port 0).
pub async fn start(
    registry: Arc<Registry>,
    endpoint: &str,
    mut stopped: watch::Receiver<bool>,
) -> Result<(String, tokio::task::JoinHandle<()>), BridgeError> {
    let mut socket = zeromq::RepSocket::new();
    let bound = socket
        .bind(endpoint)
        .await
        .map_err(|e| BridgeError::Bind {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?
        .to_string();
    tracing::info!(endpoint = %bound, "remote handlers register here");
    let runtime = tokio::runtime::Handle::current();
    let serve = async move {
        loop {
            let message = tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
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
                    tracing::warn!(error = %e, "registration channel: cannot read a message");
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
    };
    let task = tokio::spawn(async move {
        if let Err(e) = schedulezero_remote::on_own_thread("sz-zmq-register", serve).await {
            tracing::error!(error = %e, "registration channel: cannot serve");
        }
    });
    Ok((bound, task))
}
