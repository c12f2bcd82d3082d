//! The crate's one error type.

/// What can stop the demo IdP from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration is not valid TOML for the demo IdP: {0}")]
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
    #[error("signing key error: {0}")]
    Jose(#[from] josekit::JoseError),
    #[error("the HTTP server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}
