//! ScheduleZero: a job scheduler whose handlers are sandboxed WebAssembly components.
//!
//! The crate is the whole host; the `schedulezero` binary only calls [`cli::main`].
//! - [`config`]: the one configuration, from defaults, file, environment and flags.
//! - [`runtime`]: handler components: discovery, compile cache, instances under limits.
//! - [`scheduler`]: triggers and fire times.
//! - [`store`]: the durable store (sqlx; SQLite embedded).
//! - [`dispatch`]: runs claimed runs on their handlers, with retries, into the execution log.
//! - [`api`]: the REST API (ScheduleZero's routes and `/api/v1`).
//! - [`serve`]: one host: store, runtime, scheduler and API together.
//! - [`bench`]: `schedulezero bench`, measuring a real host.
//! - [`cli`]: the command line.

pub mod api;
pub mod bench;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod handler;
pub mod history;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod storage;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use runtime::Runtime;
