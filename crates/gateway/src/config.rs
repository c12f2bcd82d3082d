//! The gateway's configuration, checked without I/O (certificate files are read by `start`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use relais_config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::forwarded::{ForwardedHeader, ProxyNetwork};

/// Upper bound on `max_body_bytes`: no OIDC request needs more, and it bounds memory.
const MAX_BODY_CEILING: usize = 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the HTTP(S) listener binds, e.g. `127.0.0.1:8000`.
    pub listen: String,
    /// The URL browsers and SPs use to reach the gateway; `https` makes cookies `Secure`
    /// and turns HSTS on even when TLS ends at a proxy in front.
    pub public_url: String,
    /// gRPC endpoint of the oidc-front service.
    pub oidc_front_url: String,
    /// gRPC endpoint of the support service (`/api/support/v1`).
    pub support_url: String,
    /// gRPC endpoint of the trace service (`/.well-known/relais-checkpoint`).
    pub trace_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, body and backend call included.
    pub request_timeout_ms: u64,
    /// Serve HTTPS with this certificate and key; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Whether plain HTTP may be served (no `tls`): for development only, so it must be
    /// asked for explicitly.
    pub allow_plain_http: bool,
    /// Networks of the proxies and load balancers in front of the gateway (CIDR, or a bare
    /// address). A peer outside them is the client, whatever headers it sends; behind them
    /// the client is the rightmost hop of `forwarded_header` that is not in them.
    pub trusted_proxies: Vec<ProxyNetwork>,
    /// The header the trusted proxies write the client into; the other is not read.
    pub forwarded_header: ForwardedHeader,
    /// Every connection starts with a PROXY protocol header (v2, or v1) carrying the real
    /// source address and port; only peers in `trusted_proxies` may connect.
    pub proxy_protocol: bool,
    /// The hub's own account page (`/account`, a person's connection history) signs in
    /// as this SP of the hub, like any SP.
    pub account_client_id: String,
    /// Its client secret (`client_secret_basic`); empty: no account page.
    pub account_client_secret: relais_config::Secret,
    /// Keys sealing the account page's cookies (at least 32 characters; the first seals,
    /// all open). Empty: a key of this process's own, so the page's sign-ins last until a
    /// restart and do not cross to another gateway.
    pub account_cookie_secrets: Vec<relais_config::Secret>,
}

/// PEM files: the certificate chain (leaf first) and its private key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8000".to_string(),
            public_url: "http://127.0.0.1:8000".to_string(),
            oidc_front_url: "http://127.0.0.1:7102".to_string(),
            support_url: "http://127.0.0.1:7105".to_string(),
            trace_url: "http://127.0.0.1:7104".to_string(),
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            tls: None,
            allow_plain_http: false,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            proxy_protocol: false,
            account_client_id: "relais-account".to_string(),
            account_client_secret: relais_config::Secret::default(),
            account_cookie_secrets: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "gateway.listen",
                "must be an IP address and port, e.g. 127.0.0.1:8000",
            ));
        }
        check_http_url("gateway.public_url", &self.public_url)?;
        check_http_url("gateway.oidc_front_url", &self.oidc_front_url)?;
        check_http_url("gateway.support_url", &self.support_url)?;
        check_http_url("gateway.trace_url", &self.trace_url)?;
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_CEILING {
            return Err(ConfigError::invalid(
                "gateway.max_body_bytes",
                format!("must be between 1 and {MAX_BODY_CEILING}"),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "gateway.request_timeout_ms",
                "must be at least 1",
            ));
        }
        if !self.account_client_secret.is_empty() && self.account_client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "gateway.account_client_id",
                "must name the account page's SP when its secret is set",
            ));
        }
        if self
            .account_cookie_secrets
            .iter()
            .any(|s| s.expose().chars().count() < 32)
        {
            return Err(ConfigError::invalid(
                "gateway.account_cookie_secrets",
                "each must be at least 32 characters",
            ));
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(ConfigError::invalid(
                "gateway.proxy_protocol",
                "needs gateway.trusted_proxies: only the load balancers listed there may connect",
            ));
        }
        match &self.tls {
            Some(tls) => {
                if tls.cert_path.as_os_str().is_empty() {
                    return Err(ConfigError::invalid(
                        "gateway.tls.cert_path",
                        "must not be empty",
                    ));
                }
                if tls.key_path.as_os_str().is_empty() {
                    return Err(ConfigError::invalid(
                        "gateway.tls.key_path",
                        "must not be empty",
                    ));
                }
            }
            None if !self.allow_plain_http => {
                return Err(ConfigError::invalid(
                    "gateway.tls",
                    "is required when allow_plain_http is false",
                ));
            }
            None => {}
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Whether browsers reach the gateway over HTTPS (directly or through a proxy).
    pub fn is_https(&self) -> bool {
        self.tls.is_some() || self.public_url.starts_with("https://")
    }
}

fn check_http_url(field: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        _ => Err(ConfigError::invalid(
            field,
            "must be an absolute http:// or https:// URL",
        )),
    }
}
