//! One pass of the scheduler: find the schedules that are due, apply their policies, claim the
//! fire times in the store, and hand back the runs to dispatch. Fire times that will not run are
//! recorded in the execution log as `missed`, so downtime is visible. The pass takes `now` as an
//! argument: the loop around it owns the clock, and tests step time by hand.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::policy::{self, DueRuns, MissReason};
pub use crate::dispatch::DueRun;
use crate::dispatch::ExecutionLog;
use crate::schedule::{ExecutionStatus, RunStatus, Schedule};
use crate::store::{Claim, DueSchedule, Store, StoreError};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pass {
    /// Runs to dispatch now, by fire time.
    pub due: Vec<DueRun>,
    /// Runs not started because their schedule has `max_running` runs in progress (on any
    /// host); recorded as skipped.
    pub skipped: Vec<DueRun>,
    /// Fire times recorded as missed.
    pub missed: usize,
    /// Fire times of long backlogs that were neither run nor listed.
    pub skipped_over: u64,
    /// Schedules another scheduler (or an edit) moved first.
    pub lost: usize,
    /// Schedules whose stored trigger could not be read; they were stopped (next fire time
    /// cleared) and logged.
    pub broken: usize,
}

/// Claims what is due at `now`, looking at up to `batch` schedules of the handlers in `only`
/// (every handler when `None`). `running` says how many runs of a schedule this host has in
/// progress (the store counts every host's on a shared store).
pub async fn claim_due(
    store: &Store,
    now: DateTime<Utc>,
    batch: u32,
    only: Option<&[String]>,
    running: &(dyn Fn(&str) -> u32 + Send + Sync),
) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    let mut planned: HashMap<String, (Schedule, DueRuns)> = HashMap::new();
    let mut broken = 0;
    let mut plan = |d: &DueSchedule| -> Option<Claim> {
        let schedule = &d.schedule;
        let next = schedule.next_fire?;
        let trigger = match schedule.trigger.compile() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(schedule = %schedule.id, error = %e, "stored trigger is invalid; the schedule is stopped");
                broken += 1;
                return Some(Claim {
                    schedule_id: schedule.id.clone(),
                    expected_next: next,
                    new_next: None,
                    runs: Vec::new(),
                });
            }
        };
        let due = policy::due_runs(&trigger, &schedule.policy, next, now);
        // Within the overlap limit, counting the runs in progress on every host; the fire
        // times beyond it are recorded as skipped.
        let room = usize::try_from(
            schedule
                .policy
                .max_running
                .max(1)
                .saturating_sub(d.in_flight.max(running(&schedule.id))),
        )
        .unwrap_or(usize::MAX);
        let runs = due
            .run
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let status = if k < room {
                    RunStatus::Pending
                } else {
                    RunStatus::Skipped
                };
                (*f, status)
            })
            .chain(due.missed.iter().map(|(f, _)| (*f, RunStatus::Missed)))
            .collect();
        let claim = Claim {
            schedule_id: schedule.id.clone(),
            expected_next: next,
            new_next: due.next,
            runs,
        };
        planned.insert(schedule.id.clone(), (schedule.clone(), due));
        Some(claim)
    };
    // One transaction for the whole pass: a thousand schedules due in the same second cost
    // one commit, not a thousand.
    let began = std::time::Instant::now();
    let answers = store.claim_due(now, batch, only, &mut plan).await?;
    pass.broken = broken;
    tracing::debug!(
        schedules = planned.len(),
        claim_ms = began.elapsed().as_secs_f64() * 1e3,
        "claimed"
    );
    pass.lost = planned.len().saturating_sub(answers.len());
    let mut missed = Vec::new();
    for (claim, runs) in answers {
        let Some((schedule, due)) = planned.remove(&claim.schedule_id) else {
            continue;
        };
        pass.skipped_over += due.skipped_over;
        for run in runs {
            match run.status {
                RunStatus::Pending => pass.due.push(DueRun {
                    run,
                    schedule: schedule.clone(),
                }),
                RunStatus::Skipped => pass.skipped.push(DueRun {
                    run,
                    schedule: schedule.clone(),
                }),
                _ => {
                    let late = due
                        .missed
                        .iter()
                        .any(|(f, r)| *f == run.fire_time && *r == MissReason::Late);
                    tracing::info!(
                        schedule = %schedule.id, fire_time = %run.fire_time,
                        reason = if late { "late" } else { "coalesced" }, "fire time missed"
                    );
                    missed.push((schedule.clone(), run));
                }
            }
        }
    }
    pass.missed = missed.len();
    let missed: Vec<_> = missed.iter().map(|(s, r)| (s, r)).collect();
    ExecutionLog::new(store.clone())
        .not_run(&missed, ExecutionStatus::Missed, now)
        .await?;
    pass.due.sort_by_key(|d| d.run.fire_time);
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::TriggerSpec;
    use crate::schedule::{Coalesce, ConflictPolicy, Schedule, SchedulePolicy};
    use crate::store::ExecutionQuery;
    use crate::store::testing::on_both;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    async fn add(
        store: &Store,
        id: &str,
        trigger: TriggerSpec,
        policy: SchedulePolicy,
        created: &str,
    ) {
        let created = at(created);
        let next = trigger.compile().unwrap().first_fire(created);
        let s = Schedule {
            id: id.into(),
            handler_id: "ding-dong".into(),
            method: "play_quarter_chime".into(),
            params: json!({"quarter": 1}),
            trigger,
            policy,
            paused: false,
            next_fire: next,
            created_at: created,
            updated_at: created,
        };
        store
            .insert_schedule(&s, ConflictPolicy::Error)
            .await
            .unwrap();
    }

    fn every_minute() -> TriggerSpec {
        TriggerSpec::Cron {
            expression: "* * * * *".into(),
            timezone: None,
            start_time: None,
            end_time: None,
            compat_fields: false,
            iso_week: None,
        }
    }

    on_both! {
    #[tokio::test]
    async fn due_schedules_are_claimed_once_per_fire_time(db) {
        let store = db.store.clone();
        add(
            &store,
            "chime",
            every_minute(),
            SchedulePolicy::default(),
            "2026-01-01T00:00:30Z",
        )
        .await;

        let early = claim_due(&store, at("2026-01-01T00:00:59Z"), 100, None, &|_| 0)
            .await
            .unwrap();
        assert!(early.due.is_empty());
        let pass = claim_due(&store, at("2026-01-01T00:01:00.010Z"), 100, None, &|_| 0)
            .await
            .unwrap();
        assert_eq!(pass.due.len(), 1);
        assert_eq!(pass.due[0].run.fire_time, at("2026-01-01T00:01:00Z"));
        assert_eq!(pass.due[0].schedule.id, "chime");
        // The same instant again: nothing new.
        let again = claim_due(&store, at("2026-01-01T00:01:00.020Z"), 100, None, &|_| 0)
            .await
            .unwrap();
        assert!(again.due.is_empty());
        assert_eq!(
            store.schedule("chime").await.unwrap().unwrap().next_fire,
            Some(at("2026-01-01T00:02:00Z"))
        );
    }
    }

    on_both! {
    #[tokio::test]
    async fn after_downtime_missed_fire_times_are_logged(db) {
        let store = db.store.clone();
        add(
            &store,
            "latest",
            every_minute(),
            SchedulePolicy::default(),
            "2026-01-01T00:00:30Z",
        )
        .await;
        let all = SchedulePolicy {
            coalesce: Coalesce::All,
            misfire_grace_time: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        };
        add(&store, "all", every_minute(), all, "2026-01-01T00:00:30Z").await;

        // The host comes back at 00:05:30: five fire times passed for each schedule.
        let pass = claim_due(&store, at("2026-01-01T00:05:30Z"), 100, None, &|_| 0)
            .await
            .unwrap();
        let due: Vec<(&str, DateTime<Utc>)> = pass
            .due
            .iter()
            .map(|d| (d.schedule.id.as_str(), d.run.fire_time))
            .collect();
        assert_eq!(
            due,
            [
                ("all", at("2026-01-01T00:04:00Z")),
                ("latest", at("2026-01-01T00:05:00Z"))
            ]
        );
        // Two fire times of `all` are within its grace, but it runs one at a time: the second
        // is recorded as skipped.
        let skipped: Vec<(&str, DateTime<Utc>)> = pass
            .skipped
            .iter()
            .map(|d| (d.schedule.id.as_str(), d.run.fire_time))
            .collect();
        assert_eq!(skipped, [("all", at("2026-01-01T00:05:00Z"))]);
        assert_eq!(pass.missed, 4 + 3);
        let log = store
            .executions(&ExecutionQuery {
                status: Some(ExecutionStatus::Missed),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(log.len(), 7);
        assert!(
            log.iter()
                .all(|e| e.params_summary.as_deref() == Some("quarter=1"))
        );
        assert_eq!(store.runs_of("latest", 10).await.unwrap().len(), 5);
    }
    }

    on_both! {
    #[tokio::test]
    async fn paused_finished_and_one_shot_schedules(db) {
        let store = db.store.clone();
        add(
            &store,
            "once",
            TriggerSpec::Date {
                run_date: at("2026-01-01T00:00:10Z"),
            },
            SchedulePolicy::default(),
            "2026-01-01T00:00:00Z",
        )
        .await;
        add(
            &store,
            "paused",
            every_minute(),
            SchedulePolicy::default(),
            "2026-01-01T00:00:00Z",
        )
        .await;
        store
            .set_paused(
                "paused",
                true,
                Some(at("2026-01-01T00:01:00Z")),
                at("2026-01-01T00:00:00Z"),
            )
            .await
            .unwrap();

        let pass = claim_due(&store, at("2026-01-01T00:10:00Z"), 100, None, &|_| 0)
            .await
            .unwrap();
        assert_eq!(pass.due.len(), 1);
        assert_eq!(pass.due[0].schedule.id, "once");
        assert_eq!(
            store.schedule("once").await.unwrap().unwrap().next_fire,
            None,
            "a date trigger ends"
        );
        assert!(
            claim_due(&store, at("2026-01-02T00:00:00Z"), 100, None, &|_| 0)
                .await
                .unwrap()
                .due
                .is_empty()
        );
    }
    }
}
