use std::fmt;

/// Why a method failed. The variant tells the host what to do next: retry the run, or not.
///
/// ```
/// # use schedulezero_sdk::HandlerError;
/// let e = HandlerError::retryable("upstream answered 503");
/// assert!(e.is_retryable());
/// assert_eq!(e.to_string(), "retryable: upstream answered 503");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// The params are not valid for the method; the same call can never succeed.
    InvalidParams(String),
    /// No method of that name exists. The SDK returns it for you.
    UnknownMethod(String),
    /// The call failed and should not be retried.
    Failed(String),
    /// The call failed for a reason that may pass; the host may retry it.
    Retryable(String),
    /// The handler needed a capability (a file, a host, a configuration value) that the operator
    /// did not grant.
    Denied(String),
}

impl HandlerError {
    /// An [`HandlerError::InvalidParams`] with the given message.
    pub fn invalid_params(message: impl fmt::Display) -> Self {
        Self::InvalidParams(message.to_string())
    }

    /// A [`HandlerError::Failed`] with the given message.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// A [`HandlerError::Retryable`] with the given message.
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::Retryable(message.to_string())
    }

    /// A [`HandlerError::Denied`] with the given message.
    pub fn denied(message: impl fmt::Display) -> Self {
        Self::Denied(message.to_string())
    }

    /// Whether the host may retry the run.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidParams(m)
            | Self::UnknownMethod(m)
            | Self::Failed(m)
            | Self::Retryable(m)
            | Self::Denied(m) => m,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::InvalidParams(_) => "invalid params",
            Self::UnknownMethod(_) => "unknown method",
            Self::Failed(_) => "failed",
            Self::Retryable(_) => "retryable",
            Self::Denied(_) => "denied",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for HandlerError {}
