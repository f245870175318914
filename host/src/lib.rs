//! ScheduleZero: a job scheduler whose handlers are sandboxed WebAssembly components.
//!
//! The crate is the whole host; the `schedulezero` binary only calls [`cli::main`].
//! - [`config`]: the one configuration, from defaults, file, environment and flags.
//! - [`runtime`]: handler components: discovery, compile cache, instances under limits.
//! - [`scheduler`]: triggers and fire times.
//! - [`store`]: the durable store (sqlx; SQLite embedded).
//! - [`dispatch`]: runs claimed runs on their handlers, with retries, into the execution log.
//! - [`cli`]: the command line.

pub mod cli;
pub mod config;
pub mod dispatch;
pub mod runtime;
pub mod scheduler;
pub mod store;

pub use config::Config;
pub use runtime::Runtime;
