//! Triggers: when a schedule fires.
//!
//! A [`TriggerSpec`] is what a user writes and what the store keeps: a cron expression with a time
//! zone, an interval, or a date. [`TriggerSpec::from_compat`] reads ScheduleZero's trigger objects
//! (see `shared/COMPAT.md`). A [`Trigger`] is a spec made ready to compute fire times; every fire
//! time is a UTC instant, and the next one is always computed from the exact previous one
//! ([`Trigger::fire_after`]), so a schedule's series never drifts and a restart continues it.
//!
//! Cron follows Vixie cron across daylight-saving changes (croner 4): a fixed-time job whose
//! local time does not exist (spring forward) runs once, at the first instant after the gap; one
//! whose local time happens twice (fall back) runs once, at the first; a job that repeats within
//! the hour (`*/30 * * * *`) runs at every slot of the repeated hour, in order.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compat_cron;
pub use super::trigger_error::TriggerError;

/// When a schedule fires, as written by a user and kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TriggerSpec {
    /// A cron expression (5 fields, or 6 with seconds first), read in a time zone.
    Cron {
        /// The expression, such as `*/15 9-17 * * mon-fri`.
        expression: String,
        /// An IANA time zone; UTC when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
        /// Fire times before this are skipped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<DateTime<Utc>>,
        /// No fire times after this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_time: Option<DateTime<Utc>>,
        /// Fields combine as in APScheduler (day of month AND day of week, year allowed): set by
        /// ScheduleZero's field form. Plain expressions follow Vixie cron (day of month OR day
        /// of week).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compat_fields: bool,
        /// The ISO weeks it fires in (APScheduler's `week` field: `*/2`, `1-10`, `5,20`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iso_week: Option<String>,
    },
    /// Every period, starting at `start_time`.
    Interval {
        /// The period, in seconds (fractions allowed).
        every_seconds: f64,
        /// The first fire time; filled with the creation time when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<DateTime<Utc>>,
        /// No fire times after this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_time: Option<DateTime<Utc>>,
    },
    /// Once, at a point in time (at once if it is past).
    Date {
        /// When.
        run_date: DateTime<Utc>,
    },
}

impl TriggerSpec {
    /// Reads a ScheduleZero trigger object: `{"type": "cron" | "interval" | "date", ...}`, the
    /// type in any case. `now` anchors an interval without a start.
    pub fn from_compat(trigger: &Value, now: DateTime<Utc>) -> Result<Self, TriggerError> {
        Self::read_compat(trigger, now).map(|(spec, _)| spec)
    }

    /// [`TriggerSpec::from_compat`], with the spec made ready (it is compiled to be checked
    /// anyway; a caller that computes fire times next need not compile it again).
    pub fn read_compat(
        trigger: &Value,
        now: DateTime<Utc>,
    ) -> Result<(Self, Trigger), TriggerError> {
        Self::read_compat_in(trigger, now, compat_cron::host_zone())
    }

