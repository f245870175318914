//! ScheduleZero's cron trigger objects, read as APScheduler 4.0 reads them (the Python
//! ScheduleZero hands them to `CronTrigger(**fields)`), and written as a croner expression:
//! weekday numbers cron-style (0 and 7 Sunday, 1 Monday), `*/n` over weekdays counted from
//! Monday as APScheduler does, ranges that wrap (`sat-mon`), the day expressions `last`,
//! `1st mon` .. `5th fri` and `last fri`, and the ISO `week`, which croner has no field for and
//! the trigger checks on its own. Where APScheduler 4.0 itself goes wrong, docs/scheduler.md says
//! what we do instead.

use serde_json::Value;

use super::trigger_error::TriggerError;

/// APScheduler's cron fields, most significant first, with the value an unset field takes when
/// it is less significant than the least significant field given.
const FIELDS: [(&str, &str); 8] = [
    ("year", "*"),
    ("month", "1"),
    ("day", "1"),
    ("week", "*"),
    ("day_of_week", "*"),
    ("hour", "0"),
    ("minute", "0"),
    ("second", "0"),
];

/// The field names a cron trigger object may carry.
pub fn is_field(name: &str) -> bool {
    FIELDS.iter().any(|(f, _)| *f == name)
}

/// Weekday names, Monday first (APScheduler's order), as croner writes them.
const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// A cron trigger object's fields as a croner expression (seconds first, year last) and, when
/// given, its ISO week expression.
pub fn expression(
    obj: &serde_json::Map<String, Value>,
) -> Result<(String, Option<String>), TriggerError> {
    let mut given = Vec::with_capacity(FIELDS.len());
    for (name, _) in FIELDS {
        given.push(value(obj, name)?);
    }
    if given.iter().all(Option::is_none) {
        return Err(TriggerError::Malformed(
            "a cron trigger needs at least one field (such as `minute` or `hour`)".into(),
        ));
    }
    // Fields above the least significant one given default to `*`, fields below it to their
    // minimum; week and weekday always default to `*`.
    let least = given.iter().rposition(Option::is_some).unwrap_or(0);
    let field = |i: usize| -> String {
        match &given[i] {
            Some(v) => v.clone(),
            None if i > least && !matches!(FIELDS[i].0, "week" | "day_of_week") => {
                FIELDS[i].1.to_owned()
            }
            None => "*".to_owned(),
        }
    };
    let (mut day, positions) = day_field(&field(2))?;
    let mut weekdays = weekday_field(&field(4))?;
    if !positions.is_empty() {
        if weekdays != "*" {
            return Err(TriggerError::Malformed(format!(
                "the day `{}` names weekdays itself; it cannot be combined with day_of_week `{}`",
                field(2),
                field(4)
            )));
        }
        day = "*".to_owned();
        weekdays = positions.join(",");
    }
    let week = Some(field(3)).filter(|w| w != "*");
    if let Some(w) = &week {
        parse_weeks(w)?;
    }
    // croner's order: second minute hour day-of-month month day-of-week year.
    Ok((
        format!(
            "{} {} {} {} {} {} {}",
            field(7),
            field(6),
            field(5),
            day,
            field(1),
            weekdays,
            field(0)
        ),
        week,
    ))
}

fn value(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, TriggerError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(other) => Err(TriggerError::Malformed(format!(
            "cron field `{name}` must be a number or a string, not {other}"
        ))),
    }
}

fn cron_error(field: &str, message: String) -> TriggerError {
    TriggerError::Cron {
        expression: field.to_owned(),
        message,
    }
}

/// The `day` field: numbers, ranges and steps as cron has them, `last` for the last day of the
/// month; and the weekday positions (`1st mon` .. `5th fri`, `last fri`), which croner writes
/// in its weekday field (returned apart, as `MON#1`, `FRI#L`).
fn day_field(field: &str) -> Result<(String, Vec<String>), TriggerError> {
    let mut days = Vec::new();
    let mut positions = Vec::new();
    for item in field.split(',').map(str::trim) {
        let lower = item.to_ascii_lowercase();
        if lower == "last" {
            days.push("L".to_owned());
        } else if let Some((nth, weekday)) = lower.split_once(char::is_whitespace) {
            let nth = match nth {
                "1st" => "1",
                "2nd" => "2",
                "3rd" => "3",
                "4th" => "4",
                "5th" => "5",
                "last" => "L",
                _ => {
                    return Err(cron_error(
                        field,
                        format!("`{item}`: use 1st, 2nd, 3rd, 4th, 5th or last and a weekday name"),
                    ));
                }
            };
            let day = weekday_index(weekday.trim()).ok_or_else(|| {
                cron_error(
                    field,
                    format!("`{item}`: `{weekday}` is not a weekday name"),
                )
            })?;
            positions.push(format!("{}#{nth}", WEEKDAYS[day]));
        } else {
            days.push(item.to_owned());
        }
    }
    if !positions.is_empty() && !days.is_empty() {
        return Err(cron_error(
            field,
            "weekday positions (such as `3rd wed`) cannot be mixed with days of the month".into(),
        ));
    }
    Ok((days.join(","), positions))
}

