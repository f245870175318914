//! The bodies the API answers with, as types: the server serializes them, the CLI and the
//! tests deserialize them, and the OpenAPI document describes them. Schedules, runs and
//! execution records in the `/api/v1` form and in ScheduleZero's; lists with their cursors;
//! health, host, trigger previews.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ErrorDetail;
use super::handler_view::HandlerView;
use crate::schedule::{
    Execution, ExecutionStatus, Failure, Run, Schedule, SchedulePolicy, ScheduleState, TriggerSpec,
};
use crate::storage::SpaceReport;
use crate::store::TimelineBucket;

/// The time zone a schedule's trigger reads its times in.
pub fn zone(trigger: &TriggerSpec) -> Tz {
    match trigger {
        TriggerSpec::Cron {
            timezone: Some(tz), ..
        } => tz.parse().unwrap_or(Tz::UTC),
        _ => Tz::UTC,
    }
}

/// An instant in the schedule's time zone, ISO 8601 with offset.
pub fn local(t: DateTime<Utc>, trigger: &TriggerSpec) -> String {
    t.with_timezone(&zone(trigger))
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A trigger in one line, in the manner of APScheduler's `str(trigger)`.
pub fn trigger_text(trigger: &TriggerSpec) -> String {
    match trigger {
        TriggerSpec::Cron {
            expression,
            timezone,
            ..
        } => format!(
            "cron[{expression}, timezone='{}']",
            timezone.as_deref().unwrap_or("UTC")
        ),
        TriggerSpec::Interval { every_seconds, .. } => {
            let total = every_seconds.max(0.0);
            let whole = total.trunc() as u64;
            let (d, h, m, s) = (
                whole / 86_400,
                whole % 86_400 / 3600,
                whole % 3600 / 60,
                whole % 60,
            );
            let frac = total.fract();
            let secs = if frac > 0.0 {
                format!("{:09.6}", s as f64 + frac)
            } else {
                format!("{s:02}")
            };
            match d {
                0 => format!("interval[{h}:{m:02}:{secs}]"),
                1 => format!("interval[1 day, {h}:{m:02}:{secs}]"),
                _ => format!("interval[{d} days, {h}:{m:02}:{secs}]"),
            }
        }
        TriggerSpec::Date { run_date } => {
            format!("date[{}]", run_date.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// A trigger for people: `every 30 s`, `at :00 every hour, Europe/London`,
/// `at 09:30 every day, UTC`, `once, at 2026-05-01 07:30:00 UTC`; an expression it has no
/// words for is shown as itself (`cron 0 9-17 * * 1-5, UTC`).
pub fn trigger_words(trigger: &TriggerSpec) -> String {
    match trigger {
        TriggerSpec::Interval { every_seconds, .. } => {
            format!("every {}", span_words(*every_seconds))
        }
        TriggerSpec::Date { run_date } => {
            format!("once, at {}", run_date.format("%Y-%m-%d %H:%M:%S UTC"))
        }
        TriggerSpec::Cron {
            expression,
            timezone,
            compat_fields,
            ..
        } => {
            let zone = timezone.as_deref().unwrap_or("UTC");
            let words = (!compat_fields)
                .then(|| cron_words(expression))
                .flatten()
                .unwrap_or_else(|| format!("cron {expression}"));
            format!("{words}, {zone}")
        }
    }
}

/// A span of seconds in words: `30 s`, `15 min`, `1 h 30 min`, `2 d`, `1.5 s`.
fn span_words(seconds: f64) -> String {
    if seconds.fract() != 0.0 && seconds < 60.0 {
        return format!("{} s", (seconds * 1000.0).round() / 1000.0);
    }
    let total = seconds.round() as u64;
    let parts = [
        (total / 86_400, "d"),
        (total % 86_400 / 3600, "h"),
        (total % 3600 / 60, "min"),
        (total % 60, "s"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if words.is_empty() {
        "0 s".into()
    } else {
        words.join(" ")
    }
}

/// Words for the common shapes of a 5-field expression; `None` for the others.
fn cron_words(expression: &str) -> Option<String> {
    let f: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = f.as_slice() else {
        return None;
    };
    let number = |s: &str| s.parse::<u32>().ok();
    let every = |s: &str| s.strip_prefix("*/").and_then(|n| n.parse::<u32>().ok());
    let rest_any = *month == "*" && *dom == "*" && *dow == "*";
    Some(match (number(minute), number(hour)) {
        _ if [*minute, *hour, *dom, *month, *dow]
            .iter()
            .all(|x| *x == "*") =>
        {
            "every minute".into()
        }
        _ if every(minute).is_some() && *hour == "*" && rest_any => {
            format!("every {} min", every(minute)?)
        }
        (Some(m), None) if *hour == "*" && rest_any => format!("at :{m:02} every hour"),
        (Some(m), None) if every(hour).is_some() && rest_any => {
            format!("at :{m:02} every {} h", every(hour)?)
        }
        (Some(m), Some(h)) if rest_any => format!("at {h:02}:{m:02} every day"),
        (Some(m), Some(h)) if *month == "*" && *dom == "*" => {
            format!("at {h:02}:{m:02} on {dow}")
        }
        (Some(m), Some(h)) if *month == "*" && *dow == "*" => {
            format!("at {h:02}:{m:02} on day {dom} of the month")
        }
        _ => return None,
    })
}

/// A schedule in the `/api/v1` form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// Its id.
    pub id: String,
    /// The handler that runs it.
    pub handler: String,
    /// The handler's method.
    pub method: String,
    /// The method's params.
    pub params: Value,
    /// When it fires.
    pub trigger: TriggerSpec,
    /// The trigger in one line, as APScheduler writes it (`cron[0 * * * *, timezone='UTC']`).
    pub trigger_text: String,
    /// The trigger for people (`at :00 every hour, Europe/London`).
    pub trigger_description: String,
    /// The time zone its trigger reads times in.
    pub timezone: String,
    /// How it runs.
    pub policy: SchedulePolicy,
    /// Whether it is paused.
    pub paused: bool,
    /// `active`, `paused` or `completed` (no fire time left).
    pub state: ScheduleState,
    /// The next fire time (UTC); `null` when none is left.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub next_fire_time: Option<DateTime<Utc>>,
    /// The next fire time in the trigger's time zone.
    pub next_fire_time_local: Option<String>,
    /// When it was created.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Its runs in progress now (on every host, on a shared store).
    pub running: u32,
    /// Its latest run, when it has had one.
    pub last_run: Option<Run>,
    /// Whether a live host can run its handler now: `false` when no host has its plugin and no
    /// remote handler with its id answers (its fire times then wait, and are judged by its
    /// misfire policy when one can).
    pub runnable: bool,
}

impl ScheduleView {
    /// The view of `s`, with what is known of its runs.
    pub fn of(s: &Schedule, running: u32, last_run: Option<Run>) -> Self {
        Self {
            id: s.id.clone(),
            handler: s.handler_id.clone(),
            method: s.method.clone(),
            params: s.params.clone(),
            trigger: s.trigger.clone(),
            trigger_text: trigger_text(&s.trigger),
            trigger_description: trigger_words(&s.trigger),
            timezone: zone(&s.trigger).name().to_owned(),
            policy: s.policy.clone(),
            paused: s.paused,
            state: s.state(),
            next_fire_time: s.next_fire,
            next_fire_time_local: s.next_fire.map(|t| local(t, &s.trigger)),
            created_at: s.created_at,
            updated_at: s.updated_at,
            running,
            last_run,
            runnable: true,
        }
    }
}

/// A page of schedules.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// The schedules, by id.
    pub schedules: Vec<ScheduleView>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<String>,
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    /// The runs, newest fire time first.
    pub runs: Vec<Run>,
    /// The `before` of the next page; `null` on the last.
    pub next: Option<String>,
}

/// A run with its attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Its execution records, newest first.
    pub executions: Vec<ExecutionView>,
}

/// A run started by run-now, not waited for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunStarted {
    /// The run.
    pub run: Run,
}

/// A run started by run-now and waited for (`?wait=true`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunEnded {
    /// The run, as it ended.
    pub run: Run,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's failure, when the run failed.
    pub error: Option<Failure>,
    /// Its execution records, newest first.
    pub executions: Vec<ExecutionView>,
}

/// An execution record in the `/api/v1` form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    /// Its id (grows with insertion).
    pub id: i64,
    /// The run it belongs to.
    pub run_id: String,
    /// The schedule (or `immediate_<handler>_<method>_<ts>` for a call made at once).
    pub schedule_id: String,
    /// The handler.
    pub handler: String,
    /// The method.
    pub method: String,
    /// 1 for the first attempt; 0 for a run recorded without running.
    pub attempt: u32,
    /// The attempts the run may take.
    pub max_attempts: u32,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// When it started (or was due).
    #[serde(with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// The result, on success.
    pub result: Option<Value>,
    /// The error's stable code, on failure.
    pub error_code: Option<String>,
    /// The error's message, on failure.
    pub error: Option<String>,
    /// A short text of the params.
    pub params_summary: Option<String>,
    /// Which instance or remote handler ran it.
    pub instance: Option<String>,
    /// Why a failed attempt was not retried.
    pub not_retried: Option<String>,
    /// What it used outside its instance: HTTP requests, the hosts contacted, bytes, the
    /// directories it was given (`null`: nothing).
    pub usage: Option<crate::capability::CallUsage>,
    /// The node (host process) that ran it, as `/api/v1/nodes` lists it.
    pub node: Option<String>,
}

impl From<&Execution> for ExecutionView {
    fn from(e: &Execution) -> Self {
        Self {
            id: e.id,
            run_id: e.run_id.clone(),
            schedule_id: e.schedule_id.clone(),
            handler: e.handler_id.clone(),
            method: e.method.clone(),
            attempt: e.attempt,
            max_attempts: e.max_attempts,
            status: e.status,
            started_at: e.started_at,
            completed_at: e.completed_at,
            duration_ms: e.duration_ms,
            result: e.result.clone(),
            error_code: e.error_code.clone(),
            error: e.error.clone(),
            params_summary: e.params_summary.clone(),
            instance: e.instance.clone(),
            not_retried: e.not_retried.clone(),
            usage: e.usage.clone(),
            node: e.node.clone(),
        }
    }
}

/// Execution records as views.
pub fn executions(list: &[Execution]) -> Vec<ExecutionView> {
    list.iter().map(ExecutionView::from).collect()
}

/// A page of execution records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionList {
    /// The records, newest first.
    pub executions: Vec<ExecutionView>,
    /// The `before` of the next page; `null` on the last.
    pub next: Option<i64>,
}

