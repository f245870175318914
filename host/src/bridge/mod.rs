//! Remote native handlers over ZeroMQ, wire-compatible with ScheduleZero (`shared/COMPAT.md`):
//! the registration endpoint ([`server`]) where handlers register, the registry of remote
//! handlers ([`registry`]), persisted in the store, and the calls to them ([`client`]). Messages
//! are one frame of JSON ([`protocol`]).

pub mod client;
pub mod health;
pub mod protocol;
pub mod registry;
pub mod server;
/// Signed messages (the handler SDK's, so that both ends sign alike).
pub use schedulezero_remote::signing;

pub use self::client::Connections;
pub use self::registry::{Registry, RemoteHandler};
pub use self::signing::Signer;

/// The bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The registration endpoint could not be bound.
    #[error("cannot bind the ZeroMQ registration endpoint {endpoint}: {message}")]
    Bind {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
}