    /// [`TriggerSpec::read_compat`] with `local` as the host's time zone (the zone of a cron
    /// object without `timezone`, and of a date without an offset).
    pub fn read_compat_in(
        trigger: &Value,
        now: DateTime<Utc>,
        local: Tz,
    ) -> Result<(Self, Trigger), TriggerError> {
        let obj = trigger
            .as_object()
            .ok_or_else(|| TriggerError::Malformed("the trigger must be an object".into()))?;
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| TriggerError::Malformed("the trigger needs a `type`".into()))?
            .to_ascii_lowercase();
        check_keys(obj, &kind)?;
        let time = |key: &str| {
            obj.get(key)
                .filter(|v| !v.is_null())
                .map(|v| parse_time_in(v, local))
                .transpose()
        };
        let spec = match kind.as_str() {
            "date" => {
                let run_date = time("run_date")?.ok_or_else(|| {
                    TriggerError::Malformed("a date trigger needs `run_date`".into())
                })?;
                Self::Date { run_date }
            }
            "interval" => {
                let mut every_seconds = 0.0;
                for (key, unit) in [
                    ("weeks", 604_800.0),
                    ("days", 86_400.0),
                    ("hours", 3_600.0),
                    ("minutes", 60.0),
                    ("seconds", 1.0),
                ] {
                    if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                        // The Python server passes each through float(): "1" and "1.5" count.
                        let n = match v {
                            Value::String(s) => s.trim().parse::<f64>().ok(),
                            other => other.as_f64(),
                        }
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| {
                            TriggerError::Interval(format!("`{key}` must be a number, not {v}"))
                        })?;
                        every_seconds += n * unit;
                    }
                }
                Self::Interval {
                    every_seconds,
                    start_time: time("start_time")?.or(Some(now)),
                    end_time: time("end_time")?,
                }
            }
            "cron" => {
                // Without one, APScheduler uses the host's zone: so do we, named in the spec so
                // that the schedule keeps it.
                let timezone = match obj.get("timezone") {
                    None | Some(Value::Null) => Some(local.name().to_owned()),
                    Some(Value::String(tz)) => Some(tz.clone()),
                    Some(_) => {
                        return Err(TriggerError::Malformed(
                            "`timezone` must be a string".into(),
                        ));
                    }
                };
                let (expression, iso_week) = compat_cron::expression(obj)?;
                Self::Cron {
                    expression,
                    timezone,
                    start_time: time("start_time")?,
                    end_time: time("end_time")?,
                    compat_fields: true,
                    iso_week,
                }
            }
            other => {
                return Err(TriggerError::Malformed(format!(
                    "unknown trigger type `{other}` (use cron, interval or date)"
                )));
            }
        };
        let ready = spec.compile()?;
        ready.check_fires(now)?;
        Ok((spec, ready))
    }

    /// Reads a trigger as `/api/v1` takes it: a cron expression as a plain string (UTC); an object
    /// in the stored form (`{"type": "cron", "expression": ..., "timezone": ...}`,
    /// `{"type": "interval", "every_seconds": ...}`, `{"type": "date", "run_date": ...}`); or any
    /// of ScheduleZero's trigger objects. Unknown keys are refused.
    pub fn from_json(trigger: &Value, now: DateTime<Utc>) -> Result<Self, TriggerError> {
        Self::read_json(trigger, now).map(|(spec, _)| spec)
    }

    /// [`TriggerSpec::from_json`], with the spec made ready.
    pub fn read_json(trigger: &Value, now: DateTime<Utc>) -> Result<(Self, Trigger), TriggerError> {
        let spec = match trigger {
            Value::String(expression) => Self::Cron {
                expression: expression.trim().to_owned(),
                timezone: None,
                start_time: None,
                end_time: None,
                compat_fields: false,
                iso_week: None,
            },
            Value::Object(obj)
                if obj.contains_key("expression") || obj.contains_key("every_seconds") =>
            {
                let kind = obj
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| TriggerError::Malformed("the trigger needs a `type`".into()))?;
                check_keys(obj, &kind)?;
                let mut obj = obj.clone();
                obj.insert("type".into(), Value::String(kind.clone()));
                for key in ["start_time", "end_time", "run_date"] {
                    if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                        let t = parse_time(v)?;
                        obj.insert(key.into(), Value::String(t.to_rfc3339()));
                    }
                }
                let mut spec: Self = serde_json::from_value(Value::Object(obj))
                    .map_err(|e| TriggerError::Malformed(e.to_string()))?;
                if let Self::Interval { start_time, .. } = &mut spec
                    && start_time.is_none()
                {
                    *start_time = Some(now);
                }
                spec
            }
            Value::Object(_) => return Self::read_compat(trigger, now),
            _ => {
                return Err(TriggerError::Malformed(
                    "the trigger must be a cron expression or an object".into(),
                ));
            }
        };
        let ready = spec.compile()?;
        ready.check_fires(now)?;
        Ok((spec, ready))
    }

    /// Checks the spec and makes it ready to compute fire times. Times are kept to the
    /// microsecond, the store's precision, so a fire time read back is the one computed.
    pub fn compile(&self) -> Result<Trigger, TriggerError> {
        let micros = |t: &Option<DateTime<Utc>>| t.map(|t| t.trunc_subsecs(6));
        let (kind, start, end) = match self {
            Self::Cron {
                expression,
                timezone,
                start_time,
                end_time,
                compat_fields,
                iso_week,
            } => {
                let tz = match timezone {
                    Some(name) => {
                        Tz::from_str(name).map_err(|_| TriggerError::TimeZone(name.clone()))?
                    }
                    None => Tz::UTC,
                };
                let parser = if *compat_fields {
                    CronParser::builder()
                        .seconds(Seconds::Required)
                        .year(Year::Required)
                        .dom_and_dow(true)
                        .sloppy_ranges(true)
                        .build()
                } else {
                    CronParser::builder().year(Year::Disallowed).build()
                };
                let cron = parser.parse(expression).map_err(|e| TriggerError::Cron {
                    expression: expression.clone(),
                    message: cron_fault(expression, *compat_fields, &e.to_string()),
                })?;
                let weeks = iso_week
                    .as_deref()
                    .map(compat_cron::parse_weeks)
                    .transpose()?
                    .map(Box::new);
                (
                    Kind::Cron {
                        cron: Box::new(cron),
                        tz,
                        weeks,
                    },
                    micros(start_time),
                    micros(end_time),
                )
            }
            Self::Interval {
                every_seconds,
                start_time,
                end_time,
            } => {
                if !every_seconds.is_finite() || *every_seconds < 0.001 || *every_seconds > 1e11 {
                    return Err(TriggerError::Interval(format!(
                        "the period must be between 1 ms and about 3000 years, not {every_seconds} s"
                    )));
                }
                let period = TimeDelta::microseconds((every_seconds * 1e6).round() as i64);
                let anchor = micros(start_time).ok_or_else(|| {
                    TriggerError::Interval("an interval needs a start time".into())
                })?;
                (
                    Kind::Interval { period, anchor },
                    micros(start_time),
                    micros(end_time),
                )
            }
            Self::Date { run_date } => (
                Kind::Date {
                    at: run_date.trunc_subsecs(6),
                },
                None,
                None,
            ),
        };
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            return Err(TriggerError::EndBeforeStart);
        }
        Ok(Trigger { kind, start, end })
    }
}

