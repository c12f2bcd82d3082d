#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The trace service of the test's own, fed through a real outbox: a fresh database (the
//! `trace` schema, and a `producer` schema whose outbox a relay publishes as a hub
//! service would), an exchange of its own, the real service on a free port and a gRPC
//! client to it.

use std::time::Duration;

use deadpool_postgres::Pool;
use lapin::{options::QueueDeclareOptions, types::FieldTable};
use relais_bus::{
    Event, RelayHandle,
    events::{ConnectionEvent, ConnectionStep, Outcome},
};
use relais_config::{DatabaseConfig, Secret};
use relais_proto::trace::v1::{
    Checkpoint, Connection, GetConnectionRequest, MakeCheckpointRequest, VerifyChainRequest,
    VerifyChainResponse, trace_client::TraceClient,
};
use relais_runtime::{Shutdown, Tasks};
use relais_testkit::{TestBus, TestDb};
use time::OffsetDateTime;
use tonic::transport::Channel;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

/// The user's browser, as the gateway sees it.
pub const BROWSER_IP: &str = "203.0.113.10";
/// The SP's server, calling the token and userinfo endpoints.
pub const SP_SERVER_IP: &str = "198.51.100.7";

pub struct Trace {
    pub db: TestDb,
    pub bus: TestBus,
    pub client: TraceClient<Channel>,
    /// The test's SQL access to the trace schema.
    pub sql: Pool,
    /// The publishing service's schema, with its outbox.
    producer: Pool,
    tasks: Tasks,
    relay: RelayHandle,
    shutdown: Shutdown,
}

impl Trace {
    pub async fn start() -> Self {
        Self::start_on(TestDb::create().await).await
    }

    /// The service on a database the test prepared.
    pub async fn start_on(db: TestDb) -> Self {
        match Self::try_start_on(db).await {
            Ok(trace) => trace,
            Err((e, _, _)) => panic!("the trace service did not start: {e}"),
        }
    }

    /// The service on `db`, or why it refused to start (with what to clean up).
    pub async fn try_start_on(
        db: TestDb,
    ) -> Result<Self, (relais_trace::TraceError, TestDb, TestBus)> {
        Self::try_start_with(db, relais_trace::TraceConfig::default()).await
    }

    /// The service with `config` (its listen address aside) on a fresh database.
    pub async fn start_with(config: relais_trace::TraceConfig) -> Self {
        match Self::try_start_with(TestDb::create().await, config).await {
            Ok(trace) => trace,
            Err((e, _, _)) => panic!("the trace service did not start: {e}"),
        }
    }

    pub async fn try_start_with(
        db: TestDb,
        config: relais_trace::TraceConfig,
    ) -> Result<Self, (relais_trace::TraceError, TestDb, TestBus)> {
        let bus = TestBus::new();
        let shutdown = Shutdown::new();
        // The name the service gives its queue, so that cleanup removes it.
        let queue = bus.queue("trace.connections");
        let database = DatabaseConfig {
            url: Secret::new(db.url()),
            pool_size: 4,
            ..DatabaseConfig::default()
        };
        let listener = relais_runtime::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let started = relais_trace::start(
            config,
            &database,
            bus.config(),
            Some(listener),
            &relais_runtime::LocalServices::default().for_service(relais_runtime::Role::Trace),
            shutdown.child_token(),
        )
        .await;
        let tasks = match started {
            Ok(tasks) => tasks,
            Err(e) => return Err((e, db, bus)),
        };
        wait_for_consumer(&bus, &queue).await;

        let producer = db.pool("producer", 2).await;
        relais_bus::migrate(&mut producer.get().await.unwrap())
            .await
            .unwrap();
        let relay = relais_bus::spawn_relay(
            producer.clone(),
            relais_bus::Outbox::default(),
            bus.config(),
            shutdown.child_token(),
        );
        Ok(Self {
            client: TraceClient::connect(format!("http://{addr}"))
                .await
                .unwrap(),
            sql: db.pool(relais_trace::SCHEMA, 2).await,
            db,
            bus,
            producer,
            tasks,
            relay,
            shutdown,
        })
    }

