use relais_config::{ConfigError, KekFields, KekSettings, Secret};
use serde::{Deserialize, Serialize};

/// Settings of the OpenID Provider that SPs see.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcFrontConfig {
    /// gRPC listen address (port 0: any free port).
    pub listen: String,
    /// The issuer SPs see: the gateway's public URL, no trailing slash.
    pub issuer: String,
    pub registry_url: String,
    pub idp_bridge_url: String,
    /// Key of the HMAC deriving per-SP subjects (at least 32 characters). Changing it
    /// changes every subject: keep it for the life of the deployment.
    pub subject_key: Secret,
    /// Keys sealing the browser's flow cookie (each at least 32 characters): the first
    /// seals, all open. To rotate, add the new key second on every replica, then put it
    /// first, then drop the old one after `flow_ttl_seconds`.
    pub flow_keys: Vec<Secret>,
    /// The key-encryption key the signing keys are sealed under at rest (256 bits at
    /// least), from the environment (`RELAIS__OIDC_FRONT__KEY_ENCRYPTION_KEY`) or a file;
    /// neither: a development key, refused off loopback.
    pub key_encryption_key: Secret,
    /// A file holding the key-encryption key (a trailing newline is ignored), e.g. a
    /// mounted Kubernetes Secret; set this or `key_encryption_key`, not both.
    pub key_encryption_key_file: String,
    /// More key-encryption keys the signing keys may be sealed under: they open, never
    /// seal, and a key found under one is sealed again under the current KEK at start. To
    /// change the KEK: add the new one here on every replica, then make it the KEK with the
    /// old one here, then, once every replica has started so, remove the old one.
    pub other_key_encryption_keys: Vec<Secret>,
    /// How long SPs may cache the JWKS (announced as its `Cache-Control: max-age`): a new
    /// signing key is published this long, and `signing_keys_reload_seconds`, before it signs.
    pub jwks_cache_seconds: u32,
    /// How often every replica reads the signing keys again, so that all follow a
    /// rotation without a restart.
    pub signing_keys_reload_seconds: u32,
    /// Assurance levels, lowest first.
    pub acr_levels: Vec<String>,
    pub code_ttl_seconds: u32,
    pub access_token_ttl_seconds: u32,
    pub id_token_ttl_seconds: u32,
    /// From /authorize to the IdP's callback.
    pub flow_ttl_seconds: u32,
    pub session_ttl_seconds: u32,
    /// Single sign-on in this deployment: a live hub session signs the user in at SPs
    /// registered with `sso`, for the acr levels they allow, without the chooser or the
    /// IdP. Off by default, as AgentConnect's terms have it.
    pub sso_enabled: bool,
    /// Whose account an IdP identity is: `idp_subject` (one per IdP account) or
    /// `pivot_identity` (one per person, from the pivot identity every IdP must then give).
    pub accounts: crate::domain::accounts::AccountMapping,
    /// How long partner records are cached; changes announced on the bus apply at once.
    pub partner_cache_seconds: u32,
    /// Authorization requests refused before their client is known (unknown client,
    /// unregistered redirect URI) one address may send per minute, per replica; past it,
    /// `too_many_refusals`.
    pub authorize_refusals_per_minute: u32,
    /// Failed client authentications or bad codes, per client and per source address,
    /// within `brute_force_window_seconds`, that block the subject.
    pub brute_force_max_failures: u32,
    pub brute_force_window_seconds: u32,
    /// The first block's length; each next one doubles, up to the maximum.
    pub brute_force_block_seconds: u32,
    pub brute_force_max_block_seconds: u32,
    /// Pauses before each new attempt to deliver a back-channel logout an SP did not
    /// accept (unreachable, timed out, not 2xx); after the last the delivery is given up
    /// and recorded as failed.
    pub backchannel_logout_retry_seconds: Vec<u32>,
    /// How long an SP's back-channel logout endpoint may take to answer.
    pub backchannel_logout_timeout_seconds: u32,
    /// Deliveries under way at once, per replica (a slow SP holds up only one).
    pub backchannel_logout_workers: u32,
}

impl Default for OidcFrontConfig {
    fn default() -> Self {
        OidcFrontConfig {
            listen: "127.0.0.1:7102".into(),
            issuer: "http://127.0.0.1:8000".into(),
            registry_url: "http://127.0.0.1:7101".into(),
            idp_bridge_url: "http://127.0.0.1:7103".into(),
            subject_key: Secret::new("change-me-subject-key-0123456789abcdef"),
            flow_keys: vec![Secret::new("change-me-flow-key-0123456789abcdefghij")],
            key_encryption_key: Secret::default(),
            key_encryption_key_file: String::new(),
            other_key_encryption_keys: Vec::new(),
            jwks_cache_seconds: 300,
            signing_keys_reload_seconds: 60,
            acr_levels: vec!["eidas1".into(), "eidas2".into(), "eidas3".into()],
            code_ttl_seconds: 60,
            access_token_ttl_seconds: 1800,
            id_token_ttl_seconds: 600,
            flow_ttl_seconds: 900,
            session_ttl_seconds: 1800,
            sso_enabled: false,
            accounts: crate::domain::accounts::AccountMapping::IdpSubject,
            partner_cache_seconds: 30,
            authorize_refusals_per_minute: 60,
            brute_force_max_failures: 10,
            brute_force_window_seconds: 600,
            brute_force_block_seconds: 60,
            brute_force_max_block_seconds: 3600,
            backchannel_logout_retry_seconds: vec![10, 60, 300, 1800, 3600, 7200],
            backchannel_logout_timeout_seconds: 5,
            backchannel_logout_workers: 2,
        }
    }
}