/// Attempts per stretch of time and status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Timeline {
    /// From (included).
    #[serde(with = "crate::time::rfc3339")]
    pub since: DateTime<Utc>,
    /// To (excluded).
    #[serde(with = "crate::time::rfc3339")]
    pub until: DateTime<Utc>,
    /// The length of a bucket, in seconds.
    pub bucket_s: u32,
    /// The buckets, oldest first.
    pub buckets: Vec<TimelineBucket>,
}

/// A page of handlers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HandlerList {
    /// The handlers, by id.
    pub handlers: Vec<HandlerView>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<String>,
}

/// A call made at once: its result or its failure, as recorded in the execution log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallResult {
    /// The handler.
    pub handler: String,
    /// The method.
    pub method: String,
    /// The job id it is recorded under (`immediate_<handler>_<method>_<unix seconds>`).
    pub schedule_id: String,
    /// The result, when the call succeeded (`null` when it was not JSON).
    pub result: Option<Value>,
    /// Which instance or remote handler ran it, when it succeeded.
    pub instance: Option<String>,
    /// Why it failed, when it did (`timeout`, `handler_failed`, ...).
    pub error: Option<Failure>,
}

/// A remote handler forgotten.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Forgotten {
    /// Its id.
    pub forgotten: String,
    /// The address it had registered.
    pub address: String,
}

