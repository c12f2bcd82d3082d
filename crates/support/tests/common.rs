//! A support service of the test's own: a fresh database, an exchange of its own, the
//! real registry (the people support asks about) and the real support service on free
//! ports with a hand-moved clock, a gRPC client, and observers of what it publishes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZoneDatabase;
use relais_config::{DatabaseConfig, Secret};
use relais_proto::support::v1 as pb;
use relais_proto::support::v1::support_client::SupportClient;
use relais_registry::RegistryConfig;
use relais_runtime::{LocalServices, Role, Shutdown, Tasks};
use relais_support::{ManualClock, SupportConfig};
use relais_testkit::{Listener, TestBus, TestDb};
use tonic::transport::Channel;

pub const WAIT: Duration = Duration::from_secs(20);

/// What the mail tests' gateway presents to post raw mail.
pub const INTAKE_SECRET: &str = "mail-intake-secret-of-the-tests-0123456789";

/// A local Paris time.
pub fn paris(s: &str) -> Timestamp {
    let dt: DateTime = s.parse().unwrap();
    let tz = TimeZoneDatabase::bundled().get("Europe/Paris").unwrap();
    dt.to_zoned(tz).unwrap().timestamp()
}

/// Monday 3 March 2025, 10:00 in Paris: where the clock starts.
pub fn monday() -> Timestamp {
    paris("2025-03-03T10:00")
}

pub struct Support {
    pub db: TestDb,
    pub bus: TestBus,
    pub client: SupportClient<Channel>,
    pub clock: Arc<ManualClock>,
    /// Where `/metrics` is served, when the config asks for it.
    pub metrics: Option<SocketAddr>,
    tasks: Tasks,
    registry: Tasks,
    local: LocalServices,
    seed_file: std::path::PathBuf,
    config: SupportConfig,
}

/// The partners support tests file for, their contacts, and one staff member (whose
/// mail is not a partner's).
pub const PEOPLE: &str = r#"
[[people]]
email = "ops@idp-a.example"
name = "Ops A"
role = "contact"
partner = "idp:idp-a"

[[people]]
email = "cto@idp-a.example"
name = "CTO A"
role = "contact"
partner = "idp:idp-a"

[[people]]
email = "dev@sp-b.example"
name = "Dev B"
role = "contact"
partner = "sp:sp-b"

[[people]]
email = "n1@relais.example"
name = "Level One"
role = "level1"
"#;

fn seed() -> String {
    let mut seed = String::new();
    for idp in ["idp-a", "idp-b", "idp-c"] {
        seed.push_str(&format!(
            "[[identity_providers]]\nid = \"{idp}\"\nname = \"{idp}\"\n\
             issuer = \"https://{idp}.example\"\nclient_id = \"relais\"\n\
             client_secret = \"secret-of-the-hub-at-{idp}\"\nacr_values = [\"eidas1\"]\n\
             scopes = [\"openid\"]\n\n"
        ));
    }
    for sp in ["sp-a", "sp-ac", "sp-b"] {
        seed.push_str(&format!(
            "[[service_providers]]\nclient_id = \"{sp}\"\nname = \"{sp}\"\n\
             client_secret = \"{sp}-secret-0123456789abcdefghijklmnopqrstuvwxyz\"\n\
             redirect_uris = [\"https://{sp}.example/cb\"]\nscopes = [\"openid\"]\n\
             claims = []\nacr_values = [\"eidas1\"]\nidp_ids = [\"idp-a\"]\n\n"
        ));
    }
    seed.push_str(PEOPLE);
    seed
}

impl Support {
    pub async fn start() -> Self {
        Self::start_with(SupportConfig::default()).await
    }

