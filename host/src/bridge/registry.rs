//! The remote handlers that registered over ZeroMQ: kept in memory for lookups and in the store's
//! `handlers` table, so a restarted host still knows them (ScheduleZero's handlers re-register only
//! after a ping fails, not after a host restart).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::protocol::{self, Ask, Registration, StatusReport};
use super::signing::Signer;
use crate::store::{HandlerKind, HandlerRecord, Store, StoreError};

/// The status a handler has once it registered, and while it answers pings.
pub const ONLINE: &str = "online";
/// The status of a handler that stopped answering pings.
pub const UNREACHABLE: &str = "unreachable";
/// The status a handler reports when it shuts down.
pub const OFFLINE: &str = "offline";

/// A remote handler as the host knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteHandler {
    /// The id schedules name it by.
    pub id: String,
    /// Where it listens.
    pub address: String,
    /// The methods it serves.
    pub methods: Vec<String>,
    /// `online`, `offline` (it said so), or `unreachable`.
    pub status: String,
    /// When it first registered.
    pub registered_at: DateTime<Utc>,
    /// When it last registered or reported.
    pub updated_at: DateTime<Utc>,
}

impl RemoteHandler {
    fn from_record(r: HandlerRecord) -> Self {
        Self {
            id: r.id,
            address: r.address.unwrap_or_default(),
            methods: r.methods,
            status: r.status,
            registered_at: r.registered_at,
            updated_at: r.updated_at,
        }
    }

    fn record(&self) -> HandlerRecord {
        HandlerRecord {
            id: self.id.clone(),
            kind: HandlerKind::Remote,
            address: Some(self.address.clone()),
            version: None,
            methods: self.methods.clone(),
            status: self.status.clone(),
            registered_at: self.registered_at,
            updated_at: self.updated_at,
        }
    }
}

/// The registry of remote handlers.
pub struct Registry {
    store: Store,
    handlers: RwLock<BTreeMap<String, RemoteHandler>>,
    signer: Option<Arc<Signer>>,
    /// Held across each change (store, then memory), so that changes land in one order in both.
    changing: tokio::sync::Mutex<()>,
    /// Ids a remote handler may not take (the plugins').
    reserved: std::sync::OnceLock<Reserved>,
}

type Reserved = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The remote handlers the store records, by id.
async fn stored(store: &Store) -> Result<BTreeMap<String, RemoteHandler>, StoreError> {
    Ok(store
        .handlers()
        .await?
        .into_iter()
        .filter(|r| r.kind == HandlerKind::Remote)
        .map(|r| {
            let h = RemoteHandler::from_record(r);
            (h.id.clone(), h)
        })
        .collect())
}

impl Registry {
    /// The registry as the store has it; with a signer, registration messages must be signed
    /// (and replies are).
    pub async fn load(store: Store, signer: Option<Arc<Signer>>) -> Result<Self, StoreError> {
        let handlers = stored(&store).await?;
        Ok(Self {
            store,
            handlers: RwLock::new(handlers),
            signer,
            changing: tokio::sync::Mutex::new(()),
            reserved: std::sync::OnceLock::new(),
        })
    }

    /// Refuses registrations of ids for which `taken` is true (those of the host's plugins). Set
    /// once; later calls are ignored.
    pub fn reserve_ids(&self, taken: impl Fn(&str) -> bool + Send + Sync + 'static) {
        let _ = self.reserved.set(Box::new(taken));
    }

    /// A remote handler by id.
    pub fn get(&self, id: &str) -> Option<RemoteHandler> {
        self.read().get(id).cloned()
    }

