//! Starts a hub (in one process, or as one process per service) with a demo IdP, and
//! plays the browser and the SPs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use relais::{RelaisConfig, Service};
use relais_config::Secret;
use relais_demo_idp::{DemoIdpConfig, DemoIdpHandle, Scenario};
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::support::v1::support_client::SupportClient;
use relais_proto::trace::v1 as trace;
use relais_proto::trace::v1::trace_client::TraceClient;
use relais_runtime::{GrpcChannel, LocalServices, Peer, Role};
use relais_testkit::{TcpProxy, TestBus, TestDb};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const SP_A: &str = "sp-a";
pub const SP_B: &str = "sp-b";
pub const SECRET_A: &str = "sp-a-secret-0123456789-0123456789-0123456789";
pub const SECRET_B: &str = "sp-b-secret-0123456789-0123456789-0123456789";
pub const REDIRECT_A: &str = "http://127.0.0.1:9/a/callback";
pub const REDIRECT_B: &str = "http://127.0.0.1:9/b/callback";
pub const LOGOUT_A: &str = "http://127.0.0.1:9/a/logged-out";
/// An SP authenticating with private_key_jwt, taking userinfo signed and encrypted and
/// ID tokens encrypted.
pub const SP_C: &str = "sp-c";
/// The support console: the client whose access tokens open the support API.
pub const CONSOLE: &str = "support-console";
pub const CONSOLE_SECRET: &str = "support-console-secret-0123456789-0123456789";
pub const REDIRECT_CONSOLE: &str = "http://127.0.0.1:9/console/callback";
/// The hub's own account page, an SP of the hub (its redirect URI is the hub's own).
pub const ACCOUNT: &str = "relais-account";
pub const ACCOUNT_SECRET: &str = "e2e-account-page-secret-0123456789-0123456789";
pub const REDIRECT_C: &str = "http://127.0.0.1:9/c/callback";
/// A legacy confidential SP registered exempt from PKCE.
pub const SP_LEGACY: &str = "sp-legacy";
pub const SECRET_LEGACY: &str = "sp-legacy-secret-0123456789-0123456789-0123";
pub const REDIRECT_LEGACY: &str = "http://127.0.0.1:9/legacy/callback";

/// SP C's private keys: one to sign its client assertions, one to decrypt what it gets.
pub struct SpCKeys {
    pub signing: relais_jose::SigningKey,
    pub encryption: relais_jose::EncryptionKey,
}

impl SpCKeys {
    fn generate() -> SpCKeys {
        SpCKeys {
            signing: relais_jose::SigningKey::generate(relais_jose::Alg::Es256).unwrap(),
            encryption: relais_jose::EncryptionKey::generate("RSA-OAEP-256", "sp-c-enc").unwrap(),
        }
    }

    /// The public JWKS SP C registered: both public keys.
    fn jwks(&self) -> String {
        let mut keys = vec![Value::Object(self.signing.public_jwk().as_ref().clone())];
        let enc: Value = serde_json::from_str(&self.encryption.public_jwks_json).unwrap();
        keys.extend(enc["keys"].as_array().unwrap().iter().cloned());
        serde_json::json!({ "keys": keys }).to_string()
    }
}
const IDP_SECRET: &str = "hub-at-demo-idp-secret-0123456789-0123456789";

pub enum Mode {
    AllInOne,
    Processes,
}

enum Running {
    InProcess(relais::Hub),
    Processes(Vec<tokio::process::Child>),
}

/// The test's clients call the hub's gRPC services as an operator (certificate
/// `e2e.operator.relais.internal` from the stack's own CA).
pub struct Stack {
    pub hub: String,
    pub idp: DemoIdpHandle,
    pub registry: RegistryClient<GrpcChannel>,
    pub trace: TraceClient<GrpcChannel>,
    pub front: OidcFrontClient<GrpcChannel>,
    pub proxy: Option<TcpProxy>,
    /// gRPC addresses of the registry and the front, for operator commands.
    pub registry_addr: SocketAddr,
    pub front_addr: SocketAddr,
    pub support: SupportClient<GrpcChannel>,
    /// Every service's gRPC address.
    pub grpc_addrs: Vec<(Service, SocketAddr)>,
    /// The hub's mTLS settings: a CA of this stack's own (`ca.pem`) and every identity's
    /// certificate (`<service>.pem`, `operator.pem`).
    pub grpc: relais_config::GrpcConfig,
    pub sp_c: SpCKeys,
    /// SP A's and SP B's back-channel logout endpoints.
    pub logouts: LogoutReceiver,
    /// The configuration the hub was started with, for replicas.
    config: RelaisConfig,
    support_addr: SocketAddr,
    running: Option<Running>,
    dir: PathBuf,
    db: TestDb,
    _bus: TestBus,
}

