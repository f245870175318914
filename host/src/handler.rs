//! One abstraction over the two kinds of handlers jobs run on: WebAssembly plugins (the runtime)
//! and remote handlers (registered over ZeroMQ). The scheduler's dispatcher calls through it, and
//! the REST API resolves, checks and lists handlers with it, so both kinds are found, called,
//! recorded (`wasm:<plugin>#<instance>`, `zmq:<id>@<address>`) and shown the same way.
//!
//! An id resolves to a loaded plugin first, then to a registered remote handler, then to a plugin
//! file not loaded yet; a remote handler cannot register under a loaded plugin's id.

use std::sync::Arc;
use std::time::Duration;

use crate::bridge::client::{DEFAULT_TIMEOUT, RemoteStats};
use crate::bridge::{Connections, Registry, RemoteHandler};
use crate::runtime::{InvokeError, JobContext, Plugin, Runtime};
use crate::store::HandlerKind;

/// Compiled params schemas, by the schema's text: compiling one checks it against its
/// meta-schema, which costs more than the create it guards, and versions of a plugin (or plugins
/// built from one crate) share their schemas.
type Validators = std::collections::HashMap<String, Option<Arc<jsonschema::Validator>>>;

/// The most compiled schemas kept (plugin versions come and go; the cache starts over past it).
const VALIDATORS_KEPT: usize = 4096;

/// The validator of `method`'s params schema, compiled once; `None` when the method publishes
/// none, or one that cannot be compiled (its params are then not refused for it: the handler
/// still checks them when it runs).
fn params_validator(p: &Plugin, method: &str) -> Option<Arc<jsonschema::Validator>> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<Validators>> = std::sync::OnceLock::new();
    let info = p.info();
    let schema = info
        .methods
        .iter()
        .find(|m| m.name == method)
        .and_then(|m| m.params_schema.as_ref())?;
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return v.clone();
    }
    let compiled = match jsonschema::validator_for(schema) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            tracing::warn!(handler = %p.name(), method, error = %e, "unusable params schema");
            None
        }
    };
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= VALIDATORS_KEPT {
        cache.clear();
    }
    cache.insert(key, compiled.clone());
    compiled
}

/// A handler jobs can run on.
#[derive(Clone)]
pub enum Handler {
    /// A WebAssembly plugin.
    Plugin(Arc<Plugin>),
    /// A remote handler, as registered.
    Remote(RemoteHandler),
}

impl Handler {
    /// The id schedules name it by.
    pub fn id(&self) -> &str {
        match self {
            Self::Plugin(p) => p.name(),
            Self::Remote(r) => &r.id,
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> HandlerKind {
        match self {
            Self::Plugin(_) => HandlerKind::Wasm,
            Self::Remote(_) => HandlerKind::Remote,
        }
    }

    /// The names of its methods.
    pub fn method_names(&self) -> Vec<String> {
        match self {
            Self::Plugin(p) => p.info().methods.iter().map(|m| m.name.clone()).collect(),
            Self::Remote(r) => r.methods.clone(),
        }
    }

    /// Whether it has `method`.
    pub fn has_method(&self, method: &str) -> bool {
        match self {
            Self::Plugin(p) => p.info().methods.iter().any(|m| m.name == method),
            Self::Remote(r) => r.methods.iter().any(|m| m == method),
        }
    }

    /// Checks `params` against the JSON Schema `method` publishes (a plugin's, from
    /// `describe()`); a method without one takes any params. The error names where the params
    /// are wrong (a JSON pointer) and why.
    pub fn check_params(&self, method: &str, params: &serde_json::Value) -> Result<(), String> {
        let Self::Plugin(p) = self else {
            return Ok(());
        };
        let Some(validator) = params_validator(p, method) else {
            return Ok(());
        };
        // `{}` is how a caller says "no params" (the API's default): a method that takes none
        // publishes the schema of `null`.
        if params.as_object().is_some_and(serde_json::Map::is_empty)
            && validator.is_valid(&serde_json::Value::Null)
        {
            return Ok(());
        }
        let errors: Vec<String> = validator
            .iter_errors(params)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "params do not match the schema of {}.{method}: {}",
                p.name(),
                errors.join("; ")
            ))
        }
    }

    /// What an execution record names as where it ran, before it ran (`wasm:<plugin>`,
    /// `zmq:<id>@<address>`).
    pub fn location(&self) -> String {
        match self {
            Self::Plugin(p) => format!("wasm:{}", p.name()),
            Self::Remote(r) => format!("zmq:{}@{}", r.id, r.address),
        }
    }
}

/// The handlers of a host: its runtime's plugins and, when the bridge runs, its remote handlers.
#[derive(Clone)]
pub struct Handlers {
    runtime: Arc<Runtime>,
    remote: Option<(Arc<Registry>, Arc<Connections>)>,
}

