//! How a schedule runs: lateness (`misfire_grace_time`, `coalesce`), overlap (`max_running`),
//! jitter, retries (which failure kinds, how many attempts, what backoff) and a timeout per
//! attempt. The vocabulary is APScheduler 4's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which of several missed fire times a schedule runs when it is late (APScheduler's `coalesce`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Coalesce {
    /// Run once, for the latest missed fire time.
    #[default]
    Latest,
    /// Run once, for the earliest missed fire time.
    Earliest,
    /// Run every missed fire time, in order.
    All,
}

/// How a schedule runs: lateness, overlap, retries and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulePolicy {
    /// How late a run may start and still run; `None`: however late.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub misfire_grace_time: Option<Duration>,
    /// Which missed fire times run after downtime.
    pub coalesce: Coalesce,
    /// How many runs of the schedule may be in progress at once.
    pub max_running: u32,
    /// A random delay of up to this much is added to each fire time.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "0s")]
    pub max_jitter: Duration,
    /// Attempts per run, the first included.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles for each further one (with jitter).
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "1s")]
    pub retry_backoff: Duration,
    /// A timeout per attempt, tighter than the plugin's own; `None`: the plugin's.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "10s")]
    pub timeout: Option<Duration>,
    /// The kinds of failure (error codes) that are retried, up to `max_attempts`. By default
    /// those that may pass by themselves ([`DEFAULT_RETRY_ON`]); add `trap`, say, to retry a
    /// handler that panics now and then.
    pub retry_on: Vec<String>,
}

/// The failure kinds retried by default: those that may pass by themselves.
pub const DEFAULT_RETRY_ON: &[&str] = &[
    "timeout",
    "handler_retryable",
    "handler_unreachable",
    "handler_offline",
    "plugin_compiling",
    "queue_full",
    "internal",
    "interrupted",
];

/// Every failure kind an attempt can end with (the error codes of a call, and `interrupted`
/// for an attempt a stopped host cut short).
pub const FAILURE_KINDS: &[&str] = &[
    "unknown_plugin",
    "plugin_removed",
    "plugin_compiling",
    "queue_full",
    "handler_unreachable",
    "handler_offline",
    "plugin_unavailable",
    "invalid_params",
    "unknown_method",
    "handler_failed",
    "handler_retryable",
    "capability_denied",
    "timeout",
    "memory_limit",
    "fuel_exhausted",
    "trap",
    "result_too_large",
    "invalid_result",
    "internal",
    "interrupted",
];

impl Default for SchedulePolicy {
    fn default() -> Self {
        Self {
            misfire_grace_time: None,
            coalesce: Coalesce::Latest,
            max_running: 1,
            max_jitter: Duration::ZERO,
            max_attempts: 1,
            retry_backoff: Duration::from_secs(1),
            timeout: None,
            retry_on: DEFAULT_RETRY_ON.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl SchedulePolicy {
    /// Checks the values; the message names the field at fault.
    pub fn check(&self) -> Result<(), String> {
        if self.max_running == 0 {
            return Err("policy.max_running must be at least 1".into());
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err("policy.max_attempts must be between 1 and 100".into());
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err("policy.timeout must be longer than zero".into());
        }
        if self.max_jitter > Duration::from_secs(24 * 3600) {
            return Err("policy.max_jitter must be at most 24h".into());
        }
        if let Some(unknown) = self
            .retry_on
            .iter()
            .find(|k| !FAILURE_KINDS.contains(&k.as_str()))
        {
            return Err(format!(
                "policy.retry_on: `{unknown}` is not a failure kind (use: {})",
                FAILURE_KINDS.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether an attempt that failed with `kind` at `attempt` is retried; when not, why.
    pub fn retry(&self, kind: &str, attempt: u32) -> Result<(), String> {
        if !self.retry_on.iter().any(|k| k == kind) {
            return Err(format!(
                "`{kind}` is not in the policy's retry_on ({})",
                self.retry_on.join(", ")
            ));
        }
        if attempt >= self.max_attempts {
            return Err(format!(
                "it was attempt {attempt} of max_attempts {}",
                self.max_attempts
            ));
        }
        Ok(())
    }
}
