//! The policies that turn a schedule's fire times into runs: misfire grace time and coalescing
//! (which fire times run after the scheduler was late or down), jitter, and where a resumed
//! schedule picks up. Everything here is a pure function of its inputs (the clock and the
//! random source are passed in), so the scheduler's decisions are tested without waiting.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::RngExt;

use crate::schedule::Trigger;
use crate::schedule::{Coalesce, SchedulePolicy};

/// The most past fire times examined in one pass; older ones of a longer backlog are counted,
/// not listed, so that a schedule that fires every second and was down for a week costs a
/// bounded amount of work.
pub const MAX_BACKLOG: usize = 1000;

/// Why a fire time did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// Later than the schedule's misfire grace time.
    Late,
    /// Folded into another fire time by the schedule's coalesce policy.
    Coalesced,
}

/// What a due schedule does now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueRuns {
    /// Fire times to run now, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Fire times that will not run, and why (to be recorded in the log).
    pub missed: Vec<(DateTime<Utc>, MissReason)>,
    /// Past fire times beyond [`MAX_BACKLOG`], neither run nor listed.
    pub skipped_over: u64,
    /// The schedule's next fire time after these; `None` when the trigger has no more.
    pub next: Option<DateTime<Utc>>,
}

/// Applies the policy to a schedule whose next fire time `due` is at or before `now`.
pub fn due_runs(
    trigger: &Trigger,
    policy: &SchedulePolicy,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DueRuns {
    // Walk the whole backlog (the next fire time must come after all of it) but keep only the
    // newest MAX_BACKLOG fire times in memory.
    let mut fires = VecDeque::new();
    let mut skipped_over = 0;
    let mut cursor = Some(due);
    while let Some(f) = cursor.filter(|f| *f <= now) {
        if fires.len() == MAX_BACKLOG {
            fires.pop_front();
            skipped_over += 1;
        }
        fires.push_back(f);
        cursor = trigger.fire_after(f);
    }
    let mut out = DueRuns {
        next: cursor,
        skipped_over,
        ..Default::default()
    };
    if fires.is_empty() {
        return out;
    }
    let grace = policy
        .misfire_grace_time
        .and_then(|g| TimeDelta::from_std(g).ok());
    let (on_time, late): (Vec<_>, Vec<_>) = fires
        .into_iter()
        .partition(|f| grace.is_none_or(|g| now - *f <= g));
    out.missed
        .extend(late.into_iter().map(|f| (f, MissReason::Late)));
    let keep = match policy.coalesce {
        Coalesce::All => on_time.len(),
        Coalesce::Latest | Coalesce::Earliest => on_time.len().min(1),
    };
    let keep_from = match policy.coalesce {
        Coalesce::Latest => on_time.len() - keep,
        _ => 0,
    };
    for (i, f) in on_time.into_iter().enumerate() {
        if (keep_from..keep_from + keep).contains(&i) {
            out.run.push(f);
        } else {
            out.missed.push((f, MissReason::Coalesced));
        }
    }
    out.missed.sort_by_key(|(f, _)| *f);
    out
}

/// A fire time moved later by a random delay of up to `max_jitter` (spreads schedules that
/// share a fire time).
pub fn jittered(fire: DateTime<Utc>, max_jitter: Duration, rng: &mut impl RngExt) -> DateTime<Utc> {
    if max_jitter.is_zero() {
        return fire;
    }
    let max = u64::try_from(max_jitter.as_micros()).unwrap_or(u64::MAX);
    let delay = rng.random_range(0..=max);
    fire + TimeDelta::microseconds(i64::try_from(delay).unwrap_or(i64::MAX))
}

/// Where a resumed schedule picks up: its stored next fire time when catching up (the missed
/// ones then follow the policy), or its first fire time from `now` on.
pub fn resume_from(
    trigger: &Trigger,
    stored_next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    catch_up: bool,
) -> Option<DateTime<Utc>> {
    match stored_next {
        Some(next) if catch_up || next >= now => Some(next),
        _ => trigger.fire_after(now - TimeDelta::nanoseconds(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::TriggerSpec;
    use rand::SeedableRng;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_minute() -> Trigger {
        TriggerSpec::Cron {
            expression: "* * * * *".into(),
            timezone: None,
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        }
        .compile()
        .unwrap()
    }

    fn policy(coalesce: Coalesce, grace: Option<u64>) -> SchedulePolicy {
        SchedulePolicy {
            coalesce,
            misfire_grace_time: grace.map(Duration::from_secs),
            ..Default::default()
        }
    }

    #[test]
    fn on_time_runs_once_and_moves_on() {
        let d = due_runs(
            &every_minute(),
            &policy(Coalesce::Latest, None),
            at("2026-01-01T00:01:00Z"),
            at("2026-01-01T00:01:00.004Z"),
        );
        assert_eq!(d.run, [at("2026-01-01T00:01:00Z")]);
        assert!(d.missed.is_empty());
        assert_eq!(d.next, Some(at("2026-01-01T00:02:00Z")));
    }

    #[test]
    fn after_downtime_coalesce_decides_which_fire_times_run() {
        let t = every_minute();
        let (due, now) = (at("2026-01-01T00:01:00Z"), at("2026-01-01T00:05:30Z"));
        let latest = due_runs(&t, &policy(Coalesce::Latest, None), due, now);
        assert_eq!(latest.run, [at("2026-01-01T00:05:00Z")]);
        assert_eq!(latest.missed.len(), 4);
        assert!(
            latest
                .missed
                .iter()
                .all(|(_, r)| *r == MissReason::Coalesced)
        );
        assert_eq!(latest.next, Some(at("2026-01-01T00:06:00Z")));

        let earliest = due_runs(&t, &policy(Coalesce::Earliest, None), due, now);
        assert_eq!(earliest.run, [at("2026-01-01T00:01:00Z")]);

        let all = due_runs(&t, &policy(Coalesce::All, None), due, now);
        assert_eq!(all.run.len(), 5);
        assert!(all.run.windows(2).all(|w| w[0] < w[1]));
        assert!(all.missed.is_empty());
    }

    #[test]
    fn the_grace_time_drops_fire_times_that_are_too_late() {
        let t = every_minute();
        let d = due_runs(
            &t,
            &policy(Coalesce::All, Some(90)),
            at("2026-01-01T00:01:00Z"),
            at("2026-01-01T00:05:30Z"),
        );
        assert_eq!(
            d.run,
            [at("2026-01-01T00:04:00Z"), at("2026-01-01T00:05:00Z")]
        );
        assert_eq!(
            d.missed,
            [
                (at("2026-01-01T00:01:00Z"), MissReason::Late),
                (at("2026-01-01T00:02:00Z"), MissReason::Late),
                (at("2026-01-01T00:03:00Z"), MissReason::Late)
            ]
        );
        // Everything too late: nothing runs, the schedule still moves on.
        let d = due_runs(
            &t,
            &policy(Coalesce::Latest, Some(10)),
            at("2026-01-01T00:01:00Z"),
            at("2026-01-01T00:05:30Z"),
        );
        assert!(d.run.is_empty());
        assert_eq!(d.missed.len(), 5);
        assert_eq!(d.next, Some(at("2026-01-01T00:06:00Z")));
    }

    #[test]
    fn a_long_backlog_is_bounded() {
        let t = TriggerSpec::Interval {
            every_seconds: 1.0,
            start_time: Some(at("2026-01-01T00:00:00Z")),
            end_time: None,
        }
        .compile()
        .unwrap();
        let d = due_runs(
            &t,
            &policy(Coalesce::Latest, None),
            at("2026-01-01T00:00:00Z"),
            at("2026-01-01T01:00:00Z"),
        );
        assert_eq!(d.skipped_over, 3601 - MAX_BACKLOG as u64);
        assert_eq!(d.run, [at("2026-01-01T01:00:00Z")]);
        assert_eq!(d.missed.len(), MAX_BACKLOG - 1);
        assert_eq!(d.next, Some(at("2026-01-01T01:00:01Z")));
    }

    #[test]
    fn a_date_trigger_runs_once_then_ends() {
        let t = TriggerSpec::Date {
            run_date: at("2026-01-01T00:00:00Z"),
        }
        .compile()
        .unwrap();
        let d = due_runs(
            &t,
            &policy(Coalesce::Latest, None),
            at("2026-01-01T00:00:00Z"),
            at("2026-01-02T00:00:00Z"),
        );
        assert_eq!(d.run, [at("2026-01-01T00:00:00Z")]);
        assert_eq!(d.next, None);
    }

    #[test]
    fn jitter_stays_in_its_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let fire = at("2026-01-01T00:00:00Z");
        assert_eq!(jittered(fire, Duration::ZERO, &mut rng), fire);
        for _ in 0..1000 {
            let j = jittered(fire, Duration::from_secs(5), &mut rng);
            assert!(j >= fire && j <= fire + TimeDelta::seconds(5));
        }
    }

    #[test]
    fn resuming_picks_up_from_now_or_catches_up() {
        let t = every_minute();
        let now = at("2026-01-01T00:10:30Z");
        let stored = Some(at("2026-01-01T00:03:00Z"));
        assert_eq!(resume_from(&t, stored, now, true), stored);
        assert_eq!(
            resume_from(&t, stored, now, false),
            Some(at("2026-01-01T00:11:00Z"))
        );
        let future = Some(at("2026-01-01T00:20:00Z"));
        assert_eq!(resume_from(&t, future, now, false), future);
        assert_eq!(
            resume_from(&t, None, now, false),
            Some(at("2026-01-01T00:11:00Z"))
        );
    }
}