/// A trigger ready to compute fire times.
#[derive(Debug, Clone)]
pub struct Trigger {
    kind: Kind,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron {
        cron: Box<Cron>,
        tz: Tz,
        /// The ISO weeks it may fire in (index 1-53); all when `None`.
        weeks: Option<Box<[bool; 54]>>,
    },
    Interval {
        period: TimeDelta,
        anchor: DateTime<Utc>,
    },
    Date {
        at: DateTime<Utc>,
    },
}

impl Trigger {
    /// The first fire time of a schedule created at `now`: a date trigger's date (even a past
    /// one), an interval's first slot at or after `now`, a cron's first match at or after `now`.
    pub fn first_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Date { at } => Some(*at),
            // At or after `now`, at the store's precision.
            _ => self.fire_after(now.trunc_subsecs(6) - TimeDelta::microseconds(1)),
        }
    }

    /// The first fire time strictly after `after`, within the start and end times.
    pub fn fire_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start {
            Some(start) if start > after => start - TimeDelta::nanoseconds(1),
            _ => after,
        };
        let next = match &self.kind {
            Kind::Date { at } => (*at > after).then_some(*at),
            Kind::Interval { period, anchor } => {
                if after < *anchor {
                    Some(*anchor)
                } else {
                    // Microseconds, the store's precision: nanoseconds overflow an i64 some 292
                    // years from the anchor (a start time in 1600 would never fire).
                    let elapsed = (after - *anchor).num_microseconds()?;
                    let step = period.num_microseconds()?;
                    let k = elapsed / step + 1;
                    anchor.checked_add_signed(TimeDelta::microseconds(k.checked_mul(step)?))
                }
            }
            Kind::Cron { cron, tz, weeks } => next_cron(cron, *tz, weeks.as_deref(), after),
        }?;
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// Refuses a cron or interval that has no fire time at or after `now` (a date trigger has its
    /// one date, past or not).
    pub fn check_fires(&self, now: DateTime<Utc>) -> Result<(), TriggerError> {
        if matches!(self.kind, Kind::Date { .. }) || self.first_fire(now).is_some() {
            return Ok(());
        }
        Err(TriggerError::NeverFires(match (&self.kind, self.end) {
            (_, Some(end)) if end < now => format!("its end_time {} is past", end.to_rfc3339()),
            (Kind::Cron { .. }, _) => "no date matches the expression".to_owned(),
            _ => "no fire time can be computed (is the start time within the years 1 to 9999?)"
                .to_owned(),
        }))
    }

    /// The fire times after `after`, in order (at most `limit` of them).
    pub fn fires_after(&self, mut after: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        while fires.len() < limit {
            match self.fire_after(after) {
                Some(next) => {
                    fires.push(next);
                    after = next;
                }
                None => break,
            }
        }
        fires
    }
}

/// The first match of `cron` in `tz` after `after` that falls in one of `weeks` (ISO weeks of the
/// local date): a week that does not match is skipped whole.
fn next_cron(
    cron: &Cron,
    tz: Tz,
    weeks: Option<&[bool; 54]>,
    mut after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    // Enough for any week set over the years croner searches; a set that matches nothing was
    // refused when the trigger was read.
    for _ in 0..(53 * 30) {
        let next = cron
            .find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()?;
        let Some(weeks) = weeks else {
            return Some(next.with_timezone(&Utc));
        };
        let week = next.iso_week().week() as usize;
        if weeks[week] {
            return Some(next.with_timezone(&Utc));
        }
        // On to the Monday after, at midnight local time (or the first instant after it).
        let days_to_monday = 7 - i64::from(next.weekday().num_days_from_monday());
        let monday = next.date_naive() + TimeDelta::days(days_to_monday);
        let start = tz
            .from_local_datetime(&monday.and_hms_opt(0, 0, 0)?)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&monday.and_hms_opt(1, 0, 0)?)
                    .earliest()
            })?;
        after = start.with_timezone(&Utc) - TimeDelta::microseconds(1);
    }
    None
}

