//! The scheduler: when schedules fire ([`trigger`]), what runs when they fire late or after
//! downtime ([`policy`]), and claiming due fire times in the store ([`claim`]). Fire times are
//! UTC instants; the next one is always computed from the exact previous fire time, and a fire
//! time is claimed at most once.

pub mod claim;
pub mod policy;
pub mod trigger;

pub use trigger::{Trigger, TriggerError, TriggerSpec};
