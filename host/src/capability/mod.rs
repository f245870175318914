//! Capabilities, deny by default: what a component asks for in its [`manifest`], what the operator
//! grants ([`grant`]), and the rules a call's outbound requests are held to ([`destination`],
//! [`address`]). What a call may use is what was both requested and granted
//! ([`grant::Effective`]).

pub mod address;
pub mod destination;
pub mod grant;
pub mod manifest;

pub use destination::{Destination, DestinationError, Host};
pub use grant::{Effective, Grant, GrantId, GrantSpec, Mount, Review, SecretRef};
pub use manifest::{Access, Manifest, ManifestError};