impl Handlers {
    /// Plugins only.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            remote: None,
        }
    }

    /// Plugins and the remote handlers of `registry`, called over `connections`.
    pub fn with_remote(mut self, registry: Arc<Registry>, connections: Arc<Connections>) -> Self {
        let runtime = self.runtime.clone();
        registry.reserve_ids(move |id| runtime.plugin(id).is_some());
        self.remote = Some((registry, connections));
        self
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn remote(&self, id: &str) -> Option<RemoteHandler> {
        self.remote
            .as_ref()
            .and_then(|(registry, _)| registry.get(id))
    }

    /// The handler with this id, without touching the disk: a loaded plugin or a registered
    /// remote handler.
    pub fn known(&self, id: &str) -> Option<Handler> {
        if let Some(p) = self.runtime.plugin(id) {
            return Some(Handler::Plugin(p));
        }
        self.remote(id).map(Handler::Remote)
    }

    /// The handler with this id, loading a plugin file the runtime has not seen yet (or, on a
    /// shared store, a remote handler registered at another host).
    pub async fn find(&self, id: &str) -> Option<Handler> {
        if let Some(h) = self.known(id) {
            return Some(h);
        }
        // A remote handler may have registered at another host on a shared store since this
        // host last looked.
        if let Some((registry, _)) = &self.remote
            && registry.shared()
            && registry.refresh().await.is_ok_and(|changed| changed > 0)
            && let Some(r) = registry.get(id)
        {
            return Some(Handler::Remote(r));
        }
        let report = self.runtime.load(id).await.ok()?;
        Some(Handler::Plugin(report.plugin))
    }

    /// Every loaded plugin and registered remote handler, by id.
    pub fn all(&self) -> Vec<Handler> {
        let mut all: Vec<Handler> = self
            .runtime
            .plugins()
            .into_iter()
            .map(Handler::Plugin)
            .collect();
        if let Some((registry, _)) = &self.remote {
            for r in registry.all() {
                if self.runtime.plugin(&r.id).is_none() {
                    all.push(Handler::Remote(r));
                }
            }
        }
        all.sort_by(|a, b| a.id().cmp(b.id()));
        all
    }

    /// The handlers this host can run now: its loaded plugins, and the remote handlers that
    /// answer. Sorted.
    pub fn runnable(&self) -> Vec<String> {
        let mut ids = self.runtime.plugin_names();
        if let Some((registry, _)) = &self.remote {
            ids.extend(
                registry
                    .all()
                    .into_iter()
                    .filter(|r| r.status == crate::bridge::registry::ONLINE)
                    .map(|r| r.id),
            );
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// What the host saw of a remote handler since it started (calls, errors, last round trip,
    /// last seen); `None` for a plugin or an unknown id.
    pub fn remote_stats(&self, id: &str) -> Option<RemoteStats> {
        let (registry, connections) = self.remote.as_ref()?;
        registry.get(id).map(|_| connections.stats(id))
    }

    /// One call of `method` on handler `id` with JSON `params`: the result as JSON text and the
    /// instance that ran it (`wasm:<plugin>#<n>` or `zmq:<id>@<address>`). `timeout` bounds it
    /// (a remote call defaults to 10 s; a plugin has its own limit too).
    pub async fn call(
        &self,
        id: &str,
        method: &str,
        params: &str,
        ctx: &JobContext,
        timeout: Option<Duration>,
    ) -> Result<(String, String), InvokeError> {
        self.call_reporting(id, method, params, ctx, timeout)
            .await
            .0
    }

    /// [`Handlers::call`], with what a plugin's call used outside its instance (HTTP requests,
    /// hosts, directories; none for remote handlers and calls that used nothing).
    pub async fn call_reporting(
        &self,
        id: &str,
        method: &str,
        params: &str,
        ctx: &JobContext,
        timeout: Option<Duration>,
    ) -> (
        Result<(String, String), InvokeError>,
        Option<crate::capability::CallUsage>,
    ) {
        if let (Some(Handler::Remote(remote)), Some((_, connections))) =
            (self.known(id), &self.remote)
        {
            if remote.status == crate::bridge::registry::OFFLINE {
                // It said it stopped: waiting out a timeout for it would tell nothing more.
                let offline = InvokeError::Offline {
                    id: remote.id.clone(),
                    since: remote.updated_at.to_rfc3339(),
                };
                return (Err(offline), None);
            }
            let instance = format!("zmq:{}@{}", remote.id, remote.address);
            let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
            let result = connections
                .call(&remote, method, params, &ctx.run_id, timeout)
                .await
                .map(|result| (result, instance));
            return (result, None);
        }
        let (result, usage) = self
            .runtime
            .invoke_reporting(id, method, params, ctx, timeout)
            .await;
        let result = result.map(|o| {
            let instance = format!("wasm:{id}#{}", o.stats.measure.instance);
            (o.result, instance)
        });
        (result, usage)
    }

    /// Where a run on `id` goes, for its execution record before it runs.
    pub fn location(&self, id: &str) -> String {
        self.known(id)
            .map_or_else(|| format!("wasm:{id}"), |h| h.location())
    }
}
