//! Keeping an eye on remote handlers: every `server.remote_ping_interval` the host pings each
//! registered handler on its invocation channel (all at once, each bounded by a timeout), and
//! marks it `online` or `unreachable`. A handler busy with a call is alive and not pinged; one
//! that reported `offline` is left alone until it registers again. Runs on its own task: the
//! API never waits for a ping.

use std::sync::Arc;
use std::time::Duration;

use crate::background::Stop;

use super::client::Connections;
use super::registry::{OFFLINE, ONLINE, Registry, UNREACHABLE};

/// How long a ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Pings registered handlers every `every` until `stop`.
pub async fn run(
    registry: Arc<Registry>,
    connections: Arc<Connections>,
    every: Duration,
    mut stop: Stop,
) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let pings = registry
                .all()
                .into_iter()
                .filter(|h| h.status != OFFLINE)
                .map(|h| {
                    let (registry, connections) = (registry.clone(), connections.clone());
                    async move {
                        let status = match connections.ping(&h, PING_TIMEOUT).await {
                            Ok(_) => ONLINE,
                            Err(e) => {
                                if h.status != UNREACHABLE {
                                    tracing::warn!(handler = %h.id, address = %h.address, error = %e,
                                        "remote handler does not answer");
                                }
                                UNREACHABLE
                            }
                        };
                        if let Err(e) = registry.set_status(&h, status).await {
                            tracing::warn!(handler = %h.id, error = %e, "cannot store a handler's status");
                        }
                    }
                });
        futures::future::join_all(pings).await;
    }
}
