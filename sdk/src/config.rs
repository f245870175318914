//! Configuration values and secrets the operator granted this handler.
//!
//! A handler declares the keys it reads in its
//! [`Capabilities`](crate::capabilities::Capabilities); the operator grants values (in the host's
//! configuration file under `[plugins.<name>.config]`, or with `schedulezero plugins grant`) and
//! secrets by reference, which the host resolves at each call. A handler sees only its own
//! values and nothing else of the host's environment.
//!
//! ```no_run
//! let location = schedulezero_sdk::config::get("location").unwrap_or_else(|| "nowhere".into());
//! let token = schedulezero_sdk::config::secret("api_key")?;
//! # Ok::<(), schedulezero_sdk::HandlerError>(())
//! ```

use crate::__bindings::schedulezero::handler::config;
use crate::HandlerError;

/// The value of `key`, or `None` when the operator did not set it.
pub fn get(key: &str) -> Option<String> {
    config::get(key)
}

/// The keys the operator set for this handler, sorted.
pub fn keys() -> Vec<String> {
    config::keys()
}

/// The secret `key`; a `denied` error when the operator did not grant it (or the host could not
/// resolve its reference), which fails the call with `capability_denied`.
pub fn secret(key: &str) -> Result<String, HandlerError> {
    config::get(key).ok_or_else(|| HandlerError::denied(format!("secret `{key}` is not granted")))
}

/// The configuration value `key`; a `denied` error when the operator did not set it.
pub fn require(key: &str) -> Result<String, HandlerError> {
    config::get(key)
        .ok_or_else(|| HandlerError::denied(format!("configuration value `{key}` is not granted")))
}
