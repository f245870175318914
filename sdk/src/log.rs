//! Structured logging into the host's log.
//!
//! The host tags every record with the handler's name, the job id and the run id, so a message
//! only needs to say what happened. Anything a handler prints to stdout or stderr also reaches the
//! host's log, but these functions carry a level.
//!
//! ```no_run
//! schedulezero_sdk::log::info("report sent to 3 recipients");
//! ```

use crate::__bindings::schedulezero::handler::log::{Level, log};

/// Logs at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref());
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref());
}
