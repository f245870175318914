//! `schedulezero serve`: one host. Opens the store, loads the plugins folder, picks up what a
//! previous host left unfinished, then runs the REST API and the scheduler until asked to stop.
//! Stopping (SIGTERM/SIGINT) closes the listener, stops claiming, lets running calls finish up to
//! `scheduler.shutdown_grace`, and closes the store.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::api::{self, AppState};
use crate::background::{Loops, Stop};
use crate::bridge::{self, Registry};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::history::History;
use crate::runtime::{EventKind, Plugin, PluginEvent, Runtime, RuntimeError};
use crate::scheduler::service::{Scheduler, SystemClock};
use crate::storage::Storage;
use crate::store::{HandlerKind, HandlerRecord, Retention, Store, StoreError};

mod cluster;
mod fleet;
mod lock;

pub use self::lock::{DataDirLock, LOCK_FILE, LockError};

/// How long past the shutdown grace the loops have to end.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// How often the execution log is pruned to its retention (and the WAL checkpointed).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Why the host could not start (or stopped on an error).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another host runs on the data directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The ZeroMQ registration endpoint could not start.
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
    /// The API address could not be bound, or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs a host until `shutdown` resolves. Prints one line on stdout once the API is listening:
/// `schedulezero listening on http://ADDR`.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    // Held until the host has stopped: the scheduler, the store and the bridge are this
    // process's alone.
    let _lock = lock::lock(&config.data_dir)?;
    let database = config.database_url();
    let store = Store::open_url(&database).await?;
    if let Some(home) = lock::home_id(&config.data_dir) {
        store.set_home(&home);
    }
    if store.is_shared() {
        tracing::info!(
            database = %redact_password(&database),
            "store open (PostgreSQL: other hosts may share it)"
        );
    } else {
        tracing::info!(%database, "store open (SQLite: this host is the only scheduler on it)");
    }
    let mut host = Host::start(config, store).await?;
    let zmq_endpoint = host.start_bridge().await?;
    let (listener, addr) = bind(&host.config.server.listen).await?;
    let router = api::router(host.app_state(addr, zmq_endpoint.clone()));
    host.start_scheduling(addr);
    announce(addr, &zmq_endpoint);

    let stopper = host.loops.stopper();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests or runs; waiting for running calls");
            stopper.give();
        })
        .await;
    // The scheduler drains running calls for up to the grace; the other loops end at once.
    let Host {
        config,
        store,
        loops,
        ..
    } = host;
    loops
        .stop(config.scheduler.shutdown_grace + STOP_MARGIN)
        .await;
    // Runs cut short by the stop are let go for another host to take at once.
    match store.leave().await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(runs = n, "let go of the runs the stop cut short");
            store.announce(crate::store::Announcement::Orphans).await;
        }
        Err(e) => tracing::warn!(error = %e, "cannot record this host's stop"),
    }
    store.close().await;
    tracing::info!("stopped");
    served.map_err(|source| ServeError::Listen {
        addr: addr.to_string(),
        source,
    })
}

/// A host's parts as it starts.
struct Host {
    config: Arc<Config>,
    store: Store,
    storage: Arc<Storage>,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    connections: Arc<bridge::Connections>,
    scheduler: Arc<Scheduler>,
    grants: crate::service::GrantService,
    loops: Loops,
}