/// Monday = 0, from a name (`mon` or `monday`, any case).
fn weekday_index(name: &str) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    let short = name.get(..3)?;
    WEEKDAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(short))
        .filter(|_| {
            name.len() == 3
                || [
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                    "sunday",
                ]
                .contains(&name.as_str())
        })
}

/// A weekday token as APScheduler 4 reads it: a name, or a number cron-style (0 and 7 Sunday,
/// 1 Monday). Monday = 0.
fn weekday_token(token: &str, field: &str) -> Result<usize, TriggerError> {
    match token.trim().parse::<usize>() {
        Ok(n) if n <= 7 => Ok((n + 6) % 7),
        Ok(n) => Err(cron_error(
            field,
            format!("day_of_week {n} is out of range 0-7 (0 and 7 are Sunday, 1 is Monday)"),
        )),
        Err(_) => weekday_index(token.trim())
            .ok_or_else(|| cron_error(field, format!("`{token}` is not a weekday"))),
    }
}

/// The `day_of_week` field as an explicit list of weekdays (or `*`): numbers cron-style, names,
/// ranges that may wrap (`sat-mon`), and steps; `*/n` counts from Monday, as APScheduler does.
fn weekday_field(field: &str) -> Result<String, TriggerError> {
    if field == "*" {
        return Ok("*".to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',').map(str::trim) {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step = s
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|s| (1..=6).contains(s))
                    .ok_or_else(|| cron_error(field, format!("`{item}`: a step is 1 to 6")))?;
                (r.trim(), step)
            }
            None => (item, 1),
        };
        let (first, last) = match range {
            "*" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => (weekday_token(a, field)?, weekday_token(b, field)?),
                None => {
                    let d = weekday_token(range, field)?;
                    (d, d)
                }
            },
        };
        // A range that wraps (`sat-mon`) runs on through Sunday.
        let len = (last + 7 - first) % 7 + 1;
        for k in (0..len).step_by(step) {
            days[(first + k) % 7] = true;
        }
    }
    Ok(days
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(d, _)| WEEKDAYS[d])
        .collect::<Vec<_>>()
        .join(","))
}

/// The ISO weeks (1-53) a `week` expression names: `*`, `*/n` (from week 1), numbers, ranges
/// and steps, comma-separated. Index 0 is unused.
pub fn parse_weeks(expr: &str) -> Result<[bool; 54], TriggerError> {
    let bad = |m: String| cron_error(expr, format!("week: {m}"));
    let mut weeks = [false; 54];
    for item in expr.split(',').map(str::trim) {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r.trim(),
                s.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|s| (1..=52).contains(s))
                    .ok_or_else(|| bad(format!("`{item}`: a step is 1 to 52")))?,
            ),
            None => (item, 1),
        };
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=53).contains(n))
                .ok_or_else(|| bad(format!("`{s}` is not an ISO week number (1-53)")))
        };
        let (first, last) = match range {
            "*" => (1, 53),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let n = number(range)?;
                    (n, if step > 1 { 53 } else { n })
                }
            },
        };
        if last < first {
            return Err(bad(format!("`{item}`: the range runs backwards")));
        }
        for w in (first..=last).step_by(step) {
            weeks[w] = true;
        }
    }
    Ok(weeks)
}

/// The host's time zone, for a cron object without `timezone` and a date without an offset
/// (APScheduler uses the local zone for both); UTC when it cannot be told.
pub fn host_zone() -> chrono_tz::Tz {
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|name| name.parse().ok())
        .unwrap_or(chrono_tz::Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_read_as_apscheduler_4() {
        let w = |f: &str| weekday_field(f).unwrap();
        // Cron-style numbers: 0 and 7 are Sunday, 1 is Monday.
        assert_eq!(w("0"), "SUN");
        assert_eq!(w("7"), "SUN");
        assert_eq!(w("1"), "MON");
        assert_eq!(w("1-5"), "MON,TUE,WED,THU,FRI");
        // `*/2` counts from Monday.
        assert_eq!(w("*/2"), "MON,WED,FRI,SUN");
        // Wrapping ranges, names in any case.
        assert_eq!(w("sat-mon"), "MON,SAT,SUN");
        assert_eq!(w("Fri-Tue"), "MON,TUE,FRI,SAT,SUN");
        assert_eq!(w("mon,wed"), "MON,WED");
        assert!(weekday_field("8").is_err());
        assert!(weekday_field("funday").is_err());
    }

    #[test]
    fn day_expressions_and_weeks() {
        assert_eq!(day_field("last").unwrap(), ("L".into(), vec![]));
        assert_eq!(day_field("1,15,last").unwrap(), ("1,15,L".into(), vec![]));
        assert_eq!(day_field("3rd wed").unwrap().1, ["WED#3"]);
        assert_eq!(day_field("last fri").unwrap().1, ["FRI#L"]);
        assert_eq!(day_field("1st mon, 5th fri").unwrap().1, ["MON#1", "FRI#5"]);
        assert!(day_field("1st mon,15").is_err());
        assert!(day_field("6th mon").is_err());
        let weeks = parse_weeks("1-3,*/26,52").unwrap();
        let on: Vec<usize> = (1..=53).filter(|w| weeks[*w]).collect();
        assert_eq!(on, [1, 2, 3, 27, 52, 53]);
        assert!(parse_weeks("54").is_err());
    }
}
