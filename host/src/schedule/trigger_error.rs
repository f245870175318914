//! Why a trigger cannot be used: shared by the trigger and the readers of ScheduleZero's trigger
//! objects.

/// A trigger that cannot be used, with what is wrong in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// The trigger object is malformed (missing type, unknown type, wrong field types).
    #[error("{0}")]
    Malformed(String),
    /// The cron expression or cron fields are invalid.
    #[error("invalid cron expression `{expression}`: {message}")]
    Cron {
        /// The expression as given (or as built from fields).
        expression: String,
        /// What croner said.
        message: String,
    },
    /// The time zone is not an IANA name.
    #[error("unknown time zone `{0}` (use an IANA name such as `Europe/Paris` or `UTC`)")]
    TimeZone(String),
    /// A date could not be read.
    #[error(
        "invalid date `{0}`: use a Unix timestamp or ISO 8601, such as 2026-05-01T09:30:00+02:00"
    )]
    Date(String),
    /// An interval of zero or less, or one too long to compute with.
    #[error("invalid interval: {0}")]
    Interval(String),
    /// The end is before the start.
    #[error("end_time is before start_time")]
    EndBeforeStart,
    /// A cron or interval with no fire time ahead (a cron that matches no date, such as
    /// `0 0 31 2 *`, or an end time already past).
    #[error("the trigger never fires: {0}")]
    NeverFires(String),
}
