use relais_config::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

/// Settings of the registry service.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// gRPC listen address (port 0: any free port).
    pub listen: String,
    /// Partners to create or update at start (`deploy/partners.toml` for `make run`).
    pub seed_file: Option<String>,
    /// Key of the HMAC that client secrets are stored under (at least 32 characters).
    pub secret_hash_key: Secret,
    /// How long a client secret stays valid, in days (three years by the terms of use).
    pub secret_lifetime_days: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            listen: "127.0.0.1:7101".into(),
            seed_file: None,
            secret_hash_key: Secret::new("change-me-registry-secret-hash-key-0001"),
            secret_lifetime_days: 3 * 365,
        }
    }
}

impl RegistryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secret_hash_key.expose().len() < 32 {
            return Err(ConfigError::invalid(
                "registry.secret_hash_key",
                "must be at least 32 characters",
            ));
        }
        if self.secret_lifetime_days == 0 || self.secret_lifetime_days > 3 * 366 {
            return Err(ConfigError::invalid(
                "registry.secret_lifetime_days",
                "must be between 1 and three years",
            ));
        }
        Ok(())
    }
}
