//! The gateway's one error type, and the one place that decides how each kind is shown:
//! HTTP status, stable page code and OAuth error code.

use http::StatusCode;
use relais_config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TLS certificate or key {path}: {reason}")]
    Tls { path: String, reason: String },
    #[error("the oidc-front service failed: {code:?} {message}")]
    Backend { code: tonic::Code, message: String },
    #[error("the oidc-front service answered something that cannot be sent: {0}")]
    BackendAnswer(String),
    #[error("the request took longer than allowed")]
    Timeout,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("no such page")]
    NotFound,
    #[error("the account page's sign-in is refused: {0}")]
    AccountSignIn(&'static str),
}

impl From<tonic::Status> for GatewayError {
    fn from(status: tonic::Status) -> Self {
        GatewayError::Backend {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

impl GatewayError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            GatewayError::Malformed(_) | GatewayError::AccountSignIn(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            // Protocol errors come from oidc-front as answers, so any failure to get or
            // send one means the service is not working right now.
            GatewayError::Config(_)
            | GatewayError::Tls { .. }
            | GatewayError::Backend { .. }
            | GatewayError::BackendAnswer(_)
            | GatewayError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable code shown on error pages (documented in `docs/errors.md`).
    pub(crate) fn page_code(&self) -> &'static str {
        match self {
            GatewayError::Malformed(_) => "malformed_request",
            GatewayError::NotFound => "not_found",
            GatewayError::AccountSignIn(_) => "account_sign_in_failed",
            _ => "service_unavailable",
        }
    }

    /// The OAuth 2.0 error code for the JSON endpoints.
    pub(crate) fn oauth_code(&self) -> &'static str {
        match self {
            GatewayError::Malformed(_)
            | GatewayError::NotFound
            | GatewayError::AccountSignIn(_) => "invalid_request",
            _ => "temporarily_unavailable",
        }
    }
}
