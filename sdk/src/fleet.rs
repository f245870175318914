//! The read-only view of the host's handlers, the host itself and the machine: for a handler
//! that watches the others (ScheduleZero's conductor). Ask for it in
//! [`Capabilities`](crate::capabilities::Capabilities) (`fleet: Some(Fleet::new(...))`); the
//! operator grants it (`schedulezero plugins grant NAME fleet`). Without both, every function
//! returns a `denied` error, which fails the call with `capability_denied` when passed on with
//! `?`. The host bounds how many fleet requests one call may make.
//!
//! ```no_run
//! use schedulezero_sdk::fleet::{self, HandlerKind};
//!
//! for h in fleet::handlers()? {
//!     if let HandlerKind::Remote(r) = &h.kind {
//!         let alive = fleet::ping(&h.name)?.alive;
//!         schedulezero_sdk::log::info(&format!("{}: {} ({alive})", h.name, r.status));
//!     }
//! }
//! # Ok::<(), schedulezero_sdk::HandlerError>(())
//! ```

use crate::__bindings::schedulezero::handler::fleet;
use crate::HandlerError;

pub use crate::__bindings::schedulezero::handler::fleet::{
    FleetError, HandlerExecutions, HandlerKind, HandlerStatus, HostStatus, NodeStatus, PingResult,
    PluginStatus, ProcessMetrics, RemoteStatus,
};
pub use crate::__bindings::schedulezero::handler::types::Timestamp;

/// The host's refusal as a handler error: `denied` stays a denial, an unknown handler is the
/// caller's mistake (invalid params), the others fail the call.
fn error(e: FleetError) -> HandlerError {
    match e {
        FleetError::Denied(m) => HandlerError::denied(m),
        FleetError::UnknownHandler(m) => HandlerError::invalid_params(m),
        FleetError::Limit(m) | FleetError::Unavailable(m) => HandlerError::failed(m),
    }
}

/// Every handler of the host: plugins, then remote handlers, each sorted by name.
pub fn handlers() -> Result<Vec<HandlerStatus>, HandlerError> {
    fleet::handlers().map_err(error)
}

/// Pings one handler: a remote handler's round trip; a plugin's state (and a no-op call, when
/// the operator's grant allows plugin calls).
pub fn ping(handler: &str) -> Result<PingResult, HandlerError> {
    fleet::ping(handler).map_err(error)
}

/// Pings several handlers at once, each as [`ping`] does: handlers that do not answer cost one
/// timeout between them, not one each. The answers come in the order asked, each its own result
/// (an unknown handler fails only its own, as invalid params). One fleet request per handler.
pub fn ping_many<S: AsRef<str>>(
    handlers: &[S],
) -> Result<Vec<Result<PingResult, HandlerError>>, HandlerError> {
    let names: Vec<String> = handlers.iter().map(|h| h.as_ref().to_owned()).collect();
    let answers = fleet::ping_many(&names).map_err(error)?;
    Ok(answers.into_iter().map(|a| a.map_err(error)).collect())
}

/// A remote handler's own figures (its `get_metrics`); `None` when it does not report them.
pub fn remote_metrics(handler: &str) -> Result<Option<ProcessMetrics>, HandlerError> {
    fleet::remote_metrics(handler).map_err(error)
}

/// The host process and the machine.
pub fn host() -> Result<HostStatus, HandlerError> {
    fleet::host().map_err(error)
}

/// Executions per handler that started within the last `window_seconds` (at most a day).
pub fn executions(window_seconds: u32) -> Result<Vec<HandlerExecutions>, HandlerError> {
    fleet::executions(window_seconds).map_err(error)
}

/// The hosts sharing the store.
pub fn nodes() -> Result<Vec<NodeStatus>, HandlerError> {
    fleet::nodes().map_err(error)
}

/// The result (JSON text) of this handler's own latest successful call of `method`, to tell a
/// change from a repeat; `None` when there is none.
pub fn last_result(method: &str) -> Result<Option<String>, HandlerError> {
    fleet::last_result(method).map_err(error)
}
