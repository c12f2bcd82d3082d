//! The OpenID Provider that service providers see: discovery, JWKS, authorize (with the
//! IdP chooser), token, userinfo and RP-initiated logout; per-SP subjects; acr; data
//! minimisation to the SP's habilitation. It owns the `oidc_front` schema: accounts,
//! sessions, codes and tokens (codes, tokens and cookies stored only as SHA-256), signing
//! keys (sealed under the key-encryption key, several per algorithm, rotated with
//! overlap). A sign-in in progress is stored nowhere: it travels sealed in the browser's flow
//! cookie, and is written once, with every step of its proof, when the IdP answers. It answers no HTTP (the gateway does; its one call out is
//! back-channel logout to an SP's registered endpoint), never talks to an IdP (the bridge
//! does), and never logs a code, a token or identity data.

pub mod access;
mod backchannel;
pub mod clock;
mod config;
pub mod domain;
pub mod error;
mod events;
mod flow;
mod front;
mod grpc;
mod keys;
mod logout;
mod partners;
mod recovery;
mod responses;
mod signing;
mod sso;
mod store;
mod suspension;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use relais_bus::BusConfig;
use relais_bus::events::{BACKCHANNEL_LOGOUTS, PARTNER_EVENTS};
use relais_config::DatabaseConfig;
use relais_proto::idp_bridge::v1::idp_bridge_client::IdpBridgeClient;
use relais_proto::oidc_front::v1::oidc_front_server::OidcFrontServer;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_runtime::{LocalServices, Role, Shutdown, Tasks};
use tokio::net::TcpListener;

pub use config::OidcFrontConfig;
pub use error::FrontError;
pub use front::Front;
pub use keys::Keys;

pub const SCHEMA: &str = "oidc_front";

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Starts the front on the system clock.
pub async fn start(
    config: OidcFrontConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
) -> Result<Tasks, FrontError> {
    let clock = Arc::new(clock::SystemClock);
    start_with_clock(config, db, bus, listener, local, shutdown, clock).await
}

