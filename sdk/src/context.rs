use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::__bindings::schedulezero::handler::types as wit;

/// What the host tells a handler about the run it is executing.
///
/// ```
/// # use schedulezero_sdk::JobContext;
/// # use std::time::UNIX_EPOCH;
/// let ctx = JobContext::new("nightly-report", "run-42", 1, UNIX_EPOCH);
/// assert_eq!(ctx.scheduled_unix_millis(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    /// The job (schedule) this run belongs to; `adhoc` for a call made by hand.
    pub job_id: String,
    /// The run's unique id. Retries keep it, so use it as an idempotency key.
    pub run_id: String,
    /// 1 for the first try, incremented on each retry.
    pub attempt: u32,
    /// When the run was scheduled to fire (not when it started).
    pub scheduled_time: SystemTime,
}

impl JobContext {
    /// Builds a context by hand, for unit tests of handler methods.
    pub fn new(
        job_id: impl Into<String>,
        run_id: impl Into<String>,
        attempt: u32,
        scheduled_time: SystemTime,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            run_id: run_id.into(),
            attempt,
            scheduled_time,
        }
    }

    /// The scheduled time as milliseconds since the Unix epoch (negative before 1970).
    pub fn scheduled_unix_millis(&self) -> i64 {
        match self.scheduled_time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// From the contract's record. A time the platform cannot represent (WebAssembly's
    /// `SystemTime` starts at 1970) reads as the Unix epoch rather than failing the call.
    pub(crate) fn from_wit(ctx: wit::JobContext) -> Self {
        let t = ctx.scheduled_time;
        let whole = Duration::from_secs(t.seconds.unsigned_abs());
        let at_second = if t.seconds >= 0 {
            UNIX_EPOCH.checked_add(whole)
        } else {
            UNIX_EPOCH.checked_sub(whole)
        };
        let scheduled_time = at_second
            .and_then(|s| s.checked_add(Duration::from_nanos(u64::from(t.nanoseconds))))
            .unwrap_or(UNIX_EPOCH);
        Self {
            job_id: ctx.job_id,
            run_id: ctx.run_id,
            attempt: ctx.attempt,
            scheduled_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_ctx(seconds: i64, nanoseconds: u32) -> wit::JobContext {
        wit::JobContext {
            job_id: "j".into(),
            run_id: "r".into(),
            attempt: 2,
            scheduled_time: wit::Timestamp {
                seconds,
                nanoseconds,
            },
        }
    }

    #[test]
    fn converts_timestamps_on_both_sides_of_the_epoch() {
        let ctx = JobContext::from_wit(wit_ctx(1_700_000_000, 500_000_000));
        assert_eq!(ctx.scheduled_unix_millis(), 1_700_000_000_500);
        assert_eq!(ctx.attempt, 2);
        let before = JobContext::from_wit(wit_ctx(-2, 0));
        assert_eq!(before.scheduled_unix_millis(), -2_000);
    }
}
