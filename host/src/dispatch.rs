//! Dispatch: runs a claimed run on its handler, attempt after attempt, and writes the execution
//! log. Each attempt is recorded when it starts and completed when it ends; a retryable failure
//! (a timeout, a handler's `retryable`) is retried after an exponential backoff with jitter until
//! the schedule's `max_attempts`; the run's final status goes to the store. Handlers see the run
//! id, the attempt number and the scheduled fire time, so they can be idempotent.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::RngExt;

use crate::bridge::{Connections, Registry};
use crate::handler::Handlers;
use crate::runtime::{JobContext, Runtime};
use crate::schedule::{ExecutionStatus, Failure, Outcome, Run, RunStatus, Schedule};
use crate::store::{Completion, NewExecution, Store, StoreError, Write, params_summary};

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
    store: Store,
}

impl Dispatcher {
    /// A dispatcher over a runtime and a store.
    pub fn new(runtime: Arc<Runtime>, store: Store) -> Self {
        Self {
            handlers: Handlers::new(runtime),
            store,
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

    /// Runs one claimed run to its end. Errors are the store's: a handler's failure is an
    /// outcome, recorded, not an error.
    pub async fn run(&self, due: &DueRun) -> Result<Outcome, StoreError> {
        self.run_from(due, 1).await
    }

    /// Runs a run from attempt `first_attempt` on (a run resumed after a restart goes on from
    /// the attempt after the last one recorded).
    pub async fn run_from(&self, due: &DueRun, first_attempt: u32) -> Result<Outcome, StoreError> {
        let schedule = &due.schedule;
        let policy = &schedule.policy;
        let max_attempts = policy.max_attempts.max(1);
        let params = schedule.params.to_string();
        let summary = params_summary(&schedule.params);
        let mut attempt = first_attempt.max(1);
        loop {
            let started_at = Utc::now();
            let mut writes = Vec::with_capacity(2);
            if attempt == first_attempt.max(1) {
                writes.push(Write::RunStatus {
                    run_id: due.run.id.clone(),
                    status: RunStatus::Running,
                    at: started_at,
                });
            }
            writes.push(Write::Start(NewExecution {
                run_id: due.run.id.clone(),
                job_id: schedule.id.clone(),
                handler_id: schedule.handler_id.clone(),
                method: schedule.method.clone(),
                attempt,
                max_attempts,
                status: ExecutionStatus::Running,
                started_at,
                params_summary: summary.clone(),
                instance: Some(self.handlers.location(&schedule.handler_id)),
            }));
            let record_id = self
                .store
                .record(writes)
                .await?
                .last()
                .copied()
                .unwrap_or_default();
            let ctx = JobContext {
                job_id: schedule.id.clone(),
                run_id: due.run.id.clone(),
                attempt,
                scheduled_time: due.run.fire_time.into(),
            };
            let result = self
                .handlers
                .call(
                    &schedule.handler_id,
                    &schedule.method,
                    &params,
                    &ctx,
                    policy.timeout,
                )
                .await;
            // Retried by the policy's retry_on and max_attempts; when not, the record says why.
            let not_retried = match &result {
                Ok(_) => None,
                Err(e) => policy.retry(e.code(), attempt).err(),
            };
            let retry = result.is_err() && not_retried.is_none();
            let (status, completion) = match &result {
                Ok((result, _)) => (
                    ExecutionStatus::Success,
                    (serde_json::from_str(result).ok(), None, None),
                ),
                Err(e) => (
                    if retry {
                        ExecutionStatus::Retry
                    } else {
                        ExecutionStatus::Error
                    },
                    (None, Some(e.code().to_owned()), Some(e.to_string())),
                ),
            };
            let (result_json, error_code, error) = completion;
            let completed_at = Utc::now();
            let mut writes = vec![Write::Complete(Completion {
                id: record_id,
                status,
                completed_at,
                result: result_json,
                error_code,
                error,
                instance: result.as_ref().ok().map(|(_, instance)| instance.clone()),
                not_retried,
            })];
            let run_status = match &result {
                Ok(_) => Some(RunStatus::Success),
                Err(_) if !retry => Some(RunStatus::Error),
                Err(_) => None,
            };
            if let Some(status) = run_status {
                writes.push(Write::RunStatus {
                    run_id: due.run.id.clone(),
                    status,
                    at: completed_at,
                });
            }
            // The attempt's end and the run's end commit together.
            self.store.record(writes).await?;
            match (run_status, result) {
                (Some(status), result) => {
                    return Ok(Outcome {
                        status,
                        attempts: attempt,
                        error: result.err().map(|e| Failure {
                            code: e.code().to_owned(),
                            message: e.to_string(),
                        }),
                    });
                }
                (None, result) => {
                    attempt += 1;
                    let delay = retry_delay(policy.retry_backoff, attempt, &mut rand::rng());
                    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
                    tracing::info!(schedule = %schedule.id, run_id = %due.run.id, attempt, error, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
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
