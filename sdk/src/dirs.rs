//! Directories the operator granted: each appears as `/<name>`, under the name the handler
//! declared in its [`Capabilities`](crate::capabilities::Capabilities), confined to the host
//! directory it maps to (no way out through `..` or a symbolic link), read-only unless granted
//! read-write. Use them with `std::fs`.
//!
//! ```no_run
//! let input = schedulezero_sdk::dirs::path("input");
//! for entry in std::fs::read_dir(&input).expect("granted") {
//!     let _ = entry;
//! }
//! ```

use std::path::PathBuf;

/// Where the directory declared as `name` appears.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("/{name}"))
}

/// Whether the directory declared as `name` was granted (it exists for this call).
pub fn is_granted(name: &str) -> bool {
    path(name).is_dir()
}
