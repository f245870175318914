//! Handlers as the API shows them: one view over the host's handlers ([`crate::handler`]: plugins
//! and remote handlers), and the handlers only the store still knows of (plugins whose file went
//! missing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::bridge::client::RemoteStats;
use crate::handler::{Handler, Handlers};
use crate::runtime::{Plugin, PluginState};
use crate::store::{HandlerKind, HandlerRecord};

/// One method of a handler.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MethodView {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its params, when the handler gives one.
    pub params_schema: Option<serde_json::Value>,
}

impl MethodView {
    /// Methods known by name only (a remote handler's, or a missing plugin's as stored).
    fn named(names: impl IntoIterator<Item = String>) -> Vec<Self> {
        names
            .into_iter()
            .map(|name| Self {
                name,
                description: String::new(),
                params_schema: None,
            })
            .collect()
    }
}

/// A handler the host can run jobs on.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HandlerView {
    /// The id schedules name it by.
    pub id: String,
    /// `wasm` or `remote`.
    pub kind: HandlerKind,
    /// A plugin's file, or a remote handler's endpoint.
    pub address: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// What it is for.
    pub description: String,
    /// A plugin: `available` when it can take calls, `missing` when its file is gone. A remote
    /// handler: `online`, `unreachable` (it stopped answering pings) or `offline` (it said so).
    pub status: String,
    /// A plugin's lifecycle state (`cold`, `warming`, `hot`, `cooling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<PluginState>,
    /// The sha256 of a plugin's file.
    pub sha256: Option<String>,
    /// Its methods.
    pub methods: Vec<MethodView>,
    /// Calls made to it since the host started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Those that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// A remote handler's last round trip, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<f64>,
    /// When a remote handler last answered (a call or a ping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
}

impl HandlerView {
    fn of(handler: &Handler, handlers: &Handlers) -> Self {
        match handler {
            Handler::Plugin(p) => Self::of_plugin(p),
            Handler::Remote(r) => {
                let stats = handlers.remote_stats(&r.id).unwrap_or_default();
                Self::of_remote(r, stats)
            }
        }
    }

    fn of_remote(r: &crate::bridge::RemoteHandler, stats: RemoteStats) -> Self {
        Self {
            id: r.id.clone(),
            kind: HandlerKind::Remote,
            address: Some(r.address.clone()),
            version: None,
            description: String::new(),
            status: r.status.clone(),
            state: None,
            sha256: None,
            methods: MethodView::named(r.methods.iter().cloned()),
            calls: Some(stats.calls),
            errors: Some(stats.errors),
            last_latency_ms: stats.last_latency_ms,
            last_seen: stats.last_seen,
        }
    }

    fn of_plugin(p: &Plugin) -> Self {
        let metrics = p.metrics();
        Self {
            id: p.name().to_owned(),
            kind: HandlerKind::Wasm,
            address: Some(p.file().path.display().to_string()),
            version: Some(p.info().version.clone()),
            description: p.info().description.clone(),
            status: "available".into(),
            state: Some(p.state()),
            sha256: Some(p.file().sha256.clone()),
            calls: Some(metrics.calls),
            errors: Some(metrics.errors.total),
            last_latency_ms: None,
            last_seen: None,
            methods: p
                .info()
                .methods
                .iter()
                .map(|m| MethodView {
                    name: m.name.clone(),
                    description: m.description.clone(),
                    params_schema: m.params_schema.clone(),
                })
                .collect(),
        }
    }

    fn of_record(r: HandlerRecord) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            address: r.address,
            version: r.version,
            description: String::new(),
            status: r.status,
            state: None,
            sha256: None,
            methods: MethodView::named(r.methods),
            calls: None,
            errors: None,
            last_latency_ms: None,
            last_seen: None,
        }
    }

    /// Whether it exposes `method`.
    pub fn has_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.name == method)
    }
}

fn handlers(state: &AppState) -> &Handlers {
    state.scheduler.dispatcher().handlers()
}

/// The handler with this id, loading a plugin the runtime has not seen yet; `None` when there is
/// no such handler.
pub async fn find(state: &AppState, id: &str) -> Option<HandlerView> {
    let handlers = handlers(state);
    let handler = handlers.find(id).await?;
    Some(HandlerView::of(&handler, handlers))
}

/// Every handler: the host's plugins and remote handlers, then what only the store knows of.
pub async fn all(state: &AppState) -> Result<Vec<HandlerView>, crate::store::StoreError> {
    let handlers = handlers(state);
    let mut views: Vec<HandlerView> = handlers
        .all()
        .iter()
        .map(|h| HandlerView::of(h, handlers))
        .collect();
    for record in state.store.handlers().await? {
        if !views.iter().any(|v| v.id == record.id) {
            views.push(HandlerView::of_record(record));
        }
    }
    views.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(views)
}
