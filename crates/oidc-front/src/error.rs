//! Every error the front can give, and the one mapping from each to its stable code
//! (documented in docs/errors.md), its OAuth error, its HTTP status and its words.

use crate::domain::types::Locale;

/// Where an error is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// A page in the browser: the SP cannot be trusted with a redirect.
    Page,
    /// A redirect back to the SP with `error`, `error_description`, `state`, `iss`.
    Redirect,
}

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("client_id is missing")]
    MissingClientId,
    #[error("unknown client_id")]
    UnknownClient,
    #[error("this service provider is suspended")]
    ClientSuspended,
    #[error("redirect_uri is missing")]
    MissingRedirectUri,
    #[error("redirect_uri is not registered for this client (exact match required)")]
    RedirectUriMismatch,
    #[error("parameter {0} is repeated")]
    DuplicateParameter(String),
    #[error(
        "too many parameters: at most {}",
        crate::domain::authorize::MAX_PARAMS
    )]
    TooManyParameters,
    #[error("parameter {0} is too long or has forbidden characters")]
    BadParameter(String),
    #[error("response_type must be code")]
    UnsupportedResponseType,
    #[error("response_mode must be query")]
    UnsupportedResponseMode,
    #[error("scope must contain openid")]
    OpenidScopeMissing,
    #[error("unknown scope {0}")]
    UnknownScope(String),
    #[error("scope {0} is not in this client's habilitation")]
    ScopeNotAllowed(String),
    #[error("state is missing")]
    StateMissing,
    #[error(
        "state is shorter than this client's minimum (43 characters, 256 bits, unless registered otherwise)"
    )]
    StateTooShort,
    #[error("nonce is missing")]
    NonceMissing,
    #[error(
        "nonce is shorter than this client's minimum (43 characters, 256 bits, unless registered otherwise)"
    )]
    NonceTooShort,
    #[error("unknown acr value {0}")]
    UnknownAcr(String),
    #[error("acr {0} is not in this client's habilitation")]
    AcrNotAllowed(String),
    #[error("the claims parameter is not valid JSON of the expected shape")]
    ClaimsMalformed,
    #[error("the request parameter is not supported")]
    RequestNotSupported,
    #[error("the request_uri parameter is not supported")]
    RequestUriNotSupported,
    #[error("prompt=none cannot be honoured: the user must sign in")]
    LoginRequired,
    #[error(
        "prompt=none cannot be honoured: single sign-on is not open to this service, the user must choose how to sign in"
    )]
    InteractionRequired,
    #[error("unsupported prompt value {0}")]
    UnsupportedPrompt(String),
    #[error("code_challenge_method must be S256")]
    PkceMethodUnsupported,
    #[error("code_challenge is missing: this client must use PKCE (S256)")]
    PkceRequired,
    #[error("max_age must be a non-negative integer")]
    InvalidMaxAge,
    #[error("this sign-in has expired or was already completed; start again from the service")]
    FlowExpired,
    #[error("state, nonce and login_hint are too long together to be carried through the sign-in")]
    FlowTooLarge,
    #[error(
        "the identity provider did not authenticate the user as recently as the service asked (prompt=login or max_age)"
    )]
    StaleAuthentication,
    #[error("the form was not sent by this browser's sign-in page")]
    CsrfMismatch,
    #[error("this identity provider cannot be chosen for this sign-in")]
    IdpNotAvailable,
    #[error("identity provider failure ({code}): {message}")]
    Idp { code: String, message: String },
    #[error("client authentication failed")]
    ClientAuthFailed,
    #[error("client must authenticate with {0}")]
    ClientAuthMethodMismatch(String),
    #[error("client credentials were sent in more than one way")]
    MultipleClientAuth,
    #[error("the access token was sent in the URL; send it in the Authorization header")]
    AccessTokenInQuery,
    #[error("the client assertion's aud must be the issuer {0}, as one string")]
    AssertionAudience(String),
    #[error("client secret has expired; ask the operator for a new one")]
    ClientSecretExpired,
    #[error("grant_type must be authorization_code")]
    UnsupportedGrantType,
    #[error("code is missing")]
    CodeMissing,
    #[error("code is unknown or expired")]
    CodeInvalid,
    #[error("code was already used; the tokens issued from it are revoked")]
    CodeReused,
    #[error("code was issued to another client")]
    CodeClientMismatch,
    #[error("redirect_uri differs from the one of the authorization request")]
    TokenRedirectUriMismatch,
    #[error("PKCE verification failed")]
    PkceFailed,
    #[error("code was obtained without PKCE, and this client is no longer exempt from it")]
    PkceExemptionLifted,
    #[error("access token is missing, unknown, expired or revoked")]
    InvalidToken,
    #[error("the token parameter is missing")]
    TokenParamMissing,
    #[error("too many failures from this client or address; retry in {0} seconds")]
    ClientBlocked(u32),
    #[error("too many refused authorization requests from this address; retry in {0} seconds")]
    TooManyRefusals(u32),
    #[error("token_type_hint must be access_token or refresh_token")]
    UnsupportedTokenType,
    #[error("id_token_hint is not an ID token issued by this hub")]
    InvalidIdTokenHint,
    #[error("post_logout_redirect_uri is not registered for this client")]
    PostLogoutRedirectUriMismatch,
    #[error(
        "this logout confirmation is not valid for this browser's session (expired or altered)"
    )]
    LogoutConfirmationInvalid,
    #[error(
        "this account is suspended by the operator after a report of identity theft; contact support"
    )]
    AccountSuspended,
    #[error("no account is known by this identifier")]
    AccountUnknown,
    #[error("this account is already suspended")]
    AccountAlreadySuspended,
    #[error("this account is not suspended")]
    AccountNotSuspended,
    #[error("suspension request refused: {0}")]
    SuspensionInvalid(String),
    #[error(
        "signing key {kid} cannot be opened: {reason} (is oidc_front.key_encryption_key the one it was sealed under?)"
    )]
    SigningKeyUnreadable { kid: String, reason: String },
    // Display carries the detail for logs; people and SPs get fixed words.
    #[error("a service is temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The fixed facts of an error.