    /// Queues `events` in the producer's outbox, in this order, in one transaction.
    pub async fn publish(&self, events: &[&Event]) {
        let mut client = self.producer.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        for event in events {
            relais_bus::enqueue(&tx, event).await.unwrap();
        }
        self.relay.outbox.commit(tx).await.unwrap();
    }

    /// Publishes `events` and waits until each is in the proof store.
    pub async fn record(&self, events: &[&Event]) {
        self.publish(events).await;
        self.wait_stored(events).await;
    }

    pub async fn wait_stored(&self, events: &[&Event]) {
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        wait_until("events to be stored", || async {
            self.stored_count(&ids).await == i64::try_from(ids.len()).unwrap()
        })
        .await;
    }

    /// Waits until the relay has published (and so removed) everything queued.
    pub async fn wait_outbox_drained(&self) {
        wait_until("the outbox to drain", || async {
            relais_bus::outbox_depth(&self.producer.get().await.unwrap())
                .await
                .unwrap()
                == 0
        })
        .await;
    }

    /// How many stored rows carry one of `ids`.
    pub async fn stored_count(&self, ids: &[Uuid]) -> i64 {
        self.sql
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT count(*) FROM events WHERE event_id = ANY($1)",
                &[&ids],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn connection(&mut self, id: &str) -> Connection {
        self.client
            .get_connection(GetConnectionRequest {
                connection_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn verify(&mut self) -> VerifyChainResponse {
        self.verify_against("").await
    }

    /// Verifies the log against the stored checkpoints and `checkpoint` (a signed note).
    pub async fn verify_against(&mut self, checkpoint: &str) -> VerifyChainResponse {
        self.client
            .verify_chain(VerifyChainRequest {
                checkpoint: checkpoint.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn make_checkpoint(&mut self) -> Checkpoint {
        self.client
            .make_checkpoint(MakeCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// The stored records' bodies, in the log's order.
    pub async fn bodies(&self) -> Vec<String> {
        self.sql
            .get()
            .await
            .unwrap()
            .query("SELECT body FROM events ORDER BY seq", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Runs statements on the trace schema, as someone tampering with the store would;
    /// each must touch exactly one row.
    pub async fn tamper(&self, statements: &[&str]) {
        let mut client = self.sql.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        for sql in statements {
            assert_eq!(tx.execute(*sql, &[]).await.unwrap(), 1, "{sql}");
        }
        tx.commit().await.unwrap();
    }

    /// The service stopped and started again on the same database: what another replica
    /// of the log, or the same after a restart, sees.
    pub async fn restart(self) -> Self {
        self.shutdown.cancel();
        self.tasks.shutdown(WAIT).await;
        tokio::time::timeout(WAIT, self.relay.task)
            .await
            .expect("the relay ignored shutdown")
            .unwrap();
        self.bus.cleanup().await;
        Self::start_on(self.db).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.shutdown(WAIT).await;
        tokio::time::timeout(WAIT, self.relay.task)
            .await
            .expect("the relay ignored shutdown")
            .unwrap();
        self.bus.cleanup().await;
        self.db.cleanup().await;
    }
}

/// The service's consumer binds before it consumes: once the broker counts it, events
/// routed to the exchange reach its queue.
async fn wait_for_consumer(bus: &TestBus, queue: &str) {
    let connection = bus.connect().await;
    wait_until("the trace consumer to be consuming", || async {
        // A passive declare of a missing queue closes the channel: use a fresh one.
        let channel = connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        matches!(declared, Ok(q) if q.consumer_count() > 0)
    })
    .await;
    let _ = connection.close(200, "done").await;
}

pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A moment with whole seconds, so that times compare exactly after a round trip.
pub fn base_time() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .replace_offset(time::UtcOffset::UTC)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A step of `connection_id`, `seconds` after `base`, from `ip:port`.
pub fn step(
    connection_id: &str,
    kind: ConnectionStep,
    outcome: Outcome,
    base: OffsetDateTime,
    seconds: i64,
    from: (&str, u16),
    fill: impl FnOnce(&mut ConnectionEvent),
) -> Event {
    let mut payload = ConnectionEvent::new(connection_id, kind, outcome);
    payload.source_ip = Some(from.0.to_owned());
    payload.source_port = Some(from.1);
    fill(&mut payload);
    let source = match kind {
        ConnectionStep::IdpRedirected
        | ConnectionStep::IdpCallback
        | ConnectionStep::IdentityVerified => "idp-bridge",
        _ => "oidc-front",
    };
    Event::from_payload_at(
        Uuid::new_v4(),
        base + time::Duration::seconds(seconds),
        source,
        &payload,
    )
    .unwrap()
}

/// Who signs in where.
pub struct SignIn<'a> {
    pub connection_id: &'a str,
    pub sp_id: &'a str,
    pub sub_fs: &'a str,
    pub account_id: &'a str,
}

/// The steps of a complete sign-in, in the order they happened: authorize_initiated,
/// idp_redirected, identity_verified, code_issued (the browser, a new port each time),
/// token_issued, userinfo_served (the SP's server), session_ended.
pub fn sign_in(who: &SignIn<'_>, base: OffsetDateTime) -> Vec<Event> {
    use ConnectionStep::*;
    let id = who.connection_id;
    let ok = Outcome::Success;
    vec![
        step(
            id,
            AuthorizeInitiated,
            ok,
            base,
            0,
            (BROWSER_IP, 50_000),
            |e| {
                e.sp_id = Some(who.sp_id.to_owned());
            },
        ),
        step(id, IdpRedirected, ok, base, 1, (BROWSER_IP, 50_001), |e| {
            e.sp_id = Some(who.sp_id.to_owned());
            e.idp_id = Some("idp-a".to_owned());
        }),
        step(
            id,
            IdentityVerified,
            ok,
            base,
            20,
            (BROWSER_IP, 50_002),
            |e| {
                e.idp_id = Some("idp-a".to_owned());
                e.acr = Some("eidas2".to_owned());
                e.sub_fi = Some(format!("fi-{}", who.account_id));
            },
        ),
        step(id, CodeIssued, ok, base, 21, (BROWSER_IP, 50_003), |e| {
            e.sp_id = Some(who.sp_id.to_owned());
            e.idp_id = Some("idp-a".to_owned());
            e.acr = Some("eidas2".to_owned());
            e.sub_fi = Some(format!("fi-{}", who.account_id));
            e.sub_fs = Some(who.sub_fs.to_owned());
            e.account_id = Some(who.account_id.to_owned());
            e.session_id = Some(format!("sid-{id}"));
        }),
        step(id, TokenIssued, ok, base, 22, (SP_SERVER_IP, 44_321), |e| {
            e.sp_id = Some(who.sp_id.to_owned());
            e.idp_id = Some("idp-a".to_owned());
            e.acr = Some("eidas2".to_owned());
            e.sub_fs = Some(who.sub_fs.to_owned());
            e.account_id = Some(who.account_id.to_owned());
            e.session_id = Some(format!("sid-{id}"));
        }),
        step(
            id,
            UserinfoServed,
            ok,
            base,
            23,
            (SP_SERVER_IP, 44_322),
            |e| {
                e.sp_id = Some(who.sp_id.to_owned());
                e.sub_fs = Some(who.sub_fs.to_owned());
            },
        ),
        step(id, SessionEnded, ok, base, 600, (BROWSER_IP, 50_100), |e| {
            e.sp_id = Some(who.sp_id.to_owned());
            e.session_id = Some(format!("sid-{id}"));
        }),
    ]
}
