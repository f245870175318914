//! How stored things look on the wire: schedules, runs and execution records, in the `/api/v1`
//! form and in ScheduleZero's.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::schedule::TriggerSpec;
use crate::schedule::{Execution, Run, Schedule};

/// An instant as ISO 8601 UTC with offset, to the microsecond when it has them.
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

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

/// A schedule in the `/api/v1` form.
pub fn schedule_v1(s: &Schedule) -> Value {
    json!({
        "id": s.id,
        "handler": s.handler_id,
        "method": s.method,
        "params": s.params,
        "trigger": s.trigger,
        "trigger_text": trigger_text(&s.trigger),
        "timezone": zone(&s.trigger).name(),
        "policy": s.policy,
        "paused": s.paused,
        "state": schedule_state(s),
        "next_fire_time": s.next_fire.map(utc),
        "next_fire_time_local": s.next_fire.map(|t| local(t, &s.trigger)),
        "created_at": utc(s.created_at),
        "updated_at": utc(s.updated_at),
    })
}

/// `completed` when no fire time is left (a one-shot that ran, a cron or interval past its end),
/// else `paused` or `active`.
pub fn schedule_state(s: &Schedule) -> &'static str {
    match (s.next_fire, s.paused) {
        (None, _) => "completed",
        (Some(_), true) => "paused",
        (Some(_), false) => "active",
    }
}

/// A schedule in ScheduleZero's `/api/schedules` form.
pub fn schedule_compat(s: &Schedule) -> Value {
    json!({
        "id": s.id,
        "name": s.id,
        "next_fire_time": s.next_fire.map(|t| local(t, &s.trigger)),
        "trigger": trigger_text(&s.trigger),
        "args": [s.handler_id, s.method, s.params, s.id],
        "paused": s.paused,
    })
}

/// A run in the `/api/v1` form.
pub fn run_v1(r: &Run) -> Value {
    json!({
        "id": r.id,
        "schedule_id": r.schedule_id,
        "fire_time": utc(r.fire_time),
        "status": r.status,
        "created_at": utc(r.created_at),
        "updated_at": utc(r.updated_at),
    })
}

/// An execution record in the `/api/v1` form.
pub fn execution_v1(e: &Execution) -> Value {
    json!({
        "id": e.id,
        "run_id": e.run_id,
        "schedule_id": e.job_id,
        "handler": e.handler_id,
        "method": e.method,
        "attempt": e.attempt,
        "max_attempts": e.max_attempts,
        "status": e.status,
        "started_at": utc(e.started_at),
        "completed_at": e.completed_at.map(utc),
        "duration_ms": e.duration_ms,
        "result": e.result,
        "error_code": e.error_code,
        "error": e.error,
        "params_summary": e.params_summary,
        "instance": e.instance,
        "not_retried": e.not_retried,
    })
}

/// An execution record in ScheduleZero's form, with the run id and instance added.
pub fn execution_compat(e: &Execution) -> Value {
    json!({
        "id": e.id,
        "job_id": e.job_id,
        "run_id": e.run_id,
        "handler_id": e.handler_id,
        "method_name": e.method,
        "started_at": utc(e.started_at),
        "completed_at": e.completed_at.map(utc),
        "duration_ms": e.duration_ms,
        "status": e.status,
        "result": e.result,
        "error": e.error,
        "error_code": e.error_code,
        "attempt_number": e.attempt,
        "max_attempts": e.max_attempts,
        "params_summary": e.params_summary,
        "instance": e.instance,
    })
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
    }
}