pub struct ErrorInfo {
    pub code: &'static str,
    pub oauth: &'static str,
    pub http_status: u16,
    pub surface: Surface,
    pub fr: &'static str,
}

impl FrontError {
    pub fn info(&self) -> ErrorInfo {
        use FrontError as E;
        use Surface::{Page, Redirect};
        let (code, oauth, http_status, surface, fr) = match self {
            E::MissingClientId => (
                "missing_client_id",
                "invalid_request",
                400,
                Page,
                "Le paramètre client_id est absent.",
            ),
            E::UnknownClient => (
                "unknown_client",
                "invalid_client",
                400,
                Page,
                "Ce service n'est pas connu de Relais.",
            ),
            E::ClientSuspended => (
                "client_suspended",
                "unauthorized_client",
                403,
                Page,
                "Ce service est suspendu.",
            ),
            E::MissingRedirectUri => (
                "missing_redirect_uri",
                "invalid_request",
                400,
                Page,
                "Le paramètre redirect_uri est absent.",
            ),
            E::RedirectUriMismatch => (
                "redirect_uri_mismatch",
                "invalid_request",
                400,
                Page,
                "L'adresse de retour (redirect_uri) n'est pas enregistrée pour ce service.",
            ),
            E::DuplicateParameter(_) => (
                "duplicate_parameter",
                "invalid_request",
                400,
                Redirect,
                "Un paramètre est répété.",
            ),
            E::TooManyParameters => (
                "too_many_parameters",
                "invalid_request",
                400,
                Redirect,
                "La requête porte trop de paramètres.",
            ),
            E::BadParameter(_) => (
                "invalid_parameter",
                "invalid_request",
                400,
                Redirect,
                "Un paramètre est trop long ou contient des caractères interdits.",
            ),
            E::UnsupportedResponseType => (
                "unsupported_response_type",
                "unsupported_response_type",
                400,
                Redirect,
                "response_type doit valoir code.",
            ),
            E::UnsupportedResponseMode => (
                "unsupported_response_mode",
                "invalid_request",
                400,
                Redirect,
                "response_mode doit valoir query.",
            ),
            E::OpenidScopeMissing => (
                "openid_scope_missing",
                "invalid_scope",
                400,
                Redirect,
                "Le scope openid est obligatoire.",
            ),
            E::UnknownScope(_) => (
                "unknown_scope",
                "invalid_scope",
                400,
                Redirect,
                "Un scope demandé est inconnu.",
            ),
            E::ScopeNotAllowed(_) => (
                "scope_not_allowed",
                "invalid_scope",
                400,
                Redirect,
                "Un scope demandé dépasse l'habilitation du service.",
            ),
            E::StateMissing => (
                "state_missing",
                "invalid_request",
                400,
                Redirect,
                "Le paramètre state est obligatoire.",
            ),
            E::StateTooShort => (
                "state_too_short",
                "invalid_request",
                400,
                Redirect,
                "Le paramètre state doit porter 256 bits d'entropie.",
            ),
            E::NonceMissing => (
                "nonce_missing",
                "invalid_request",
                400,
                Redirect,
                "Le paramètre nonce est obligatoire.",
            ),
            E::NonceTooShort => (
                "nonce_too_short",
                "invalid_request",
                400,
                Redirect,
                "Le paramètre nonce doit porter 256 bits d'entropie.",
            ),
            E::UnknownAcr(_) => (
                "acr_unknown",
                "invalid_request",
                400,
                Redirect,
                "Le niveau de garantie (acr) demandé est inconnu.",
            ),
            E::AcrNotAllowed(_) => (
                "acr_not_allowed",
                "invalid_request",
                400,
                Redirect,
                "Le niveau de garantie demandé dépasse l'habilitation du service.",
            ),
            E::ClaimsMalformed => (
                "claims_malformed",
                "invalid_request",
                400,
                Redirect,
                "Le paramètre claims est mal formé.",
            ),
            E::RequestNotSupported => (
                "request_not_supported",
                "request_not_supported",
                400,
                Redirect,
                "Le paramètre request n'est pas pris en charge.",
            ),
            E::RequestUriNotSupported => (
                "request_uri_not_supported",
                "request_uri_not_supported",
                400,
                Redirect,
                "Le paramètre request_uri n'est pas pris en charge.",
            ),
            E::LoginRequired => (
                "login_required",
                "login_required",
                400,
                Redirect,
                "L'usager doit s'authentifier.",
            ),
            E::InteractionRequired => (
                "interaction_required",
                "interaction_required",
                400,
                Redirect,
                "L'usager doit choisir comment s'authentifier.",
            ),
            E::UnsupportedPrompt(_) => (
                "prompt_unsupported",
                "invalid_request",
                400,
                Redirect,
                "Valeur de prompt non prise en charge.",
            ),
            E::PkceMethodUnsupported => (
                "pkce_method_unsupported",
                "invalid_request",
                400,
                Redirect,
                "code_challenge_method doit valoir S256.",
            ),
            E::PkceRequired => (
                "pkce_required",
                "invalid_request",
                400,
                Redirect,
                "Ce service doit utiliser PKCE (code_challenge, méthode S256).",
            ),
            E::InvalidMaxAge => (
                "max_age_invalid",
                "invalid_request",
                400,
                Redirect,
                "max_age doit être un entier positif.",
            ),
            E::FlowExpired => (
                "flow_expired",
                "invalid_request",
                400,
                Page,
                "Cette connexion a expiré ou est déjà terminée. Recommencez depuis le service.",
            ),
            E::FlowTooLarge => (
                "flow_too_large",
                "invalid_request",
                400,
                Redirect,
                "state, nonce et login_hint sont trop longs ensemble pour être portés par la connexion.",
            ),
            E::StaleAuthentication => (
                "idp_authentication_not_fresh",
                "login_required",
                502,
                Page,
                "Le fournisseur d'identité ne vous a pas authentifié aussi récemment que le service le demandait.",
            ),
            E::CsrfMismatch => (
                "csrf_mismatch",
                "invalid_request",
                403,
                Page,
                "Ce formulaire ne provient pas de la page de connexion de ce navigateur.",
            ),
            E::IdpNotAvailable => (
                "idp_not_available",
                "invalid_request",
                400,
                Page,
                "Ce fournisseur d'identité ne peut pas être choisi pour cette connexion.",
            ),
            E::Idp { .. } => (
                "idp_failure",
                "access_denied",
                502,
                Page,
                "Le fournisseur d'identité n'a pas pu confirmer votre identité.",
            ),
            E::ClientAuthFailed => (
                "client_authentication_failed",
                "invalid_client",
                401,
                Page,
                "L'authentification du client a échoué.",
            ),
            E::ClientAuthMethodMismatch(_) => (
                "client_auth_method_mismatch",
                "invalid_client",
                401,
                Page,
                "Méthode d'authentification du client non enregistrée.",
            ),
            E::MultipleClientAuth => (
                "multiple_client_auth",
                "invalid_request",
                400,
                Page,
                "Identifiants du client transmis de plusieurs façons.",
            ),
            E::AssertionAudience(_) => (
                "client_assertion_audience",
                "invalid_client",
                401,
                Page,
                "L'audience (aud) de l'assertion du client doit être l'émetteur du hub, seule.",
            ),
            E::AccessTokenInQuery => (
                "access_token_in_query",
                "invalid_request",
                400,
                Page,
                "Jeton d'accès transmis dans l'URL : envoyez-le dans l'en-tête Authorization.",
            ),
            E::ClientSecretExpired => (
                "client_secret_expired",
                "invalid_client",
                401,
                Page,
                "Le secret du client a expiré.",
            ),
            E::UnsupportedGrantType => (
                "unsupported_grant_type",
                "unsupported_grant_type",
                400,
                Page,
                "grant_type doit valoir authorization_code.",
            ),
            E::CodeMissing => (
                "code_missing",
                "invalid_request",
                400,
                Page,
                "Le paramètre code est absent.",
            ),
            E::CodeInvalid => (
                "code_invalid",
                "invalid_grant",
                400,
                Page,
                "Code inconnu ou expiré.",
            ),
            E::CodeReused => (
                "code_reused",
                "invalid_grant",
                400,
                Page,
                "Code déjà utilisé ; les jetons émis sont révoqués.",
            ),
            E::CodeClientMismatch => (
                "code_client_mismatch",
                "invalid_grant",
                400,
                Page,
                "Ce code a été émis pour un autre client.",
            ),
            E::TokenRedirectUriMismatch => (
                "token_redirect_uri_mismatch",
                "invalid_grant",
                400,
                Page,
                "redirect_uri différent de celui de la demande d'autorisation.",
            ),
            E::PkceFailed => (
                "pkce_failed",
                "invalid_grant",
                400,
                Page,
                "La vérification PKCE a échoué.",
            ),
            E::PkceExemptionLifted => (
                "pkce_exemption_lifted",
                "invalid_grant",
                400,
                Page,
                "Ce code a été obtenu sans PKCE et ce service n'en est plus dispensé.",
            ),
            E::InvalidToken => (
                "access_token_invalid",
                "invalid_token",
                401,
                Page,
                "Jeton d'accès absent, inconnu, expiré ou révoqué.",
            ),
            E::ClientBlocked(_) => (
                "client_blocked",
                "invalid_client",
                429,
                Page,
                "Trop d'échecs depuis ce client ou cette adresse ; réessayez plus tard.",
            ),
            E::TooManyRefusals(_) => (
                "too_many_refusals",
                "invalid_request",
                429,
                Page,
                "Trop de demandes refusées depuis cette adresse ; réessayez plus tard.",
            ),
            E::TokenParamMissing => (
                "token_missing",
                "invalid_request",
                400,
                Page,
                "Le paramètre token est absent.",
            ),
            E::UnsupportedTokenType => (
                "unsupported_token_type",
                "unsupported_token_type",
                400,
                Page,
                "token_type_hint doit valoir access_token ou refresh_token.",
            ),
            E::InvalidIdTokenHint => (
                "id_token_hint_invalid",
                "invalid_request",
                400,
                Page,
                "id_token_hint n'est pas un jeton d'identité émis par Relais.",
            ),
            E::PostLogoutRedirectUriMismatch => (
                "post_logout_redirect_uri_mismatch",
                "invalid_request",
                400,
                Page,
                "post_logout_redirect_uri n'est pas enregistrée pour ce service.",
            ),
            E::LogoutConfirmationInvalid => (
                "logout_confirmation_invalid",
                "invalid_request",
                403,
                Page,
                "Cette confirmation de déconnexion n'est pas valable pour la session de ce navigateur (expirée ou altérée).",
            ),
            E::AccountSuspended => (
                "account_suspended",
                "access_denied",
                403,
                Page,
                "Ce compte est suspendu par l'opérateur à la suite d'un signalement d'usurpation d'identité ; contactez le support.",
            ),
            E::AccountUnknown => (
                "account_unknown",
                "invalid_request",
                404,
                Page,
                "Aucun compte n'est connu sous cet identifiant.",
            ),
            E::AccountAlreadySuspended => (
                "account_already_suspended",
                "invalid_request",
                409,
                Page,
                "Ce compte est déjà suspendu.",
            ),
            E::AccountNotSuspended => (
                "account_not_suspended",
                "invalid_request",
                409,
                Page,
                "Ce compte n'est pas suspendu.",
            ),
            E::SuspensionInvalid(_) => (
                "suspension_request_invalid",
                "invalid_request",
                400,
                Page,
                "Demande de suspension refusée : dossier, motif ou compte manquant ou invalide.",
            ),
            E::SigningKeyUnreadable { .. } => (
                "signing_key_unreadable",
                "server_error",
                500,
                Page,
                "Erreur interne.",
            ),
            E::Unavailable(_) => (
                "service_unavailable",
                "temporarily_unavailable",
                503,
                Page,
                "Un service est momentanément indisponible. Réessayez dans quelques instants.",
            ),
            E::Internal(_) => (
                "internal_error",
                "server_error",
                500,
                Page,
                "Erreur interne.",
            ),
        };
        ErrorInfo {
            code,
            oauth,
            http_status,
            surface,
            fr,
        }
    }

