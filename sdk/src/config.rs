//! Configuration values the operator granted this handler.
//!
//! The operator sets them in the host's configuration file, under `[plugins.<name>.config]`. A
//! handler sees only its own values and nothing else of the host's environment.
//!
//! ```no_run
//! let location = schedulezero_sdk::config::get("location").unwrap_or_else(|| "nowhere".into());
//! ```

use crate::__bindings::schedulezero::handler::config;

/// The value of `key`, or `None` when the operator did not set it.
pub fn get(key: &str) -> Option<String> {
    config::get(key)
}

/// The keys the operator set for this handler, sorted.
pub fn keys() -> Vec<String> {
    config::keys()
}
