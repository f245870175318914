//! Execution records: one per attempt of a run (and one for a run recorded without running:
//! skipped or missed). The execution log is written by dispatch and read by the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::UnknownStatus;

/// Where an attempt stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Started, not finished.
    Running,
    /// Finished with a result.
    Success,
    /// Failed; another attempt follows.
    Retry,
    /// Failed for good.
    Error,
    /// Not started: the schedule's overlap limit was reached.
    Skipped,
    /// Not started: later than the schedule's misfire grace time.
    Missed,
}

impl ExecutionStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Success => "success",
            Self::Retry => "retry",
            Self::Error => "error",
            Self::Skipped => "skipped",
            Self::Missed => "missed",
        }
    }

    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Running,
        Self::Success,
        Self::Retry,
        Self::Error,
        Self::Skipped,
        Self::Missed,
    ];

    /// Reads a status name.
    pub fn parse(s: &str) -> Result<Self, UnknownStatus> {
        UnknownStatus::find(s, Self::ALL, Self::as_str)
    }
}

/// A record of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    /// Its id (grows with insertion).
    pub id: i64,
    /// See [`NewExecution`].
    pub run_id: String,
    /// See [`NewExecution`].
    pub schedule_id: String,
    /// See [`NewExecution`].
    pub handler_id: String,
    /// See [`NewExecution`].
    pub method: String,
    /// See [`NewExecution`].
    pub attempt: u32,
    /// See [`NewExecution`].
    pub max_attempts: u32,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// The result, on success.
    pub result: Option<serde_json::Value>,
    /// The error's stable code, on failure.
    pub error_code: Option<String>,
    /// The error's message, on failure.
    pub error: Option<String>,
    /// See [`NewExecution`].
    pub params_summary: Option<String>,
    /// See [`NewExecution`].
    pub instance: Option<String>,
    /// Why it was not retried, when it failed and was not.
    pub not_retried: Option<String>,
    /// What it used outside its instance (HTTP requests, hosts, directories).
    pub usage: Option<crate::capability::CallUsage>,
    /// The node (host process) that recorded it.
    pub node: Option<String>,
}
