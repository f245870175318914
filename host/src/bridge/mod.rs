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

/// How long a peer the host connects to (a handler) may take over the ZMTP handshake (libzmq's
/// `ZMQ_HANDSHAKE_IVL` is 30 s; a peer on a working link needs milliseconds).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The options of every ZeroMQ socket of the host: no message over `max_message` bytes is read
/// (the length a peer claims is checked before anything is allocated for it) and a peer that
/// does not finish the handshake in `handshake` is dropped.
pub fn socket_options(max_message: usize, handshake: std::time::Duration) -> zeromq::SocketOptions {
    let mut options = zeromq::SocketOptions::default();
    options
        .max_message_size(max_message)
        .handshake_timeout(handshake);
    options
}

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