/// Refuses keys a trigger type does not take (a typo must not silently change a schedule).
fn check_keys(obj: &serde_json::Map<String, Value>, kind: &str) -> Result<(), TriggerError> {
    let allowed: &[&str] = match kind {
        "cron" => &[
            "type",
            "expression",
            "timezone",
            "start_time",
            "end_time",
            "compat_fields",
            "iso_week",
            "year",
            "month",
            "day",
            "week",
            "day_of_week",
            "hour",
            "minute",
            "second",
        ],
        "interval" => &[
            "type",
            "every_seconds",
            "weeks",
            "days",
            "hours",
            "minutes",
            "seconds",
            "start_time",
            "end_time",
        ],
        "date" => &["type", "run_date"],
        _ => return Ok(()),
    };
    if let Some(key) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(TriggerError::Malformed(format!(
            "a {kind} trigger does not take `{key}` (it takes {})",
            allowed[1..].join(", ")
        )));
    }
    if kind == "cron"
        && obj.contains_key("expression")
        && let Some(field) = obj.keys().find(|k| compat_cron::is_field(k))
    {
        return Err(TriggerError::Malformed(format!(
            "give either `expression` or cron fields such as `{field}`, not both"
        )));
    }
    Ok(())
}

/// What is wrong with a cron expression croner refused, in the user's terms: the field at
/// fault and its range, or how many fields there should be; croner's own words otherwise.
fn cron_fault(expression: &str, compat_fields: bool, croner: &str) -> String {
    const SECOND: (&str, u32, u32) = ("second", 0, 59);
    const MINUTE: (&str, u32, u32) = ("minute", 0, 59);
    const HOUR: (&str, u32, u32) = ("hour", 0, 23);
    const DOM: (&str, u32, u32) = ("day-of-month", 1, 31);
    const MONTH: (&str, u32, u32) = ("month", 1, 12);
    const DOW: (&str, u32, u32) = ("day-of-week", 0, 7);
    const YEAR: (&str, u32, u32) = ("year", 1970, 2099);
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names: &[(&str, u32, u32)] = match (compat_fields, fields.len()) {
        (true, 7) => &[SECOND, MINUTE, HOUR, DOM, MONTH, DOW, YEAR],
        (false, 5) => &[MINUTE, HOUR, DOM, MONTH, DOW],
        (false, 6) => &[SECOND, MINUTE, HOUR, DOM, MONTH, DOW],
        (false, n) => {
            return format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; this one has {n}"
            );
        }
        (true, _) => return croner.trim_start_matches("Component error: ").to_owned(),
    };
    for (field, (name, low, high)) in fields.iter().zip(names) {
        let numbers = field
            .split([',', '-', '/'])
            .filter(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
        for n in numbers {
            if n.parse::<u32>().map_or(true, |v| v < *low || v > *high) {
                return format!("the {name} field has {n}, outside {low}-{high}");
            }
        }
    }
    let reason = croner
        .trim_start_matches("Component error: ")
        .trim_end_matches('.');
    format!(
        "{reason} (fields: {})",
        names.iter().map(|n| n.0).collect::<Vec<_>>().join(" ")
    )
}

/// Reads a time: a Unix timestamp (integer or float, UTC) or an ISO 8601 string; a string
/// without an offset is the host's local time.
pub fn parse_time(value: &Value) -> Result<DateTime<Utc>, TriggerError> {
    parse_time_in(value, compat_cron::host_zone())
}

/// [`parse_time`] with `local` as the zone of a string without an offset.
pub fn parse_time_in(value: &Value, local: Tz) -> Result<DateTime<Utc>, TriggerError> {
    match value {
        Value::Number(n) => {
            let secs = n
                .as_f64()
                .ok_or_else(|| TriggerError::Date(n.to_string()))?;
            // Rounded to the microsecond, the store's precision: a float such as
            // 1804000000.25 is 1804000000.2499999 in binary, and truncating it lost a microsecond.
            let micros = (secs * 1e6).round();
            if !micros.is_finite() || micros.abs() > 8.2e18 {
                return Err(TriggerError::Date(n.to_string()));
            }
            DateTime::from_timestamp_micros(micros as i64)
                .ok_or_else(|| TriggerError::Date(n.to_string()))
        }
        Value::String(s) => {
            parse_time_str(s.trim(), local).ok_or_else(|| TriggerError::Date(s.clone()))
        }
        other => Err(TriggerError::Date(other.to_string())),
    }
}

