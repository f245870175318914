//! The runtime's errors: setting it up ([`RuntimeError`]), loading one plugin ([`LoadError`]) and
//! calling one ([`InvokeError`]). Every [`InvokeError`] has a stable `code` that clients match on.

use std::path::PathBuf;
use std::time::Duration;

/// The runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The artifact cache directory is unusable.
    #[error("artifact cache {dir}: {message}")]
    Cache {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The plugins directory cannot be listed.
    #[error("plugins directory {dir}: {message}")]
    PluginsDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The host imports could not be linked.
    #[error("cannot link the host imports: {0}")]
    Linker(String),
    /// The outbound HTTP settings cannot be used (a CA file that does not read).
    #[error("outbound.ca_files: {0}")]
    Outbound(String),
    /// The trusted keys could not be read.
    #[error("trust.keys: {0}")]
    Trust(String),
}

/// One plugin file could not be loaded. The other plugins are not affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file name does not make a valid plugin name.
    #[error(
        "`{file}`: a plugin file is named NAME.wasm, NAME being lowercase letters, digits and `-`, starting with a letter{hint}"
    )]
    BadName {
        /// The file's name.
        file: String,
        /// What to call it instead, when there is an obvious name (`; rename it to ...`).
        hint: String,
    },
    /// The file is a link that leads out of the plugins folder.
    #[error("a link out of the plugins folder (to {0}) is not followed")]
    OutsideFolder(String),
    /// The name is not a regular file (a FIFO, a device, a socket or a folder).
    #[error("not a regular file")]
    NotAFile,
    /// The file is larger than `pool.max_component_size`; it was not read.
    #[error(
        "the file has {size} bytes, more than pool.max_component_size ({limit}); it was not read"
    )]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(String),
    /// The file is not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component does not fit the handler contract (missing exports, imports the host does
    /// not provide).
    #[error("does not implement the schedulezero:handler@0.1.0 contract: {0}")]
    Contract(String),
    /// The component's capabilities manifest cannot be read.
    #[error("capabilities manifest: {0}")]
    Manifest(String),
    /// `describe()` failed or returned something unusable.
    #[error("describe() failed: {0}")]
    Describe(String),
    /// `describe()` gives a name other than the file's.
    #[error("describe() names the handler `{described}`, but the file is `{file}.wasm`")]
    NameMismatch {
        /// The name from the file.
        file: String,
        /// The name from `describe()`.
        described: String,
    },
    /// The artifact cache could not store the compiled component.
    #[error("artifact cache: {0}")]
    Cache(String),
    /// `pool.require_signatures` is on and the component is not signed by a key trusted for
    /// its name.
    #[error("pool.require_signatures: {0}")]
    Signature(String),
}

