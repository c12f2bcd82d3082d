use relais_config::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

/// Settings of the OpenID Connect client toward identity providers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdpBridgeConfig {
    /// gRPC listen address (port 0: any free port).
    pub listen: String,
    pub registry_url: String,
    /// Where IdPs send the browser back (the gateway's `/idp/callback`), as registered
    /// at each IdP.
    pub callback_url: String,
    /// Where IdPs send the browser after logout (the gateway's `/idp/logout-callback`).
    pub logout_callback_url: String,
    /// How long an IdP's discovery document and keys are kept.
    pub metadata_cache_seconds: u32,
    /// Keys sealing the round trips handed to oidc-front (each at least 32 characters):
    /// the first seals, all open; rotate as `oidc_front.flow_keys`.
    pub round_trip_keys: Vec<Secret>,
    /// How long the browser may stay at the IdP.
    pub round_trip_ttl_seconds: u32,
    /// Timeout of each call to an IdP.
    pub http_timeout_ms: u64,
    /// Tolerated clock difference with IdPs for `iat` and `exp`.
    pub clock_skew_seconds: u32,
    /// Least time between two fetches of an IdP's keys for an unknown `kid`.
    pub jwks_refresh_min_seconds: u32,
    /// How long an IdP's registry record (client id, secret, status) is reused: a change
    /// in the registry reaches this bridge within it (oidc-front, which hears changes at
    /// once, stops offering a disabled IdP). 0 asks the registry at every step.
    pub registry_cache_ms: u64,
    /// Hosts besides its issuer's on which an IdP's endpoints may be (the authorization,
    /// token, userinfo, JWKS and logout URLs of its discovery); empty: the issuer's only.
    pub idp_endpoint_hosts: Vec<String>,
}

impl Default for IdpBridgeConfig {
    fn default() -> Self {
        IdpBridgeConfig {
            listen: "127.0.0.1:7103".into(),
            registry_url: "http://127.0.0.1:7101".into(),
            callback_url: "http://127.0.0.1:8000/idp/callback".into(),
            logout_callback_url: "http://127.0.0.1:8000/idp/logout-callback".into(),
            metadata_cache_seconds: 300,
            round_trip_keys: vec![Secret::new("change-me-round-trip-key-0123456789abcdef")],
            round_trip_ttl_seconds: 900,
            http_timeout_ms: 10_000,
            clock_skew_seconds: 60,
            jwks_refresh_min_seconds: 60,
            registry_cache_ms: 2_000,
            idp_endpoint_hosts: Vec::new(),
        }
    }
}

impl IdpBridgeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("idp_bridge.callback_url", &self.callback_url),
            ("idp_bridge.logout_callback_url", &self.logout_callback_url),
        ] {
            url::Url::parse(v)
                .map_err(|_| ConfigError::invalid(field, "must be an absolute URL"))?;
        }
        if self.round_trip_keys.is_empty()
            || self.round_trip_keys.iter().any(|k| k.expose().len() < 32)
        {
            return Err(ConfigError::invalid(
                "idp_bridge.round_trip_keys",
                "needs at least one key, each of at least 32 characters",
            ));
        }
        if self.http_timeout_ms == 0 || self.round_trip_ttl_seconds == 0 {
            return Err(ConfigError::invalid(
                "idp_bridge.http_timeout_ms",
                "timeouts must be positive",
            ));
        }
        Ok(())
    }
}