impl Host {
    /// Loads the plugins (and watches their folder), and makes the scheduler, picking up what a
    /// previous host left unfinished. On a full volume the host still starts and serves reads:
    /// what it cannot write now waits for space (`follow_storage`).
    async fn start(config: Arc<Config>, store: Store) -> Result<Self, ServeError> {
        store.set_lease(config.cluster.lease);
        let storage = Storage::new(&config.data_dir, config.server.min_free_space);
        let runtime = Arc::new(Runtime::new((*config).clone())?);
        let mut pending = Pending::default();
        match sync_plugins(&runtime, &store).await {
            Err(ServeError::Store(e)) if e.is_full() => {
                tracing::warn!(error = %e, "cannot record the plugins: the disk is full; again once space returns");
                pending.plugins = true;
            }
            other => other?,
        }
        let grants = crate::service::GrantService::new(store.clone(), runtime.clone());
        if let Err(e) = grants.seed_and_load(&config).await {
            if !e.is_full() {
                return Err(e.into());
            }
            // The configuration file's grants are in effect already; they reach the store at
            // the next start.
            tracing::warn!(error = %e, "cannot record the configuration file's grants: the disk is full");
        }
        let mut loops = Loops::new();
        start_plugin_loops(&mut loops, &config, &runtime, &store);

        let signer = config
            .server
            .remote_secret
            .as_deref()
            .map(|secret| Arc::new(bridge::Signer::new(secret)));
        let registry = Arc::new(Registry::load(store.clone(), signer.clone()).await?);
        let connections = Arc::new(bridge::Connections::new(signer));
        let dispatcher = Dispatcher::new(runtime.clone(), store.clone())
            .with_remote(registry.clone(), connections.clone());
        let handlers = dispatcher.handlers().clone();
        let mut scheduler = Scheduler::new(store.clone(), dispatcher, config.scheduler.batch);
        if store.is_shared() {
            // Hosts may have different plugins: each claims only what it can run.
            scheduler = scheduler.claiming_only(Arc::new(move || handlers.runnable()));
            if config.cluster.notify {
                scheduler = scheduler.announcing();
            }
        }
        let scheduler = Arc::new(scheduler);
        // Recorded among the nodes (and the clock measured) before it takes anything over.
        let reporter = cluster::Reporter {
            config: config.clone(),
            runtime: runtime.clone(),
            scheduler: scheduler.clone(),
            address: None,
        };
        if let Err(e) = store.beat(&reporter.report()).await {
            tracing::warn!(error = %e, "cannot record this host among the nodes yet");
        }
        match scheduler.recover(store.node().now()).await {
            Err(e) if e.is_full() => {
                tracing::warn!(error = %e, "cannot pick up unfinished runs: the disk is full; the scheduler waits for space");
                pending.recover = true;
            }
            other => {
                other?;
            }
        }
        scheduler.hold(storage.is_low() || pending.recover);
        let host = Self {
            config,
            store,
            storage,
            grants,
            runtime,
            registry,
            connections,
            scheduler,
            loops,
        };
        Ok(host.following_storage(pending))
    }

    /// Starts sampling free space, and holding the scheduler (and making the writes left
    /// `pending`) as it changes.
    fn following_storage(mut self, pending: Pending) -> Self {
        let storage = self.storage.clone();
        self.loops
            .start("storage", |stop| storage.clone().run(stop));
        let (scheduler, runtime, store) = (
            self.scheduler.clone(),
            self.runtime.clone(),
            self.store.clone(),
        );
        self.loops.start("follow storage", |stop| {
            follow_storage(storage, scheduler, runtime, store, pending, stop)
        });
        self
    }

    /// Binds the ZeroMQ registration endpoint and pings the remote handlers; returns where
    /// they register.
    async fn start_bridge(&mut self) -> Result<String, ServeError> {
        let server = &self.config.server;
        let (zmq_endpoint, registration) = bridge::server::start(
            self.registry.clone(),
            &server.zmq_listen,
            (server.remote_max_message, server.remote_handshake_timeout),
            self.loops.stop_signal(),
        )
        .await?;
        self.loops.start("registration", |_| registration);
        let (registry, connections) = (self.registry.clone(), self.connections.clone());
        let every = server.remote_ping_interval;
        self.loops.start("remote health", |stop| {
            bridge::health::run(registry, connections, every, stop)
        });
        Ok(zmq_endpoint)
    }