/// Starts the front: keys, gRPC on `listener`, the outbox relay, the partner-change
/// consumer, the back-channel logout workers and the purge of expired rows, every
/// instant read from `clock`.
pub async fn start_with_clock(
    config: OidcFrontConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
    clock: Arc<dyn clock::Clock>,
) -> Result<Tasks, FrontError> {
    config
        .validate()
        .map_err(|e| FrontError::Internal(e.to_string()))?;
    // Also when started as a library, not only through `relais`'s own check.
    for (field, key) in config.deployment_keys() {
        relais_config::check_deployment_key(field, key.expose(), &config.issuer)
            .map_err(|e| FrontError::Internal(e.to_string()))?;
    }
    let kek = config
        .key_encryption_key()
        .map_err(|e| FrontError::Internal(e.to_string()))?;
    let kek = relais_jose::LocalKek::new(kek.expose())
        .map_err(|e| FrontError::Internal(format!("oidc_front.key_encryption_key: {e}")))?;
    let other_keks = config
        .other_key_encryption_keys
        .iter()
        .map(|k| {
            relais_jose::LocalKek::new(k.expose())
                .map(|k| Arc::new(k) as Arc<dyn relais_jose::KeyWrap>)
                .map_err(|e| {
                    FrontError::Internal(format!("oidc_front.other_key_encryption_keys: {e}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let runtime_err = |e: relais_runtime::RuntimeError| FrontError::Unavailable(e.to_string());
    let pool = relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner())
        .await
        .map_err(runtime_err)?;
    let relay = relais_bus::start_outbox(&pool, bus.clone(), shutdown.clone()).await?;
    let store = store::Store::new(pool.clone(), relay.outbox.clone(), Arc::clone(&clock));
    let signing = Arc::new(
        signing::SigningKeys::load(
            store.clone(),
            signing::Keks {
                current: Arc::new(kek),
                others: other_keks,
            },
            keys::Rotation::of(&config),
            Arc::clone(&clock),
        )
        .await?,
    );
    let keys = signing.keys();
    let registry = RegistryClient::new(
        local
            .channel(Role::Registry, &config.registry_url)
            .map_err(runtime_err)?,
    );
    let bridge = IdpBridgeClient::new(
        local
            .channel(Role::IdpBridge, &config.idp_bridge_url)
            .map_err(runtime_err)?,
    );
    let partners = partners::Partners::new(
        registry,
        Duration::from_secs(u64::from(config.partner_cache_seconds)),
    );
    let flow_keys: Vec<&str> = config.flow_keys.iter().map(|k| k.expose()).collect();
    let sealer = relais_jose::Sealer::new(&flow_keys)
        .map_err(|e| FrontError::Internal(format!("oidc_front.flow_keys: {e}")))?;
    let notifier = Arc::new(backchannel::Notifier {
        issuer: config.issuer.clone(),
        keys: Arc::clone(&keys),
        partners: partners.clone(),
        http: backchannel::Notifier::client(Duration::from_secs(u64::from(
            config.backchannel_logout_timeout_seconds,
        )))?,
        outbox: relay.outbox.clone(),
        clock: Arc::clone(&clock),
    });
    let retries: Vec<Duration> = config
        .backchannel_logout_retry_seconds
        .iter()
        .map(|s| Duration::from_secs(u64::from(*s)))
        .collect();
    let workers = config.backchannel_logout_workers;
    let front_reload = config.signing_keys_reload_seconds;
    let front = Front {
        discovery_json: keys::discovery(&config),
        sealer,
        refusals: domain::refusals::Refusals::new(
            config.authorize_refusals_per_minute,
            Duration::from_secs(60),
            relais_telemetry::metrics::counter(
                "authorize_refused",
                "Authorization requests refused before their client was known (unknown client, \
                 unregistered redirect URI); nothing durable is written for them",
            ),
            relais_telemetry::metrics::counter(
                "authorize_refusals_limited",
                "Of those, the ones answered 429 because their address sent too many",
            ),
        ),
        ladder: domain::acr::AcrLadder::new(config.acr_levels.clone()),
        metrics: front::FrontMetrics::new(),
        config,
        store: store.clone(),
        partners: partners.clone(),
        bridge,
        keys: Arc::clone(&keys),
        signing: Arc::clone(&signing),
        clock,
    };
    let mut tasks = Tasks::new(shutdown.clone());
    let server = OidcFrontServer::new(front);
    let audit = relais_bus::recorder(
        pool.clone(),
        relay.outbox.clone(),
        relais_bus::events::OPERATOR_CALL,
        "oidc-front",
    );
    local
        .serve_audited(&mut tasks, listener, server, access::allowed, audit)
        .map_err(runtime_err)?;
    tasks.spawn("oidc-front.outbox", relay.wait());
    // Every replica's cache must forget a changed partner: a queue of its own.
    let consumer = relais_bus::spawn_broadcast_consumer(
        pool.clone(),
        bus.clone(),
        format!("{}.oidc-front.partners", bus.exchange),
        vec![PARTNER_EVENTS.to_string()],
        Arc::new(partners::PartnerChanges(partners)),
        shutdown.clone(),
    );
    // Events published before the queue exists would be lost on a first start.
    if !consumer.bound(std::time::Duration::from_secs(10)).await {
        tracing::warn!("event queue not bound yet: the broker does not answer");
    }
    tasks.spawn("oidc-front.partner-changes", consumer.wait());
    // One durable queue shared by every replica: each notice is delivered once.
    for n in 0..workers {
        let worker = relais_bus::spawn_retrying_consumer(
            pool.clone(),
            bus.clone(),
            format!("{}.oidc-front.backchannel-logout", bus.exchange),
            vec![BACKCHANNEL_LOGOUTS.to_string()],
            Arc::clone(&notifier) as Arc<dyn relais_bus::EventHandler>,
            retries.clone(),
            shutdown.clone(),
        );
        // A notice published before its queue exists would be lost (a first start).
        if n == 0 && !worker.bound(Duration::from_secs(10)).await {
            tracing::warn!("back-channel logout queue not bound yet: the broker does not answer");
        }
        tasks.spawn("oidc-front.backchannel-logout", worker.wait());
    }
    let reload = Duration::from_secs(u64::from(front_reload));
    tasks.spawn_every("oidc-front.signing-keys", reload, move || {
        let signing = Arc::clone(&signing);
        async move {
            if let Err(e) = signing.reload().await {
                tracing::warn!(error = %e, "signing keys not read again; the ones held still serve");
            }
        }
    });
    tasks.spawn_every("oidc-front.purge", Duration::from_secs(60), move || {
        let store = store.clone();
        async move {
            if let Err(e) = store.purge_expired().await {
                tracing::warn!(error = %e, "purge of expired rows failed");
            }
        }
    });
    Ok(tasks)
}
