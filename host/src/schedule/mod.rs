//! What a schedule is: its definition ([`Schedule`]), when it fires ([`trigger`]), how it runs
//! ([`policy`]), the runs it makes ([`run`]) and their execution records ([`execution`]). These
//! types sit below the store (which keeps them: the `trigger_spec` column is a [`TriggerSpec`]
//! as JSON) and the scheduler (which steps them); neither is imported from here.

pub mod compat_cron;
pub mod execution;
pub mod policy;
pub mod run;
pub mod trigger;
pub mod trigger_error;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::execution::{Execution, ExecutionStatus};
pub use self::policy::{Coalesce, DEFAULT_RETRY_ON, FAILURE_KINDS, SchedulePolicy};
pub use self::run::{Failure, Outcome, Run, RunStatus};
pub use self::trigger::{Trigger, TriggerSpec, parse_time, parse_time_in};
pub use self::trigger_error::TriggerError;

/// What to do when a schedule with the same id exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Refuse the new one.
    #[default]
    Error,
    /// Keep the existing one unchanged.
    DoNothing,
    /// Replace the existing one.
    Replace,
}

/// A schedule: what runs, when, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id, unique in the store.
    pub id: String,
    /// The handler (plugin or remote handler) that runs it.
    pub handler_id: String,
    /// The handler's method.
    pub method: String,
    /// The method's params (JSON).
    pub params: serde_json::Value,
    /// When it fires.
    pub trigger: TriggerSpec,
    /// How it runs.
    pub policy: SchedulePolicy,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// The next fire time; `None` when the trigger has no more.
    pub next_fire: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Where a schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleState {
    /// It fires.
    Active,
    /// It is paused.
    Paused,
    /// No fire time is left (a one-shot that ran, a cron or interval past its end).
    Completed,
}

impl Schedule {
    /// `completed` when no fire time is left, else `paused` or `active`.
    pub fn state(&self) -> ScheduleState {
        match (self.next_fire, self.paused) {
            (None, _) => ScheduleState::Completed,
            (Some(_), true) => ScheduleState::Paused,
            (Some(_), false) => ScheduleState::Active,
        }
    }
}

/// A status name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a status (one of: {allowed})")]
pub struct UnknownStatus {
    /// The name read.
    pub name: String,
    /// The known names, comma-separated.
    pub allowed: String,
}

impl UnknownStatus {
    /// The status of `all` whose name is `name`, or this error listing their names.
    fn find<T: Copy, const N: usize>(
        name: &str,
        all: [T; N],
        name_of: fn(T) -> &'static str,
    ) -> Result<T, Self> {
        all.into_iter()
            .find(|v| name_of(*v) == name)
            .ok_or_else(|| Self {
                name: name.to_owned(),
                allowed: all.map(name_of).join(", "),
            })
    }
}