    /// What the API's routes reach, with the host's metrics sampled into a history.
    fn app_state(&mut self, listen: SocketAddr, zmq_endpoint: String) -> Arc<AppState> {
        let host_metrics = Arc::new(crate::telemetry::HostMetrics::new(&self.config.data_dir));
        self.runtime.set_fleet(Arc::new(fleet::HostFleet {
            runtime: Arc::downgrade(&self.runtime),
            registry: self.registry.clone(),
            connections: self.connections.clone(),
            store: self.store.clone(),
            metrics: host_metrics.clone(),
            forget_nodes_after: self.config.cluster.forget_nodes_after,
        }));
        let history = Arc::new(History::new(self.config.server.history_interval));
        let (h, r, m) = (history.clone(), self.runtime.clone(), host_metrics.clone());
        self.loops
            .start("history", |stop| crate::history::run(h, r, m, stop));
        Arc::new(AppState {
            config: self.config.clone(),
            store: self.store.clone(),
            runtime: self.runtime.clone(),
            scheduler: self.scheduler.clone(),
            started_at: Utc::now(),
            listen,
            host_metrics,
            history,
            registry: self.registry.clone(),
            connections: self.connections.clone(),
            zmq_endpoint,
            schedules: crate::service::ScheduleService::new(
                self.store.clone(),
                self.scheduler.clone(),
                self.storage.clone(),
            ),
            storage: self.storage.clone(),
            grants: self.grants.clone(),
            catalog: Arc::new(crate::catalog::Catalog::new(
                self.runtime.clone(),
                &crate::catalog::Credentials::from_env(),
            )),
            openapi: std::sync::OnceLock::new(),
        })
    }

    /// Starts the scheduler loop, the heartbeat (with, on a shared store, taking over what dead
    /// hosts left and hearing the others' announcements) and the execution log's pruning.
    fn start_scheduling(&mut self, listen: SocketAddr) {
        let (scheduler, config) = (self.scheduler.clone(), self.config.clone());
        let clock: Arc<dyn crate::scheduler::service::Clock> = if self.store.is_shared() {
            Arc::new(cluster::StoreClock(self.store.clone()))
        } else {
            Arc::new(SystemClock)
        };
        self.loops.start("scheduler", |mut stop| async move {
            let until_stopped = async move { stop.wait().await };
            scheduler
                .run(
                    clock,
                    config.scheduler.max_tick,
                    config.scheduler.shutdown_grace,
                    until_stopped,
                )
                .await;
        });
        let retention = Retention {
            max_records: self.config.scheduler.retention_records,
            max_age: self.config.scheduler.retention_age,
        };
        let store = self.store.clone();
        self.loops
            .start("pruning", |stop| prune(store, retention, stop));
        let reporter = cluster::Reporter {
            config: self.config.clone(),
            runtime: self.runtime.clone(),
            scheduler: self.scheduler.clone(),
            address: Some(format!("http://{listen}")),
        };
        let (store, registry) = (self.store.clone(), self.registry.clone());
        let forget_after = self.config.cluster.forget_nodes_after;
        self.loops.start("heartbeat", |stop| {
            cluster::heartbeat(store, reporter, registry, forget_after, stop)
        });
        if self.store.is_shared() && self.config.cluster.notify {
            let (store, scheduler) = (self.store.clone(), self.scheduler.clone());
            self.loops.start("announcements", |stop| {
                cluster::listen(store, scheduler, stop)
            });
        }
    }
}

/// The governor, the folder watch (from here on, against the files as they were loaded: a
/// file that changed since is loaded again) and the handlers table following the plugins.
fn start_plugin_loops(loops: &mut Loops, config: &Config, runtime: &Arc<Runtime>, store: &Store) {
    loops.start("governor", |stop| runtime.governor(stop));
    let plugin_events = runtime.subscribe();
    if config.pool.watch {
        let watch = runtime.watch();
        loops.start("watcher", |mut stop| async move {
            // The watch runs while its guard lives.
            let _watch = watch;
            stop.wait().await;
        });
    }
    let (runtime, store) = (runtime.clone(), store.clone());
    loops.start("follow plugins", |stop| {
        follow_plugins(runtime, store, plugin_events, stop)
    });
}

