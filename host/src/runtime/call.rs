//! What a call carries in and out: the [`JobContext`] a handler is told about, and the
//! [`CallOutcome`] with the [`CallStats`] the host measured.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::bindings::{WitJobContext, WitTimestamp};
use super::instance::CallMeasure;

/// What a handler is told about the run it executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    /// The job (schedule) id; `adhoc` for a call made by hand.
    pub job_id: String,
    /// The run's unique id.
    pub run_id: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// When the run was due.
    pub scheduled_time: SystemTime,
}

impl JobContext {
    /// A context for a call made by hand: job `adhoc`, a new run id, attempt 1, due now.
    pub fn adhoc() -> Self {
        Self {
            job_id: "adhoc".into(),
            run_id: uuid::Uuid::new_v4().to_string(),
            attempt: 1,
            scheduled_time: SystemTime::now(),
        }
    }

    pub(crate) fn to_wit(&self) -> WitJobContext {
        let scheduled_time = match self.scheduled_time.duration_since(UNIX_EPOCH) {
            Ok(d) => WitTimestamp {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanoseconds: d.subsec_nanos(),
            },
            Err(e) => {
                // Before 1970: whole seconds down, nanoseconds up, as the contract's timestamp reads.
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => WitTimestamp {
                        seconds: -secs,
                        nanoseconds: 0,
                    },
                    n => WitTimestamp {
                        seconds: -secs - 1,
                        nanoseconds: 1_000_000_000 - n,
                    },
                }
            }
        };
        WitJobContext {
            job_id: self.job_id.clone(),
            run_id: self.run_id.clone(),
            attempt: self.attempt,
            scheduled_time,
        }
    }
}

/// How one call went, as the host measured it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// The plugin had to be loaded from its artifact for this call.
    pub cold_start: bool,
    /// A new instance was created for this call (rather than a hot one reused).
    pub fresh_instance: bool,
    /// Time to load the plugin (deserialize the artifact, link), in nanoseconds.
    pub load_ns: u64,
    /// Time to instantiate, in nanoseconds.
    pub instantiate_ns: u64,
    /// From the call's start to its result, in nanoseconds.
    pub total_ns: u64,
    /// What was measured in the guest.
    #[serde(flatten)]
    pub measure: CallMeasure,
}

/// A successful call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// The result, as JSON text.
    pub result: String,
    /// How the call went.
    pub stats: CallStats,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_before_the_epoch_keep_nanoseconds_positive() {
        let mut ctx = JobContext::adhoc();
        ctx.scheduled_time = UNIX_EPOCH - Duration::from_millis(1500);
        let t = ctx.to_wit().scheduled_time;
        assert_eq!((t.seconds, t.nanoseconds), (-2, 500_000_000));
        ctx.scheduled_time = UNIX_EPOCH + Duration::new(5, 7);
        let t = ctx.to_wit().scheduled_time;
        assert_eq!((t.seconds, t.nanoseconds), (5, 7));
    }
}
