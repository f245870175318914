//! Services: one per aggregate, the only path for writes to it. Both API faces (ScheduleZero's
//! routes and `/api/v1`), and through them the CLI and the dashboard, go through these. A
//! service validates a request, writes it, and wakes whatever must know (the scheduler), so no
//! route can forget a step.

pub mod grants;
pub mod schedules;

pub use self::grants::{GrantError, GrantService};
pub use self::schedules::{Change, Draft, ScheduleError, ScheduleService, TriggerText};
