//! The proof store: it consumes every connection event from the bus, exactly once, and
//! keeps it append-only as a leaf of a transparency log (RFC 6962 / RFC 9162 Merkle tree,
//! through `tlog_tiles`) whose signed checkpoints (C2SP signed notes, Ed25519 key of its
//! own) it stores at an interval and on demand, and whose inclusion and consistency
//! proofs it serves; any altered, removed or reordered event is detected. It exports a
//! case as a proof file (`proof_file.rs`: records, inclusion proofs, the signed checkpoint)
//! that anyone verifies offline with the log's verifier key alone, and records each export
//! in the log. It keeps one summary row per connection holding every field the terms of
//! use require (source IP and port, time, SP, IdP, acr, SUB FI, SUB FS, account, outcome).
//! It owns the `trace` schema and never modifies a stored event; it deletes one only past the
//! retention, after a checkpoint at the cut and a record of the purge (`retention.rs`).
//!
//! Witnesses anchor its checkpoints outside the operator: it sends each to the witnesses
//! configured (C2SP tlog-witness) and keeps their cosignatures with it; the witness itself
//! (`witness.rs`, `witness_server.rs`) is the process another party runs, `relais trace witness`.

pub mod access;
pub mod checkpoint;
mod config;
pub mod cosignature;
mod export;
mod history;
mod investigators;
mod log;
pub mod proof_file;
pub mod retention;
pub mod search;
mod store;
pub mod tree;
mod verify;
pub mod witness;
pub mod witness_server;
mod witnessing;

use std::sync::Arc;

use relais_bus::events::{CONNECTION_EVENTS, OPERATOR_CALL, OPERATOR_EVENTS, SUPPORT_EVENTS};

/// The front's account suspensions and their lifting (`account.suspended`, …).
const ACCOUNT_EVENTS: &str = "account.#";
use relais_bus::{BusConfig, Event, EventHandler, HandlerError};
use relais_config::DatabaseConfig;
use relais_proto::trace::v1 as pb;
use relais_proto::trace::v1::trace_server::{Trace, TraceServer};
use relais_runtime::{LocalServices, Shutdown, Tasks};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

pub use config::{TraceConfig, WitnessLink};
pub use log::{Log, Record, Verification};
pub use retention::Retention;
pub use store::{Store, append};

pub const SCHEMA: &str = "trace";

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no such connection")]
    NotFound,
    #[error("no {0}")]
    Missing(&'static str),
    #[error("invalid event: {0}")]
    Invalid(String),
    /// A request the log cannot answer as asked (a size, a checkpoint given).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Precondition(String),
    /// A proof asked for a record the retention purged.
    #[error("record {seq} was purged (retention): records up to {up_to} are no longer held")]
    Purged { seq: i64, up_to: i64 },
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Config(#[from] relais_config::ConfigError),
    #[error("the log: {0}")]
    Tree(#[from] tree::TreeError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(
        "the hash chain kept before the log is broken at record {seq}: {reason}; the records \
         were altered before the log could take them over"
    )]
    LegacyChain { seq: i64, reason: String },
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
            TraceError::NotFound | TraceError::Missing(_) => Status::not_found(e.to_string()),
            TraceError::Invalid(m) | TraceError::BadRequest(m) => Status::invalid_argument(m),
            TraceError::Precondition(m) => Status::failed_precondition(m),
            TraceError::Purged { .. } => relais_runtime::status_with_code(
                tonic::Code::NotFound,
                e.to_string(),
                retention::RECORD_PURGED,
            ),
            TraceError::Tree(tree::TreeError::Invalid(m)) => Status::invalid_argument(m),
            other => {
                tracing::error!(error = %other, "trace failure");
                Status::unavailable("trace store unavailable")
            }
        }
    }
}

/// Stores each event in the transaction the bus opened, once: the log's event id is its
/// inbox.
pub struct Recorder;

/// The proof store's own operators' calls (investigations included) go straight into
/// its log, committed before the call runs.
fn operator_audit(pool: deadpool_postgres::Pool) -> relais_runtime::OperatorAudit {
    Arc::new(move |call| {
        let pool = pool.clone();
        Box::pin(async move {
            let payload = serde_json::to_value(&call).map_err(|e| e.to_string())?;
            let event = Event::new(OPERATOR_CALL, "trace", payload);
            let mut client = pool.get().await.map_err(|e| e.to_string())?;
            store::record(&mut client, &event)
                .await
                .map_err(|e| e.to_string())
        })
    })
}

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

    // The log holds each event id once: a second copy in the inbox would only cost.
    fn deduplicates(&self) -> bool {
        true
    }

    async fn handle_new(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        events: &[&Event],
    ) -> Result<usize, HandlerError> {
        store::append_new(tx, events)
            .await
            .map_err(|e| Box::new(e) as HandlerError)
    }
}