fn parse_time_str(s: &str, local: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    match local.from_local_datetime(&naive) {
        // A local time that happens twice (the hour repeated when clocks go back): the first.
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => Some(first.min(second).with_timezone(&Utc)),
        // A local time skipped by a daylight-saving change: the instant the clock jumped to.
        LocalResult::None => local
            .from_local_datetime(&(naive + TimeDelta::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(expression: &str, tz: &str) -> Trigger {
        TriggerSpec::Cron {
            expression: expression.into(),
            timezone: Some(tz.into()),
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        }
        .compile()
        .unwrap()
    }

    fn iso(fires: &[DateTime<Utc>]) -> Vec<String> {
        fires
            .iter()
            .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
            .collect()
    }

    #[test]
    fn a_daily_job_in_a_skipped_hour_runs_once_on_spring_forward() {
        // New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
        let t = cron("30 2 * * *", "America/New_York");
        let fires = t.fires_after(utc("2026-03-06T12:00:00Z"), 3);
        assert_eq!(
            iso(&fires),
            [
                "2026-03-07T07:30Z",
                "2026-03-08T07:00Z",
                "2026-03-09T06:30Z"
            ]
        );
    }

    #[test]
    fn a_daily_job_runs_once_on_fall_back() {
        // New York, 1 November 2026: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let t = cron("30 1 * * *", "America/New_York");
        let fires = t.fires_after(utc("2026-10-30T12:00:00Z"), 3);
        assert_eq!(
            iso(&fires),
            [
                "2026-10-31T05:30Z",
                "2026-11-01T05:30Z",
                "2026-11-02T06:30Z"
            ]
        );
        let t = cron("30 2 * * *", "America/New_York");
        let fires = t.fires_after(utc("2026-10-31T12:00:00Z"), 2);
        assert_eq!(iso(&fires), ["2026-11-01T07:30Z", "2026-11-02T07:30Z"]);
    }

    #[test]
    fn a_half_hourly_job_runs_every_slot_of_the_repeated_hour_in_order() {
        let t = cron("*/30 * * * *", "America/New_York");
        let fires = t.fires_after(utc("2026-11-01T04:00:00Z"), 6);
        assert_eq!(
            iso(&fires),
            [
                "2026-11-01T04:30Z",
                "2026-11-01T05:00Z",
                "2026-11-01T05:30Z",
                "2026-11-01T06:00Z",
                "2026-11-01T06:30Z",
                "2026-11-01T07:00Z"
            ]
        );
    }

    #[test]
    fn next_fire_times_come_from_the_exact_previous_one() {
        let t = cron("*/15 * * * * *", "UTC");
        assert_eq!(
            t.fire_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T00:00:15Z"))
        );
        assert_eq!(
            t.fire_after(utc("2026-01-01T00:00:14.999Z")),
            Some(utc("2026-01-01T00:00:15Z"))
        );
        assert_eq!(
            t.first_fire(utc("2026-01-01T00:00:15Z")),
            Some(utc("2026-01-01T00:00:15Z"))
        );
    }

    #[test]
    fn intervals_keep_their_phase_and_bounds() {
        let spec = TriggerSpec::from_compat(
            &json!({"type": "Interval", "minutes": 1, "seconds": 30, "end_time": "2026-01-01T00:05:00Z"}),
            utc("2026-01-01T00:00:00Z"),
        )
        .unwrap();
        let t = spec.compile().unwrap();
        assert_eq!(
            t.first_fire(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T00:00:00Z"))
        );
        let fires = t.fires_after(utc("2026-01-01T00:00:00Z"), 10);
        assert_eq!(
            fires,
            vec![
                utc("2026-01-01T00:01:30Z"),
                utc("2026-01-01T00:03:00Z"),
                utc("2026-01-01T00:04:30Z")
            ]
        );
        // After downtime the series continues on its phase.
        assert_eq!(
            t.fire_after(utc("2026-01-01T00:02:00Z")),
            Some(utc("2026-01-01T00:03:00Z"))
        );
        let e = TriggerSpec::from_compat(&json!({"type": "interval"}), utc("2026-01-01T00:00:00Z"))
            .unwrap_err();
        assert!(matches!(e, TriggerError::Interval(_)), "{e}");
    }

    #[test]
    fn dates_fire_once_and_read_every_compat_form() {
        let now = utc("2026-01-01T00:00:00Z");
        for (run_date, expected) in [
            (json!(1_767_225_600), "2026-01-01T00:00:00Z"),
            (json!(1_767_225_600.5), "2026-01-01T00:00:00.5Z"),
            (json!("2026-05-01T09:30:00+02:00"), "2026-05-01T07:30:00Z"),
            (json!("2026-05-01 09:30:00Z"), "2026-05-01T09:30:00Z"),
        ] {
            let spec =
                TriggerSpec::from_compat(&json!({"type": "DATE", "run_date": run_date}), now)
                    .unwrap();
            let t = spec.compile().unwrap();
            assert_eq!(t.first_fire(now), Some(utc(expected)));
            assert_eq!(t.fire_after(utc(expected)), None);
        }
        // A past date still fires (at once).
        let past = TriggerSpec::from_compat(&json!({"type": "date", "run_date": 0}), now)
            .unwrap()
            .compile()
            .unwrap();
        assert_eq!(past.first_fire(now), Some(DateTime::UNIX_EPOCH));
        let naive = parse_time_in(&json!("2026-05-01T09:30:00"), Tz::Europe__Paris).unwrap();
        assert_eq!(naive, utc("2026-05-01T07:30:00Z"));
        assert!(matches!(
            parse_time(&json!("next tuesday")),
            Err(TriggerError::Date(_))
        ));
    }

    #[test]
    fn compat_cron_fields_follow_apscheduler() {
        let now = utc("2026-01-01T00:00:00Z");
        let expr = |fields: Value| match TriggerSpec::from_compat(&fields, now).unwrap() {
            TriggerSpec::Cron { expression, .. } => expression,
            other => panic!("{other:?}"),
        };
        // Less significant fields default to their minimum, more significant ones to `*`.
        assert_eq!(expr(json!({"type": "cron", "hour": 9})), "0 0 9 * * * *");
        assert_eq!(
            expr(json!({"type": "cron", "minute": "*/2"})),
            "0 */2 * * * * *"
        );
        assert_eq!(
            expr(json!({"type": "cron", "day_of_week": "mon-fri", "hour": 17, "minute": 30})),
            "0 30 17 * * MON,TUE,WED,THU,FRI *"
        );
        // Day of month AND day of week, as in APScheduler: the 13th that is a Friday.
        let t = TriggerSpec::from_compat(
            &json!({"type": "cron", "day": 13, "day_of_week": "fri", "timezone": "UTC"}),
            now,
        )
        .unwrap()
        .compile()
        .unwrap();
        assert_eq!(t.first_fire(now), Some(utc("2026-02-13T00:00:00Z")));
    }

    /// Each case side by side with APScheduler 4.0.0a6: `CronTrigger(**fields,
    /// timezone="Europe/Paris", start_time=2026-01-01T00:00:30Z)` and its first three `next()`.
    #[test]
    fn compat_cron_objects_fire_when_apscheduler_4_fires_them() {
        let now = utc("2026-01-01T00:00:30Z");
        let cases: [(Value, [&str; 3]); 14] = [
            // Numeric weekdays are cron-style: 0 and 7 Sunday, 1 Monday.
            (
                json!({"day_of_week": 0, "hour": 9}),
                [
                    "2026-01-04T08:00:00Z",
                    "2026-01-11T08:00:00Z",
                    "2026-01-18T08:00:00Z",
                ],
            ),
            (
                json!({"day_of_week": 7, "hour": 9}),
                [
                    "2026-01-04T08:00:00Z",
                    "2026-01-11T08:00:00Z",
                    "2026-01-18T08:00:00Z",
                ],
            ),
            (
                json!({"day_of_week": 1, "hour": 9}),
                [
                    "2026-01-05T08:00:00Z",
                    "2026-01-12T08:00:00Z",
                    "2026-01-19T08:00:00Z",
                ],
            ),
            (
                json!({"day_of_week": "1-5", "hour": 8}),
                [
                    "2026-01-01T07:00:00Z",
                    "2026-01-02T07:00:00Z",
                    "2026-01-05T07:00:00Z",
                ],
            ),
            // `*/2` counts from Monday: mon, wed, fri, sun.
            (
                json!({"day_of_week": "*/2", "hour": 6}),
                [
                    "2026-01-02T05:00:00Z",
                    "2026-01-04T05:00:00Z",
                    "2026-01-05T05:00:00Z",
                ],
            ),
            (
                json!({"day_of_week": "sat-mon", "hour": 7}),
                [
                    "2026-01-03T06:00:00Z",
                    "2026-01-04T06:00:00Z",
                    "2026-01-05T06:00:00Z",
                ],
            ),
            (
                json!({"day": "last", "hour": 12}),
                [
                    "2026-01-31T11:00:00Z",
                    "2026-02-28T11:00:00Z",
                    "2026-03-31T10:00:00Z",
                ],
            ),
            (
                json!({"day": "1,15,last", "hour": 12}),
                [
                    "2026-01-01T11:00:00Z",
                    "2026-01-15T11:00:00Z",
                    "2026-01-31T11:00:00Z",
                ],
            ),
            (
                json!({"day": "1st mon", "hour": 9}),
                [
                    "2026-01-05T08:00:00Z",
                    "2026-02-02T08:00:00Z",
                    "2026-03-02T08:00:00Z",
                ],
            ),
            (
                json!({"day": "3rd wed", "hour": 9}),
                [
                    "2026-01-21T08:00:00Z",
                    "2026-02-18T08:00:00Z",
                    "2026-03-18T08:00:00Z",
                ],
            ),
            (
                json!({"day": "5th fri", "hour": 9}),
                [
                    "2026-01-30T08:00:00Z",
                    "2026-05-29T07:00:00Z",
                    "2026-07-31T07:00:00Z",
                ],
            ),
            (
                json!({"day": "last fri", "hour": 9}),
                [
                    "2026-01-30T08:00:00Z",
                    "2026-02-27T08:00:00Z",
                    "2026-03-27T08:00:00Z",
                ],
            ),
            // The ISO week.
            (
                json!({"week": "*/2", "day_of_week": "mon", "hour": 9}),
                [
                    "2026-01-12T08:00:00Z",
                    "2026-01-26T08:00:00Z",
                    "2026-02-09T08:00:00Z",
                ],
            ),
            (
                json!({"week": 10, "day_of_week": "mon-fri", "hour": 9}),
                [
                    "2026-03-02T08:00:00Z",
                    "2026-03-03T08:00:00Z",
                    "2026-03-04T08:00:00Z",
                ],
            ),
        ];
        for (fields, expected) in cases {
            let mut obj = fields.clone();
            obj["type"] = json!("cron");
            obj["timezone"] = json!("Europe/Paris");
            let (_, t) =
                TriggerSpec::read_compat(&obj, now).unwrap_or_else(|e| panic!("{fields}: {e}"));
            let first = t.first_fire(now).unwrap();
            let mut fires = vec![first];
            fires.extend(t.fires_after(first, 2));
            assert_eq!(fires, expected.map(utc), "{fields}");
        }
        // APScheduler 4.0 drops the step of a numeric weekday range (`1-5/2` runs mon-fri):
        // ours keeps it (docs/scheduler.md).
        let (_, t) = TriggerSpec::read_compat(
            &json!({"type": "cron", "day_of_week": "1-5/2", "hour": 8, "timezone": "Europe/Paris"}),
            now,
        )
        .unwrap();
        assert_eq!(
            t.fires_after(now, 3),
            [
                "2026-01-02T07:00:00Z",
                "2026-01-05T07:00:00Z",
                "2026-01-07T07:00:00Z"
            ]
            .map(utc)
        );
    }

    #[test]
    fn compat_objects_without_a_zone_dates_and_numbers_read_as_apscheduler_4() {
        let now = utc("2026-01-01T00:00:30Z");
        let paris = Tz::Europe__Paris;
        // A cron object without `timezone` runs in the host's zone, kept in the spec.
        let (spec, t) =
            TriggerSpec::read_compat_in(&json!({"type": "cron", "hour": 9}), now, paris).unwrap();
        assert!(
            matches!(&spec, TriggerSpec::Cron { timezone: Some(tz), .. } if tz == "Europe/Paris"),
            "{spec:?}"
        );
        assert_eq!(t.first_fire(now), Some(utc("2026-01-01T08:00:00Z")));
        // A naive date in the hour repeated when clocks go back: its first occurrence.
        assert_eq!(
            parse_time_in(&json!("2026-10-25T02:30:00"), paris).unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
        let (spec, _) = TriggerSpec::read_compat_in(
            &json!({"type": "date", "run_date": "2026-10-25 02:30:00"}),
            now,
            paris,
        )
        .unwrap();
        assert_eq!(
            spec,
            TriggerSpec::Date {
                run_date: utc("2026-10-25T00:30:00Z")
            }
        );
        // Interval units as numeric strings, as Python's float() reads them.
        let (spec, _) = TriggerSpec::read_compat_in(
            &json!({"type": "interval", "days": "1", "hours": "1.5"}),
            now,
            paris,
        )
        .unwrap();
        assert!(
            matches!(spec, TriggerSpec::Interval { every_seconds, .. } if every_seconds == 91_800.0),
            "{spec:?}"
        );
        // A float timestamp, rounded to the microsecond (not truncated one short).
        assert_eq!(
            parse_time(&json!(1_804_000_000.25))
                .unwrap()
                .timestamp_micros(),
            1_804_000_000_250_000
        );
    }

    #[test]
    fn an_interval_anchored_centuries_ago_fires_and_a_cron_that_cannot_is_refused() {
        let now = utc("2026-01-01T00:00:30Z");
        let (_, t) = TriggerSpec::read_json(
            &json!({"type": "interval", "every_seconds": 60, "start_time": "1600-01-01T00:00:00Z"}),
            now,
        )
        .unwrap();
        assert_eq!(t.first_fire(now), Some(utc("2026-01-01T00:01:00Z")));

        let never = TriggerSpec::read_json(&json!("0 0 31 2 *"), now).unwrap_err();
        assert!(
            matches!(&never, TriggerError::NeverFires(m) if m.contains("no date")),
            "{never}"
        );
        let ended = TriggerSpec::read_json(
            &json!({"type": "cron", "expression": "* * * * *", "end_time": "2025-01-01T00:00:00Z"}),
            now,
        )
        .unwrap_err();
        assert!(ended.to_string().contains("is past"), "{ended}");
        assert!(matches!(
            TriggerSpec::read_compat(&json!({"type": "cron", "month": 2, "day": 30}), now),
            Err(TriggerError::NeverFires(_))
        ));
    }

    #[test]
    fn bad_triggers_say_what_is_wrong() {
        let now = utc("2026-01-01T00:00:00Z");
        let err = |v: Value| TriggerSpec::from_compat(&v, now).unwrap_err();
        assert!(
            matches!(err(json!({"hour": 9})), TriggerError::Malformed(m) if m.contains("type"))
        );
        assert!(
            matches!(err(json!({"type": "weekly"})), TriggerError::Malformed(m) if m.contains("weekly"))
        );
        assert!(matches!(
            err(json!({"type": "cron", "hour": 25})),
            TriggerError::Cron { .. }
        ));
        assert!(matches!(
            err(json!({"type": "cron", "day_of_week": 8})),
            TriggerError::Cron { .. }
        ));
        assert!(
            matches!(err(json!({"type": "cron", "week": 54})), TriggerError::Cron { message, .. } if message.contains("week"))
        );
        assert!(matches!(
            err(json!({"type": "cron", "hour": 1, "timezone": "Mars/Olympus"})),
            TriggerError::TimeZone(_)
        ));
        assert!(matches!(
            err(json!({"type": "cron"})),
            TriggerError::Malformed(_)
        ));
        assert!(matches!(
            err(json!({"type": "interval", "seconds": -5})),
            TriggerError::Interval(_)
        ));
        assert!(matches!(
            err(json!({"type": "interval", "seconds": "five"})),
            TriggerError::Interval(_)
        ));
        assert!(matches!(
            err(json!({"type": "date"})),
            TriggerError::Malformed(_)
        ));
        assert!(matches!(
            err(
                json!({"type": "interval", "seconds": 5, "start_time": "2026-02-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"})
            ),
            TriggerError::EndBeforeStart
        ));
        let plain = TriggerSpec::Cron {
            expression: "61 * * * *".into(),
            timezone: None,
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        };
        assert!(matches!(plain.compile(), Err(TriggerError::Cron { .. })));
        let year = TriggerSpec::Cron {
            expression: "0 0 0 1 1 * 2030".into(),
            timezone: None,
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        };
        assert!(
            plain.compile().is_err() && year.compile().is_err(),
            "plain expressions have 5 or 6 fields"
        );
    }

    #[test]
    fn fire_times_are_kept_to_the_microsecond() {
        let t = TriggerSpec::Date {
            run_date: utc("2026-01-01T00:00:00.123456789Z"),
        }
        .compile()
        .unwrap();
        let first = t.first_fire(utc("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-01-01T00:00:00.123456Z"));
        assert_eq!(t.fire_after(first), None);
    }

    #[test]
    fn v1_triggers_take_expressions_stored_forms_and_compat_objects() {
        let now = Utc::now();
        let cron = TriggerSpec::from_json(&json!("*/5 * * * *"), now).unwrap();
        assert!(matches!(
            cron,
            TriggerSpec::Cron {
                compat_fields: false,
                iso_week: None,
                ..
            }
        ));
        let stored = serde_json::to_value(&cron).unwrap();
        assert_eq!(TriggerSpec::from_json(&stored, now).unwrap(), cron);
        let tz = TriggerSpec::from_json(
            &json!({"type": "Cron", "expression": "30 2 * * *", "timezone": "America/New_York"}),
            now,
        )
        .unwrap();
        assert!(matches!(
            tz,
            TriggerSpec::Cron {
                timezone: Some(_),
                ..
            }
        ));
        let every = TriggerSpec::from_json(&json!({"type": "interval", "every_seconds": 1.5}), now)
            .unwrap();
        assert!(matches!(every, TriggerSpec::Interval { start_time: Some(t), .. } if t == now));
        let compat =
            TriggerSpec::from_json(&json!({"type": "interval", "minutes": 2}), now).unwrap();
        assert!(
            matches!(compat, TriggerSpec::Interval { every_seconds, .. } if every_seconds == 120.0)
        );
        for bad in [
            json!("61 * * * *"),
            json!({"type": "interval", "minuts": 2}),
            json!({"type": "cron", "expression": "* * * * *", "hour": 3}),
            json!({"type": "cron", "expression": "* * * * *", "timezone": "Mars/Olympus"}),
            json!(42),
        ] {
            assert!(TriggerSpec::from_json(&bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_round_trip_through_json() {
        let spec = TriggerSpec::Cron {
            expression: "0 9 * * *".into(),
            timezone: Some("Asia/Tokyo".into()),
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            text,
            r#"{"type":"cron","expression":"0 9 * * *","timezone":"Asia/Tokyo"}"#
        );
        assert_eq!(serde_json::from_str::<TriggerSpec>(&text).unwrap(), spec);
    }

    #[test]
    fn a_bad_cron_expression_names_its_field() {
        let fault = |expr: &str| match (TriggerSpec::Cron {
            expression: expr.into(),
            timezone: None,
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        })
        .compile()
        {
            Err(TriggerError::Cron { message, .. }) => message,
            other => panic!("{expr}: {other:?}"),
        };
        assert_eq!(fault("61 * * * *"), "the minute field has 61, outside 0-59");
        assert_eq!(fault("0 25 * * *"), "the hour field has 25, outside 0-23");
        assert_eq!(fault("0 0 * 13 *"), "the month field has 13, outside 1-12");
        assert_eq!(
            fault("0 0 0 * * * *"),
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; this one has 7"
        );
        assert!(!fault("0 0 * * funday").contains("Component error"));
    }
}
