//! The one error type of the support service, and its mapping to gRPC statuses.

/// What went wrong, in words a caller of the support API understands.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("no such ticket")]
    NotFound,
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the ticket's state does not allow it now.
    #[error("{0}")]
    Conflict(String),
    #[error("business calendar: {0}")]
    Calendar(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl SupportError {
    /// The stable code callers branch on (gRPC metadata `relais-error-code`).
    pub fn code(&self) -> &'static str {
        match self {
            SupportError::NotFound => "unknown_ticket",
            SupportError::Forbidden(_) => "forbidden",
            SupportError::Invalid(_) => "invalid_argument",
            SupportError::Conflict(_) => "invalid_state",
            SupportError::Calendar(_) | SupportError::Config(_) => "service_unavailable",
        }
    }
}
