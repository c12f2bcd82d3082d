//! The OpenID Connect client toward identity providers: it builds each IdP request
//! (state, nonce, PKCE S256, acr, the SP's id and name, login_hint), and on the callback
//! exchanges the code and checks everything the IdP says (ID token signature with the
//! IdP's keys, iss, aud, exp, nonce, acr, userinfo subject, required claims). It stores
//! nothing: each round trip is sealed with the bridge's keys and travels with the
//! browser's flow; it keeps only the IdPs' metadata cache. It never issues anything to
//! SPs and never logs tokens or identity data.

pub mod access;
mod claims;
mod config;
pub mod error;
mod grpc;
mod idp;
mod jwk;

use std::time::Duration;

use relais_proto::idp_bridge::v1::idp_bridge_server::IdpBridgeServer;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_runtime::{LocalServices, Role, Shutdown, Tasks};
use tokio::net::TcpListener;

pub use config::IdpBridgeConfig;
pub use error::BridgeError;
pub use grpc::Bridge;

/// Starts the bridge: gRPC on `listener`.
pub async fn start(
    config: IdpBridgeConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
) -> Result<Tasks, BridgeError> {
    config
        .validate()
        .map_err(|e| BridgeError::Invalid(e.to_string()))?;
    let runtime_err = |e: relais_runtime::RuntimeError| BridgeError::Unavailable(e.to_string());
    let registry = RegistryClient::new(
        local
            .channel(Role::Registry, &config.registry_url)
            .map_err(runtime_err)?,
    );
    let idps = idp::Idps::new(
        idp::Settings {
            timeout: Duration::from_millis(config.http_timeout_ms),
            ttl: Duration::from_secs(u64::from(config.metadata_cache_seconds)),
            refresh_min: Duration::from_secs(u64::from(config.jwks_refresh_min_seconds)),
            skew_seconds: i64::from(config.clock_skew_seconds),
            max_age_seconds: i64::from(config.round_trip_ttl_seconds),
        },
        &config.idp_endpoint_hosts,
    )?;
    let keys: Vec<&str> = config.round_trip_keys.iter().map(|k| k.expose()).collect();
    let sealer = relais_jose::Sealer::new(&keys)
        .map_err(|e| BridgeError::Invalid(format!("idp_bridge.round_trip_keys: {e}")))?;
    let bridge = Bridge {
        config,
        registry,
        idps,
        sealer,
        records: grpc::IdpRecords::default(),
    };
    let mut tasks = Tasks::new(shutdown.clone());
    let server = IdpBridgeServer::new(bridge);
    local
        .serve(&mut tasks, listener, server, access::allowed)
        .map_err(runtime_err)?;
    Ok(tasks)
}
