//! The registration endpoint: a REP socket (the pure-Rust `zeromq` crate) where handlers `ping`,
//! `register` and `report_status`. One request at a time, as REQ/REP goes; every request gets an
//! answer, malformed ones included, and nothing a peer sends can stop the loop.

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
    let task = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                m = socket.recv() => m,
            };
            let reply = match message {
                Ok(m) if m.len() == 1 => match m.get(0) {
                    Some(frame) => registry.answer(frame).await,
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
    });
    Ok((bound, task))
}
