//! The scheduler service over real components and a real database: overlap limits, and the loop
//! firing schedules on the system clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use schedulezero::schedule::TriggerSpec;
use schedulezero::schedule::{ConflictPolicy, ExecutionStatus, SchedulePolicy};
use schedulezero::scheduler::service::{Scheduler, SystemClock};
use schedulezero::store::{ExecutionQuery, Store};
use serde_json::json;

use crate::support::{Stack, new_schedule};

/// A scheduler over a [`Stack`]: a store, and a runtime with the example plugins loaded
/// (compiling on first sight would make the first run slow enough to overlap the next).
async fn scheduler() -> (Scheduler, Store, Stack) {
    let stack = Stack::new().await;
    let sched = Scheduler::new(stack.store.clone(), stack.dispatcher.clone(), 100);
    (sched, stack.store.clone(), stack)
}

/// Stores a schedule of a misbehave method (ding-dong for `ping`).
async fn add(
    store: &Store,
    id: &str,
    method: &str,
    params: serde_json::Value,
    trigger: TriggerSpec,
    policy: SchedulePolicy,
    now: DateTime<Utc>,
) {
    let handler = if method == "ping" {
        "ding-dong"
    } else {
        "misbehave"
    };
    let s = new_schedule(id, handler, method, params, trigger, policy, now);
    store
        .insert_schedule(&s, ConflictPolicy::Error)
        .await
        .unwrap();
}

fn statuses(log: &[schedulezero::schedule::Execution]) -> Vec<ExecutionStatus> {
    log.iter().rev().map(|e| e.status).collect()
}

#[tokio::test]
async fn a_run_that_would_overlap_is_recorded_as_skipped() {
    let (sched, store, _stack) = scheduler().await;
    let t0 = Utc::now();
    let every_second = TriggerSpec::Interval {
        every_seconds: 1.0,
        start_time: Some(t0),
        end_time: None,
    };
    add(
        &store,
        "slow",
        "sleep",
        json!({"ms": 1500}),
        every_second,
        SchedulePolicy::default(),
        t0,
    )
    .await;

    let first = sched.step(t0).await.unwrap();
    assert_eq!((first.started, first.skipped), (1, 0));
    // One second later by the scheduler's clock, the first run is still sleeping.
    let second = sched.step(t0 + TimeDelta::seconds(1)).await.unwrap();
    assert_eq!((second.started, second.skipped), (0, 1));
    assert_eq!(sched.running("slow"), 1);
    assert_eq!(sched.drain(Duration::from_secs(10)).await, 0);
    assert_eq!(sched.running("slow"), 0);

    let log = store
        .executions(&ExecutionQuery {
            schedule_id: Some("slow".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = statuses(&log);
    seen.sort();
    assert_eq!(seen, [ExecutionStatus::Success, ExecutionStatus::Skipped]);
}

#[tokio::test]
async fn the_loop_fires_schedules_on_the_clock_and_drains_on_shutdown() {
    let (sched, store, _stack) = scheduler().await;
    let now = Utc::now();
    let fast = TriggerSpec::Interval {
        every_seconds: 0.2,
        start_time: Some(now),
        end_time: None,
    };
    add(
        &store,
        "ping",
        "ping",
        json!(null),
        fast,
        SchedulePolicy::default(),
        now,
    )
    .await;

    let shutdown = tokio::time::sleep(Duration::from_millis(1100));
    sched
        .run(
            Arc::new(SystemClock),
            Duration::from_millis(20),
            Duration::from_secs(5),
            shutdown,
        )
        .await;

    let log = store
        .executions(&ExecutionQuery {
            schedule_id: Some("ping".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let ok = log
        .iter()
        .filter(|e| e.status == ExecutionStatus::Success)
        .count();
    assert!(
        (4..=7).contains(&ok),
        "about one run per 200 ms for 1.1 s, got {ok}: {:?}",
        statuses(&log)
    );
    assert!(
        log.iter().all(|e| e.status != ExecutionStatus::Running),
        "drained: nothing left running"
    );
    assert!(
        log.iter()
            .all(|e| e.result.as_ref().is_some_and(|r| r["pong"] == true)),
        "{log:#?}"
    );
}

#[tokio::test]
async fn runs_a_killed_host_left_behind_go_on_or_end() {
    let (sched, store, stack) = scheduler().await;
    // The previous host: another process on the same data directory (so on a shared store the
    // new one knows it is gone without waiting for its leases).
    let previous = Store::open_url(&stack.url).await.unwrap();
    for s in [&store, &previous] {
        s.set_home("the data dir");
    }
    previous
        .beat(&schedulezero::store::NodeReport::default())
        .await
        .unwrap();
    let now = Utc::now();
    let once = |at: DateTime<Utc>| TriggerSpec::Date { run_date: at };
    let retrying = SchedulePolicy {
        max_attempts: 3,
        ..Default::default()
    };
    add(
        &store,
        "resumable",
        "ok",
        json!(null),
        once(now),
        retrying,
        now,
    )
    .await;
    add(
        &store,
        "spent",
        "ok",
        json!(null),
        once(now),
        SchedulePolicy::default(),
        now,
    )
    .await;

    // The previous host claimed both runs and died during their first attempts.
    let pass = schedulezero::scheduler::claim::claim_due(&previous, now, 10, None, &|_| 0)
        .await
        .unwrap();
    assert_eq!(pass.due.len(), 2);
    for due in &pass.due {
        previous
            .insert_executions(&[schedulezero::store::NewExecution {
                run_id: due.run.id.clone(),
                schedule_id: due.schedule.id.clone(),
                handler_id: due.schedule.handler_id.clone(),
                method: due.schedule.method.clone(),
                attempt: 1,
                max_attempts: due.schedule.policy.max_attempts,
                status: ExecutionStatus::Running,
                started_at: now,
                params_summary: None,
                instance: None,
            }])
            .await
            .unwrap();
    }

    let recovered = sched.recover(Utc::now()).await.unwrap();
    assert_eq!(
        (recovered.interrupted, recovered.resumed, recovered.ended),
        (2, 1, 1)
    );
    assert_eq!(sched.drain(Duration::from_secs(10)).await, 0);

    let log = |job: &str| ExecutionQuery {
        schedule_id: Some(job.into()),
        limit: 10,
        ..Default::default()
    };
    let resumable = store.executions(&log("resumable")).await.unwrap();
    let seen: Vec<(u32, ExecutionStatus, Option<&str>)> = resumable
        .iter()
        .rev()
        .map(|e| (e.attempt, e.status, e.error_code.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            // Interrupted, and retried: `retry`, as any attempt that has a next one.
            (1, ExecutionStatus::Retry, Some("interrupted")),
            (2, ExecutionStatus::Success, None)
        ]
    );
    let spent = store.executions(&log("spent")).await.unwrap();
    assert_eq!(statuses(&spent), [ExecutionStatus::Error]);
    assert!(store.unfinished_runs(10).await.unwrap().is_empty());
}