pub struct Options {
    pub mode: Mode,
    /// Route the hub's RabbitMQ link through a proxy the test can cut.
    pub proxied_bus: bool,
    pub idp_timeout_ms: u64,
    /// The demo IdP keeps a session per browser (and answers from it).
    pub idp_sessions: bool,
    /// Last changes to the hub's configuration.
    pub tweak: fn(&mut RelaisConfig),
    /// Each service connects as a role of its own, made by `relais admin db-roles`.
    pub db_roles: bool,
    /// More `[[people]]` of the registry's seed.
    pub extra_people: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::AllInOne,
            proxied_bus: false,
            idp_timeout_ms: 10_000,
            idp_sessions: false,
            tweak: |_| {},
            db_roles: false,
            extra_people: "",
        }
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Stack {
        let db = TestDb::create().await;
        let bus = TestBus::new();
        // The services' own queues, so the bus's cleanup removes them too (each front's
        // partner queue is its own and goes with its connection).
        for name in [
            "trace.connections",
            "registry.incidents",
            "oidc-front.backchannel-logout",
            "oidc-front.backchannel-logout.retry.1000ms",
        ] {
            bus.queue(name);
        }
        let proxy = if options.proxied_bus {
            Some(TcpProxy::start(bus.broker_addr()).await)
        } else {
            None
        };
        // Every service's port is held from now on (no other test can take it), except in
        // the one-process-per-service mode, where each process binds its own.
        let mut held = Vec::new();
        for s in Service::ALL {
            held.push((
                s,
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            ));
        }
        let ports: Vec<(Service, u16)> = held
            .iter()
            .map(|(s, l)| (*s, l.local_addr().unwrap().port()))
            .collect();
        let port_of = |s: Service| -> u16 { ports.iter().find(|(h, _)| *h == s).unwrap().1 };
        let hub_port = port_of(Service::Gateway);
        let hub = format!("http://127.0.0.1:{hub_port}");

        let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp_config: DemoIdpConfig = toml::from_str(&format!(
            r#"
            sessions = {sessions}
            [[clients]]
            client_id = "relais-hub"
            client_secret = "{IDP_SECRET}"
            redirect_uris = ["{hub}/idp/callback"]
            post_logout_redirect_uris = ["{hub}/idp/logout-callback"]
            "#,
            sessions = options.idp_sessions,
        ))
        .unwrap();
        let idp = relais_demo_idp::start(idp_config, idp_listener, CancellationToken::new())
            .await
            .unwrap();
        let issuer = idp.issuer().to_string();

        let dir = std::env::temp_dir().join(format!("relais-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // A CA of this stack's own, every service's certificate and the tests' operator's.
        let pki = dir.join("pki");
        relais_runtime::pki::init(&pki, 2, 2).unwrap();
        relais_runtime::pki::issue_into(&pki, &Peer::operator("e2e").unwrap(), 1).unwrap();
        let grpc = relais_config::GrpcConfig {
            ca_file: pki.join("ca.pem").display().to_string(),
            cert_file: pki.join("{service}.pem").display().to_string(),
            key_file: pki.join("{service}.key").display().to_string(),
            ..relais_config::GrpcConfig::default()
        };
        let seed = dir.join("partners.toml");
        let sp_c = SpCKeys::generate();
        let logouts = LogoutReceiver::start().await;
        let seed_text = partners(&issuer, &sp_c.jwks(), &logouts.url, &hub) + options.extra_people;
        std::fs::write(&seed, seed_text).unwrap();

        let mut config = RelaisConfig {
            grpc: grpc.clone(),
            ..RelaisConfig::default()
        };
        config.database.url = Secret::new(db.url());
        config.database.pool_size = 4;
        config.bus = match &proxy {
            Some(p) => bus.config_via(p.addr()),
            None => bus.config(),
        };
        config.gateway.listen = format!("127.0.0.1:{hub_port}");
        config.gateway.public_url = hub.clone();
        config.gateway.allow_plain_http = true;
        config.gateway.account_client_secret = Secret::new(ACCOUNT_SECRET);
        config.oidc_front.issuer = hub.clone();
        config.oidc_front.subject_key = Secret::new("e2e-subject-key-0123456789-0123456789");
        config.idp_bridge.callback_url = format!("{hub}/idp/callback");
        config.idp_bridge.logout_callback_url = format!("{hub}/idp/logout-callback");
        config.idp_bridge.http_timeout_ms = options.idp_timeout_ms;
        config.registry.seed_file = Some(seed.display().to_string());
        config.registry.secret_hash_key = Secret::new("e2e-registry-key-0123456789-0123456789");
        config.registry.listen = format!("127.0.0.1:{}", port_of(Service::Registry));
        config.trace.listen = format!("127.0.0.1:{}", port_of(Service::Trace));
        config.idp_bridge.listen = format!("127.0.0.1:{}", port_of(Service::IdpBridge));
        config.oidc_front.listen = format!("127.0.0.1:{}", port_of(Service::OidcFront));
        config.support.listen = format!("127.0.0.1:{}", port_of(Service::Support));
        // An SP that does not take a logout token is tried again within seconds.
        config.oidc_front.backchannel_logout_retry_seconds = vec![1, 1];
        let support_addr: SocketAddr = config.support.listen.parse().unwrap();
        if options.db_roles {
            config.database.url = Secret::new(db.role_url());
            let (ok, out) = db_roles(&config, db.url()).await;
            assert!(ok, "relais admin db-roles: {out}");
        }
        (options.tweak)(&mut config);
        config.validate().unwrap();
        let front_addr: SocketAddr = config.oidc_front.listen.parse().unwrap();
        let registry_addr: SocketAddr = config.registry.listen.parse().unwrap();
        let trace_addr: SocketAddr = config.trace.listen.parse().unwrap();
        let grpc_addrs: Vec<(Service, SocketAddr)> = Service::ALL
            .into_iter()
            .filter(|s| *s != Service::Gateway)
            .map(|s| (s, format!("127.0.0.1:{}", port_of(s)).parse().unwrap()))
            .collect();
        let grpc = config.grpc.clone();

        let kept = config.clone();
        let running = match options.mode {
            Mode::AllInOne => {
                let token = CancellationToken::new();
                // A service whose `listen` the test emptied gets no port.
                let served = |s: Service| match s {
                    Service::Registry => !config.registry.listen.is_empty(),
                    Service::OidcFront => !config.oidc_front.listen.is_empty(),
                    Service::IdpBridge => !config.idp_bridge.listen.is_empty(),
                    Service::Trace => !config.trace.listen.is_empty(),
                    Service::Support => !config.support.listen.is_empty(),
                    Service::Gateway => true,
                };
                let held = held
                    .into_iter()
                    .map(|(s, l)| (s, served(s).then_some(l)))
                    .collect();
                let hub = relais::start_bound(config, held, token.clone())
                    .await
                    .unwrap();
                Running::InProcess(hub)
            }
            Mode::Processes => {
                // The processes bind these ports themselves: release them just before.
                drop(held);
                let mut c = config.clone();
                c.oidc_front.registry_url = format!("http://{}", c.registry.listen);
                c.idp_bridge.registry_url = format!("http://{}", c.registry.listen);
                c.oidc_front.idp_bridge_url = format!("http://{}", c.idp_bridge.listen);
                c.gateway.oidc_front_url = format!("http://{}", c.oidc_front.listen);
                c.gateway.support_url = format!("http://{}", c.support.listen);
                c.gateway.trace_url = format!("http://{}", c.trace.listen);
                c.support.registry_url = format!("http://{}", c.registry.listen);
                c.support.oidc_front_url = format!("http://{}", c.oidc_front.listen);
                c.trace.registry_url = format!("http://{}", c.registry.listen);
                c.trace.oidc_front_url = format!("http://{}", c.oidc_front.listen);
                let file = dir.join("relais.toml");
                std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
                Running::Processes(spawn_services(&Service::ALL, &file))
            }
        };

        let operator = LocalServices::new(&grpc).for_service(Role::Operator);
        let connect = |to: Role, addr: SocketAddr| {
            operator
                .channel(to, &relais_runtime::grpc_url(addr))
                .unwrap()
        };
        let stack = Stack {
            hub,
            idp,
            registry: RegistryClient::new(connect(Role::Registry, registry_addr)),
            trace: TraceClient::new(connect(Role::Trace, trace_addr)),
            front: OidcFrontClient::new(connect(Role::OidcFront, front_addr)),
            registry_addr,
            front_addr,
            support: SupportClient::new(connect(Role::Support, support_addr)),
            grpc_addrs,
            grpc,
            sp_c,
            logouts,
            config: kept,
            support_addr,
            proxy,
            running: Some(running),
            dir,
            db,
            _bus: bus,
        };
        stack.wait_ready().await;
        stack
    }

    /// A second gateway, oidc-front and idp-bridge, each a process on ports of its own,
    /// sharing this hub's database, bus, registry and keys: the other replica a load
    /// balancer may send any request of a sign-in to. Its gateway's URL is `hub`; the
    /// issuer and the IdP's callback stay this hub's.
    pub async fn replica(&self) -> Replica {
        let free = || async {
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (gateway, front, bridge) = (free().await, free().await, free().await);
        let mut c = self.config.clone();
        c.gateway.listen = gateway.to_string();
        c.gateway.oidc_front_url = format!("http://{front}");
        c.gateway.support_url = format!("http://{}", self.support_addr);
        c.gateway.trace_url = format!("http://{}", c.trace.listen);
        c.oidc_front.listen = front.to_string();
        c.oidc_front.registry_url = format!("http://{}", self.registry_addr);
        c.oidc_front.idp_bridge_url = format!("http://{bridge}");
        c.idp_bridge.listen = bridge.to_string();
        c.idp_bridge.registry_url = format!("http://{}", self.registry_addr);
        let file = self
            .dir
            .join(format!("replica-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
        let children = spawn_services(
            &[Service::IdpBridge, Service::OidcFront, Service::Gateway],
            &file,
        );
        let replica = Replica {
            hub: format!("http://{gateway}"),
            children,
        };
        wait_for(&replica.hub).await;
        replica
    }

    async fn wait_ready(&self) {
        wait_for(&self.hub).await;
    }
}

/// The other replica of the sign-in path (see [`Stack::replica`]); stopped when dropped.
pub struct Replica {
    pub hub: String,
    #[allow(dead_code)]
    children: Vec<tokio::process::Child>,
}

/// `relais <service> --config <file>` for each service, stopped when dropped.
fn spawn_services(services: &[Service], file: &std::path::Path) -> Vec<tokio::process::Child> {
    services
        .iter()
        .map(|s| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_relais"))
                .arg(s.name())
                .arg("--config")
                .arg(file)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        })
        .collect()
}

async fn wait_for(hub: &str) {
    {
        let client = reqwest::Client::new();
        let url = format!("{hub}/.well-known/openid-configuration");
        for _ in 0..300 {
            if let Ok(r) = client.get(&url).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the hub did not come up at {hub}");
    }
}

/// `relais admin db-roles` for `config`'s database, over `admin_url`.
pub async fn db_roles(config: &RelaisConfig, admin_url: &str) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["admin", "db-roles"])
        .env("RELAIS__DATABASE__URL", config.database.url.expose())
        .env("RELAIS__DATABASE__ADMIN_URL", admin_url)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

impl Stack {
    pub async fn stop(mut self) {
        match self.running.take() {
            Some(Running::InProcess(hub)) => hub.stop(Duration::from_secs(5)).await,
            Some(Running::Processes(children)) => {
                for mut c in children {
                    let _ = c.kill().await;
                }
            }
            None => {}
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The configuration the hub was started with.
    pub fn config(&self) -> &RelaisConfig {
        &self.config
    }

    /// The hub's database.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// Runs `relais admin <args>` against this hub; returns its output.
    pub async fn admin(&self, args: &[&str]) -> (bool, String) {
        self.admin_with(args, &[]).await
    }

    /// [`Stack::admin`] with settings of its own (`RELAIS__…` variables) over the stack's.
    pub async fn admin_with(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_relais"))
            .arg("admin")
            .args(args)
            .env(
                "RELAIS__OIDC_FRONT__REGISTRY_URL",
                format!("http://{}", self.registry_addr),
            )
            .env(
                "RELAIS__GATEWAY__OIDC_FRONT_URL",
                format!("http://{}", self.front_addr),
            )
            .env(
                "RELAIS__GATEWAY__TRACE_URL",
                format!(
                    "http://{}",
                    self.grpc_addrs
                        .iter()
                        .find(|(s, _)| *s == Service::Trace)
                        .unwrap()
                        .1
                ),
            )
            .env(
                "RELAIS__GATEWAY__SUPPORT_URL",
                format!("http://{}", self.support_addr),
            )
            .env("RELAIS__GRPC__CA_FILE", &self.grpc.ca_file)
            .env("RELAIS__GRPC__CERT_FILE", &self.grpc.cert_file)
            .env("RELAIS__GRPC__KEY_FILE", &self.grpc.key_file)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn set_scenario(&self, s: Scenario) {
        self.idp.set_scenario(s);
    }

    /// Polls the trace store until `done` holds for the connections of `sub_fs` at `sp`.
    pub async fn connections_until(
        &self,
        sp: &str,
        sub_fs: &str,
        done: impl Fn(&[trace::Connection]) -> bool,
    ) -> Vec<trace::Connection> {
        let mut last = Vec::new();
        for _ in 0..200 {
            if let Ok(r) = self
                .trace
                .clone()
                .list_connections(trace::ListConnectionsRequest {
                    sp_id: sp.into(),
                    sub_fs: sub_fs.into(),
                    account_id: String::new(),
                    limit: 100,
                })
                .await
            {
                last = r.into_inner().connections;
                if done(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("trace never reached the expected state; last seen: {last:#?}");
    }

    /// The in-process hub's `/metrics` exposition (`telemetry.metrics_listen` set).
    pub async fn metrics(&self) -> String {
        let Some(Running::InProcess(hub)) = &self.running else {
            panic!("metrics are read from an in-process hub");
        };
        let addr = hub.metrics.expect("telemetry.metrics_listen is set");
        let r = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let kind = r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        r.text().await.unwrap()
    }

    /// SQL on a service's schema, as an operator (or an intruder) at the database would.
    pub async fn sql(
        &self,
        schema: &str,
        statement: &str,
    ) -> Vec<deadpool_postgres::tokio_postgres::Row> {
        let pool = self.db.pool(schema, 1).await;
        let client = pool.get().await.unwrap();
        client.query(statement, &[]).await.unwrap()
    }

    pub async fn proof_events(&self, kind: &str) -> Vec<Value> {
        let pool = self.db.pool("trace", 1).await;
        let client = pool.get().await.unwrap();
        client
            .query(
                "SELECT body FROM events WHERE kind = $1 ORDER BY seq",
                &[&kind],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let body: Value = serde_json::from_str(r.get(0)).unwrap();
                body["payload"].clone()
            })
            .collect()
    }

    pub async fn connection(&self, id: &str) -> trace::Connection {
        self.trace
            .clone()
            .get_connection(trace::GetConnectionRequest {
                connection_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }
}

fn partners(idp_issuer: &str, sp_c_jwks: &str, logouts: &str, hub: &str) -> String {
    format!(
        r#"
[[identity_providers]]
id = "demo-idp"
name = "Démo IdP"
issuer = "{idp_issuer}"
client_id = "relais-hub"
client_secret = "{IDP_SECRET}"
acr_values = ["eidas1", "eidas2", "eidas3"]
scopes = ["openid", "given_name", "usual_name", "family_name", "email", "uid", "siret", "phone", "chorusdt", "profile", "identite_pivot"]

[[identity_providers]]
id = "weak-idp"
name = "IdP faible"
issuer = "{idp_issuer}"
client_id = "relais-hub"
client_secret = "{IDP_SECRET}"
acr_values = ["eidas1"]
scopes = ["openid", "given_name", "usual_name", "email", "uid", "identite_pivot"]
token_endpoint_auth_method = "client_secret_post"

[[service_providers]]
client_id = "{SP_A}"
name = "Service A"
client_secret = "{SECRET_A}"
redirect_uris = ["{REDIRECT_A}"]
post_logout_redirect_uris = ["{LOGOUT_A}"]
backchannel_logout_uri = "{logouts}/a"
scopes = ["openid", "given_name", "usual_name", "email", "uid", "idp_id", "idp_acr"]
claims = ["given_name", "usual_name", "email", "uid", "idp_id", "idp_acr"]
acr_values = ["eidas1", "eidas2"]
idp_ids = ["demo-idp", "weak-idp"]
sso = true
# A session may sign in here for eidas1 requests only.
sso_acr_values = ["eidas1"]

[[service_providers]]
client_id = "{SP_B}"
name = "Service B"
client_secret = "{SECRET_B}"
redirect_uris = ["{REDIRECT_B}"]
scopes = ["openid", "email", "siret"]
claims = ["email"]
acr_values = ["eidas1", "eidas2", "eidas3"]
idp_ids = ["demo-idp"]
id_token_signed_response_alg = "RS256"
token_endpoint_auth_method = "client_secret_post"
# Admits RPs sending 160-bit states (27 base64url characters), as mod_auth_openidc does.
min_random_length = 27
backchannel_logout_uri = "{logouts}/b"

[[service_providers]]
client_id = "{SP_C}"
name = "Service C"
client_secret = "sp-c-unused-secret-0123456789-0123456789-0123"
redirect_uris = ["{REDIRECT_C}"]
scopes = ["openid", "email", "given_name"]
claims = ["email", "given_name"]
acr_values = ["eidas1"]
idp_ids = ["demo-idp"]
token_endpoint_auth_method = "private_key_jwt"
jwks = '{sp_c_jwks}'
userinfo_signed_response_alg = "ES256"
userinfo_encrypted_response_alg = "RSA-OAEP-256"
id_token_encrypted_response_alg = "RSA-OAEP-256"

[[service_providers]]
client_id = "{CONSOLE}"
name = "Console du support"
client_secret = "{CONSOLE_SECRET}"
redirect_uris = ["{REDIRECT_CONSOLE}"]
scopes = ["openid", "email"]
claims = ["email"]
acr_values = ["eidas1"]
idp_ids = ["demo-idp"]

[[service_providers]]
client_id = "{ACCOUNT}"
name = "Mon historique Relais"
client_secret = "{ACCOUNT_SECRET}"
redirect_uris = ["{hub}/account/callback"]
scopes = ["openid"]
claims = []
acr_values = ["eidas1"]
idp_ids = ["demo-idp"]

[[service_providers]]
client_id = "{SP_LEGACY}"
name = "Service historique"
client_secret = "{SECRET_LEGACY}"
redirect_uris = ["{REDIRECT_LEGACY}"]
scopes = ["openid", "email"]
claims = ["email"]
acr_values = ["eidas1"]
idp_ids = ["demo-idp"]
# Signs in without PKCE, as it did before OAuth 2.1.
pkce_exempt = true

# The demo IdP's Marie-Hélène (eidas3) and Camille (eidas1, too low for staff) are support
# staff, Jean a contact of Service A bound at his first use; Karim is nobody.
[[people]]
email = "marie-helene.lefevre@demo-idp.test"
name = "Marie-Hélène Lefèvre"
role = "level1"
idp = "demo-idp"

[[people]]
email = "camille.martin@demo-idp.test"
name = "Camille Martin"
role = "level1"
idp = "demo-idp"

[[people]]
email = "jean.dupont@demo-idp.test"
name = "Jean Dupont"
role = "contact"
partner = "sp:{SP_A}"
idp = "demo-idp"
"#
    )
}

/// The back-channel logout endpoints of SP A (`<url>/a`) and SP B (`<url>/b`): each logout
/// token POSTed is kept; the next `fail_next` requests are answered 503.
#[derive(Clone)]
pub struct LogoutReceiver {
    pub url: String,
    state: std::sync::Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    /// (SP path, logout token), in arrival order.
    received: std::sync::Mutex<Vec<(String, String)>>,
    fail: std::sync::atomic::AtomicUsize,
    requests: std::sync::atomic::AtomicUsize,
}

impl LogoutReceiver {
    async fn start() -> LogoutReceiver {
        use axum::extract::{Form, Path, State};
        use std::sync::atomic::Ordering;
        let state = std::sync::Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route(
                "/{sp}",
                axum::routing::post(
                    |State(s): State<std::sync::Arc<ReceiverState>>,
                     Path(sp): Path<String>,
                     Form(form): Form<std::collections::HashMap<String, String>>| async move {
                        s.requests.fetch_add(1, Ordering::SeqCst);
                        let failing = s
                            .fail
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if failing {
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let Some(token) = form.get("logout_token") else {
                            return StatusCode::BAD_REQUEST;
                        };
                        s.received.lock().unwrap().push((sp, token.clone()));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(std::sync::Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LogoutReceiver { url, state }
    }

    /// Answers the next `n` requests 503, as an SP that is down.
    pub fn fail_next(&self, n: usize) {
        self.state
            .fail
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests received, accepted or not.
    pub fn requests(&self) -> usize {
        self.state
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The logout tokens accepted: (`a` or `b`, token).
    pub fn received(&self) -> Vec<(String, String)> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until `n` tokens were accepted (20 s at most).
    pub async fn wait_for(&self, n: usize) -> Vec<(String, String)> {
        for _ in 0..400 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} logout token(s) expected, got {:?}", self.received());
    }
}

/// 32 random bytes, base64url: what a good SP sends as state and nonce.
pub fn random() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut out = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// A browser: cookies kept, redirects followed by hand so each hop can be checked.
pub struct Browser {
    pub http: reqwest::Client,
}

/// Where a sign-in ended.
#[derive(Debug)]
pub enum Ending {
    /// Back at the SP's redirect URI, with its query.
    AtSp(url::Url),
    /// A hub page (error or notice): status and HTML.
    Page(StatusCode, String),
}

impl Ending {
    pub fn at_sp(self) -> url::Url {
        match self {
            Ending::AtSp(u) => u,
            Ending::Page(s, body) => {
                panic!("expected a redirect to the SP, got a {s} page: {body}")
            }
        }
    }

    pub fn page(self) -> (StatusCode, String) {
        match self {
            Ending::Page(s, b) => (s, b),
            Ending::AtSp(u) => panic!("expected a page, got a redirect to {u}"),
        }
    }
}

pub fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The value of the input named `name` in an HTML page, whatever the attribute order.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let tag = regex::Regex::new(r#"<input[^>]*>"#).unwrap();
    let value = regex::Regex::new(r#"value="([^"]*)""#).unwrap();
    tag.find_iter(html)
        .map(|m| m.as_str())
        .find(|t| t.contains(&format!(r#"name="{name}""#)))
        .and_then(|t| value.captures(t))
        .map(|c| c[1].replace("&amp;", "&"))
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Follows redirects until the SP's URI (not fetched) or a page.
    pub async fn follow(&self, mut response: reqwest::Response) -> Ending {
        for _ in 0..20 {
            let status = response.status();
            if !status.is_redirection() {
                return Ending::Page(status, response.text().await.unwrap());
            }
            let location = response.headers()["location"].to_str().unwrap().to_string();
            let url = response.url().join(&location).unwrap();
            if url.port() == Some(9) {
                return Ending::AtSp(url);
            }
            response = self.http.get(url).send().await.unwrap();
        }
        panic!("too many redirects");
    }

    pub async fn get(&self, url: &str) -> Ending {
        let r = self.http.get(url).send().await.unwrap();
        self.follow(r).await
    }

    /// From the chooser page, picks `idp`; lands on the IdP's login page or elsewhere.
    pub async fn choose(&self, hub: &str, chooser: &str, idp: &str) -> Ending {
        let csrf = input_value(chooser, "csrf").expect("no csrf field on the chooser");
        let r = self
            .http
            .post(format!("{hub}/chooser"))
            .form(&[("csrf", csrf.as_str()), ("idp", idp)])
            .send()
            .await
            .unwrap();
        self.follow(r).await
    }

    /// On the demo IdP's login page, signs in as `identity`.
    pub async fn login(
        &self,
        idp_issuer: &str,
        page: &str,
        identity: &str,
        scenario: &str,
    ) -> Ending {
        let r = self
            .submit_login(idp_issuer, page, identity, scenario, "login")
            .await;
        self.follow(r).await
    }

    /// On the demo IdP's login page, `action` (`login` or `cancel`) as `identity`; the
    /// IdP's answer is not followed.
    pub async fn submit_login(
        &self,
        idp_issuer: &str,
        page: &str,
        identity: &str,
        scenario: &str,
        action: &str,
    ) -> reqwest::Response {
        let request_id = input_value(page, "request_id").expect("not the IdP's login page");
        self.http
            .post(format!("{idp_issuer}/authorize/login"))
            .form(&[
                ("request_id", request_id.as_str()),
                ("identity", identity),
                ("scenario", scenario),
                ("action", action),
            ])
            .send()
            .await
            .unwrap()
    }
}

/// A service provider's authorization request.
pub struct AuthRequest {
    pub client_id: &'static str,
    pub redirect_uri: &'static str,
    pub scope: &'static str,
    pub state: String,
    pub nonce: String,
    /// The PKCE verifier whose S256 challenge the request carries; none: no PKCE.
    pub code_verifier: Option<String>,
    pub extra: Vec<(&'static str, String)>,
}

/// A code the SP received, with the PKCE verifier of the request that obtained it.
#[derive(Clone, Debug)]
pub struct Code {
    pub value: String,
    pub verifier: Option<String>,
}

impl Code {
    /// A code sent without a verifier (one the hub never issued, say).
    pub fn bare(value: &str) -> Code {
        Code {
            value: value.to_string(),
            verifier: None,
        }
    }
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl AuthRequest {
    /// With state, nonce and a PKCE verifier of their own, as a good SP sends.
    pub fn new(client_id: &'static str, redirect_uri: &'static str, scope: &'static str) -> Self {
        AuthRequest {
            client_id,
            redirect_uri,
            scope,
            state: random(),
            nonce: random(),
            code_verifier: Some(random()),
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: &str) -> Self {
        self.extra.push((name, value.to_string()));
        self
    }

    /// The request of a legacy SP that sends no PKCE.
    pub fn without_pkce(mut self) -> Self {
        self.code_verifier = None;
        self
    }

    /// The code of the authorization response `back`, with this request's verifier.
    pub fn code(&self, back: &url::Url) -> Code {
        Code {
            value: query(back, "code").unwrap_or_else(|| panic!("no code in {back}")),
            verifier: self.code_verifier.clone(),
        }
    }

    pub fn url(&self, hub: &str) -> String {
        let mut u = url::Url::parse(&format!("{hub}/authorize")).unwrap();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", self.client_id)
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", self.scope)
                .append_pair("state", &self.state)
                .append_pair("nonce", &self.nonce);
            if let Some(verifier) = &self.code_verifier {
                q.append_pair("code_challenge", &s256(verifier))
                    .append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &self.extra {
                q.append_pair(k, v);
            }
        }
        u.into()
    }
}

/// A whole sign-in through the chooser and the demo IdP, ending back at the SP.
pub async fn sign_in(
    stack: &Stack,
    browser: &Browser,
    req: &AuthRequest,
    identity: &str,
) -> Ending {
    let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    let (status, login) = browser
        .choose(&stack.hub, &chooser, "demo-idp")
        .await
        .page();
    assert_eq!(status, StatusCode::OK, "IdP login page: {login}");
    let scenario = stack.idp.scenario().scenario.as_str().to_string();
    browser
        .login(stack.idp.issuer(), &login, identity, &scenario)
        .await
}

/// A whole sign-in as [`sign_in`], and the code the SP received.
pub async fn code_of_sign_in(
    stack: &Stack,
    browser: &Browser,
    req: &AuthRequest,
    identity: &str,
) -> Code {
    req.code(&sign_in(stack, browser, req, identity).await.at_sp())
}

/// The SP's back channel: `code` redeemed with its verifier, if it has one.
pub async fn token(
    hub: &str,
    client: &str,
    secret: &str,
    code: &Code,
    redirect_uri: &str,
    basic: bool,
) -> (StatusCode, Value) {
    token_from(None, hub, client, secret, code, redirect_uri, basic).await
}

/// [`token`] sent from `from`, another loopback address (127.0.0.0/8 is all loopback):
/// another client machine as the hub sees it.
pub async fn token_from(
    from: Option<std::net::IpAddr>,
    hub: &str,
    client: &str,
    secret: &str,
    code: &Code,
    redirect_uri: &str,
    basic: bool,
) -> (StatusCode, Value) {
    let http = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.value.as_str()),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(verifier) = &code.verifier {
        form.push(("code_verifier", verifier));
    }
    let mut req = http.post(format!("{hub}/token"));
    if basic {
        req = req.basic_auth(client, Some(secret));
    } else {
        form.push(("client_id", client));
        form.push(("client_secret", secret));
    }
    let r = req.form(&form).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let status = r.status();
    (status, r.json().await.unwrap())
}

pub async fn userinfo(hub: &str, access_token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(format!("{hub}/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Verifies an ID token with `jsonwebtoken` (not the hub's JOSE code) against /jwks.
pub async fn verify_id_token(hub: &str, token: &str, audience: &str) -> Value {
    verify_hub_jwt(hub, token, audience, true).await
}

/// Verifies any JWT the hub signed (userinfo has no `exp`).
pub async fn verify_hub_jwt(hub: &str, token: &str, audience: &str, with_exp: bool) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{hub}/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("ID token without kid");
    let jwk = jwks.find(&kid).expect("kid not in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[hub]);
    if with_exp {
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    } else {
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

pub fn parse_demo_scenario(name: &str) -> Scenario {
    serde_json::from_value(Value::String(name.into())).unwrap()
}
