//! The one error type of the support service, and its mapping to gRPC statuses.

/// What went wrong, in words a caller of the support API understands.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("no such ticket")]
    NotFound,
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// No caller could be established from the credentials presented.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The sign-in behind the token is not the IdP identity the person is enrolled with.
    #[error("not the enrolled identity: {0}")]
    IdentityMismatch(String),
    /// The sign-in did not reach a level this caller needs (RFC 9470): sign in again at
    /// one of these.
    #[error("a sign-in at {} is needed", .0.join(" or "))]
    InsufficientAuthentication(Vec<String>),
    /// The registry or oidc-front did not answer.
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the ticket's state does not allow it now.
    #[error("{0}")]
    Conflict(String),
    #[error("business calendar: {0}")]
    Calendar(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(String),
    #[error("bus: {0}")]
    Bus(#[from] relais_bus::BusError),
    #[error(transparent)]
    Runtime(#[from] relais_runtime::RuntimeError),
}

impl From<tokio_postgres::Error> for SupportError {
    fn from(e: tokio_postgres::Error) -> Self {
        SupportError::Database(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for SupportError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        SupportError::Database(e.to_string())
    }
}

impl From<serde_json::Error> for SupportError {
    fn from(e: serde_json::Error) -> Self {
        SupportError::Database(format!("stored ticket does not read back: {e}"))
    }
}

impl SupportError {
    /// The stable code callers branch on (gRPC metadata `relais-error-code`).
    pub fn code(&self) -> &'static str {
        match self {
            SupportError::NotFound => "unknown_ticket",
            SupportError::Forbidden(_) => "forbidden",
            SupportError::Unauthenticated(_) => "invalid_token",
            SupportError::IdentityMismatch(_) => "identity_mismatch",
            SupportError::InsufficientAuthentication(_) => "insufficient_user_authentication",
            SupportError::Invalid(_) => "invalid_argument",
            SupportError::Conflict(_) => "invalid_state",
            SupportError::Calendar(_)
            | SupportError::Config(_)
            | SupportError::Database(_)
            | SupportError::Upstream(_)
            | SupportError::Bus(_)
            | SupportError::Runtime(_) => "service_unavailable",
        }
    }
}

impl From<SupportError> for tonic::Status {
    fn from(e: SupportError) -> Self {
        use tonic::Code;
        let code = match &e {
            SupportError::NotFound => Code::NotFound,
            SupportError::Forbidden(_) | SupportError::IdentityMismatch(_) => {
                Code::PermissionDenied
            }
            SupportError::Unauthenticated(_) | SupportError::InsufficientAuthentication(_) => {
                Code::Unauthenticated
            }
            SupportError::Invalid(_) => Code::InvalidArgument,
            SupportError::Conflict(_) => Code::FailedPrecondition,
            SupportError::Calendar(_)
            | SupportError::Config(_)
            | SupportError::Database(_)
            | SupportError::Upstream(_)
            | SupportError::Bus(_)
            | SupportError::Runtime(_) => {
                tracing::error!(error = %e, "support failure");
                Code::Unavailable
            }
        };
        let message = if code == Code::Unavailable {
            "support unavailable".to_owned()
        } else {
            e.to_string()
        };
        let mut status = relais_runtime::status_with_code(code, message, e.code());
        if let SupportError::InsufficientAuthentication(levels) = &e
            && let Ok(value) = levels.join(" ").parse()
        {
            // The levels a new sign-in must reach, for the RFC 9470 challenge.
            status
                .metadata_mut()
                .insert(relais_runtime::ACR_VALUES_KEY, value);
        }
        status
    }
}
