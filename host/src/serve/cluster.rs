//! A host among others on one store: its heartbeat (which also renews the leases of the runs
//! it holds), taking over the runs of hosts that died, following the remote handlers other
//! hosts registered, and waking up when another host announces a schedule change.

use std::sync::Arc;
use std::time::Duration;

use crate::background::Stop;
use crate::bridge::Registry;
use crate::config::Config;
use crate::runtime::Runtime;
use crate::scheduler::service::{Clock, Scheduler};
use crate::store::{NodeReport, Store};

/// The database's clock as this host reckons it (measured at each heartbeat): due times and
/// leases on a shared store are on it, whatever each machine's clock says.
pub struct StoreClock(pub Store);

impl Clock for StoreClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.node().now()
    }
}

/// What this node tells the others about itself.
pub struct Reporter {
    pub config: Arc<Config>,
    pub runtime: Arc<Runtime>,
    pub scheduler: Arc<Scheduler>,
    pub address: Option<String>,
}

impl Reporter {
    pub fn report(&self) -> NodeReport {
        let plugins = self.runtime.plugin_names();
        NodeReport {
            name: self.config.server.instance_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: self.address.clone(),
            pid: std::process::id(),
            plugins,
            runs: self.scheduler.runs_in_flight(),
        }
    }
}

/// Beats every third of the lease until stopped; on a shared store, each beat also takes over
/// what dead hosts left and picks up the remote handlers registered at other hosts. A failed
/// beat is logged and tried again at the next (the leases last three beats).
pub async fn heartbeat(
    store: Store,
    reporter: Reporter,
    registry: Arc<Registry>,
    forget_after: Duration,
    mut stop: Stop,
) {
    let every = store.node().lease() / 3;
    let mut beats: u64 = 0;
    loop {
        match store.beat(&reporter.report()).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; the next one tries again"),
        }
        if store.is_shared() {
            if let Err(e) = registry.refresh().await {
                tracing::warn!(error = %e, "cannot read the remote handlers other hosts registered");
            }
            match reporter.scheduler.rescue(store.node().now()).await {
                Ok(r) if r.resumed + r.ended > 0 => {
                    tracing::info!(
                        resumed = r.resumed,
                        ended = r.ended,
                        interrupted = r.interrupted,
                        "took over the runs of hosts that stopped or died"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take over the runs of dead hosts"),
            }
        }
        beats += 1;
        // Now and then, forget nodes long gone.
        if beats % 100 == 1
            && let Err(e) = store.prune_nodes(forget_after).await
        {
            tracing::warn!(error = %e, "cannot forget old nodes");
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(every) => {}
            // Another host let runs go: take them now.
            _ = reporter.scheduler.orphans_announced() => {}
        }
    }
}

/// Wakes the scheduler when another host announces a schedule change (LISTEN/NOTIFY), until
/// stopped. A lost connection is made again; until it is, the scheduler still looks at the
/// store every `scheduler.max_tick`.
pub async fn listen(store: Store, scheduler: Arc<Scheduler>, mut stop: Stop) {
    loop {
        let mut listener = match store.listen().await {
            Ok(Some(l)) => l,
            // Nothing to listen to (SQLite).
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other hosts' announcements; trying again");
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                _ = stop.wait() => return,
                heard = listener.next() => match heard {
                    Ok(wake) => scheduler.heard(wake),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the announcements' connection; listening again");
                        // What was announced meanwhile was not heard: look now.
                        scheduler.wake();
                        break;
                    }
                }
            }
        }
    }
}