/// Whether the host is well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// All is well.
    Ok,
    /// Something is wrong; `reason` says what.
    Degraded,
}

/// Whether the API needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every route but health needs `Authorization: Bearer <token>`.
    Token,
    /// No token is needed.
    None,
}

/// Whether the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreHealth {
    /// It answers.
    Ok,
    /// It does not.
    Unavailable,
}

/// The health check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: HealthStatus,
    /// Why it is degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the store answers.
    pub store: StoreHealth,
    /// Free space on the data directory's volume.
    pub storage: SpaceReport,
    /// Whether the API needs a token.
    pub auth: AuthMode,
}

/// The hosts working on one store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    /// The node answering.
    pub this_node: String,
    /// The store's database (`sqlite`: one host; `postgres`: several may share it).
    pub store: String,
    /// How long a node holds a run without renewing it, in seconds.
    pub lease_s: f64,
    /// The nodes, live ones first.
    pub nodes: Vec<crate::store::NodeRecord>,
}

/// Schedules by state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct ScheduleCounts {
    /// Not paused.
    pub active: u64,
    /// Paused.
    pub paused: u64,
}

/// A file in the plugins folder that is not a usable plugin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rejected {
    /// The file.
    pub file: String,
    /// Why it was refused.
    pub error: String,
}

