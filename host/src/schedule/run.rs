//! Runs and their outcomes. A run is one fire time of a schedule, claimed once (the store's key
//! is the schedule and the fire time); it ends in success or error after one or more attempts,
//! or is recorded without running (skipped, missed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::UnknownStatus;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Claimed, not started.
    Pending,
    /// An attempt is in progress (or waiting to be retried).
    Running,
    /// Finished with a result.
    Success,
    /// Finished with an error, attempts used up.
    Error,
    /// Not started: the overlap limit was reached.
    Skipped,
    /// Not started: too late, or folded into another fire time.
    Missed,
}

impl RunStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Success => "success",
            Self::Error => "error",
            Self::Skipped => "skipped",
            Self::Missed => "missed",
        }
    }

    /// Every status, in the order a run goes through them.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Running,
        Self::Success,
        Self::Error,
        Self::Skipped,
        Self::Missed,
    ];

    /// Reads a status name.
    pub fn parse(s: &str) -> Result<Self, UnknownStatus> {
        UnknownStatus::find(s, Self::ALL, Self::as_str)
    }
}

/// A claimed fire time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    /// Its id; handlers see it and can use it as an idempotency key.
    pub id: String,
    /// The schedule.
    pub schedule_id: String,
    /// The fire time it is for.
    #[serde(with = "crate::time::rfc3339")]
    pub fire_time: DateTime<Utc>,
    /// Where it stands.
    pub status: RunStatus,
    /// When it was claimed.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// The node (host process) that holds it, while it is unfinished, or held it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How many times it changed hands; a write about it is refused unless it comes from the
    /// node that holds it with this fence.
    #[serde(skip)]
    pub fence: i64,
}

impl Run {
    /// Who holds it, as writes about it must name.
    pub fn holder(&self) -> Option<crate::store::Holder> {
        self.node.as_ref().map(|node| crate::store::Holder {
            node: node.clone(),
            fence: self.fence,
        })
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Success` or `Error`.
    pub status: RunStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's failure, when the run failed.
    pub error: Option<Failure>,
}

/// Why an attempt failed: a stable code (one of [`super::FAILURE_KINDS`]) and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// The stable code.
    pub code: String,
    /// What happened, for a person.
    pub message: String,
}
