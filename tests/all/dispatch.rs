//! Claimed runs dispatched to real components, with the execution log in a real database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schedulezero::schedule::TriggerSpec;
use schedulezero::schedule::{ConflictPolicy, ExecutionStatus, RunStatus, SchedulePolicy};
use schedulezero::scheduler::claim::claim_due;
use schedulezero::store::{ExecutionQuery, Store};
use serde_json::json;

use crate::support::{Stack, new_schedule};

/// Stores a one-shot schedule that is due now; returns its fire time.
async fn schedule_once(
    store: &Store,
    id: &str,
    handler: &str,
    method: &str,
    params: serde_json::Value,
    policy: SchedulePolicy,
) -> DateTime<Utc> {
    let fire = Utc::now() - chrono::TimeDelta::milliseconds(5);
    let trigger = TriggerSpec::Date { run_date: fire };
    let s = new_schedule(id, handler, method, params, trigger, policy, fire);
    store
        .insert_schedule(&s, ConflictPolicy::Error)
        .await
        .unwrap();
    s.next_fire.unwrap()
}

fn log_of(job: &str) -> ExecutionQuery {
    ExecutionQuery {
        schedule_id: Some(job.into()),
        limit: 100,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_run_reaches_the_handler_with_its_context_and_is_logged() {
    let s = Stack::new().await;
    let fire = schedule_once(
        &s.store,
        "chime",
        "ding-dong",
        "play_quarter_chime",
        json!({"quarter": 2}),
        SchedulePolicy::default(),
    )
    .await;
    let pass = claim_due(&s.store, Utc::now(), 10, None, &|_| 0)
        .await
        .unwrap();
    assert_eq!(pass.due.len(), 1, "{pass:?}");
    let due = &pass.due[0];
    let outcome = s.dispatcher.run(due).await.unwrap();
    assert_eq!((outcome.status, outcome.attempts), (RunStatus::Success, 1));

    let log = s.store.executions(&log_of("chime")).await.unwrap();
    assert_eq!(log.len(), 1);
    let e = &log[0];
    assert_eq!(
        (e.status, e.attempt, e.max_attempts),
        (ExecutionStatus::Success, 1, 1)
    );
    assert_eq!(e.run_id, due.run.id);
    assert_eq!(e.result.as_ref().unwrap()["strikes"], 2);
    assert_eq!(e.params_summary.as_deref(), Some("quarter=2"));
    // The instance that served it: the plugin's second (the first answered describe() when the
    // plugin was discovered, and went with it when discovery left the plugin cold).
    assert_eq!(e.instance.as_deref(), Some("wasm:ding-dong#2"));
    assert!(e.duration_ms.is_some());
    assert_eq!(
        s.store.runs_of("chime", 10).await.unwrap()[0].status,
        RunStatus::Success
    );

    // The handler saw the run id and the scheduled fire time (not the start time).
    let seen = s
        .runtime
        .invoke(
            "ding-dong",
            "get_chime_log",
            "",
            &schedulezero::runtime::JobContext::adhoc(),
        )
        .await
        .unwrap();
    let seen: serde_json::Value = serde_json::from_str(&seen.result).unwrap();
    assert_eq!(seen["entries"][0]["run_id"], due.run.id.as_str());
    assert_eq!(
        seen["entries"][0]["scheduled_time"],
        fire.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

#[tokio::test]
async fn retryable_failures_are_retried_and_each_attempt_is_logged() {
    let s = Stack::new().await;
    let policy = SchedulePolicy {
        max_attempts: 3,
        retry_backoff: Duration::from_millis(10),
        timeout: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    schedule_once(
        &s.store,
        "slow",
        "misbehave",
        "sleep",
        json!({"ms": 10000}),
        policy,
    )
    .await;
    let pass = claim_due(&s.store, Utc::now(), 10, None, &|_| 0)
        .await
        .unwrap();
    let outcome = s.dispatcher.run(&pass.due[0]).await.unwrap();
    assert_eq!((outcome.status, outcome.attempts), (RunStatus::Error, 3));
    assert_eq!(outcome.error.unwrap().code, "timeout");

    let mut log = s.store.executions(&log_of("slow")).await.unwrap();
    log.reverse();
    let seen: Vec<(u32, ExecutionStatus, Option<&str>)> = log
        .iter()
        .map(|e| (e.attempt, e.status, e.error_code.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, ExecutionStatus::Retry, Some("timeout")),
            (2, ExecutionStatus::Retry, Some("timeout")),
            (3, ExecutionStatus::Error, Some("timeout"))
        ]
    );
    assert!(
        log.iter()
            .all(|e| e.run_id == pass.due[0].run.id && e.max_attempts == 3)
    );
}

#[tokio::test]
async fn failures_that_cannot_pass_are_not_retried() {
    let s = Stack::new().await;
    let policy = SchedulePolicy {
        max_attempts: 5,
        retry_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    schedule_once(
        &s.store,
        "boom",
        "misbehave",
        "panic",
        json!({"message": "cracked bell"}),
        policy,
    )
    .await;
    let pass = claim_due(&s.store, Utc::now(), 10, None, &|_| 0)
        .await
        .unwrap();
    let outcome = s.dispatcher.run(&pass.due[0]).await.unwrap();
    assert_eq!((outcome.status, outcome.attempts), (RunStatus::Error, 1));
    let log = s.store.executions(&log_of("boom")).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].error_code.as_deref(), Some("trap"));
    assert!(log[0].error.as_deref().unwrap().contains("cracked bell"));
}
