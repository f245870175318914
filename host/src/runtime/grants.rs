//! The grants the runtime holds, by plugin: seeded from the configuration file, replaced by the
//! store's when the host serves (and on every change made through the API). Each change takes a
//! new generation, so that instances created under older grants are not used again (their
//! directories were fixed when they were created) and the next call sees the change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::Utc;

use crate::capability::{Effective, Grant};
use crate::config::Config;

/// Who a grant from the configuration file is recorded as given by.
pub const CONFIG_FILE: &str = "config file";

/// A plugin's grants with their generation.
type Versioned = (u64, Arc<[Grant]>);

/// Grants by plugin name, each set with its generation.
#[derive(Default)]
pub(super) struct GrantBook {
    by_plugin: RwLock<HashMap<String, Versioned>>,
    next: AtomicU64,
}

impl GrantBook {
    /// The grants of the configuration file (those that do not read are left out: `validate`
    /// refuses such a file before a runtime is built from it).
    pub(super) fn from_config(config: &Config) -> Self {
        let book = Self::default();
        for (name, plugin) in &config.plugins {
            let grants: Vec<Grant> = plugin
                .grant_specs()
                .unwrap_or_default()
                .into_iter()
                .map(|spec| Grant {
                    spec,
                    granted_by: CONFIG_FILE.into(),
                    granted_at: Utc::now(),
                })
                .collect();
            if !grants.is_empty() {
                book.set(name, grants);
            }
        }
        book
    }

    /// The grants of `plugin` and their generation (0: never set).
    pub(super) fn get(&self, plugin: &str) -> Versioned {
        let map = self.by_plugin.read().unwrap_or_else(|p| p.into_inner());
        map.get(plugin)
            .cloned()
            .unwrap_or_else(|| (0, Arc::from(Vec::new())))
    }

    /// The generation of `plugin`'s grants.
    pub(super) fn generation(&self, plugin: &str) -> u64 {
        let map = self.by_plugin.read().unwrap_or_else(|p| p.into_inner());
        map.get(plugin).map_or(0, |(g, _)| *g)
    }

    /// Replaces the grants of `plugin`; returns their new generation.
    pub(super) fn set(&self, plugin: &str, grants: Vec<Grant>) -> u64 {
        let generation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut map = self.by_plugin.write().unwrap_or_else(|p| p.into_inner());
        map.insert(plugin.to_owned(), (generation, Arc::from(grants)));
        generation
    }
}

/// A plugin version's effective capabilities, computed once per grants generation.
#[derive(Default)]
pub(super) struct EffectiveCache {
    cached: std::sync::Mutex<Option<(u64, Arc<Effective>)>>,
}

impl EffectiveCache {
    pub(super) fn get(
        &self,
        generation: u64,
        compute: impl FnOnce() -> Effective,
    ) -> Arc<Effective> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((g, e)) if *g == generation => e.clone(),
            _ => {
                let e = Arc::new(compute());
                *cached = Some((generation, e.clone()));
                e
            }
        }
    }
}