impl Rejected {
    /// Every file the runtime refused.
    pub fn all(runtime: &crate::runtime::Runtime) -> Vec<Self> {
        runtime
            .rejected()
            .iter()
            .map(|r| Self {
                file: r.path.display().to_string(),
                error: r.error.to_string(),
            })
            .collect()
    }
}

/// A plugin file being compiled in the background (it appeared or changed); calls for it wait
/// for it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompilingPlugin {
    /// The plugin's name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// When its load started (RFC 3339).
    pub since: String,
}

impl CompilingPlugin {
    /// Every plugin being compiled in the background.
    pub fn all(runtime: &crate::runtime::Runtime) -> Vec<Self> {
        runtime
            .compiling()
            .into_iter()
            .map(|c| Self {
                name: c.name,
                file: c.path.display().to_string(),
                since: c.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
            .collect()
    }
}

/// The host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostView {
    /// Its instance name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The ScheduleZero version.
    pub version: String,
    /// The wasmtime version it runs components on.
    pub wasmtime_version: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    #[serde(with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// How long it has run, in seconds.
    pub uptime_s: f64,
    /// The address the API listens on.
    pub listen: String,
    /// Where remote handlers register.
    pub zmq_endpoint: String,
    /// Remote handlers registered.
    pub remote_handlers: usize,
    /// The plugins folder.
    pub plugins_dir: String,
    /// The instance allocator (`pooling` or `ondemand`).
    pub allocator: String,
    /// The store's database: `sqlite` (this host alone) or `postgres` (shared by several hosts).
    pub store: String,
    /// Its node id on the store (fresh at every start; `/api/v1/nodes` lists them all).
    pub node: String,
    /// Schedules by state.
    pub schedules: ScheduleCounts,
    /// Plugins loaded.
    pub plugins: usize,
    /// Files in the plugins folder that were refused.
    pub rejected_plugins: Vec<Rejected>,
}

/// A trigger's next fire times.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerPreview {
    /// The trigger as it would be stored.
    pub trigger: TriggerSpec,
    /// The trigger in one line.
    pub trigger_text: String,
    /// The trigger for people.
    pub trigger_description: String,
    /// The time zone it reads times in.
    pub timezone: String,
    /// The next fire times, UTC.
    pub fire_times: Vec<String>,
    /// The same, in the trigger's time zone.
    pub fire_times_local: Vec<String>,
}

impl TriggerCheck {
    /// A valid trigger, with its preview.
    pub fn valid(p: TriggerPreview) -> Self {
        Self {
            valid: true,
            trigger: Some(p.trigger),
            trigger_text: Some(p.trigger_text),
            trigger_description: Some(p.trigger_description),
            timezone: Some(p.timezone),
            fire_times: Some(p.fire_times),
            fire_times_local: Some(p.fire_times_local),
            error: None,
        }
    }

    /// An invalid trigger, with the error a schedule with it would get.
    pub fn invalid(error: ErrorDetail) -> Self {
        Self {
            valid: false,
            trigger: None,
            trigger_text: None,
            trigger_description: None,
            timezone: None,
            fire_times: None,
            fire_times_local: None,
            error: Some(error),
        }
    }
}

/// A trigger checked as a form types it: valid with its fire times, or the error a schedule
/// with it would get.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerCheck {
    /// Whether the trigger is valid.
    pub valid: bool,
    /// The trigger as it would be stored, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerSpec>,
    /// The trigger in one line, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_text: Option<String>,
    /// The trigger for people, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_description: Option<String>,
    /// The time zone it reads times in, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The next fire times, UTC, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_times: Option<Vec<String>>,
    /// The same in the trigger's time zone, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_times_local: Option<Vec<String>>,
    /// The error, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// A schedule in ScheduleZero's `/api/schedules` form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatSchedule {
    /// Its id.
    pub id: String,
    /// Its name (the id).
    pub name: String,
    /// The next fire time in the trigger's time zone.
    pub next_fire_time: Option<String>,
    /// The trigger in one line.
    pub trigger: String,
    /// `[handler_id, method, params, id]`, as ScheduleZero's job arguments.
    #[schema(value_type = Vec<serde_json::Value>)]
    pub args: Vec<Value>,
    /// Whether it is paused.
    pub paused: bool,
}

