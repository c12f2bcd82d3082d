//! The support service: partners' tickets judged against the terms of use. It owns the
//! `support` schema. Its domain (`domain/`, no I/O) holds the business calendar
//! (Europe/Paris, public holidays, daylight saving), the deadline policies loaded from
//! TOML (`config/franceconnect.toml`, `config/agentconnect.toml`), the ticket life cycle
//! with its escalations and four closing rules, and the resolution indicator; the desk
//! applies them in one transaction per change, and a scheduler applies what the clock
//! decides. Every instant comes from an injected [`Clock`]. It never reads another
//! service's tables: what others must act on (an incident that disables an IdP, an
//! escalation, a critical event the partner must hear of) leaves on the bus.

mod clock;
mod config;
mod desk;
pub mod domain;
mod error;
pub mod events;
mod grpc;
mod store;

use std::sync::Arc;
use std::time::Duration;

use relais_bus::BusConfig;
use relais_config::DatabaseConfig;
use relais_proto::support::v1::support_server::SupportServer;
use relais_runtime::{Shutdown, Tasks};
use tokio::net::TcpListener;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Policies, SupportConfig};
pub use desk::{Desk, MailOutcome, View};
pub use error::SupportError;
pub use grpc::SupportService;
pub use store::{Filter, Quarantined, Store};

pub const SCHEMA: &str = "support";

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Starts the support service on the system clock.
pub async fn start(
    config: SupportConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<Tasks, SupportError> {
    start_with_clock(config, db, bus, listener, shutdown, Arc::new(SystemClock)).await
}

/// Starts the support service: migrations, gRPC on `listener`, the deadline scheduler
/// (reading `clock`), and the outbox relay.
pub async fn start_with_clock(
    config: SupportConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
) -> Result<Tasks, SupportError> {
    let (calendar, policies) = config.load()?;
    let mail = config.mail_intake()?;
    let pool = relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner()).await?;
    let relay = relais_bus::start_outbox(
        &pool,
        relais_runtime::pg_config(db, SCHEMA)?,
        bus,
        shutdown.clone(),
    )
    .await?;
    let desk = Arc::new(Desk::new(
        Store::new(pool),
        calendar,
        policies,
        config.indicator,
        mail,
        clock,
    ));
    let mut tasks = Tasks::new(shutdown.clone());
    let router = relais_runtime::grpc_server()
        .add_service(SupportServer::new(SupportService::new(desk.clone())));
    let token = shutdown.clone();
    tasks.spawn("support.grpc", async move {
        if let Err(e) = relais_runtime::serve_grpc(router, listener, token).await {
            tracing::error!(error = %e, "support gRPC server stopped");
        }
    });
    tasks.spawn_every(
        "support.scheduler",
        Duration::from_millis(config.scheduler_interval_ms),
        move || {
            let desk = desk.clone();
            async move {
                if let Err(e) = desk.run_due().await {
                    tracing::warn!(error = %e, "support scheduler pass failed; retrying");
                }
            }
        },
    );
    tasks.spawn("support.outbox", relay.wait());
    tracing::debug!(listen = %config.listen, "support started");
    Ok(tasks)
}
