//! The execution log's one writer. Every record goes through here: an attempt as it starts and
//! as it ends (with its run's status, in the same commit), a run recorded without running
//! (a missed fire time, a run over the overlap limit), and a call made at once outside any
//! schedule (ScheduleZero's run-now). Each method is one journal request: its writes commit
//! together and are durable when it returns.

use chrono::{DateTime, Utc};

use crate::capability::CallUsage;
use crate::schedule::{ExecutionStatus, Failure, Run, RunStatus, Schedule};
use crate::store::{Completion, NewExecution, Store, StoreError, Write, params_summary};

/// Writes the execution log.
#[derive(Debug, Clone)]
pub struct ExecutionLog {
    store: Store,
}

/// How an attempt ended, as the log records it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// `Success`, `Retry` or `Error`.
    pub status: ExecutionStatus,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The result, on success.
    pub result: Option<serde_json::Value>,
    /// The failure, when it failed.
    pub failure: Option<Failure>,
    /// Which instance ran it, when known only at the end.
    pub instance: Option<String>,
    /// Why a failed attempt is not retried.
    pub not_retried: Option<String>,
    /// The run's final status, when this attempt is its last.
    pub run_status: Option<RunStatus>,
    /// What it used outside its instance.
    pub usage: Option<CallUsage>,
}

/// A call made at once, outside any schedule, as the log records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImmediateCall<'a> {
    /// `immediate_<handler>_<method>_<unix seconds>`.
    pub schedule_id: &'a str,
    /// The run id the handler saw.
    pub run_id: &'a str,
    /// The handler.
    pub handler_id: &'a str,
    /// The method.
    pub method: &'a str,
    /// The params.
    pub params: &'a serde_json::Value,
    /// Where it went, as known before the call.
    pub location: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

impl ExecutionLog {
    /// The log in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn record_of(
        schedule: &Schedule,
        run: &Run,
        attempt: u32,
        status: ExecutionStatus,
        started_at: DateTime<Utc>,
        instance: Option<String>,
    ) -> NewExecution {
        NewExecution {
            run_id: run.id.clone(),
            schedule_id: schedule.id.clone(),
            handler_id: schedule.handler_id.clone(),
            method: schedule.method.clone(),
            attempt,
            max_attempts: schedule.policy.max_attempts.max(1),
            status,
            started_at,
            params_summary: params_summary(&schedule.params),
            instance,
        }
    }

    /// Records runs that do not run: `Missed` (their run rows say so already) or `Skipped`
    /// (their runs are set to skipped in the same commit). Each record is attempt 0, at the
    /// run's fire time.
    pub async fn not_run(
        &self,
        runs: &[(&Schedule, &Run)],
        status: ExecutionStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let mut writes = Vec::with_capacity(runs.len() * 2);
        for (schedule, run) in runs {
            if status == ExecutionStatus::Skipped {
                writes.push(Write::RunStatus {
                    run_id: run.id.clone(),
                    status: RunStatus::Skipped,
                    at,
                    holder: run.holder(),
                });
            }
            writes.push(Write::Start(Self::record_of(
                schedule,
                run,
                0,
                status,
                run.fire_time,
                None,
            )));
        }
        self.store.record(writes).await.map(drop)
    }

    /// Records an attempt that starts, and that its run is running; refused
    /// ([`StoreError::LeaseLost`]) when this node no longer holds the run. Returns the record's
    /// id, for [`ExecutionLog::attempt_ended`].
    pub async fn attempt_started(
        &self,
        schedule: &Schedule,
        run: &Run,
        attempt: u32,
        location: String,
    ) -> Result<i64, StoreError> {
        let at = Utc::now();
        // The run's status goes with every attempt: an attempt starts only while this node
        // holds its run (the status change names the holder), and a run taken over from it
        // is not started again here.
        let writes = vec![
            Write::RunStatus {
                run_id: run.id.clone(),
                status: RunStatus::Running,
                at,
                holder: run.holder(),
            },
            Write::Start(Self::record_of(
                schedule,
                run,
                attempt,
                ExecutionStatus::Running,
                at,
                Some(location),
            )),
        ];
        let ids = self.store.record(writes).await?;
        Ok(ids.last().copied().unwrap_or_default())
    }

    /// Records how attempt `record` of `run` ended, with the run's status (its end, when it
    /// was the last); refused ([`StoreError::LeaseLost`]) when this node no longer holds the
    /// run.
    pub async fn attempt_ended(
        &self,
        record: i64,
        run: &Run,
        end: AttemptEnd,
    ) -> Result<(), StoreError> {
        let (error_code, error) = end
            .failure
            .map_or((None, None), |f| (Some(f.code), Some(f.message)));
        let mut writes = vec![Write::Complete(Completion {
            id: record,
            status: end.status,
            completed_at: end.at,
            result: end.result,
            error_code,
            error,
            instance: end.instance,
            not_retried: end.not_retried,
            usage: end.usage,
        })];
        // With the run's status (still running, when another attempt follows), naming its
        // holder: the end of an attempt of a run taken over from this node is refused.
        writes.push(Write::RunStatus {
            run_id: run.id.clone(),
            status: end.run_status.unwrap_or(RunStatus::Running),
            at: end.at,
            holder: run.holder(),
        });
        self.store.record(writes).await.map(drop)
    }

    /// Records that `run` ended with `status` outside any attempt (taken over with no
    /// attempts left, or its schedule gone); refused when this node no longer holds it.
    pub async fn run_ended(
        &self,
        run: &Run,
        status: RunStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.store
            .record(vec![Write::RunStatus {
                run_id: run.id.clone(),
                status,
                at,
                holder: run.holder(),
            }])
            .await
            .map(drop)
    }

    /// Records a call made at once that has ended: one record, started and completed.
    pub async fn immediate(
        &self,
        call: ImmediateCall<'_>,
        result: &Result<(Option<serde_json::Value>, String), Failure>,
        usage: Option<CallUsage>,
    ) -> Result<(), StoreError> {
        let start = NewExecution {
            run_id: call.run_id.to_owned(),
            schedule_id: call.schedule_id.to_owned(),
            handler_id: call.handler_id.to_owned(),
            method: call.method.to_owned(),
            attempt: 1,
            max_attempts: 1,
            status: ExecutionStatus::Running,
            started_at: call.started_at,
            params_summary: params_summary(call.params),
            instance: Some(call.location),
        };
        let done = match result {
            Ok((value, instance)) => Completion {
                id: 0,
                status: ExecutionStatus::Success,
                completed_at: Utc::now(),
                result: value.clone(),
                error_code: None,
                error: None,
                instance: Some(instance.clone()),
                not_retried: None,
                usage: usage.clone(),
            },
            Err(f) => Completion {
                id: 0,
                status: ExecutionStatus::Error,
                completed_at: Utc::now(),
                result: None,
                error_code: Some(f.code.clone()),
                error: Some(f.message.clone()),
                instance: None,
                not_retried: None,
                usage: usage.clone(),
            },
        };
        self.store
            .record(vec![Write::Done(start, done)])
            .await
            .map(drop)
    }
}