/// Binds the API's address.
async fn bind(listen: &str) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let failed = |source| ServeError::Listen {
        addr: listen.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok((listener, addr))
}

/// Says where the host listens: in the log, and on stdout for whoever started it.
fn announce(addr: SocketAddr, zmq_endpoint: &str) {
    tracing::info!(%addr, api = %format!("http://{addr}/api/v1"), "listening");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "schedulezero listening on http://{addr}");
    let _ = writeln!(out, "  Dashboard: http://{addr}/");
    let _ = writeln!(
        out,
        "  REST API: http://{addr}/api/v1 (ScheduleZero routes under http://{addr}/api)"
    );
    let _ = writeln!(out, "  OpenAPI:  http://{addr}/api/v1/openapi.json");
    let _ = writeln!(
        out,
        "  ZeroMQ:   {zmq_endpoint} (remote handlers register here)"
    );
    let _ = out.flush();
}

/// Writes the start could not make for lack of space.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    /// The plugins are not recorded as handlers.
    plugins: bool,
    /// The previous host's unfinished runs are not picked up (the scheduler is held until they
    /// are).
    recover: bool,
}

/// How often writes left pending for lack of space are tried again while space seems back.
const PENDING_RETRY: Duration = Duration::from_secs(5);

/// Holds the scheduler while free space is below the floor (or the start's recovery is still
/// pending), and makes the writes the start could not once there is room.
async fn follow_storage(
    storage: Arc<Storage>,
    scheduler: Arc<Scheduler>,
    runtime: Arc<Runtime>,
    store: Store,
    mut pending: Pending,
    mut stop: Stop,
) {
    let mut changes = storage.subscribe();
    loop {
        let low = storage.is_low();
        if !low && pending.plugins {
            match resync(&runtime, &store).await {
                Ok(()) => pending.plugins = false,
                Err(e) => tracing::warn!(error = %e, "cannot record the plugins yet"),
            }
        }
        if !low && pending.recover {
            match scheduler.recover(Utc::now()).await {
                Ok(_) => pending.recover = false,
                Err(e) => tracing::warn!(error = %e, "cannot pick up unfinished runs yet"),
            }
        }
        scheduler.hold(low || pending.recover);
        let retry = pending.plugins || pending.recover;
        tokio::select! {
            _ = stop.wait() => return,
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(PENDING_RETRY), if retry => {}
        }
    }
}

/// How long the start waits for the plugins to load; a plugin still compiling then (a large
/// component seen for the first time) goes on in the background, and its calls wait for it.
const START_LOAD_WAIT: Duration = Duration::from_secs(10);

/// Loads every plugin in the folder and records them as handlers; plugins recorded before whose
/// file is gone are marked missing (their schedules fail clearly when they fire).
async fn sync_plugins(runtime: &Arc<Runtime>, store: &Store) -> Result<(), ServeError> {
    let discovery = runtime.discover_within(START_LOAD_WAIT).await?;
    prune_artifacts(runtime);
    let now = Utc::now();
    let mut present = Vec::new();
    for report in &discovery.loaded {
        present.push(report.plugin.name().to_owned());
        record_plugin(store, &report.plugin).await?;
    }
    for path in &discovery.compiling {
        // Recorded when it is loaded (its `added` event); not missing meanwhile.
        if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
            present.push(name.to_owned());
        }
        tracing::info!(file = %path.display(), "plugin still compiling; it is served once loaded");
    }
    for rejected in &discovery.rejected {
        tracing::warn!(file = %rejected.path.display(), error = %rejected.error, "plugin rejected");
    }
    let missing = store.mark_missing_plugins(&present, now).await?;
    tracing::info!(
        plugins = present.len(),
        rejected = discovery.rejected.len(),
        compiling = discovery.compiling.len(),
        missing,
        dir = %runtime.config().plugins_dir.display(),
        "plugins loaded"
    );
    Ok(())
}

