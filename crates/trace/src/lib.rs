//! The proof store: it consumes every connection event from the bus, exactly once, and
//! keeps it append-only in a SHA-256 hash chain (any altered, removed or reordered event
//! is detected), with one summary row per connection holding every field the terms of
//! use require (source IP and port, time, SP, IdP, acr, SUB FI, SUB FS, account,
//! outcome). It owns the `trace` schema and never modifies a stored event.

pub mod access;
mod config;
mod store;

use std::sync::Arc;

use relais_bus::events::{CONNECTION_EVENTS, SUPPORT_EVENTS};
use relais_bus::{BusConfig, Event, EventHandler, HandlerError};
use relais_config::DatabaseConfig;
use relais_proto::trace::v1 as pb;
use relais_proto::trace::v1::trace_server::{Trace, TraceServer};
use relais_runtime::{LocalServices, Shutdown, Tasks};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

pub use config::TraceConfig;
pub use store::{ChainCheck, Store, append, chain_hash};

pub const SCHEMA: &str = "trace";

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no such connection")]
    NotFound,
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Runtime(#[from] relais_runtime::RuntimeError),
    #[error("bus: {0}")]
    Bus(#[from] relais_bus::BusError),
}

impl From<tokio_postgres::Error> for TraceError {
    fn from(e: tokio_postgres::Error) -> Self {
        TraceError::Database(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for TraceError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TraceError::Database(e.to_string())
    }
}

impl From<TraceError> for Status {
    fn from(e: TraceError) -> Self {
        match e {
            TraceError::NotFound => Status::not_found(e.to_string()),
            TraceError::Invalid(m) => Status::invalid_argument(m),
            other => {
                tracing::error!(error = %other, "trace failure");
                Status::unavailable("trace store unavailable")
            }
        }
    }
}

/// Stores each event in the transaction the bus opened (with its inbox row).
pub struct Recorder;

#[relais_bus::async_trait]
impl EventHandler for Recorder {
    async fn handle(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        event: &Event,
    ) -> Result<(), HandlerError> {
        store::append(tx, &[event])
            .await
            .map_err(|e| Box::new(e) as HandlerError)
    }

    async fn handle_batch(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        events: &[&Event],
    ) -> Result<(), HandlerError> {
        store::append(tx, events)
            .await
            .map_err(|e| Box::new(e) as HandlerError)
    }
}

pub struct TraceService {
    store: Store,
}

#[tonic::async_trait]
impl Trace for TraceService {
    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::Connection>, Status> {
        let id = request.into_inner().connection_id;
        Ok(Response::new(self.store.connection(&id).await?))
    }

    async fn list_connections(
        &self,
        request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let connections = self.store.connections(&request.into_inner()).await?;
        Ok(Response::new(pb::ListConnectionsResponse { connections }))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        Ok(Response::new(match self.store.verify_chain().await? {
            ChainCheck::Intact { events } => pb::VerifyChainResponse {
                intact: true,
                events,
                broken_at_seq: 0,
            },
            ChainCheck::Broken { at_seq } => pb::VerifyChainResponse {
                intact: false,
                events: 0,
                broken_at_seq: at_seq,
            },
        }))
    }
}

/// Starts the trace service: migrations, the connection-event consumer, gRPC.
pub async fn start(
    config: TraceConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
) -> Result<Tasks, TraceError> {
    tracing::debug!(listen = %config.listen, "trace starting");
    let pool = relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner()).await?;
    {
        // The consumer's inbox lives in the bus tables.
        let mut client = pool.get().await?;
        relais_bus::migrate(&mut client).await?;
    }
    let mut tasks = Tasks::new(shutdown.clone());
    let consumer = relais_bus::spawn_consumer(
        pool.clone(),
        bus.clone(),
        format!("{}.trace.connections", bus.exchange),
        // Support's ticket changes and API calls are operator evidence too.
        vec![CONNECTION_EVENTS.to_string(), SUPPORT_EVENTS.to_string()],
        Arc::new(Recorder),
        shutdown.clone(),
    );
    // Events published before the queue exists would be lost on a first start.
    if !consumer.bound(std::time::Duration::from_secs(10)).await {
        tracing::warn!("event queue not bound yet: the broker does not answer");
    }
    tasks.spawn("trace.consumer", consumer.wait());
    let service = TraceServer::new(TraceService {
        store: Store::new(pool),
    });
    local.serve(&mut tasks, listener, service, access::allowed)?;
    Ok(tasks)
}
