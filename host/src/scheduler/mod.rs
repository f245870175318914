//! The scheduler: when schedules fire ([`trigger`]), what runs when they fire late or after
//! downtime ([`policy`]), claiming due fire times in the store ([`claim`]), and the service that
//! steps on a clock and starts runs within each schedule's overlap limit ([`service`]). Fire times are
//! UTC instants; the next one is always computed from the exact previous fire time, and a fire
//! time is claimed at most once.

pub mod claim;
pub mod compat_cron;
pub mod error;
pub mod policy;
pub mod service;
pub mod trigger;

pub use trigger::{Trigger, TriggerError, TriggerSpec};
