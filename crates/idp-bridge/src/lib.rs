//! The OpenID Connect client toward identity providers: it builds each IdP request
//! (state, nonce, PKCE S256, acr, the SP's id and name, login_hint), and on the callback
//! exchanges the code and checks everything the IdP says (ID token signature with the
//! IdP's keys, iss, aud, exp, nonce, acr, userinfo subject, required claims). It owns the
//! `idp_bridge` schema (round trips) and the IdPs' metadata cache. It never issues
//! anything to SPs and never logs tokens or identity data.

pub mod access;
mod claims;
mod config;
pub mod error;
mod grpc;
mod idp;
mod store;

use std::time::Duration;

use relais_bus::BusConfig;
use relais_config::DatabaseConfig;
use relais_proto::idp_bridge::v1::idp_bridge_server::IdpBridgeServer;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_runtime::{LocalServices, Role, Shutdown, Tasks};
use tokio::net::TcpListener;

pub use config::IdpBridgeConfig;
pub use error::BridgeError;
pub use grpc::Bridge;

pub const SCHEMA: &str = "idp_bridge";

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Starts the bridge: gRPC on `listener`, the outbox relay and the purge of old trips.
pub async fn start(
    config: IdpBridgeConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
) -> Result<Tasks, BridgeError> {
    config
        .validate()
        .map_err(|e| BridgeError::Invalid(e.to_string()))?;
    let runtime_err = |e: relais_runtime::RuntimeError| BridgeError::Unavailable(e.to_string());
    let pool = relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner())
        .await
        .map_err(runtime_err)?;
    let relay = relais_bus::start_outbox(&pool, bus, shutdown.clone()).await?;
    let store = store::Store::new(pool.clone(), relay.outbox.clone());
    let registry = RegistryClient::new(
        local
            .channel(Role::Registry, &config.registry_url)
            .map_err(runtime_err)?,
    );
    let idps = idp::Idps::new(idp::Settings {
        timeout: Duration::from_millis(config.http_timeout_ms),
        ttl: Duration::from_secs(u64::from(config.metadata_cache_seconds)),
        refresh_min: Duration::from_secs(u64::from(config.jwks_refresh_min_seconds)),
        skew_seconds: i64::from(config.clock_skew_seconds),
        max_age_seconds: i64::from(config.round_trip_ttl_seconds),
    })?;
    let bridge = Bridge {
        config,
        store: store.clone(),
        registry,
        idps,
    };
    let mut tasks = Tasks::new(shutdown.clone());
    let server = IdpBridgeServer::new(bridge);
    local
        .serve(&mut tasks, listener, server, access::allowed)
        .map_err(runtime_err)?;
    tasks.spawn("idp-bridge.outbox", relay.wait());
    tasks.spawn_every("idp-bridge.purge", Duration::from_secs(300), move || {
        let store = store.clone();
        async move {
            if let Err(e) = store.purge_expired().await {
                tracing::warn!(error = %e, "purge of old round trips failed");
            }
        }
    });
    Ok(tasks)
}