/// A call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No plugin of that name is loaded or in the plugins directory.
    #[error("no plugin named `{name}` (available: {})", if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    UnknownPlugin {
        /// The name asked for.
        name: String,
        /// The plugins that exist.
        available: Vec<String>,
    },
    /// The plugin's file was removed from the plugins folder; calls fail until it returns.
    #[error(
        "plugin `{name}` was removed from the plugins folder at {since}; its calls fail until the file returns"
    )]
    Removed {
        /// The plugin.
        name: String,
        /// When its file went away (RFC 3339).
        since: String,
    },
    /// The plugin's file is being compiled (it appeared or changed and had no artifact yet) and
    /// did not finish within the time a call waits for it; the call may be made again.
    #[error(
        "plugin `{name}` is still being compiled (since {since}, waited {waited_s}s); call it again shortly"
    )]
    Compiling {
        /// The plugin.
        name: String,
        /// When its compilation started (RFC 3339).
        since: String,
        /// How long the call waited for it, in seconds.
        waited_s: u64,
    },
    /// Too many calls are already waiting for an instance of the plugin.
    #[error(
        "plugin `{name}` is at its limit: {queued} calls already wait for one of its {max_instances} instances"
    )]
    QueueFull {
        /// The plugin.
        name: String,
        /// Calls waiting.
        queued: u32,
        /// Its instance limit.
        max_instances: u32,
    },
    /// A remote handler could not be reached, or its connection failed mid-call.
    #[error("remote handler unreachable: {0}")]
    Unreachable(String),
    /// A remote handler reported itself offline and has not registered since: it is not called.
    #[error(
        "remote handler `{id}` reported itself offline at {since} and has not registered since"
    )]
    Offline {
        /// The handler.
        id: String,
        /// When it said so (RFC 3339).
        since: String,
    },
    /// The plugin's file exists but cannot be loaded.
    #[error("plugin `{name}` cannot be loaded: {error}")]
    Unavailable {
        /// The plugin.
        name: String,
        /// Why.
        error: LoadError,
    },
    /// The params are not valid (not JSON, or refused by the handler).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The handler has no such method.
    #[error("unknown method: {0}")]
    UnknownMethod(String),
    /// The handler reported a failure that should not be retried.
    #[error("handler failed: {0}")]
    Failed(String),
    /// The handler reported a failure that may pass on retry.
    #[error("handler failed, retryable: {0}")]
    Retryable(String),
    /// The handler reached for a capability it was not granted.
    #[error("capability denied: {0}")]
    CapabilityDenied(String),
    /// The call ran past its wall-clock limit; the instance was discarded.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The instance tried to grow its memory past the cap; it was discarded.
    #[error("memory limit of {limit_mib} MiB exceeded")]
    MemoryLimit {
        /// The cap.
        limit_mib: u64,
    },
    /// The call burned its whole fuel budget; the instance was discarded.
    #[error("fuel budget of {0} exhausted")]
    FuelExhausted(u64),
    /// The guest trapped (a panic, an unreachable, a stack overflow, ...); the instance was
    /// discarded.
    #[error("trap: {0}")]
    Trap(String),
    /// The result is larger than the configured cap.
    #[error("result of {size} bytes is over the limit of {limit} bytes")]
    ResultTooLarge {
        /// The result's size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The handler returned text that is not JSON.
    #[error("the handler returned invalid JSON: {0}")]
    InvalidResult(String),
    /// Something went wrong in the host; the details are in the host's log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl InvokeError {
    /// A stable, machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPlugin { .. } => "unknown_plugin",
            Self::Removed { .. } => "plugin_removed",
            Self::Compiling { .. } => "plugin_compiling",
            Self::QueueFull { .. } => "queue_full",
            Self::Unreachable(_) => "handler_unreachable",
            Self::Offline { .. } => "handler_offline",
            Self::Unavailable { .. } => "plugin_unavailable",
            Self::InvalidParams(_) => "invalid_params",
            Self::UnknownMethod(_) => "unknown_method",
            Self::Failed(_) => "handler_failed",
            Self::Retryable(_) => "handler_retryable",
            Self::CapabilityDenied(_) => "capability_denied",
            Self::Timeout(_) => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::FuelExhausted(_) => "fuel_exhausted",
            Self::Trap(_) => "trap",
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::InvalidResult(_) => "invalid_result",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether running the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Retryable(_)
                | Self::Timeout(_)
                | Self::Compiling { .. }
                | Self::QueueFull { .. }
                | Self::Unreachable(_)
                | Self::Offline { .. }
                | Self::Internal(_)
        )
    }

    /// Whether the instance that ran the call was discarded.
    pub fn discards_instance(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_)
                | Self::MemoryLimit { .. }
                | Self::FuelExhausted(_)
                | Self::Trap(_)
                | Self::Internal(_)
        )
    }
}

/// `text` on one line: every run of whitespace (newlines of a `Debug` dump, indentation)
/// becomes one space, so an error reads the same in the log, the API and the dashboard.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error with its causes (`{:#}`), on one line.
pub(crate) fn flat(e: &impl std::fmt::Display) -> String {
    one_line(&format!("{e:#}"))
}
