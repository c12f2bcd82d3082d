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
        self.bus
            .validate()
            .map_err(|e| ConfigError::invalid("bus", e.to_string()))?;
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
        Ok(())
    }
}
