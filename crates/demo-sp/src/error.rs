//! The crate's one error type: start-up failures and the ways a sign-in can go wrong.

use axum::http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration is not valid TOML for the demo SP: {0}")]
    ConfigSyntax(String),
    #[error("configuration field `{field}` is wrong: {reason}")]
    Config { field: String, reason: String },
    #[error("cannot read configuration file {path}: {source}")]
    ConfigFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("the HTTP server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),

    #[error("le fournisseur d'identité est injoignable ou sa configuration est invalide : {0}")]
    Discovery(String),
    #[error("aucune connexion en cours pour ce navigateur (cookie absent ou expiré)")]
    NoSession,
    #[error("le paramètre state ne correspond à aucune connexion en cours")]
    StateMismatch,
    #[error("le paramètre iss ({got}) n'est pas l'émetteur attendu ({expected}) (RFC 9207)")]
    IssuerMismatch { expected: String, got: String },
    #[error("le paramètre iss est absent alors que le fournisseur annonce l'envoyer (RFC 9207)")]
    IssuerMissing,
    #[error("le fournisseur a répondu par l'erreur « {error} »{}", description.as_deref().map(|d| format!(" : {d}")).unwrap_or_default())]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("la réponse ne contient pas de code d'autorisation")]
    MissingCode,
    #[error("l'échange du code contre les jetons a échoué : {0}")]
    TokenExchange(String),
    #[error("l'ID token est refusé : {0}")]
    IdToken(String),
    #[error("niveau de garantie insuffisant : demandé {asked}, obtenu {got}")]
    AcrTooLow { asked: String, got: String },
    #[error("la requête userinfo a échoué : {0}")]
    UserInfo(String),
    #[error("le paramètre state du retour de déconnexion est invalide")]
    LogoutStateMismatch,
}

impl Error {
    /// The HTTP status of the page that shows this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::Discovery(_) | Error::TokenExchange(_) | Error::UserInfo(_) => {
                StatusCode::BAD_GATEWAY
            }
            Error::NoSession
            | Error::StateMismatch
            | Error::IssuerMismatch { .. }
            | Error::IssuerMissing
            | Error::Provider { .. }
            | Error::MissingCode
            | Error::IdToken(_)
            | Error::AcrTooLow { .. }
            | Error::LogoutStateMismatch => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short code shown next to the message, so a developer can search for it.
    pub(crate) fn code(&self) -> &str {
        match self {
            Error::Provider { error, .. } => error,
            Error::Discovery(_) => "discovery_failed",
            Error::NoSession => "no_session",
            Error::StateMismatch => "state_mismatch",
            Error::IssuerMismatch { .. } => "issuer_mismatch",
            Error::IssuerMissing => "issuer_missing",
            Error::MissingCode => "missing_code",
            Error::TokenExchange(_) => "token_exchange_failed",
            Error::IdToken(_) => "invalid_id_token",
            Error::AcrTooLow { .. } => "acr_too_low",
            Error::UserInfo(_) => "userinfo_failed",
            Error::LogoutStateMismatch => "logout_state_mismatch",
            _ => "internal_error",
        }
    }
}