pub struct TraceService {
    store: Store,
    log: Log,
    pager: search::Pager,
    investigators: investigators::Directory,
    account_client_id: String,
    retention: Retention,
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
        request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let given = request.into_inner().checkpoint;
        let given = Some(given.as_str()).filter(|g| !g.trim().is_empty());
        let v = self.log.verify(given).await?;
        let (intact, events, broken_at_seq, reason) = match v.broken {
            None => (true, v.events, 0, String::new()),
            Some((seq, reason)) => (false, 0, seq, reason),
        };
        Ok(Response::new(pb::VerifyChainResponse {
            intact,
            events,
            broken_at_seq,
            reason,
            tree_size: v.tree_size,
            root_hash: v.root.0.to_vec(),
            checkpoints_checked: v.checkpoints,
            cosigned_by: v.cosigned_by,
            purged_up_to_seq: v.purged_up_to,
        }))
    }

    async fn purge(
        &self,
        request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeResponse>, Status> {
        let dry_run = request.into_inner().dry_run;
        Ok(Response::new(self.retention.purge(dry_run).await?))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        Ok(Response::new(self.log.latest_checkpoint().await?))
    }

    async fn make_checkpoint(
        &self,
        _request: Request<pb::MakeCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        Ok(Response::new(self.log.make_checkpoint().await?))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        use pb::get_inclusion_proof_request::Record as Asked;
        let request = request.into_inner();
        let record = match request.record {
            Some(Asked::EventId(id)) => Record::Event(
                id.parse()
                    .map_err(|_| Status::invalid_argument("event_id is not a UUID"))?,
            ),
            Some(Asked::LeafIndex(i)) => Record::Leaf(i),
            None => {
                return Err(Status::invalid_argument(
                    "event_id or leaf_index is required",
                ));
            }
        };
        Ok(Response::new(
            self.log.inclusion_proof(record, request.tree_size).await?,
        ))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            self.log
                .consistency_proof(request.old_size, request.new_size)
                .await?,
        ))
    }

    async fn export_case(
        &self,
        request: Request<pb::ExportCaseRequest>,
    ) -> Result<Response<pb::ExportCaseResponse>, Status> {
        use relais_runtime::Caller;
        // Who exported is the verified certificate's identity, never a field of the request.
        let operator = match relais_runtime::peer::caller(&request) {
            Some(Caller::Verified(peer)) => peer.dns_name(),
            Some(Caller::Unverified) => "unverified (plaintext connection)".to_string(),
            None => "unknown".to_string(),
        };
        let request = request.into_inner();
        Ok(Response::new(
            self.log.export_case(&request, &operator).await?,
        ))
    }

    async fn search_connections(
        &self,
        request: Request<pb::SearchConnectionsRequest>,
    ) -> Result<Response<pb::SearchConnectionsResponse>, Status> {
        use relais_runtime::{Caller, Role};
        // Who looked is a certificate's identity, or the investigator whose live token the
        // gateway passed through: never a name the request gives.
        let caller = relais_runtime::peer::caller(&request).cloned();
        let meta = |key: &str| {
            request
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (source_ip, request_id) = (meta("relais-source-ip"), meta("relais-request-id"));
        let request = request.into_inner();
        let token = request.access_token.trim();
        let who = match (caller, token.is_empty()) {
            (Some(Caller::Verified(peer)), true) if peer.role == Role::Operator => search::Looker {
                operator: peer.dns_name(),
                via: None,
                source_ip: None,
                request_id: None,
            },
            (Some(Caller::Verified(peer)), false) if peer.role == Role::Operator => {
                return Err(relais_runtime::status_with_code(
                    tonic::Code::InvalidArgument,
                    "access_token is for the gateway's REST API; an operator looks as itself"
                        .into(),
                    search::INVALID_SELECTION,
                ));
            }
            (Some(Caller::Unverified), true) => search::Looker {
                operator: "unverified (plaintext connection)".into(),
                via: None,
                source_ip: None,
                request_id: None,
            },
            (caller, false) => search::Looker {
                operator: self.investigators.bearer(token).await?,
                via: Some(match caller {
                    Some(Caller::Verified(peer)) => peer.dns_name(),
                    _ => "unverified (plaintext connection)".into(),
                }),
                source_ip,
                request_id,
            },
            (_, true) => {
                return Err(relais_runtime::status_with_code(
                    tonic::Code::Unauthenticated,
                    "an investigator's access token is required".into(),
                    investigators::INVALID_TOKEN,
                ));
            }
        };
        let pool = self.log.pool();
        Ok(Response::new(
            search::search(pool, &self.store, &self.pager, &request, &who).await?,
        ))
    }

    async fn my_connections(
        &self,
        request: Request<pb::MyConnectionsRequest>,
    ) -> Result<Response<pb::MyConnectionsResponse>, Status> {
        use relais_runtime::Caller;
        let via = match relais_runtime::peer::caller(&request) {
            Some(Caller::Verified(peer)) => peer.dns_name(),
            Some(Caller::Unverified) => "unverified (plaintext connection)".to_string(),
            None => "unknown".to_string(),
        };
        let request = request.into_inner();
        Ok(Response::new(
            history::my_connections(
                self.log.pool(),
                &self.investigators,
                &self.account_client_id,
                &request,
                &via,
            )
            .await?,
        ))
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
    let key = config.key()?;
    let pool = relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner()).await?;
    let witnesses = witnessing::Witnesses::new(
        config.witness_verifiers()?,
        std::time::Duration::from_secs(config.witness_timeout_seconds),
    )?;
    let pager = search::Pager::for_log(&key)?;
    let log = Log::new(pool.clone(), key).with_witnesses(witnesses);
    // Before any new record: the records of the chain the log replaced come first.
    let moved = log.take_over_legacy_chain().await?;
    if moved > 0 {
        tracing::info!(
            records = moved,
            "records of the hash chain moved into the log"
        );
    }
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
        // Support's ticket changes and API calls are operator evidence too, and so are
        // the front's account suspensions (identity theft).
        vec![
            CONNECTION_EVENTS.to_string(),
            SUPPORT_EVENTS.to_string(),
            OPERATOR_EVENTS.to_string(),
            ACCOUNT_EVENTS.to_string(),
        ],
        Arc::new(Recorder),
        shutdown.clone(),
    );
    // Events published before the queue exists would be lost on a first start.
    if !consumer.bound(std::time::Duration::from_secs(10)).await {
        tracing::warn!("event queue not bound yet: the broker does not answer");
    }
    tasks.spawn("trace.consumer", consumer.wait());
    // A checkpoint from the start, then one per interval when the log grew.
    if let Err(e) = log.make_checkpoint().await {
        tracing::warn!(error = %e, "no checkpoint signed at start");
    }
    let scheduled = log.clone();
    tasks.spawn_every(
        "trace.checkpoints",
        std::time::Duration::from_secs(config.checkpoint_interval_seconds),
        move || {
            let log = scheduled.clone();
            async move {
                if let Err(e) = log.make_checkpoint().await {
                    tracing::warn!(error = %e, "scheduled checkpoint not signed");
                }
            }
        },
    );
    // The retention's purge, per interval (the first after one: not in the start's path).
    let retention = Retention::new(log.clone(), config.retention_months, config.purge_batch);
    let scheduled = retention.clone();
    tasks.spawn_every(
        "trace.purge",
        std::time::Duration::from_secs(config.purge_interval_seconds),
        move || {
            let retention = scheduled.clone();
            async move {
                if let Err(e) = retention.purge(false).await {
                    tracing::warn!(error = %e, "scheduled purge failed");
                }
            }
        },
    );
    let audit = operator_audit(pool.clone());
    let investigators = investigators::Directory::new(
        local.clone(),
        config.registry_url.clone(),
        config.oidc_front_url.clone(),
        config.investigation_client_id.trim().to_owned(),
        config.investigator_acr_values.clone(),
    );
    let service = TraceServer::new(TraceService {
        store: Store::new(pool),
        log,
        pager,
        investigators,
        account_client_id: config.account_client_id.trim().to_owned(),
        retention,
    });
    local.serve_audited(&mut tasks, listener, service, access::allowed, audit)?;
    Ok(tasks)
}
