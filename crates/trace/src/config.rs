use relais_config::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointKey;
use crate::cosignature::WitnessVerifier;

/// A century: more is a typo, and would overflow the date arithmetic sooner or later.
const MAX_RETENTION_MONTHS: u32 = 1200;
/// A purge's chunk must stay a short transaction.
const MAX_PURGE_BATCH: u32 = 100_000;

/// A witness the log sends its checkpoints to (C2SP tlog-witness).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WitnessLink {
    /// Its submission prefix: checkpoints are posted to `<url>/add-checkpoint`.
    pub url: String,
    /// Its cosignature/v1 verifier key (`<name>+<id>+<key>`), e.g. what `relais trace
    /// witness-key` printed.
    pub key: String,
}

/// Settings of the proof store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// gRPC listen address (port 0: any free port).
    pub listen: String,
    /// The log's origin line (C2SP tlog-checkpoint), e.g. `relais.example.gouv.fr/trace`:
    /// the name of the log and of its key; it never changes for the life of the log.
    pub origin: String,
    /// The Ed25519 private key checkpoints are signed with, in the signed-note format
    /// (`relais admin checkpoint-key FILE` makes one).
    pub checkpoint_key: Secret,
    /// A file holding that key instead (read at start).
    pub checkpoint_key_file: String,
    /// How often a checkpoint is signed and stored, when the log grew since the last one.
    pub checkpoint_interval_seconds: u64,
    /// The witnesses each new checkpoint is sent to; their cosignatures are kept with it.
    pub witnesses: Vec<WitnessLink>,
    /// How long a witness is waited for, per request.
    pub witness_timeout_seconds: u64,
    /// The registry: investigators (role `investigator`) by e-mail address, for lookups
    /// through the gateway's REST investigation API.
    pub registry_url: String,
    /// oidc-front: whether an investigator's access token is live.
    pub oidc_front_url: String,
    /// The client investigators sign in to (scope `email`): only its access tokens open
    /// the REST investigation API.
    pub investigation_client_id: String,
    /// The acr levels an investigator's sign-in must have reached.
    pub investigator_acr_values: Vec<String>,
    /// The hub's own account page client (scope `openid`): only its access tokens show a
    /// person their own history.
    pub account_client_id: String,
    /// How long records are kept: those received longer ago are purged (36 months: the
    /// legal retention of traceability data).
    pub retention_months: u32,
    /// How often the purge runs.
    pub purge_interval_seconds: u64,
    /// Records deleted per transaction by a purge: each chunk is short, ingest goes on.
    pub purge_batch: u32,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            listen: "127.0.0.1:7104".into(),
            origin: "localhost/relais-trace".into(),
            checkpoint_key: Secret::default(),
            checkpoint_key_file: String::new(),
            checkpoint_interval_seconds: 60,
            witnesses: Vec::new(),
            witness_timeout_seconds: 10,
            registry_url: "http://127.0.0.1:7101".into(),
            oidc_front_url: "http://127.0.0.1:7102".into(),
            investigation_client_id: "support-console".into(),
            investigator_acr_values: vec!["eidas2".into(), "eidas3".into()],
            account_client_id: "relais-account".into(),
            retention_months: 36,
            purge_interval_seconds: 3600,
            purge_batch: 1000,
        }
    }
}