    /// The stable code; for IdP failures the bridge's own code (`idp_*`).
    pub fn code(&self) -> String {
        match self {
            FrontError::Idp { code, .. } => code.clone(),
            other => other.info().code.to_string(),
        }
    }

    /// Failures that count toward blocking a client or an address (brute force).
    pub fn counts_as_attack(&self) -> bool {
        matches!(
            self,
            FrontError::ClientAuthFailed
                | FrontError::ClientAuthMethodMismatch(_)
                | FrontError::CodeInvalid
                | FrontError::CodeReused
                | FrontError::CodeClientMismatch
                | FrontError::TokenRedirectUriMismatch
                | FrontError::PkceFailed
        )
    }

    /// Words for a person in `locale`.
    pub fn message(&self, locale: Locale) -> String {
        match (self, locale) {
            (
                FrontError::Unavailable(_)
                | FrontError::Internal(_)
                | FrontError::SigningKeyUnreadable { .. },
                Locale::En,
            ) => "A service is temporarily unavailable. Please try again shortly.".into(),
            (_, Locale::En) => self.to_string(),
            (FrontError::Idp { message, .. }, _) => {
                format!("{} ({message})", self.info().fr)
            }
            _ => self.info().fr.to_string(),
        }
    }

    /// The OAuth error an SP receives when the user goes back to it after this failure
    /// of the sign-in (OIDC Core §3.1.2.6 and OpenID Connect Unmet Authentication
    /// Requirements 1.0).
    pub fn sp_error(&self) -> &'static str {
        match self {
            FrontError::Idp { code, .. } => match code.as_str() {
                "idp_acr_too_low" => "unmet_authentication_requirements",
                "idp_unreachable"
                | "idp_token_request_failed"
                | "idp_userinfo_failed"
                | "service_unavailable" => "temporarily_unavailable",
                _ => "access_denied",
            },
            FrontError::StaleAuthentication => "unmet_authentication_requirements",
            FrontError::Unavailable(_) => "temporarily_unavailable",
            _ => "access_denied",
        }
    }

    /// The `error_description` sent to SPs: English, precise, no secrets.
    pub fn description(&self) -> String {
        match self {
            // The SP learns the stable code, not why (the case stays the operator's).
            FrontError::AccountSuspended => "the account is suspended [account_suspended]".into(),
            FrontError::Unavailable(_) => "a service is temporarily unavailable".into(),
            FrontError::Internal(_) | FrontError::SigningKeyUnreadable { .. } => {
                "internal error".into()
            }
            _ => format!("{} [{}]", self, self.code()),
        }
    }
}

