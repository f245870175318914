//! The `fleet` import: a read-only view of the host's handlers, the host and the machine, the
//! store's recent executions and nodes, for a handler that watches the others (the conductor).
//!
//! The runtime only holds the door: what the view shows comes from a [`FleetView`] the host sets
//! once it has built its registry, store and samplers ([`crate::runtime::Runtime::set_fleet`]);
//! a runtime without one (the CLI's `invoke`, a test runtime) answers `unavailable`. A call may
//! use the view only when its plugin's manifest requests `fleet` and the operator granted it,
//! and at most `limits.fleet_max_requests` times; each refusal is recorded with the call, as an
//! HTTP refusal is, so that `capability_denied` says why. The requests and the time spent in them
//! are counted in the call's usage.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::bindings::schedulezero::handler::fleet;
pub use super::bindings::schedulezero::handler::fleet::{
    FleetError, HandlerExecutions, HandlerKind, HandlerStatus, HostStatus, NodeStatus, PingResult,
    PluginStatus, ProcessMetrics, RemoteStatus,
};
use super::host::HostState;
use super::outbound::CallNet;
use crate::capability::FleetAccess;

/// Pings `ping-many` runs at a time.
const PINGS_AT_ONCE: usize = 16;

/// The longest window `executions` looks back over.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What the fleet import shows. Every method is read-only.
#[async_trait::async_trait]
pub trait FleetView: Send + Sync {
    /// Every handler: plugins, then remote handlers, each sorted by name.
    async fn handlers(&self) -> Result<Vec<HandlerStatus>, FleetError>;

    /// Pings `handler` for `caller`: a remote handler's round trip; a plugin's state, and a
    /// no-op call (`describe`) when `call_plugins`.
    async fn ping(
        &self,
        caller: &str,
        handler: &str,
        call_plugins: bool,
        timeout: Duration,
    ) -> Result<PingResult, FleetError>;

    /// A remote handler's own figures (`get_metrics`); `None` when it does not report them.
    async fn remote_metrics(
        &self,
        handler: &str,
        timeout: Duration,
    ) -> Result<Option<ProcessMetrics>, FleetError>;

    /// The host process and the machine.
    async fn host(&self) -> Result<HostStatus, FleetError>;

    /// Executions per handler that started within `window`.
    async fn executions(&self, window: Duration) -> Result<Vec<HandlerExecutions>, FleetError>;

    /// The hosts sharing the store.
    async fn nodes(&self) -> Result<Vec<NodeStatus>, FleetError>;

    /// The result of `plugin`'s own latest successful call of `method`.
    async fn last_result(&self, plugin: &str, method: &str) -> Result<Option<String>, FleetError>;
}

/// Admits one fleet request of the call running on `state`, or says why not (the reason is
/// recorded with the call).
fn admit(
    state: &HostState,
    what: &str,
    requests: u32,
) -> Result<(std::sync::Arc<CallNet>, FleetAccess), FleetError> {
    let Some(net) = state.call() else {
        return Err(FleetError::Denied("no call is running".into()));
    };
    let refuse = |why: String| {
        tracing::info!(plugin = %net.plugin, run_id = %net.run_id, request = what, reason = %why, "fleet request denied");
        net.usage.deny(why.clone());
        why
    };
    if net.effective.manifest.fleet.is_none() {
        return Err(FleetError::Denied(refuse(format!(
            "fleet.{what}: `fleet` is not in the component's manifest, so it cannot be granted"
        ))));
    }
    let Some(grant) = net.effective.fleet else {
        return Err(FleetError::Denied(refuse(format!(
            "fleet.{what}: `fleet` is requested but not granted"
        ))));
    };
    let n = net
        .usage
        .fleet_requests
        .fetch_add(requests, Ordering::Relaxed)
        .saturating_add(requests);
    let max = net.limits.fleet_max_requests;
    if n > max {
        let which = if requests == 1 {
            format!("request {n}")
        } else {
            format!("{requests} requests (up to {n})")
        };
        return Err(FleetError::Limit(refuse(format!(
            "fleet.{what}: {which} refused: at most {max} fleet requests per call (limits.fleet_max_requests)"
        ))));
    }
    Ok((net, grant))
}

/// The view of the call's runtime, or `unavailable`.
fn view(net: &CallNet) -> Result<std::sync::Arc<dyn FleetView>, FleetError> {
    net.fleet.clone().ok_or_else(|| {
        FleetError::Unavailable("this runtime has no fleet view (it runs outside a host)".into())
    })
}

/// Runs one fleet request, adding the time it took to the call's usage.
async fn timed<T>(net: &CallNet, request: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = request.await;
    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    net.usage.fleet_time_us.fetch_add(took, Ordering::Relaxed);
    out
}

impl fleet::Host for HostState {
    async fn handlers(&mut self) -> Result<Vec<HandlerStatus>, FleetError> {
        let (net, _) = admit(self, "handlers", 1)?;
        timed(&net, async { view(&net)?.handlers().await }).await
    }

    async fn ping(&mut self, handler: String) -> Result<PingResult, FleetError> {
        let (net, grant) = admit(self, "ping", 1)?;
        let timeout = net.limits.fleet_ping_timeout;
        timed(&net, async {
            view(&net)?
                .ping(&net.plugin, &handler, grant.call_plugins, timeout)
                .await
        })
        .await
    }

    async fn ping_many(
        &mut self,
        handlers: Vec<String>,
    ) -> Result<Vec<Result<PingResult, FleetError>>, FleetError> {
        let count = u32::try_from(handlers.len()).unwrap_or(u32::MAX);
        let (net, grant) = admit(self, "ping-many", count)?;
        let timeout = net.limits.fleet_ping_timeout;
        timed(&net, async {
            let view = view(&net)?;
            let pings = futures::stream::iter(handlers)
                .map(|handler| {
                    let (view, caller) = (&view, &net.plugin);
                    async move {
                        view.ping(caller, &handler, grant.call_plugins, timeout)
                            .await
                    }
                })
                .buffered(PINGS_AT_ONCE);
            Ok(pings.collect().await)
        })
        .await
    }

    async fn remote_metrics(
        &mut self,
        handler: String,
    ) -> Result<Option<ProcessMetrics>, FleetError> {
        let (net, _) = admit(self, "remote-metrics", 1)?;
        let timeout = net.limits.fleet_ping_timeout;
        timed(&net, async {
            view(&net)?.remote_metrics(&handler, timeout).await
        })
        .await
    }

    async fn host(&mut self) -> Result<HostStatus, FleetError> {
        let (net, _) = admit(self, "host", 1)?;
        timed(&net, async { view(&net)?.host().await }).await
    }

    async fn executions(
        &mut self,
        window_seconds: u32,
    ) -> Result<Vec<HandlerExecutions>, FleetError> {
        let (net, _) = admit(self, "executions", 1)?;
        let window = Duration::from_secs(u64::from(window_seconds)).min(MAX_WINDOW);
        timed(&net, async { view(&net)?.executions(window).await }).await
    }

    async fn nodes(&mut self) -> Result<Vec<NodeStatus>, FleetError> {
        let (net, _) = admit(self, "nodes", 1)?;
        timed(&net, async { view(&net)?.nodes().await }).await
    }

    async fn last_result(&mut self, method: String) -> Result<Option<String>, FleetError> {
        let (net, _) = admit(self, "last-result", 1)?;
        timed(&net, async {
            view(&net)?.last_result(&net.plugin, &method).await
        })
        .await
    }
}