impl OidcFrontConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = url::Url::parse(&self.issuer)
            .map_err(|_| ConfigError::invalid("oidc_front.issuer", "must be an absolute URL"))?;
        let loopback = matches!(issuer.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if issuer.scheme() != "https" && !(issuer.scheme() == "http" && loopback) {
            return Err(ConfigError::invalid(
                "oidc_front.issuer",
                "must be https (http only on loopback)",
            ));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() || self.issuer.ends_with('/') {
            return Err(ConfigError::invalid(
                "oidc_front.issuer",
                "must have no query, fragment or trailing slash",
            ));
        }
        if self.subject_key.expose().len() < 32 {
            return Err(ConfigError::invalid(
                "oidc_front.subject_key",
                "must be at least 32 characters",
            ));
        }
        if self.flow_keys.is_empty() || self.flow_keys.iter().any(|k| k.expose().len() < 32) {
            return Err(ConfigError::invalid(
                "oidc_front.flow_keys",
                "needs at least one key, each of at least 32 characters",
            ));
        }
        self.kek().validate()?;
        if !(1..=86_400).contains(&self.jwks_cache_seconds) {
            return Err(ConfigError::invalid(
                "oidc_front.jwks_cache_seconds",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=3_600).contains(&self.signing_keys_reload_seconds) {
            return Err(ConfigError::invalid(
                "oidc_front.signing_keys_reload_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.acr_levels.is_empty() {
            return Err(ConfigError::invalid(
                "oidc_front.acr_levels",
                "must not be empty",
            ));
        }
        for (i, l) in self.acr_levels.iter().enumerate() {
            if self.acr_levels[..i].contains(l) {
                return Err(ConfigError::invalid(
                    "oidc_front.acr_levels",
                    "has duplicates",
                ));
            }
        }
        if !(1..=60).contains(&self.code_ttl_seconds) {
            return Err(ConfigError::invalid(
                "oidc_front.code_ttl_seconds",
                "must be between 1 and 60",
            ));
        }
        for (field, v) in [
            (
                "oidc_front.access_token_ttl_seconds",
                self.access_token_ttl_seconds,
            ),
            ("oidc_front.id_token_ttl_seconds", self.id_token_ttl_seconds),
            ("oidc_front.flow_ttl_seconds", self.flow_ttl_seconds),
            ("oidc_front.session_ttl_seconds", self.session_ttl_seconds),
            (
                "oidc_front.authorize_refusals_per_minute",
                self.authorize_refusals_per_minute,
            ),
            (
                "oidc_front.brute_force_max_failures",
                self.brute_force_max_failures,
            ),
            (
                "oidc_front.brute_force_window_seconds",
                self.brute_force_window_seconds,
            ),
            (
                "oidc_front.brute_force_block_seconds",
                self.brute_force_block_seconds,
            ),
            (
                "oidc_front.brute_force_max_block_seconds",
                self.brute_force_max_block_seconds,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(field, "must be positive"));
            }
        }
        let retries = &self.backchannel_logout_retry_seconds;
        if retries.len() > 20 || retries.iter().any(|s| !(1..=86_400).contains(s)) {
            return Err(ConfigError::invalid(
                "oidc_front.backchannel_logout_retry_seconds",
                "at most 20 pauses, each between 1 and 86400",
            ));
        }
        if !(1..=30).contains(&self.backchannel_logout_timeout_seconds) {
            return Err(ConfigError::invalid(
                "oidc_front.backchannel_logout_timeout_seconds",
                "must be between 1 and 30",
            ));
        }
        if !(1..=16).contains(&self.backchannel_logout_workers) {
            return Err(ConfigError::invalid(
                "oidc_front.backchannel_logout_workers",
                "must be between 1 and 16",
            ));
        }
        Ok(())
    }

    /// The key-encryption key settings (the rule shared with the registry).
    pub fn kek(&self) -> KekSettings<'_> {
        KekSettings {
            fields: KekFields {
                key: "oidc_front.key_encryption_key",
                file: "oidc_front.key_encryption_key_file",
                others: "oidc_front.other_key_encryption_keys",
            },
            key: &self.key_encryption_key,
            file: &self.key_encryption_key_file,
            others: &self.other_key_encryption_keys,
        }
    }

    /// The key-encryption key, read from its file if one is named; the development key
    /// when none is set. Checked as a deployment's key, naming the field it came from.
    pub fn key_encryption_key(&self) -> Result<Secret, ConfigError> {
        self.kek().checked(&self.issuer)
    }

    /// The deployment keys of this section (for `relais_config::check_deployment_key`);
    /// the key-encryption key is checked where it is read.
    pub fn deployment_keys(&self) -> Vec<(&'static str, &Secret)> {
        let mut keys = vec![("oidc_front.subject_key", &self.subject_key)];
        keys.extend(self.flow_keys.iter().map(|k| ("oidc_front.flow_keys", k)));
        keys.extend(self.kek().deployment_keys());
        keys
    }

    pub fn throttle_limits(&self) -> crate::domain::throttle::Limits {
        let secs = |s: u32| time::Duration::seconds(i64::from(s));
        crate::domain::throttle::Limits {
            max_failures: self.brute_force_max_failures,
            window: secs(self.brute_force_window_seconds),
            base_block: secs(self.brute_force_block_seconds),
            max_block: secs(self.brute_force_max_block_seconds),
        }
    }
}
