//! Dispatch: runs a claimed run on its handler, attempt after attempt, and writes the execution
//! log ([`log`], its one writer). Each attempt is recorded when it starts and completed when it
//! ends; a failure the schedule's policy retries (by default those that may pass by themselves:
//! a timeout, a handler's `retryable`) is retried after an exponential backoff with jitter until
//! `max_attempts`; the run's final status commits with its last attempt. Handlers see the run id,
//! the attempt number and the scheduled fire time, so they can be idempotent.

pub mod log;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::RngExt;

pub use self::log::{AttemptEnd, ExecutionLog, ImmediateCall};
use crate::bridge::{Connections, Registry};
use crate::handler::Handlers;
use crate::runtime::{InvokeError, JobContext, Runtime};
use crate::schedule::{ExecutionStatus, Failure, Outcome, Run, RunStatus, Schedule};
use crate::store::{Store, StoreError};

/// A claimed run with the schedule it came from: what dispatch takes.
#[derive(Debug, Clone, PartialEq)]
pub struct DueRun {
    /// The claimed run.
    pub run: Run,
    /// The schedule as it was when claimed.
    pub schedule: Schedule,
}

/// Runs claimed runs on their handlers (a WebAssembly plugin, or a remote handler registered
/// over ZeroMQ) and records what happened.
#[derive(Clone)]
pub struct Dispatcher {
    handlers: Handlers,
    log: ExecutionLog,
}

/// What a call made at once (outside any schedule) returned.
#[derive(Debug)]
pub struct Immediate {
    /// The job id it was recorded under (`immediate_<handler>_<method>_<unix seconds>`).
    pub schedule_id: String,
    /// The result as JSON (`None` when the handler's text was not JSON) and the instance that
    /// ran it; or the error.
    pub result: Result<(Option<serde_json::Value>, String), InvokeError>,
}

impl Failure {
    /// The failure of a call, as records and outcomes keep it.
    pub fn of(e: &InvokeError) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

impl Dispatcher {
    /// A dispatcher over a runtime and a store.
    pub fn new(runtime: Arc<Runtime>, store: Store) -> Self {
        Self {
            handlers: Handlers::new(runtime),
            log: ExecutionLog::new(store),
        }
    }

    /// Also runs jobs on the remote handlers of `registry`.
    pub fn with_remote(mut self, registry: Arc<Registry>, connections: Arc<Connections>) -> Self {
        self.handlers = self.handlers.with_remote(registry, connections);
        self
    }

    /// The handlers it runs jobs on.
    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }

    /// The execution log it writes.
    pub fn log(&self) -> &ExecutionLog {
        &self.log
    }

    /// Runs one claimed run to its end. Errors are the store's: a handler's failure is an
    /// outcome, recorded, not an error.
    pub async fn run(&self, due: &DueRun) -> Result<Outcome, StoreError> {
        self.run_from(due, 1).await
    }

    /// Runs a run from attempt `first_attempt` on (a run resumed after a restart goes on from
    /// the attempt after the last one recorded).
    pub async fn run_from(&self, due: &DueRun, first_attempt: u32) -> Result<Outcome, StoreError> {
        let first = first_attempt.max(1);
        let params = due.schedule.params.to_string();
        let mut attempt = first;
        loop {
            let result = self.attempt(due, attempt, &params).await?;
            match result {
                Ended::Run(outcome) => return Ok(outcome),
                Ended::Retry(failure) => {
                    attempt += 1;
                    self.back_off(due, attempt, &failure).await;
                }
            }
        }
    }

    /// One attempt: record its start, call the handler, judge the result by the policy, record
    /// its end (with the run's, when it is the last).
    async fn attempt(&self, due: &DueRun, attempt: u32, params: &str) -> Result<Ended, StoreError> {
        let schedule = &due.schedule;
        let location = self.handlers.location(&schedule.handler_id);
        let record = self
            .log
            .attempt_started(schedule, &due.run, attempt, location)
            .await?;
        let ctx = JobContext {
            job_id: schedule.id.clone(),
            run_id: due.run.id.clone(),
            attempt,
            scheduled_time: due.run.fire_time.into(),
        };
        let (result, usage) = self
            .handlers
            .call_reporting(
                &schedule.handler_id,
                &schedule.method,
                params,
                &ctx,
                schedule.policy.timeout,
            )
            .await;
        let (mut end, ended) = judge(schedule, attempt, result);
        end.usage = usage;
        self.log.attempt_ended(record, &due.run, end).await?;
        Ok(ended)
    }

