//! Integration tests: one binary, a module per area. Every test runs real components built from
//! `plugins/` in a real runtime (or the real `schedulezero` binary) with a temporary data dir.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod api;
mod bridge;
mod capabilities;
mod catalog;
mod cli;
mod cluster;
mod dashboard;
mod ding_dong;
mod dispatch;
mod faults;
mod fleet;
mod host;
mod languages;
mod lifecycle;
mod loading;
mod metrics;
mod openapi;
mod pool;
mod sandbox;
mod scheduler;
mod sdk;
mod support;
mod watch;
