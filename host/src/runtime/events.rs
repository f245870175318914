//! The vocabulary of a plugin's lifecycle ([`PluginState`]) and the log of what happened to
//! plugins ([`Events`]): changes of the plugins folder and lifecycle transitions, kept for the
//! API and sent live to whoever follows them.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// Where a plugin is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// Only the file and its cached artifact; nothing in memory.
    Cold,
    /// Being loaded from its artifact.
    Warming,
    /// In memory, with instances kept for reuse.
    Hot,
    /// Idle past its timeout: draining the calls in flight, then cold.
    Cooling,
}

impl PluginState {
    /// The state's name, as the API and the metrics give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Warming => "warming",
            Self::Hot => "hot",
            Self::Cooling => "cooling",
        }
    }

    /// Every state, in lifecycle order.
    pub const ALL: [PluginState; 4] = [Self::Cold, Self::Warming, Self::Hot, Self::Cooling];
}

/// What happened to a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new file was loaded and its plugin is available.
    Added,
    /// A changed file was loaded as a new version; calls in flight finish on the old one.
    Replaced,
    /// The file is gone; calls fail with `plugin_removed` until it returns.
    Removed,
    /// A file could not be loaded (the previous version, if any, stays in use).
    Rejected,
    /// Loaded from its artifact for a call (cold → hot).
    Warmed,
    /// Idle past its timeout with calls in flight: draining.
    Cooling,
    /// Taken back into use while cooling.
    Revived,
    /// Memory released (→ cold).
    Unloaded,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PluginEvent {
    /// Increasing number, for `?after=` paging.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The plugin.
    pub plugin: String,
    /// What happened.
    pub kind: EventKind,
    /// The version concerned, when known.
    pub version: Option<String>,
    /// The sha256 of the file concerned, when known.
    pub sha256: Option<String>,
    /// More about it (the error of a rejected file, why a plugin was unloaded).
    pub detail: Option<String>,
}

/// How many events are kept.
const EVENTS_KEPT: usize = 1000;

/// The recent events, and a channel for whoever follows them live (the host's store sync).
pub(super) struct Events {
    log: Mutex<(u64, VecDeque<PluginEvent>)>,
    live: broadcast::Sender<PluginEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            log: Mutex::new((0, VecDeque::new())),
            live: broadcast::channel(256).0,
        }
    }
}

impl Events {
    pub(super) fn push(
        &self,
        plugin: &str,
        kind: EventKind,
        file: Option<(&str, &str)>,
        detail: Option<String>,
    ) {
        let event = {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.0 += 1;
            let event = PluginEvent {
                seq: log.0,
                at: Utc::now(),
                plugin: plugin.to_owned(),
                kind,
                version: file.map(|f| f.0.to_owned()),
                sha256: file.map(|f| f.1.to_owned()),
                detail,
            };
            if log.1.len() == EVENTS_KEPT {
                log.1.pop_front();
            }
            log.1.push_back(event.clone());
            event
        };
        match kind {
            EventKind::Replaced | EventKind::Removed => tracing::info!(
                plugin = %event.plugin, event = ?kind, version = ?event.version, "plugins folder changed"
            ),
            EventKind::Rejected => tracing::warn!(
                plugin = %event.plugin, error = ?event.detail, "plugin file rejected"
            ),
            _ => {
                tracing::debug!(plugin = %event.plugin, event = ?kind, detail = ?event.detail, "plugin lifecycle")
            }
        }
        // Nobody listening is fine.
        let _ = self.live.send(event);
    }

    pub(super) fn after(&self, seq: u64, limit: usize) -> Vec<PluginEvent> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.1
            .iter()
            .filter(|e| e.seq > seq)
            .take(limit)
            .cloned()
            .collect()
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<PluginEvent> {
        self.live.subscribe()
    }
}
