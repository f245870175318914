//! The scheduler: when schedules fire, and (to come) claiming due runs and applying the misfire,
//! coalescing and overlap policies. Fire times are UTC instants; the next one is always computed
//! from the exact previous fire time.

pub mod policy;
pub mod trigger;

pub use trigger::{Trigger, TriggerError, TriggerSpec};
