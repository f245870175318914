//! The scheduler: what runs when schedules fire late or after downtime ([`policy`]), claiming
//! due fire times in the store ([`claim`]), and the service that steps on a clock and starts runs
//! within each schedule's overlap limit ([`service`]). When a schedule fires is its trigger's
//! business ([`crate::schedule::trigger`]); fire times are UTC instants, and a fire time is
//! claimed at most once.

pub mod claim;
pub mod policy;
pub mod service;