impl From<&Schedule> for CompatSchedule {
    fn from(s: &Schedule) -> Self {
        Self {
            id: s.id.clone(),
            name: s.id.clone(),
            next_fire_time: s.next_fire.map(|t| local(t, &s.trigger)),
            trigger: trigger_text(&s.trigger),
            args: vec![
                Value::from(s.handler_id.clone()),
                Value::from(s.method.clone()),
                s.params.clone(),
                Value::from(s.id.clone()),
            ],
            paused: s.paused,
        }
    }
}

/// An execution record in ScheduleZero's form, with the run id and instance added.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatExecution {
    /// Its id.
    pub id: i64,
    /// The schedule id.
    pub job_id: String,
    /// The run.
    pub run_id: String,
    /// The handler.
    pub handler_id: String,
    /// The method.
    pub method_name: String,
    /// When it started.
    #[serde(with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// The result, on success.
    pub result: Option<Value>,
    /// The error's message, on failure.
    pub error: Option<String>,
    /// The error's stable code, on failure.
    pub error_code: Option<String>,
    /// The attempt.
    pub attempt_number: u32,
    /// The attempts the run may take.
    pub max_attempts: u32,
    /// A short text of the params.
    pub params_summary: Option<String>,
    /// Which instance or remote handler ran it.
    pub instance: Option<String>,
}

impl From<&Execution> for CompatExecution {
    fn from(e: &Execution) -> Self {
        Self {
            id: e.id,
            job_id: e.schedule_id.clone(),
            run_id: e.run_id.clone(),
            handler_id: e.handler_id.clone(),
            method_name: e.method.clone(),
            started_at: e.started_at,
            completed_at: e.completed_at,
            duration_ms: e.duration_ms,
            status: e.status,
            result: e.result.clone(),
            error: e.error.clone(),
            error_code: e.error_code.clone(),
            attempt_number: e.attempt,
            max_attempts: e.max_attempts,
            params_summary: e.params_summary.clone(),
            instance: e.instance.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_read_like_apscheduler() {
        let interval = |s| TriggerSpec::Interval {
            every_seconds: s,
            start_time: None,
            end_time: None,
        };
        assert_eq!(trigger_text(&interval(10.0)), "interval[0:00:10]");
        assert_eq!(
            trigger_text(&interval(90_061.0)),
            "interval[1 day, 1:01:01]"
        );
        assert_eq!(trigger_text(&interval(1.5)), "interval[0:00:01.500000]");
        let date = TriggerSpec::Date {
            run_date: DateTime::parse_from_rfc3339("2026-05-01T09:30:00+02:00")
                .unwrap()
                .with_timezone(&Utc),
        };
        assert_eq!(trigger_text(&date), "date[2026-05-01 07:30:00 UTC]");
        assert_eq!(trigger_words(&date), "once, at 2026-05-01 07:30:00 UTC");
        assert_eq!(trigger_words(&interval(30.0)), "every 30 s");
        assert_eq!(trigger_words(&interval(5400.0)), "every 1 h 30 min");
        assert_eq!(trigger_words(&interval(1.5)), "every 1.5 s");
        let cron = |e: &str, tz: Option<&str>| TriggerSpec::Cron {
            expression: e.into(),
            timezone: tz.map(Into::into),
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        };
        assert_eq!(
            trigger_words(&cron("0 * * * *", Some("Europe/London"))),
            "at :00 every hour, Europe/London"
        );
        assert_eq!(
            trigger_words(&cron("30 9 * * *", None)),
            "at 09:30 every day, UTC"
        );
        assert_eq!(
            trigger_words(&cron("*/15 * * * *", None)),
            "every 15 min, UTC"
        );
        assert_eq!(
            trigger_words(&cron("0 9-17 * * 1-5", None)),
            "cron 0 9-17 * * 1-5, UTC"
        );
    }
}
