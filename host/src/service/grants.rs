//! The one path for writes to a plugin's grants: check the grant against what the plugin's
//! component requests, write it with its event, and give the runtime the plugin's new grants, so
//! the next call uses them (no restart). At start, the configuration file's grants are written
//! into the store (the store is where grants live; several hosts share it) and the store's are
//! handed to the runtime.

use std::sync::Arc;

use chrono::Utc;

use crate::capability::{Grant, GrantId, GrantSpec};
use crate::config::Config;
use crate::runtime::{CONFIG_FILE, Runtime};
use crate::store::{Store, StoreError};

/// Why a grant could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// No plugin of that name is loaded (its manifest is what a grant is checked against).
    #[error("no plugin named `{0}` in the plugins folder")]
    UnknownPlugin(String),
    /// The grant is not for something the plugin requests, or is not usable as given.
    #[error("{0}")]
    Refused(String),
    /// No such grant to revoke.
    #[error("{plugin} has no {kind} grant `{name}`")]
    NotFound {
        /// The plugin.
        plugin: String,
        /// The kind.
        kind: String,
        /// The destination, directory name or key.
        name: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Grants: checked, stored, in effect.
#[derive(Clone)]
pub struct GrantService {
    store: Store,
    runtime: Arc<Runtime>,
}

impl GrantService {
    /// The service over `store`, in effect in `runtime`.
    pub fn new(store: Store, runtime: Arc<Runtime>) -> Self {
        Self { store, runtime }
    }

    /// Grants `spec` to `plugin` on behalf of `actor`. Returns the grant as stored.
    pub async fn grant(
        &self,
        plugin: &str,
        spec: GrantSpec,
        actor: &str,
    ) -> Result<Grant, GrantError> {
        let loaded = self
            .runtime
            .plugin(plugin)
            .ok_or_else(|| GrantError::UnknownPlugin(plugin.to_owned()))?;
        spec.check(plugin, loaded.manifest())
            .map_err(GrantError::Refused)?;
        let grant = Grant {
            spec,
            granted_by: actor.to_owned(),
            granted_at: Utc::now(),
        };
        if self.store.put_grant(plugin, &grant).await? {
            tracing::info!(plugin, kind = %grant.spec.id().kind, name = %grant.spec.id().name, actor, "grant given");
        }
        self.reload(plugin).await?;
        Ok(grant)
    }

    /// Revokes the grant `id` of `plugin` on behalf of `actor`.
    pub async fn revoke(&self, plugin: &str, id: &GrantId, actor: &str) -> Result<(), GrantError> {
        if !self
            .store
            .revoke_grant(plugin, id, actor, Utc::now())
            .await?
        {
            return Err(GrantError::NotFound {
                plugin: plugin.to_owned(),
                kind: id.kind.clone(),
                name: id.name.clone(),
            });
        }
        tracing::info!(plugin, kind = %id.kind, name = %id.name, actor, "grant revoked");
        self.reload(plugin).await?;
        Ok(())
    }

    /// Hands the runtime the store's grants of `plugin`.
    async fn reload(&self, plugin: &str) -> Result<(), StoreError> {
        let grants = self
            .store
            .grants(Some(plugin))
            .await?
            .into_iter()
            .map(|(_, g)| g)
            .collect();
        self.runtime.set_grants(plugin, grants);
        Ok(())
    }

    /// At start: writes the configuration file's grants into the store (a grant the file gives
    /// replaces one of the same id that the file gave before, never one given through the API),
    /// then hands every plugin's stored grants to the runtime. A grant for something a loaded
    /// plugin does not request is left out, with a warning.
    pub async fn seed_and_load(&self, config: &Config) -> Result<(), StoreError> {
        let stored = self.store.grants(None).await?;
        for (plugin, section) in &config.plugins {
            let Ok(specs) = section.grant_specs() else {
                continue;
            };
            let manifest = self.runtime.plugin(plugin).map(|p| p.manifest().clone());
            for spec in specs {
                if let Some(m) = &manifest
                    && let Err(why) = spec.check(plugin, m)
                {
                    tracing::warn!(plugin = %plugin, reason = %why, "configuration file grant not given");
                    continue;
                }
                let id = spec.id();
                let by_hand = stored
                    .iter()
                    .any(|(p, g)| p == plugin && g.spec.id() == id && g.granted_by != CONFIG_FILE);
                if by_hand {
                    tracing::info!(plugin = %plugin, kind = %id.kind, name = %id.name, "configuration file grant left as changed through the API");
                    continue;
                }
                let grant = Grant {
                    spec,
                    granted_by: CONFIG_FILE.into(),
                    granted_at: Utc::now(),
                };
                self.store.put_grant(plugin, &grant).await?;
            }
        }
        let mut plugins: Vec<String> = config.plugins.keys().cloned().collect();
        plugins.extend(self.runtime.plugins().iter().map(|p| p.name().to_owned()));
        let all = self.store.grants(None).await?;
        plugins.extend(all.iter().map(|(p, _)| p.clone()));
        plugins.sort();
        plugins.dedup();
        for plugin in plugins {
            let grants = all
                .iter()
                .filter(|(p, _)| *p == plugin)
                .map(|(_, g)| g.clone())
                .collect();
            self.runtime.set_grants(&plugin, grants);
        }
        Ok(())
    }
}
