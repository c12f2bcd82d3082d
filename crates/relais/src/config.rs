//! The whole hub's configuration: one section per service plus what they share.

use relais_bus::BusConfig;
use relais_config::{ConfigError, DatabaseConfig, GrpcConfig};
use relais_gateway::GatewayConfig;
use relais_idp_bridge::IdpBridgeConfig;
use relais_oidc_front::OidcFrontConfig;
use relais_registry::RegistryConfig;
use relais_support::SupportConfig;
use relais_telemetry::TelemetryConfig;
use relais_trace::TraceConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaisConfig {
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    /// How the services' gRPC links are authenticated (mTLS, or plaintext on loopback).
    pub grpc: GrpcConfig,
    pub telemetry: TelemetryConfig,
    pub gateway: GatewayConfig,
    pub oidc_front: OidcFrontConfig,
    pub idp_bridge: IdpBridgeConfig,
    pub registry: RegistryConfig,
    pub trace: TraceConfig,
    pub support: SupportConfig,
}

impl RelaisConfig {
    /// Checks every section, with no I/O; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.bus.validate().map_err(bus_error)?;
        self.gateway.validate()?;
        self.oidc_front.validate()?;
        self.idp_bridge.validate()?;
        self.registry.validate()?;
        self.grpc.validate(
            &self.oidc_front.issuer,
            &[
                ("registry.listen", &self.registry.listen),
                ("oidc_front.listen", &self.oidc_front.listen),
                ("idp_bridge.listen", &self.idp_bridge.listen),
                ("trace.listen", &self.trace.listen),
                ("support.listen", &self.support.listen),
            ],
        )?;
        if self.oidc_front.issuer != self.gateway.public_url.trim_end_matches('/') {
            return Err(ConfigError::invalid(
                "oidc_front.issuer",
                "must equal gateway.public_url (the URL SPs reach the hub at)",
            ));
        }
        self.trace.validate(&self.oidc_front.issuer)?;
        self.check_deployment_keys()?;
        // The key-encryption keys given inline, or the development ones (a file's is
        // checked where it is read: `check_key_files`).
        if self.registry.key_encryption_key_file.is_empty() {
            self.registry.kek().checked(&self.oidc_front.issuer)?;
        }
        if self.oidc_front.key_encryption_key_file.is_empty() {
            self.oidc_front.key_encryption_key()?;
        }
        Ok(())
    }

    /// Off loopback, no development key and none under 256 bits, naming the field.
    fn check_deployment_keys(&self) -> Result<(), ConfigError> {
        let issuer = &self.oidc_front.issuer;
        let mut keys = self.oidc_front.deployment_keys();
        keys.push(("registry.secret_hash_key", &self.registry.secret_hash_key));
        keys.extend(self.registry.kek().deployment_keys());
        keys.extend(
            self.idp_bridge
                .round_trip_keys
                .iter()
                .map(|k| ("idp_bridge.round_trip_keys", k)),
        );
        // The account page's: only when set (unset, the page is off, or its cookie key is
        // random per process).
        let gateway = &self.gateway;
        keys.extend(
            std::iter::once((
                "gateway.account_client_secret",
                &gateway.account_client_secret,
            ))
            .chain(
                gateway
                    .account_cookie_secrets
                    .iter()
                    .map(|k| ("gateway.account_cookie_secrets", k)),
            )
            .filter(|(_, k)| !k.is_empty()),
        );
        for (field, key) in keys {
            relais_config::check_deployment_key(field, key.expose(), issuer)?;
        }
        Ok(())
    }

    /// What `validate` cannot check without I/O: the front's key-encryption key file.
    pub fn check_key_files(&self) -> Result<(), ConfigError> {
        self.oidc_front.key_encryption_key().map(|_| ())
    }

    /// The same for the registry's key-encryption key file.
    pub fn check_registry_key_files(&self) -> Result<(), ConfigError> {
        self.registry
            .kek()
            .checked(&self.oidc_front.issuer)
            .map(|_| ())
    }

    /// What `validate` cannot check without I/O for every service: the bus's TLS files.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.bus.check_files().map_err(bus_error)
    }
}

/// A bus error named by its field in the whole configuration (`bus.url`).
fn bus_error(e: relais_bus::BusError) -> ConfigError {
    match e {
        relais_bus::BusError::Config { field, reason } => {
            ConfigError::invalid(format!("bus.{field}"), reason)
        }
        other => ConfigError::invalid("bus", other.to_string()),
    }
}
