//! Logging and metrics set-up shared by every Relais binary. Logs go to stderr as text
//! or JSON lines; the level comes from `RUST_LOG` or the config. Callers must never log a
//! secret, a code, a token or identity data: events name partners and outcomes only.

pub mod metrics;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// How logs are written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// A tracing filter such as `info` or `relais_oidc_front=debug,info`.
    pub log_level: String,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Where `/metrics` is served (Prometheus text format), e.g. `127.0.0.1:9100`;
    /// empty serves none.
    pub metrics_listen: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_level: "info".into(),
            log_format: LogFormat::Text,
            metrics_listen: String::new(),
        }
    }
}

/// Installs the global subscriber once; later calls (tests starting several services)
/// are no-ops.
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_target(true))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    // Already installed by an earlier service in the same process: keep it.
    let _ = result;
}
