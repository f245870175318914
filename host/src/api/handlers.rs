//! Handlers as the API shows them: one view over WebAssembly plugins (from the runtime) and the
//! handlers recorded in the store (plugins whose file went missing; remote handlers).

use serde::Serialize;

use super::AppState;
use crate::runtime::{Plugin, PluginState};
use crate::store::{HandlerKind, HandlerRecord};

/// One method of a handler.
#[derive(Debug, Clone, Serialize)]
pub struct MethodView {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its params, when the handler gives one.
    pub params_schema: Option<serde_json::Value>,
}

/// A handler the host can run jobs on.
#[derive(Debug, Clone, Serialize)]
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
    /// `available` when it can take calls; `missing` for a plugin whose file is gone.
    pub status: String,
    /// A plugin's lifecycle state (`cold`, `warming`, `hot`, `cooling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<PluginState>,
    /// The sha256 of a plugin's file.
    pub sha256: Option<String>,
    /// Its methods.
    pub methods: Vec<MethodView>,
}

impl HandlerView {
    fn of_plugin(p: &Plugin) -> Self {
        Self {
            id: p.name().to_owned(),
            kind: HandlerKind::Wasm,
            address: Some(p.file().path.display().to_string()),
            version: Some(p.info().version.clone()),
            description: p.info().description.clone(),
            status: "available".into(),
            state: Some(p.state()),
            sha256: Some(p.file().sha256.clone()),
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
            methods: r
                .methods
                .into_iter()
                .map(|name| MethodView {
                    name,
                    description: String::new(),
                    params_schema: None,
                })
                .collect(),
        }
    }

    /// Whether it exposes `method`.
    pub fn has_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.name == method)
    }
}

/// Why a job cannot target a handler's method.
#[derive(Debug)]
pub enum Missing {
    /// No such handler.
    Handler,
    /// The handler has no such method; these are the ones it has.
    Method(Vec<String>),
}

/// Checks that `id` is a handler with `method`, without building its whole view (this is on the
/// path of every create and run-now).
pub async fn check(state: &AppState, id: &str, method: &str) -> Result<(), Missing> {
    if let Some(remote) = state.registry.get(id) {
        return if remote.methods.iter().any(|m| m == method) {
            Ok(())
        } else {
            Err(Missing::Method(remote.methods))
        };
    }
    let plugin = match state.runtime.plugin(id) {
        Some(p) => p,
        None => match state.runtime.load(id).await {
            Ok(report) => report.plugin,
            Err(_) => return Err(Missing::Handler),
        },
    };
    let methods = &plugin.info().methods;
    if methods.iter().any(|m| m.name == method) {
        Ok(())
    } else {
        Err(Missing::Method(
            methods.iter().map(|m| m.name.clone()).collect(),
        ))
    }
}

/// The handler with this id, loading a plugin the runtime has not seen yet; `None` when there is
/// no such handler.
pub async fn find(state: &AppState, id: &str) -> Option<HandlerView> {
    if let Some(p) = state.runtime.plugin(id) {
        return Some(HandlerView::of_plugin(&p));
    }
    if let Ok(report) = state.runtime.load(id).await {
        return Some(HandlerView::of_plugin(&report.plugin));
    }
    None
}

/// Every handler: the runtime's plugins, then what only the store knows of.
pub async fn all(state: &AppState) -> Result<Vec<HandlerView>, crate::store::StoreError> {
    let mut views: Vec<HandlerView> = state
        .runtime
        .plugins()
        .iter()
        .map(|p| HandlerView::of_plugin(p))
        .collect();
    for record in state.store.handlers().await? {
        if !views.iter().any(|v| v.id == record.id) {
            views.push(HandlerView::of_record(record));
        }
    }
    views.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(views)
}