    pub async fn start_with(config: SupportConfig) -> Self {
        let db = TestDb::create().await;
        let bus = TestBus::new();
        let clock = Arc::new(ManualClock::new(monday()));
        let seed_file =
            std::env::temp_dir().join(format!("relais-support-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&seed_file, seed()).unwrap();
        let local = LocalServices::default();
        let listener = relais_runtime::bind("127.0.0.1:0").await.unwrap();
        let registry_url = relais_runtime::grpc_url(listener.local_addr().unwrap());
        let registry = relais_registry::start(
            RegistryConfig {
                listen: "127.0.0.1:0".into(),
                seed_file: Some(seed_file.display().to_string()),
                secret_hash_key: Secret::new("support-tests-registry-hash-key-0123456789"),
                ..RegistryConfig::default()
            },
            &database(&db),
            bus.config(),
            Some(listener),
            &local.for_service(Role::Registry),
            Shutdown::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("the registry did not start: {e}"));
        let config = SupportConfig {
            registry_url,
            // Access tokens are tried end to end (tests/e2e); nothing answers here.
            oidc_front_url: "http://127.0.0.1:1".into(),
            ..config
        };
        Self::launch(db, bus, clock, registry, local, seed_file, config).await
    }

    /// Stops the service, runs `meanwhile`, and starts it again on the same database,
    /// bus and clock.
    pub async fn restart(self, meanwhile: impl FnOnce()) -> Self {
        self.tasks.shutdown(WAIT).await;
        meanwhile();
        let Self {
            db,
            bus,
            clock,
            registry,
            local,
            seed_file,
            config,
            ..
        } = self;
        Self::launch(db, bus, clock, registry, local, seed_file, config).await
    }

    async fn launch(
        db: TestDb,
        bus: TestBus,
        clock: Arc<ManualClock>,
        registry: Tasks,
        local: LocalServices,
        seed_file: std::path::PathBuf,
        config: SupportConfig,
    ) -> Self {
        let database = database(&db);
        let listener = relais_runtime::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = SupportConfig {
            listen: "127.0.0.1:0".into(),
            // The clock only moves when a test moves it: look often.
            scheduler_interval_ms: 50,
            ..config
        };
        let running = relais_support::start_with_clock(
            config.clone(),
            &database,
            bus.config(),
            Some(listener),
            &local.for_service(Role::Support),
            Shutdown::new(),
            clock.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("the support service did not start: {e}"));
        Self {
            client: SupportClient::connect(format!("http://{addr}"))
                .await
                .unwrap(),
            db,
            bus,
            clock,
            metrics: running.metrics_addr,
            tasks: running.tasks,
            registry,
            local,
            seed_file,
            config,
        }
    }

    pub async fn stop(self) {
        self.tasks.shutdown(WAIT).await;
        self.registry.shutdown(WAIT).await;
        let _ = std::fs::remove_file(&self.seed_file);
        self.bus.cleanup().await;
        self.db.cleanup().await;
    }

    pub async fn open(
        &mut self,
        caller: pb::Caller,
        partner: (i32, &str),
        scope: &str,
        severity: u32,
    ) -> pb::Ticket {
        self.client
            .open_ticket(open_request(caller, partner, scope, severity))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn get(&mut self, caller: pb::Caller, id: &str) -> pb::Ticket {
        self.client
            .get_ticket(pb::TicketRequest {
                caller: Some(caller),
                ticket_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Polls the ticket until `done` holds (the scheduler acts on its own time).
    pub async fn wait_ticket(
        &mut self,
        id: &str,
        what: &str,
        done: impl Fn(&pb::Ticket) -> bool,
    ) -> pb::Ticket {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ticket = self.get(staff("level1"), id).await;
            if done(&ticket) {
                return ticket;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the notifier consumes its queue, so no event is published before the
    /// queue is bound; the queue is removed at cleanup.
    pub async fn wait_notifier(&self) {
        use lapin::options::QueueDeclareOptions;
        use lapin::types::FieldTable;
        let queue = self.bus.queue("support.notify");
        assert_eq!(queue, relais_support::notify_queue(&self.bus.config()));
        let connection = self.bus.connect().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            // A passive declaration of a missing queue closes the channel: one per try.
            let channel = connection.create_channel().await.unwrap();
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            if let Ok(q) = channel
                .queue_declare(&queue, passive, FieldTable::default())
                .await
                && q.consumer_count() > 0
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the notifier's queue"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = connection.close(200, "notifier ready").await;
    }

    /// What the service publishes on `routing_key`, from now on.
    pub async fn listen(&self, routing_key: &str) -> Listener {
        self.bus.listen(routing_key).await
    }
}

fn database(db: &TestDb) -> DatabaseConfig {
    DatabaseConfig {
        url: Secret::new(db.url()),
        pool_size: 4,
        ..DatabaseConfig::default()
    }
}

pub const SP: i32 = pb::PartnerKind::Sp as i32;
pub const IDP: i32 = pb::PartnerKind::Idp as i32;

pub fn contact(kind: i32, partner: &str) -> pb::Caller {
    pb::Caller {
        who: Some(pb::caller::Who::Contact(pb::Contact {
            partner_kind: kind,
            partner_id: partner.into(),
            email: format!("ops@{partner}.example"),
        })),
    }
}

pub fn staff(role: &str) -> pb::Caller {
    pb::Caller {
        who: Some(pb::caller::Who::Staff(pb::Staff {
            role: role.into(),
            name: format!("agent-{role}"),
        })),
    }
}

pub fn open_request(
    caller: pb::Caller,
    partner: (i32, &str),
    scope: &str,
    severity: u32,
) -> pb::OpenTicketRequest {
    pb::OpenTicketRequest {
        caller: Some(caller),
        partner_kind: partner.0,
        partner_id: partner.1.into(),
        scope: scope.into(),
        severity,
        subject: "Sign-in fails".into(),
        body: "Users get an error page after the IdP.".into(),
        attachments: vec![],
    }
}

pub fn text(caller: pb::Caller, id: &str, text: &str) -> pb::TextRequest {
    pb::TextRequest {
        caller: Some(caller),
        ticket_id: id.into(),
        text: text.into(),
    }
}

/// The stable error code the service puts in the status metadata.
pub fn error_code(status: &tonic::Status) -> &str {
    relais_runtime::error_code(status).expect("a relais-error-code")
}