impl From<tokio_postgres::Error> for FrontError {
    fn from(e: tokio_postgres::Error) -> Self {
        FrontError::Unavailable(format!("database: {e}"))
    }
}

impl From<deadpool_postgres::PoolError> for FrontError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        FrontError::Unavailable(format!("database pool: {e}"))
    }
}

impl From<relais_jose::JoseError> for FrontError {
    fn from(e: relais_jose::JoseError) -> Self {
        FrontError::Internal(format!("jose: {e}"))
    }
}

impl From<relais_bus::BusError> for FrontError {
    fn from(e: relais_bus::BusError) -> Self {
        FrontError::Internal(format!("bus: {e}"))
    }
}

/// To a gRPC caller: the stable code and the SP-facing words, never a database message.
impl From<FrontError> for tonic::Status {
    fn from(e: FrontError) -> Self {
        use tonic::Code;
        let code = match &e {
            FrontError::Unavailable(_) => Code::Unavailable,
            FrontError::Internal(_) | FrontError::SigningKeyUnreadable { .. } => Code::Internal,
            FrontError::InvalidToken => Code::Unauthenticated,
            FrontError::AccountUnknown => Code::NotFound,
            FrontError::AccountAlreadySuspended | FrontError::AccountNotSuspended => {
                Code::FailedPrecondition
            }
            _ => Code::InvalidArgument,
        };
        if matches!(
            e,
            FrontError::Unavailable(_)
                | FrontError::Internal(_)
                | FrontError::SigningKeyUnreadable { .. }
        ) {
            tracing::error!(error = %e, "a call failed");
        }
        relais_runtime::status_with_code(code, e.description(), e.info().code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a person or an SP can see is documented with its cause and fix.
    #[test]
    fn every_code_is_documented() {
        let docs = include_str!("../../../docs/errors.md");
        let all = [
            FrontError::MissingClientId,
            FrontError::UnknownClient,
            FrontError::ClientSuspended,
            FrontError::MissingRedirectUri,
            FrontError::RedirectUriMismatch,
            FrontError::DuplicateParameter(String::new()),
            FrontError::TooManyParameters,
            FrontError::BadParameter(String::new()),
            FrontError::UnsupportedResponseType,
            FrontError::UnsupportedResponseMode,
            FrontError::OpenidScopeMissing,
            FrontError::UnknownScope(String::new()),
            FrontError::ScopeNotAllowed(String::new()),
            FrontError::StateMissing,
            FrontError::StateTooShort,
            FrontError::NonceMissing,
            FrontError::NonceTooShort,
            FrontError::UnknownAcr(String::new()),
            FrontError::AcrNotAllowed(String::new()),
            FrontError::ClaimsMalformed,
            FrontError::RequestNotSupported,
            FrontError::RequestUriNotSupported,
            FrontError::LoginRequired,
            FrontError::InteractionRequired,
            FrontError::UnsupportedPrompt(String::new()),
            FrontError::PkceMethodUnsupported,
            FrontError::PkceRequired,
            FrontError::InvalidMaxAge,
            FrontError::FlowExpired,
            FrontError::FlowTooLarge,
            FrontError::StaleAuthentication,
            FrontError::CsrfMismatch,
            FrontError::IdpNotAvailable,
            FrontError::ClientAuthFailed,
            FrontError::ClientAuthMethodMismatch(String::new()),
            FrontError::MultipleClientAuth,
            FrontError::AccessTokenInQuery,
            FrontError::AssertionAudience(String::new()),
            FrontError::ClientSecretExpired,
            FrontError::UnsupportedGrantType,
            FrontError::CodeMissing,
            FrontError::CodeInvalid,
            FrontError::CodeReused,
            FrontError::CodeClientMismatch,
            FrontError::TokenRedirectUriMismatch,
            FrontError::PkceFailed,
            FrontError::PkceExemptionLifted,
            FrontError::InvalidToken,
            FrontError::TokenParamMissing,
            FrontError::ClientBlocked(1),
            FrontError::TooManyRefusals(1),
            FrontError::UnsupportedTokenType,
            FrontError::InvalidIdTokenHint,
            FrontError::PostLogoutRedirectUriMismatch,
            FrontError::LogoutConfirmationInvalid,
            FrontError::AccountSuspended,
            FrontError::AccountUnknown,
            FrontError::AccountAlreadySuspended,
            FrontError::AccountNotSuspended,
            FrontError::SuspensionInvalid(String::new()),
            FrontError::SigningKeyUnreadable {
                kid: String::new(),
                reason: String::new(),
            },
            FrontError::Unavailable(String::new()),
            FrontError::Internal(String::new()),
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
