//! The partner registry: service providers (client ids, hashed secrets, redirect URIs,
//! habilitations, accepted IdPs, signing algorithm, status) and identity providers
//! (issuer, the hub's credentials there, acr levels, status). Other services ask it over
//! gRPC and hear of changes on the bus. It owns the `registry` schema; it never stores a
//! client secret in clear (an SP's is hashed, an IdP's sealed under the key-encryption
//! key) and never answers "unknown client" differently from "bad secret".

pub mod access;
mod config;
pub mod domain;
mod grpc;
mod secrets;
mod store;

use std::sync::Arc;

use deadpool_postgres::Pool;
use relais_bus::BusConfig;
use relais_config::{DatabaseConfig, Secret};
use relais_jose::envelope::Keks;
use relais_proto::registry::v1::registry_server::RegistryServer;
use relais_runtime::{LocalServices, Shutdown, Tasks};
use tokio::net::TcpListener;

pub use config::RegistryConfig;
pub use domain::Seed;
pub use grpc::RegistryService;
pub use store::Store;

pub const SCHEMA: &str = "registry";

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown client")]
    UnknownClient,
    #[error("unknown identity provider")]
    UnknownIdp,
    #[error("nobody known by this e-mail address")]
    UnknownPerson,
    #[error("client authentication failed")]
    BadCredentials,
    #[error("client must authenticate with {0}")]
    WrongAuthMethod(String),
    #[error("client secret has expired; ask for a new one")]
    SecretExpired,
    #[error("partner is suspended")]
    Suspended,
    #[error("{0}")]
    Invalid(String),
    #[error(
        "service provider {0}: pkce_exempt is for confidential clients only; a public client \
         (token_endpoint_auth_method none) must use PKCE"
    )]
    PkceExemptPublicClient(String),
    #[error(
        "client secret of identity provider {idp} cannot be opened: {reason} (is \
         registry.key_encryption_key the one it was sealed under?)"
    )]
    IdpSecretUnreadable { idp: String, reason: String },
    #[error("sealing: {0}")]
    Sealing(String),
    #[error("database: {0}")]
    Database(String),
    #[error("bus: {0}")]
    Bus(String),
    #[error(transparent)]
    Runtime(#[from] relais_runtime::RuntimeError),
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(e: tokio_postgres::Error) -> Self {
        RegistryError::Database(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for RegistryError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RegistryError::Database(e.to_string())
    }
}

impl RegistryError {
    /// The stable code callers branch on (gRPC metadata `relais-error-code`).
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::UnknownClient => "unknown_client",
            RegistryError::UnknownIdp => "unknown_idp",
            RegistryError::UnknownPerson => "unknown_person",
            RegistryError::BadCredentials => "client_authentication_failed",
            RegistryError::WrongAuthMethod(_) => "client_auth_method_mismatch",
            RegistryError::SecretExpired => "client_secret_expired",
            RegistryError::Suspended => "client_suspended",
            RegistryError::Invalid(_) | RegistryError::PkceExemptPublicClient(_) => {
                "invalid_argument"
            }
            RegistryError::IdpSecretUnreadable { .. } => "idp_secret_unreadable",
            RegistryError::Database(_)
            | RegistryError::Sealing(_)
            | RegistryError::Bus(_)
            | RegistryError::Runtime(_) => "service_unavailable",
        }
    }
}

impl From<RegistryError> for tonic::Status {
    fn from(e: RegistryError) -> Self {
        use tonic::Code;
        let code = match &e {
            RegistryError::UnknownClient
            | RegistryError::UnknownIdp
            | RegistryError::UnknownPerson => Code::NotFound,
            RegistryError::BadCredentials
            | RegistryError::WrongAuthMethod(_)
            | RegistryError::SecretExpired => Code::Unauthenticated,
            RegistryError::Suspended => Code::FailedPrecondition,
            RegistryError::Invalid(_) | RegistryError::PkceExemptPublicClient(_) => {
                Code::InvalidArgument
            }
            // Names the IdP, never the secret: the operator's lead to the KEK or the row.
            RegistryError::IdpSecretUnreadable { .. } => {
                tracing::error!(error = %e, "identity provider secret unreadable");
                Code::Internal
            }
            RegistryError::Database(_)
            | RegistryError::Sealing(_)
            | RegistryError::Bus(_)
            | RegistryError::Runtime(_) => {
                tracing::error!(error = %e, "registry failure");
                Code::Unavailable
            }
        };
        let message = if code == Code::Unavailable {
            "registry unavailable".to_string()
        } else {
            e.to_string()
        };
        relais_runtime::status_with_code(code, message, e.code())
    }
}

