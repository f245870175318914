//! The bodies and query strings the API takes, as types: the server reads them, the CLI writes
//! them, and the OpenAPI document describes them. Unknown fields are refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::schedule::{ConflictPolicy, ExecutionStatus, ScheduleState};

/// A schedule to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Its id (1 to 200 characters, no `/`); a UUID when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The handler that runs it.
    pub handler: String,
    /// The handler's method.
    pub method: String,
    /// The method's params (checked against its JSON Schema).
    #[serde(default = "empty_object")]
    pub params: Value,
    /// When it fires: `{"type": "cron", "expression", "timezone"?}`,
    /// `{"type": "interval", "every_seconds"}` or `{"type": "date", "run_date"}`.
    #[schema(value_type = crate::schedule::TriggerSpec)]
    pub trigger: Value,
    /// How it runs; the defaults for fields left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schedule::SchedulePolicy>)]
    pub policy: Option<Value>,
    /// Whether it starts paused.
    #[serde(default)]
    pub paused: bool,
    /// What to do when a schedule with this id exists.
    #[serde(default)]
    pub conflict_policy: ConflictPolicy,
    /// A date trigger may be in the past (it is then due at once, and its misfire policy
    /// decides whether it runs or is recorded as missed).
    #[serde(default)]
    pub allow_past_date: bool,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A change to a schedule: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleChange {
    /// Another handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Another method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Other params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Another trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schedule::TriggerSpec>)]
    pub trigger: Option<Value>,
    /// Policy fields to change (the others keep their values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Map<String, Value>>,
    /// Paused or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// A new date trigger may be in the past.
    #[serde(default)]
    pub allow_past_date: bool,
}

/// A call of a handler's method, made at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The method.
    pub method: String,
    /// Its params (checked against its JSON Schema).
    #[serde(default = "empty_object")]
    pub params: Value,
}

/// How to resume a schedule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// Run the fire times missed while paused (by the schedule's coalesce policy) instead of
    /// going on from now.
    #[serde(default)]
    pub catch_up: bool,
}

/// A trigger to preview or check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The trigger, as a schedule would have it.
    #[schema(value_type = crate::schedule::TriggerSpec)]
    pub trigger: Value,
    /// How many fire times (1 to 100).
    #[serde(default = "five")]
    #[schema(minimum = 1, maximum = 100)]
    pub count: usize,
    /// A date in the past is allowed.
    #[serde(default)]
    pub allow_past_date: bool,
}

fn five() -> usize {
    5
}

/// A page of handlers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HandlerQuery {
    /// The page size (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// Which schedules to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Only this handler's.
    pub handler: Option<String>,
    /// Only paused (or only unpaused) ones.
    pub paused: Option<bool>,
    /// Only those in this state.
    pub state: Option<ScheduleState>,
    /// The page size (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// Whether run-now waits for the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunNowQuery {
    /// Answer when the run has ended, with its outcome.
    #[serde(default)]
    pub wait: bool,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only this schedule's.
    pub schedule: Option<String>,
    /// Only in this status (`pending`, `running`, `success`, `error`, `skipped`, `missed`).
    pub status: Option<String>,
    /// Only fire times at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only fire times before this.
    pub until: Option<DateTime<Utc>>,
    /// The page size (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub before: Option<String>,
}

/// Which execution records to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExecutionQuery {
    /// Only this schedule's.
    pub schedule: Option<String>,
    /// Only this handler's.
    pub handler: Option<String>,
    /// Only this run's.
    pub run: Option<String>,
    /// Only in this status.
    pub status: Option<ExecutionStatus>,
    /// Only started at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only started before this.
    pub until: Option<DateTime<Utc>>,
    /// The page size (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
}

/// Which attempts a timeline counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// From (default: an hour before `until`, on a bucket boundary).
    pub since: Option<DateTime<Utc>>,
    /// To (default: now).
    pub until: Option<DateTime<Utc>>,
    /// The length of a bucket in seconds (default 60; at most 1440 buckets).
    #[param(minimum = 1)]
    pub bucket_s: Option<u32>,
    /// Only this handler's.
    pub handler: Option<String>,
    /// Only this schedule's.
    pub schedule: Option<String>,
}
