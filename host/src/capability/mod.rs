//! Capabilities, deny by default: what a component asks for in its [`manifest`], what the operator
//! grants ([`grant`]), and the rules a call's outbound requests are held to ([`destination`],
//! [`address`]). What a call may use is what was both requested and granted
//! ([`grant::Effective`]).

pub mod address;
pub mod destination;
pub mod grant;
pub mod manifest;

pub use destination::{Destination, DestinationError, Host};
pub use grant::{Effective, FleetAccess, Grant, GrantId, GrantSpec, Mount, Review, SecretRef};
pub use manifest::{Access, FleetRequest, Manifest, ManifestError};

/// What a call used, as recorded with its execution.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct CallUsage {
    /// HTTP requests sent (refused ones not counted).
    pub http_requests: u32,
    /// Destination hosts contacted (`host:port`).
    pub hosts: Vec<String>,
    /// Bytes of request bodies sent.
    pub bytes_out: u64,
    /// Bytes of response bodies received.
    pub bytes_in: u64,
    /// The directories the call was given (by the name the component uses).
    pub directories: Vec<String>,
    /// Fleet requests made (refused ones too).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fleet_requests: u32,
    /// Time spent in fleet requests, in µs (listings, pings, remote handlers' replies).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fleet_time_us: u64,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl CallUsage {
    /// Whether the call used nothing outside its instance.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
