//! Every way a round trip to an IdP can fail, with its stable code.

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("unknown identity provider")]
    UnknownIdp,
    #[error("identity provider is disabled")]
    IdpDisabled,
    #[error("identity provider's discovery document or keys could not be fetched: {0}")]
    Discovery(String),
    #[error("identity provider's discovery names a URL the hub does not call: {0}")]
    EndpointNotAllowed(String),
    #[error("the callback's state matches no sign-in of this browser")]
    StateMismatch,
    #[error("the callback's iss is not the chosen identity provider (mix-up)")]
    IssuerMismatch,
    #[error("identity provider answered with an error: {0}")]
    IdpError(String),
    #[error("the user declined at the identity provider: {0}")]
    Denied(String),
    #[error("the code could not be exchanged at the identity provider: {0}")]
    TokenRequest(String),
    #[error("identity provider returned no ID token")]
    NoIdToken,
    #[error("ID token signature is invalid: {0}")]
    Signature(String),
    #[error("ID token nonce does not match")]
    Nonce,
    #[error("ID token issuer is not the identity provider")]
    TokenIssuer,
    #[error("ID token audience is not the hub")]
    Audience,
    #[error("ID token has expired")]
    Expired,
    #[error("ID token is invalid: {0}")]
    IdToken(String),
    #[error(
        "assurance level {got:?} is none of those asked (the lowest acceptable and every one above it)"
    )]
    AcrTooLow { got: Option<String> },
    #[error("userinfo could not be fetched: {0}")]
    Userinfo(String),
    #[error("userinfo subject differs from the ID token's")]
    UserinfoSubject,
    #[error("identity provider did not provide the claim {0}")]
    MissingClaim(String),
    #[error("identity provider sent a malformed claim {0}")]
    InvalidClaim(String),
    #[error("ID token at_hash does not match the access token")]
    AtHash,
    #[error("ID token was issued at a time outside the accepted window")]
    IssuedAt,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl BridgeError {
    pub fn code(&self) -> &'static str {
        match self {
            BridgeError::UnknownIdp => "idp_unknown",
            BridgeError::IdpDisabled => "idp_disabled",
            BridgeError::Discovery(_) => "idp_unreachable",
            BridgeError::EndpointNotAllowed(_) => "idp_endpoint_not_allowed",
            BridgeError::StateMismatch => "idp_state_mismatch",
            BridgeError::IssuerMismatch => "idp_issuer_mismatch",
            BridgeError::IdpError(_) => "idp_error",
            BridgeError::Denied(_) => "idp_access_denied",
            BridgeError::TokenRequest(_) => "idp_token_request_failed",
            BridgeError::NoIdToken => "idp_id_token_missing",
            BridgeError::Signature(_) => "idp_signature_invalid",
            BridgeError::Nonce => "idp_nonce_mismatch",
            BridgeError::TokenIssuer => "idp_token_issuer_mismatch",
            BridgeError::Audience => "idp_audience_mismatch",
            BridgeError::Expired => "idp_id_token_expired",
            BridgeError::IdToken(_) => "idp_id_token_invalid",
            BridgeError::AcrTooLow { .. } => "idp_acr_too_low",
            BridgeError::Userinfo(_) => "idp_userinfo_failed",
            BridgeError::UserinfoSubject => "idp_userinfo_sub_mismatch",
            BridgeError::MissingClaim(_) => "idp_claim_missing",
            BridgeError::InvalidClaim(_) => "idp_claim_invalid",
            BridgeError::AtHash => "idp_at_hash_mismatch",
            BridgeError::IssuedAt => "idp_id_token_iat_invalid",
            BridgeError::Invalid(_) => "idp_request_invalid",
            BridgeError::Unavailable(_) => "service_unavailable",
        }
    }
}

impl From<BridgeError> for tonic::Status {
    fn from(e: BridgeError) -> Self {
        use tonic::Code;
        let code = match &e {
            BridgeError::UnknownIdp => Code::NotFound,
            BridgeError::IdpDisabled => Code::FailedPrecondition,
            BridgeError::Invalid(_) => Code::InvalidArgument,
            BridgeError::Unavailable(_) => Code::Unavailable,
            BridgeError::StateMismatch | BridgeError::IssuerMismatch => Code::PermissionDenied,
            _ => Code::Aborted,
        };
        relais_runtime::status_with_code(code, e.to_string(), e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code an IdP failure can show is documented with its cause and fix.
    #[test]
    fn every_code_is_documented() {
        let docs = include_str!("../../../docs/errors.md");
        let all = [
            BridgeError::UnknownIdp,
            BridgeError::IdpDisabled,
            BridgeError::Discovery(String::new()),
            BridgeError::EndpointNotAllowed(String::new()),
            BridgeError::StateMismatch,
            BridgeError::IssuerMismatch,
            BridgeError::IdpError(String::new()),
            BridgeError::Denied(String::new()),
            BridgeError::TokenRequest(String::new()),
            BridgeError::NoIdToken,
            BridgeError::Signature(String::new()),
            BridgeError::Nonce,
            BridgeError::TokenIssuer,
            BridgeError::Audience,
            BridgeError::Expired,
            BridgeError::IdToken(String::new()),
            BridgeError::AcrTooLow { got: None },
            BridgeError::Userinfo(String::new()),
            BridgeError::UserinfoSubject,
            BridgeError::MissingClaim(String::new()),
            BridgeError::InvalidClaim(String::new()),
            BridgeError::AtHash,
            BridgeError::IssuedAt,
            BridgeError::Invalid(String::new()),
            BridgeError::Unavailable(String::new()),
        ];
        for e in all {
            let code = e.code();
            assert!(
                docs.contains(&format!("## {code}\n")),
                "{code} is not in docs/errors.md"
            );
        }
    }
}
