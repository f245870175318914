//! ScheduleZero: a job scheduler whose handlers are sandboxed WebAssembly components.
//!
//! The crate is the whole host; the `schedulezero` binary only calls [`cli::main`].
//! - [`config`]: the one configuration, from defaults, file, environment and flags.
//! - [`runtime`]: handler components: discovery, compile cache, instances under limits.
//! - [`capability`]: what a component requests (its manifest), what the operator grants, and the
//!   rules outbound requests are held to.
//! - [`trust`]: signatures of components (wasmsign2's format) and the operator's trusted keys.
//! - [`schedule`]: what a schedule, its trigger, policy, runs and execution records are.
//! - [`scheduler`]: claims due fire times and starts runs within their limits.
//! - [`store`]: the durable store (sqlx; SQLite embedded).
//! - [`dispatch`]: runs claimed runs on their handlers, with retries, into the execution log.
//! - [`handler`]: one way to call a job's handler, a component or a remote handler.
//! - [`bridge`]: remote handlers over ZeroMQ: registration, calls, health.
//! - [`storage`]: free space on the data directory's volume, and the floor below which new
//!   work waits.
//! - [`telemetry`] and [`history`]: the host's metrics, now and over the last hour.
//! - [`time`]: instants on the wire; [`json`]: request bodies read with errors in a user's terms.
//! - [`background`]: the host's background loops, started and stopped one way.
//! - [`service`]: the one path for every write (validate, write, wake the scheduler).
//! - [`api`]: the REST API (ScheduleZero's routes and `/api/v1`), typed bodies, error codes and
//!   the OpenAPI document generated from them.
//! - [`catalog`]: components from OCI registries: inspect, install with consent, update, roll back,
//!   remove, verify; the lockfile.
//! - [`serve`]: one host: store, runtime, scheduler and API together.
//! - [`bench`]: `schedulezero bench`, measuring a real host.
//! - [`cli`]: the command line.

pub mod api;
pub mod background;
pub mod bench;
pub mod bridge;
pub mod capability;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod handler;
pub mod history;
pub mod json;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod serve;
pub mod service;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod trust;

pub use config::Config;

/// Chooses rustls' crypto provider for the process (ring, as the handlers' outbound client uses):
/// the HTTP clients of the CLI, the catalog and the benchmarks need one chosen before they are
/// built. Idempotent; call it first thing.
pub fn install_crypto_provider() {
    // A second install is refused, harmlessly: the provider is the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use runtime::Runtime;