/// Disables and re-enables IdPs as support opens and resolves incidents on them.
pub struct IncidentHandler(pub relais_bus::Outbox);

#[relais_bus::async_trait]
impl relais_bus::EventHandler for IncidentHandler {
    async fn handle(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        event: &relais_bus::Event,
    ) -> Result<(), relais_bus::HandlerError> {
        use relais_bus::events::{IncidentEvent, IncidentState};
        let Ok(incident) = event.payload::<IncidentEvent>() else {
            return Ok(());
        };
        let result = match incident.state {
            IncidentState::Opened => {
                store::incident_opened(tx, &incident.idp_id, incident.ticket_id).await
            }
            IncidentState::Resolved => {
                store::incident_resolved(tx, &incident.idp_id, incident.ticket_id).await
            }
        };
        match result {
            // An incident on an IdP the registry does not know changes nothing.
            Err(RegistryError::UnknownIdp) => Ok(()),
            other => other.map_err(|e| Box::new(e) as relais_bus::HandlerError),
        }
    }

    // The status change it queued reaches the chooser at once, not at the next poll.
    fn committed(&self) {
        self.0.wake();
    }
}

/// Creates the schema and applies the registry's migrations.
async fn prepare(db: &DatabaseConfig) -> Result<Pool, RegistryError> {
    Ok(relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner()).await?)
}

/// The key-encryption keys from the configuration (a file's read now). Checked as a
/// deployment's keys by `relais`, which knows the issuer the registry does not.
fn keks(config: &RegistryConfig) -> Result<Arc<Keks>, RegistryError> {
    let (kek, field) = config
        .kek()
        .current()
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
    let keks = Keks::local(
        kek.expose(),
        config.other_key_encryption_keys.iter().map(Secret::expose),
    )
    .map_err(|e| RegistryError::Invalid(format!("{field}: {e}")))?;
    Ok(Arc::new(keks))
}

/// Starts the registry: seeds partners, serves gRPC (on `listener` if any), relays its events.
pub async fn start(
    config: RegistryConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
) -> Result<Tasks, RegistryError> {
    config
        .validate()
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
    let keks = keks(&config)?;
    let pool = prepare(db).await?;
    let relay = relais_bus::start_outbox(&pool, bus.clone(), shutdown.clone())
        .await
        .map_err(|e| RegistryError::Bus(e.to_string()))?;
    let store = Store::new(pool.clone(), relay.outbox.clone(), Arc::clone(&keks));
    // Before the seed, which then compares its secrets with stored ones it can open.
    store.seal_idp_secrets().await?;
    let hasher = domain::SecretHasher::new(config.secret_hash_key.expose());
    if let Some(path) = &config.seed_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RegistryError::Invalid(format!("seed file {path}: {e}")))?;
        let seed = Seed::parse(&text)?;
        store
            .apply_seed(
                &seed.identity_providers,
                &seed.service_providers,
                &seed.people,
                &hasher,
                config.secret_lifetime_days,
            )
            .await?;
        tracing::info!(
            sps = seed.service_providers.len(),
            idps = seed.identity_providers.len(),
            "registry seeded"
        );
    }
    let mut tasks = Tasks::new(shutdown.clone());
    let service = RegistryServer::new(RegistryService::new(
        store,
        keks,
        hasher,
        config.secret_lifetime_days,
    ));
    local.serve_audited(
        &mut tasks,
        listener,
        service,
        access::allowed,
        relais_bus::recorder(
            pool.clone(),
            relay.outbox.clone(),
            relais_bus::events::OPERATOR_CALL,
            "registry",
        ),
    )?;
    let outbox = relay.outbox.clone();
    tasks.spawn("registry.outbox", relay.wait());
    let incidents = relais_bus::spawn_consumer(
        pool,
        bus.clone(),
        format!("{}.registry.incidents", bus.exchange),
        vec![relais_bus::events::INCIDENT_EVENTS.to_string()],
        std::sync::Arc::new(IncidentHandler(outbox)),
        shutdown.clone(),
    );
    // Events published before the queue exists would be lost on a first start.
    if !incidents.bound(std::time::Duration::from_secs(10)).await {
        tracing::warn!("event queue not bound yet: the broker does not answer");
    }
    tasks.spawn("registry.incidents", incidents.wait());
    Ok(tasks)
}