impl TraceConfig {
    /// Checks the settings without I/O; `issuer` is the hub's public URL: the development
    /// key (used when no key is set) is taken only on loopback.
    pub fn validate(&self, issuer: &str) -> Result<(), ConfigError> {
        if !signed_note::is_key_name_valid(&self.origin) {
            return Err(ConfigError::invalid(
                "trace.origin",
                "must be a non-empty name without spaces or '+', e.g. relais.example.gouv.fr/trace",
            ));
        }
        if self.checkpoint_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "trace.checkpoint_interval_seconds",
                "must be at least 1",
            ));
        }
        if self.witness_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "trace.witness_timeout_seconds",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_RETENTION_MONTHS).contains(&self.retention_months) {
            return Err(ConfigError::invalid(
                "trace.retention_months",
                format!("must be between 1 and {MAX_RETENTION_MONTHS}"),
            ));
        }
        if self.purge_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "trace.purge_interval_seconds",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_PURGE_BATCH).contains(&self.purge_batch) {
            return Err(ConfigError::invalid(
                "trace.purge_batch",
                format!("must be between 1 and {MAX_PURGE_BATCH}"),
            ));
        }
        self.witness_verifiers()?;
        if self.account_client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "trace.account_client_id",
                "must name the hub's account page client",
            ));
        }
        if self.investigation_client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "trace.investigation_client_id",
                "must name the client investigators sign in to",
            ));
        }
        if self.investigator_acr_values.is_empty()
            || self
                .investigator_acr_values
                .iter()
                .any(|a| a.trim().is_empty())
        {
            return Err(ConfigError::invalid(
                "trace.investigator_acr_values",
                "must list at least one acr level",
            ));
        }
        let file = !self.checkpoint_key_file.trim().is_empty();
        match (self.checkpoint_key.is_empty(), file) {
            (false, true) => Err(ConfigError::invalid(
                "trace.checkpoint_key_file",
                "is set with trace.checkpoint_key: set one of them",
            )),
            (false, false) => CheckpointKey::parse(self.checkpoint_key.expose(), &self.origin)
                .map(|_| ())
                .map_err(|e| ConfigError::invalid("trace.checkpoint_key", e.to_string())),
            (true, true) => Ok(()),
            (true, false) if relais_config::is_loopback_url(issuer) => Ok(()),
            (true, false) => Err(ConfigError::invalid(
                "trace.checkpoint_key",
                format!(
                    "must be set (or trace.checkpoint_key_file): the development key is for \
                     loopback only, and the issuer {issuer} is not (`relais admin \
                     checkpoint-key FILE` makes a key)"
                ),
            )),
        }
    }

    /// The witnesses' verifier keys, each with its URL; two of one name are refused.
    pub fn witness_verifiers(&self) -> Result<Vec<(String, WitnessVerifier)>, ConfigError> {
        let mut out: Vec<(String, WitnessVerifier)> = Vec::new();
        for (i, w) in self.witnesses.iter().enumerate() {
            let field = |f: &str| format!("trace.witnesses[{i}].{f}");
            let url = w.url.trim().trim_end_matches('/');
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    field("url"),
                    "must be an http:// or https:// URL (the witness's submission prefix)",
                ));
            }
            let verifier = WitnessVerifier::parse(&w.key)
                .map_err(|e| ConfigError::invalid(field("key"), e.to_string()))?;
            if out.iter().any(|(_, v)| v.name() == verifier.name()) {
                return Err(ConfigError::invalid(
                    field("key"),
                    format!("the witness {} is given twice", verifier.name()),
                ));
            }
            out.push((url.to_string(), verifier));
        }
        Ok(out)
    }

    /// The signing key: the one set, the file's, or the development key.
    pub fn key(&self) -> Result<CheckpointKey, ConfigError> {
        if !self.checkpoint_key.is_empty() {
            return CheckpointKey::parse(self.checkpoint_key.expose(), &self.origin)
                .map_err(|e| ConfigError::invalid("trace.checkpoint_key", e.to_string()));
        }
        let path = self.checkpoint_key_file.trim();
        if !path.is_empty() {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid("trace.checkpoint_key_file", format!("{path}: {e}"))
            })?;
            return CheckpointKey::parse(&text, &self.origin).map_err(|e| {
                ConfigError::invalid("trace.checkpoint_key_file", format!("{path}: {e}"))
            });
        }
        CheckpointKey::development(&self.origin)
            .map_err(|e| ConfigError::invalid("trace.origin", e.to_string()))
    }
}