async fn record_plugin(store: &Store, p: &Plugin) -> Result<(), StoreError> {
    let now = Utc::now();
    store
        .upsert_handler(&HandlerRecord {
            id: p.name().to_owned(),
            kind: HandlerKind::Wasm,
            address: Some(p.file().path.display().to_string()),
            version: Some(p.info().version.clone()),
            methods: p.info().methods.iter().map(|m| m.name.clone()).collect(),
            status: "available".into(),
            registered_at: now,
            updated_at: now,
        })
        .await
}

/// Keeps the handlers table in step with the plugins folder as the watch sees it change.
async fn follow_plugins(
    runtime: Arc<Runtime>,
    store: Store,
    mut events: tokio::sync::broadcast::Receiver<PluginEvent>,
    mut stop: Stop,
) {
    use tokio::sync::broadcast::error::RecvError;
    // The plugins that finished loading in the background between the start's record of the
    // folder and this subscription.
    if let Err(e) = resync(&runtime, &store).await {
        tracing::warn!(error = %e, "cannot record the plugins");
    }
    loop {
        let received = tokio::select! {
            _ = stop.wait() => return,
            received = events.recv() => received,
        };
        let result = match received {
            Ok(event) => match event.kind {
                EventKind::Added => match runtime.plugin(&event.plugin) {
                    Some(p) => record_plugin(&store, &p).await,
                    None => Ok(()),
                },
                EventKind::Replaced => {
                    prune_artifacts(&runtime);
                    match runtime.plugin(&event.plugin) {
                        Some(p) => record_plugin(&store, &p).await,
                        None => Ok(()),
                    }
                }
                EventKind::Removed => {
                    prune_artifacts(&runtime);
                    resync(&runtime, &store).await
                }
                // A file that was compiling at the start and is refused is missing.
                EventKind::Rejected if runtime.plugin(&event.plugin).is_none() => {
                    resync(&runtime, &store).await
                }
                _ => Ok(()),
            },
            Err(RecvError::Closed) => return,
            // Missed some: bring the whole table up to date.
            Err(RecvError::Lagged(_)) => resync(&runtime, &store).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record a plugins folder change");
        }
    }
}

/// Removes cached artifacts no loaded plugin uses (replaced versions, removed files); not while
/// a plugin is compiling (its artifact is written before it is a plugin).
fn prune_artifacts(runtime: &Runtime) {
    if !runtime.compiling().is_empty() {
        return;
    }
    let keep = runtime
        .plugins()
        .iter()
        .map(|p| p.file().sha256.clone())
        .collect();
    let freed = runtime.cache().prune(&keep);
    if freed > 0 {
        tracing::info!(
            bytes = freed,
            "artifact cache: removed the artifacts no plugin uses"
        );
    }
}

/// Records every plugin the runtime has, and marks the others missing.
async fn resync(runtime: &Runtime, store: &Store) -> Result<(), StoreError> {
    let plugins = runtime.plugins();
    for p in &plugins {
        record_plugin(store, p).await?;
    }
    // A plugin still compiling is not missing: it is recorded when it is loaded.
    let present: Vec<String> = plugins
        .iter()
        .map(|p| p.name().to_owned())
        .chain(runtime.compiling().into_iter().map(|c| c.name))
        .collect();
    store.mark_missing_plugins(&present, Utc::now()).await?;
    Ok(())
}

async fn prune(store: Store, retention: Retention, mut stop: Stop) {
    loop {
        match store.prune_executions(retention, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "execution log pruned to its retention"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the execution log"),
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "cannot checkpoint the store");
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// A database URL with its password, if any, replaced by `***` (for logs).
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
