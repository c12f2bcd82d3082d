//! The support service: partners' tickets judged against the terms of use. It owns the
//! `support` schema. Its domain (`domain/`, no I/O) holds the business calendar
//! (Europe/Paris, public holidays, daylight saving), the deadline policies loaded from
//! TOML (`config/franceconnect.toml`, `config/agentconnect.toml`), the ticket life cycle
//! with its escalations and four closing rules, and the resolution indicator; the desk
//! applies them in one transaction per change, and a scheduler applies what the clock
//! decides. Every instant comes from an injected [`Clock`]. It never reads another
//! service's tables: what others must act on (an incident that disables an IdP, an
//! escalation, a critical event the partner must hear of) leaves on the bus. Mail comes
//! in through `SubmitMail` and a polled Maildir (the same intake), and goes out to
//! partners' contacts only through the notifier, a consumer of the service's own events,
//! so a change that rolls back is never mailed. Who calls, and who writes, is asked of
//! the registry (people) and oidc-front (access tokens) at each call; every call is
//! published (`support.call`) for the proof store. `/metrics` (off by default) serves the
//! indicator to a scraper on a private address; partners never reach it.

pub mod access;
mod clock;
mod config;
mod desk;
pub mod domain;
mod error;
pub mod events;
mod grpc;
mod maildir;
mod metrics;
mod notify;
mod people;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relais_bus::BusConfig;
use relais_config::DatabaseConfig;
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::support::v1::support_server::SupportServer;
use relais_runtime::{LocalServices, Role, Shutdown, Tasks};
use tokio::net::TcpListener;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Policies, SmtpConfig, SupportConfig};
pub use desk::{Desk, MailOutcome, View};
pub use error::SupportError;
pub use grpc::SupportService;
pub use store::{Filter, Quarantined, Store};

pub const SCHEMA: &str = "support";

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The durable queue the notifier reads ticket events from.
pub fn notify_queue(bus: &BusConfig) -> String {
    format!("{}.support.notify", bus.exchange)
}

/// Starts the support service on the system clock.
pub async fn start(
    config: SupportConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
) -> Result<Tasks, SupportError> {
    let clock = Arc::new(SystemClock);
    let running = start_with_clock(config, db, bus, listener, local, shutdown, clock).await?;
    Ok(running.tasks)
}

/// A started support service.
pub struct Running {
    pub tasks: Tasks,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
}

/// Starts the support service: migrations, gRPC on `listener`, the deadline scheduler
/// (reading `clock`), the outbox relay, and, when configured, the notifier that mails
/// partners' contacts, the Maildir intake and `/metrics`.
pub async fn start_with_clock(
    config: SupportConfig,
    db: &DatabaseConfig,
    bus: BusConfig,
    listener: Option<TcpListener>,
    local: &LocalServices,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
) -> Result<Running, SupportError> {
    let (calendar, policies) = config.load()?;
    let mail = config.mail_intake()?;
    let people = people::Directory::new(
        RegistryClient::new(local.channel(Role::Registry, &config.registry_url)?),
        OidcFrontClient::new(local.channel(Role::OidcFront, &config.oidc_front_url)?),
        config.console_client_id.trim().to_owned(),
        config.staff_acr_values.clone(),
    );
    let mail_dir = config.mail_dir()?;
    let metrics_listen = config.metrics_listen()?;
    let notifier = notify::Mailer::from_config(&config.smtp)?
        .map(|mailer| notify::Notifier::new(mailer, people.clone()));
    let maildir = mail_dir
        .as_deref()
        .map(maildir::Maildir::open)
        .transpose()?;
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(
            relais_runtime::bind(&addr.to_string())
                .await
                .map_err(|e| SupportError::Config(format!("support.metrics_listen: {e}")))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(|e| SupportError::Config(format!("support.metrics_listen: {e}")))?;
    let pool = relais_runtime::service_pool(db, SCHEMA, embedded::migrations::runner()).await?;
    let relay = relais_bus::start_outbox(&pool, bus.clone(), shutdown.clone()).await?;
    let mut tasks = Tasks::new(shutdown.clone());
    if let Some(notifier) = notifier {
        // A queue of its own: mail waits there while the relay is down.
        let consumer = relais_bus::spawn_consumer(
            pool.clone(),
            bus.clone(),
            notify_queue(&bus),
            vec![events::TICKET_EVENTS.to_owned()],
            Arc::new(notifier),
            shutdown.clone(),
        );
        // Tickets opened before the queue exists would not be mailed on a first start.
        if !consumer.bound(std::time::Duration::from_secs(10)).await {
            tracing::warn!("notification queue not bound yet: the broker does not answer");
        }
        tasks.spawn("support.notifier", consumer.wait());
    }
    let audit = relais_bus::recorder(
        pool.clone(),
        relay.outbox.clone(),
        relais_bus::events::OPERATOR_CALL,
        "support",
    );
    let desk = Arc::new(Desk::new(
        Store::new(pool, relay.outbox.clone()),
        calendar,
        policies,
        config.indicator,
        mail,
        people,
        clock,
    ));
    let server = SupportServer::new(SupportService::new(desk.clone()));
    local.serve_audited(&mut tasks, listener, server, access::allowed, audit)?;
    if let Some(listener) = metrics_listener {
        let (desk, token) = (desk.clone(), shutdown.clone());
        let days = config.metrics_window_days;
        tasks.spawn("support.metrics", async move {
            if let Err(e) = metrics::serve(listener, desk, days, token).await {
                tracing::error!(error = %e, "support metrics server stopped");
            }
        });
    }
    if let Some(maildir) = maildir {
        let desk = desk.clone();
        tasks.spawn_every(
            "support.maildir",
            Duration::from_millis(config.mail_poll_interval_ms),
            move || {
                let (desk, maildir) = (desk.clone(), maildir.clone());
                async move {
                    if let Err(e) = maildir.feed(&desk).await {
                        tracing::warn!(error = %e, "maildir pass failed; retrying");
                    }
                }
            },
        );
    }
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
    tracing::debug!(listen = %config.listen, metrics = ?metrics_addr, "support started");
    Ok(Running {
        tasks,
        metrics_addr,
    })
}
