use relais_config::{ConfigError, KekFields, KekSettings, Secret};
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
    /// The key-encryption key the IdPs' client secrets are sealed under at rest (256 bits
    /// at least), from the environment (`RELAIS__REGISTRY__KEY_ENCRYPTION_KEY`) or a file;
    /// neither: a development key, refused off loopback.
    pub key_encryption_key: Secret,
    /// A file holding the key-encryption key (a trailing newline is ignored), e.g. a
    /// mounted Kubernetes Secret; set this or `key_encryption_key`, not both.
    pub key_encryption_key_file: String,
    /// More key-encryption keys the secrets may be sealed under: they open, never seal,
    /// and a secret found under one is sealed again under the current KEK at start.
    pub other_key_encryption_keys: Vec<Secret>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            listen: "127.0.0.1:7101".into(),
            seed_file: None,
            secret_hash_key: Secret::new("change-me-registry-secret-hash-key-0001"),
            secret_lifetime_days: 3 * 365,
            key_encryption_key: Secret::default(),
            key_encryption_key_file: String::new(),
            other_key_encryption_keys: Vec::new(),
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
        self.kek().validate()
    }

    /// The key-encryption key settings (the rule shared with the front). The registry
    /// knows no issuer: `relais` checks them as a deployment's keys against the front's.
    pub fn kek(&self) -> KekSettings<'_> {
        KekSettings {
            fields: KekFields {
                key: "registry.key_encryption_key",
                file: "registry.key_encryption_key_file",
                others: "registry.other_key_encryption_keys",
            },
            key: &self.key_encryption_key,
            file: &self.key_encryption_key_file,
            others: &self.other_key_encryption_keys,
        }
    }
}
