//! The failures the IdP can be told to commit, so a relying party's error paths can be tested.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One way of answering wrongly. `None` answers correctly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    #[default]
    None,
    /// Waits the configured delay before answering at the token endpoint.
    Delay,
    /// Sends the browser back with `error=access_denied` instead of a code.
    ErrorResponse,
    /// The token endpoint answers HTTP 500.
    TokenError,
    /// The ID token is signed by another key published under the same `kid`.
    BadSignature,
    /// The ID token carries a nonce other than the one asked for.
    WrongNonce,
    /// The ID token's `iss` is not this issuer.
    WrongIssuer,
    /// The ID token's `aud` is not the client.
    WrongAudience,
    /// The ID token has already expired when it is issued.
    ExpiredIdToken,
    /// Neither the ID token nor userinfo carries `email`.
    MissingClaim,
    /// The `acr` is one level below the lowest asked (left out below `eidas1`).
    LowerAcr,
    /// Userinfo's `sub` differs from the ID token's.
    UserinfoSubMismatch,
    /// Userinfo and the ID token carry an `email` that is not an e-mail address.
    InvalidClaim,
    /// The ID token's `at_hash` does not match the access token.
    BadAtHash,
    /// The ID token is signed HS256 with the client's own secret (discovery lists HS256),
    /// without `at_hash`: a relying party that takes the algorithms an IdP offers accepts it.
    SymmetricSignature,
}

impl Scenario {
    pub const ALL: [Scenario; 15] = [
        Scenario::None,
        Scenario::Delay,
        Scenario::ErrorResponse,
        Scenario::TokenError,
        Scenario::BadSignature,
        Scenario::WrongNonce,
        Scenario::WrongIssuer,
        Scenario::WrongAudience,
        Scenario::ExpiredIdToken,
        Scenario::MissingClaim,
        Scenario::LowerAcr,
        Scenario::UserinfoSubMismatch,
        Scenario::InvalidClaim,
        Scenario::BadAtHash,
        Scenario::SymmetricSignature,
    ];

    /// The snake_case name used in JSON, TOML and the login form.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::Delay => "delay",
            Scenario::ErrorResponse => "error_response",
            Scenario::TokenError => "token_error",
            Scenario::BadSignature => "bad_signature",
            Scenario::WrongNonce => "wrong_nonce",
            Scenario::WrongIssuer => "wrong_issuer",
            Scenario::WrongAudience => "wrong_audience",
            Scenario::ExpiredIdToken => "expired_id_token",
            Scenario::MissingClaim => "missing_claim",
            Scenario::LowerAcr => "lower_acr",
            Scenario::UserinfoSubMismatch => "userinfo_sub_mismatch",
            Scenario::InvalidClaim => "invalid_claim",
            Scenario::BadAtHash => "bad_at_hash",
            Scenario::SymmetricSignature => "symmetric_signature",
        }
    }

    /// What the person choosing it on the login page reads.
    pub fn label_fr(self) -> &'static str {
        match self {
            Scenario::None => "Aucune panne : réponse correcte",
            Scenario::Delay => "Délai avant la réponse du jeton",
            Scenario::ErrorResponse => "Retour en erreur (access_denied)",
            Scenario::TokenError => "Erreur HTTP 500 au point de jeton",
            Scenario::BadSignature => "ID token mal signé",
            Scenario::WrongNonce => "Mauvais nonce",
            Scenario::WrongIssuer => "Mauvais émetteur (iss)",
            Scenario::WrongAudience => "Mauvaise audience (aud)",
            Scenario::ExpiredIdToken => "ID token expiré",
            Scenario::MissingClaim => "Claim email manquant",
            Scenario::LowerAcr => "Niveau eIDAS inférieur à celui demandé",
            Scenario::UserinfoSubMismatch => "sub de userinfo différent",
            Scenario::InvalidClaim => "Claim email mal formé",
            Scenario::BadAtHash => "at_hash ne correspond pas au jeton d'accès",
            Scenario::SymmetricSignature => "ID token signé HS256 avec le secret du client",
        }
    }
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.as_str() == s)
            .ok_or(UnknownScenario)
    }
}

/// A scenario name that is not one of [`Scenario::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownScenario;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn names_agree_with_serde() {
        for scenario in Scenario::ALL {
            let json = serde_json::to_string(&scenario).unwrap();
            assert_eq!(json, format!("\"{}\"", scenario.as_str()));
            assert_eq!(scenario.as_str().parse::<Scenario>(), Ok(scenario));
        }
        assert_eq!("nope".parse::<Scenario>(), Err(UnknownScenario));
    }
}