    /// Waits before attempt `next_attempt`, by the policy's backoff.
    async fn back_off(&self, due: &DueRun, next_attempt: u32, failure: &Failure) {
        let delay = retry_delay(
            due.schedule.policy.retry_backoff,
            next_attempt,
            &mut rand::rng(),
        );
        tracing::info!(
            schedule = %due.schedule.id, run_id = %due.run.id, attempt = next_attempt,
            error = %failure.message, ?delay, "retrying"
        );
        tokio::time::sleep(delay).await;
    }

    /// Calls `method` of `handler` at once, outside any schedule (ScheduleZero's run-now), and
    /// records the call, committed before it returns.
    pub async fn call_now(
        &self,
        handler: &str,
        method: &str,
        params: &serde_json::Value,
    ) -> Result<Immediate, StoreError> {
        let started_at = Utc::now();
        let job_id = format!("immediate_{handler}_{method}_{}", started_at.timestamp());
        let ctx = JobContext {
            job_id: job_id.clone(),
            run_id: uuid::Uuid::now_v7().to_string(),
            attempt: 1,
            scheduled_time: started_at.into(),
        };
        let location = self.handlers.location(handler);
        let (result, usage) = self
            .handlers
            .call_reporting(handler, method, &params.to_string(), &ctx, None)
            .await;
        let result = result.map(|(text, instance)| (serde_json::from_str(&text).ok(), instance));
        let recorded = result.clone().map_err(|e| Failure::of(&e));
        let call = ImmediateCall {
            schedule_id: &job_id,
            run_id: &ctx.run_id,
            handler_id: handler,
            method,
            params,
            location,
            started_at,
        };
        self.log.immediate(call, &recorded, usage).await?;
        Ok(Immediate {
            schedule_id: job_id,
            result,
        })
    }
}

/// What an attempt leads to.
enum Ended {
    /// The run ended.
    Run(Outcome),
    /// The run goes on with another attempt.
    Retry(Failure),
}

/// Judges an attempt's result by the schedule's policy: its record's end, and whether the run
/// ends or is retried.
fn judge(
    schedule: &Schedule,
    attempt: u32,
    result: Result<(String, String), InvokeError>,
) -> (AttemptEnd, Ended) {
    let at = Utc::now();
    match result {
        Ok((text, instance)) => (
            AttemptEnd {
                status: ExecutionStatus::Success,
                at,
                result: serde_json::from_str(&text).ok(),
                failure: None,
                instance: Some(instance),
                not_retried: None,
                run_status: Some(RunStatus::Success),
                usage: None,
            },
            Ended::Run(Outcome {
                status: RunStatus::Success,
                attempts: attempt,
                error: None,
            }),
        ),
        Err(e) => {
            let failure = Failure::of(&e);
            let not_retried = schedule.policy.retry(e.code(), attempt).err();
            let retried = not_retried.is_none();
            let end = AttemptEnd {
                status: if retried {
                    ExecutionStatus::Retry
                } else {
                    ExecutionStatus::Error
                },
                at,
                result: None,
                failure: Some(failure.clone()),
                instance: None,
                not_retried,
                run_status: (!retried).then_some(RunStatus::Error),
                usage: None,
            };
            let ended = if retried {
                Ended::Retry(failure)
            } else {
                Ended::Run(Outcome {
                    status: RunStatus::Error,
                    attempts: attempt,
                    error: Some(failure),
                })
            };
            (end, ended)
        }
    }
}

/// How long to wait before attempt `next_attempt` (2 for the first retry): the base doubled per
/// earlier retry, with "equal jitter" (between half and all of that), capped at an hour.
pub fn retry_delay(base: Duration, next_attempt: u32, rng: &mut impl RngExt) -> Duration {
    const CAP: Duration = Duration::from_secs(3600);
    let doublings = next_attempt.saturating_sub(2).min(30);
    let full = base.saturating_mul(1 << doublings).min(CAP);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rng.random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(2);
        for (attempt, full) in [(2, 2), (3, 4), (4, 8), (5, 16)] {
            for _ in 0..200 {
                let d = retry_delay(base, attempt, &mut rng);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        assert!(retry_delay(base, 60, &mut rng) <= Duration::from_secs(3600));
    }
}