    /// Every remote handler, by id.
    pub fn all(&self) -> Vec<RemoteHandler> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RemoteHandler>> {
        self.handlers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, RemoteHandler>> {
        self.handlers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether other hosts share its store (and may register handlers this host calls).
    pub fn shared(&self) -> bool {
        self.store.is_shared()
    }

    /// Follows what other hosts on a shared store recorded: handlers registered (or
    /// re-registered, or whose status changed) at another host are taken in, so this host
    /// calls them too; handlers forgotten elsewhere are let go. Returns how many changed.
    pub async fn refresh(&self) -> Result<usize, StoreError> {
        let _changing = self.changing.lock().await;
        let stored = stored(&self.store).await?;
        let mut handlers = self.write();
        let mut changed = 0;
        handlers.retain(|id, _| {
            let kept = stored.contains_key(id);
            changed += usize::from(!kept);
            kept
        });
        for (id, h) in stored {
            let newer = handlers
                .get(&id)
                .is_none_or(|mine| h.updated_at > mine.updated_at);
            if newer {
                changed += 1;
                handlers.insert(id, h);
            }
        }
        Ok(changed)
    }

    /// Forgets a remote handler (a dead one an operator cleans up): it is no longer listed,
    /// pinged or called, until it registers again. Returns the handler it was.
    pub async fn forget(&self, id: &str) -> Result<Option<RemoteHandler>, StoreError> {
        let _changing = self.changing.lock().await;
        if self.get(id).is_none() {
            return Ok(None);
        }
        self.store.delete_remote_handler(id).await?;
        let gone = self.write().remove(id);
        if let Some(h) = &gone {
            tracing::info!(handler = %h.id, address = %h.address, "remote handler forgotten");
        }
        Ok(gone)
    }

    /// Sets the status of a handler as it was `seen` (kept in the store), unless it registered
    /// or reported since: a ping's outcome must not undo a newer registration. Returns whether
    /// the status changed.
    pub async fn set_status(&self, seen: &RemoteHandler, status: &str) -> Result<bool, StoreError> {
        let _changing = self.changing.lock().await;
        let Some(mut handler) = self.get(&seen.id) else {
            return Ok(false);
        };
        if handler.status == status
            || handler.address != seen.address
            || handler.updated_at != seen.updated_at
        {
            return Ok(false);
        }
        handler.status = status.to_owned();
        handler.updated_at = Utc::now();
        self.store.upsert_handler(&handler.record()).await?;
        self.write().insert(handler.id.clone(), handler);
        Ok(true)
    }

    /// Answers one message of the registration channel, as the frame to send back.
    pub async fn answer(&self, frame: &[u8]) -> String {
        let Some(signer) = &self.signer else {
            return self.answer_plain(frame).await.to_string();
        };
        let now = Utc::now().timestamp();
        match signer.open(frame, now) {
            Ok(body) => signer.seal(&self.answer_plain(body.as_bytes()).await.to_string(), now),
            Err(why) => {
                tracing::warn!(error = %why, "registration channel: message refused");
                protocol::failure(&why).to_string()
            }
        }
    }

    async fn answer_plain(&self, frame: &[u8]) -> Value {
        match protocol::read(frame) {
            Err(reply) => reply,
            Ok(Ask::Ping) => protocol::pong(),
            Ok(Ask::Register(r)) => self.register(r).await,
            Ok(Ask::ReportStatus(s)) => self.report(s).await,
        }
    }

    async fn register(&self, r: Registration) -> Value {
        if self
            .reserved
            .get()
            .is_some_and(|taken| taken(&r.handler_id))
        {
            return protocol::failure(&format!(
                "Invalid registration: handler_id `{}` is a plugin of this host",
                r.handler_id
            ));
        }
        let _changing = self.changing.lock().await;
        let now = Utc::now();
        let known = self.get(&r.handler_id);
        let handler = RemoteHandler {
            id: r.handler_id.clone(),
            address: r.address.clone(),
            methods: r.methods.clone(),
            status: ONLINE.to_owned(),
            registered_at: known.as_ref().map_or(now, |k| k.registered_at),
            updated_at: now,
        };
        // Stored before it is acknowledged: a handler told "registered" is known after a restart.
        if let Err(e) = self.store.upsert_handler(&handler.record()).await {
            tracing::error!(handler = %r.handler_id, error = %e, "cannot store a registration");
            return protocol::failure(&format!("Registration could not be stored: {e}"));
        }
        tracing::info!(handler = %r.handler_id, address = %r.address, methods = ?r.methods,
            again = known.is_some(), "remote handler registered");
        self.write().insert(handler.id.clone(), handler);
        protocol::registered(&r, known.is_some())
    }

    async fn report(&self, s: StatusReport) -> Value {
        let _changing = self.changing.lock().await;
        let Some(mut handler) = self.get(&s.handler_id) else {
            return protocol::status_reported(&s, false);
        };
        handler.status = s.status.clone();
        handler.updated_at = Utc::now();
        if let Err(e) = self.store.upsert_handler(&handler.record()).await {
            tracing::error!(handler = %s.handler_id, error = %e, "cannot store a status report");
            return protocol::failure(&format!("Status could not be stored: {e}"));
        }
        tracing::info!(handler = %s.handler_id, status = %s.status, "remote handler reported its status");
        self.write().insert(handler.id.clone(), handler);
        protocol::status_reported(&s, true)
    }
}
