//! A hub under test: its own database and exchange, the seeded registry, the demo IdP,
//! and the hub in one of the three [`Mode`]s. Everything created is removed at [`Stack::stop`].

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rand::RngCore;
use relais::{RelaisConfig, Service};
use relais_config::Secret;
use relais_demo_idp::{ClientConfig, DemoIdpConfig, DemoIdpHandle};
use serde::Serialize;
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use crate::options::{Mode, Registry};

const IDP_CLIENT_ID: &str = "relais-hub";
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SP_SCOPE: &str = "openid given_name usual_name email uid";

/// What the stack is made of.
#[derive(Clone, Debug)]
pub struct Spec {
    pub mode: Mode,
    pub registry: Registry,
    pub idps_per_sp: usize,
    pub rs256_every: usize,
    pub pool_size: usize,
    pub relais_bin: Option<PathBuf>,
}

/// A seeded service provider, as its back end knows itself.
#[derive(Clone, Debug)]
pub struct Sp {
    pub client_id: String,
    pub secret: String,
    pub redirect_uri: String,
    pub idp_ids: Vec<String>,
    pub rs256: bool,
}

impl Sp {
    pub fn scope(&self) -> &'static str {
        SP_SCOPE
    }
}

/// Runtimes the in-process parts run on, so their CPU time can be told apart by thread name.
#[derive(Clone)]
pub struct Runtimes {
    pub hub: Handle,
    pub idp: Handle,
}

enum Running {
    InProcess(relais::Hub, CancellationToken),
    Children(Vec<(String, tokio::process::Child)>),
}

pub struct Stack {
    pub spec: Spec,
    pub hub_url: String,
    pub idp_issuer: String,
    pub sps: Arc<Vec<Sp>>,
    pub db: Database,
    pub bus: Bus,
    pub trace_addr: SocketAddr,
    /// The hub's mTLS settings (a CA of the bench's own; `operator.pem` reads the traces).
    pub grpc: relais_config::GrpcConfig,
    /// Child processes of the hub: name and pid.
    pub children: Vec<(String, u32)>,
    pub setup_seconds: f64,
    running: Option<Running>,
    idp: Option<DemoIdpHandle>,
    runtimes: Runtimes,
    dir: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Stack {
    /// Creates the database and exchange, starts the demo IdP and the hub, and waits
    /// until one sign-in can go through.
    pub async fn start(spec: Spec, runtimes: Runtimes) -> anyhow::Result<Stack> {
        let started = Instant::now();
        let db = Database::create().await?;
        let bus = Bus::new();
        let dir = std::env::temp_dir().join(format!("relais-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut stack = Stack {
            spec,
            hub_url: String::new(),
            idp_issuer: String::new(),
            sps: Arc::new(Vec::new()),
            db,
            bus,
            trace_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: relais_config::GrpcConfig::default(),
            children: Vec::new(),
            setup_seconds: 0.0,
            running: None,
            idp: None,
            runtimes,
            dir,
        };
        // On failure, what was created is removed before the error goes up.
        match stack.boot().await {
            Ok(()) => {
                stack.setup_seconds = started.elapsed().as_secs_f64();
                Ok(stack)
            }
            Err(e) => {
                let logs = stack.child_logs();
                stack.stop().await;
                Err(e.context(logs))
            }
        }
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        let hub_port = free_port()?;
        self.hub_url = format!("http://127.0.0.1:{hub_port}");
        let idp_secret = random_text();
        let idp = start_idp(&self.runtimes.idp, &self.hub_url, &idp_secret).await?;
        self.idp_issuer = idp.issuer().to_string();
        self.idp = Some(idp);

        let (seed, sps) = seed(&self.spec, &self.idp_issuer, &idp_secret, &random_text());
        self.sps = Arc::new(sps);
        let seed_path = self.dir.join("partners.toml");
        std::fs::write(&seed_path, toml::to_string(&seed)?)?;

        // The services authenticate each other as a deployment's do (mTLS, their own CA).
        let pki = self.dir.join("pki");
        relais_runtime::pki::init(&pki, 2, 2)?;
        let operator =
            relais_runtime::Peer::operator("bench").ok_or_else(|| anyhow!("bad operator name"))?;
        relais_runtime::pki::issue_into(&pki, &operator, 1)?;
        self.grpc = relais_config::GrpcConfig {
            ca_file: pki.join("ca.pem").display().to_string(),
            cert_file: pki.join("{service}.pem").display().to_string(),
            key_file: pki.join("{service}.key").display().to_string(),
            ..relais_config::GrpcConfig::default()
        };
        let mut config = RelaisConfig {
            grpc: self.grpc.clone(),
            ..RelaisConfig::default()
        };
        // Loopback only: plain HTTP, asked for explicitly.
        config.gateway.allow_plain_http = true;
        config.database.url = Secret::new(self.db.url.clone());
        config.database.pool_size = self.spec.pool_size;
        config.bus.url = self.bus.url.clone();
        config.bus.exchange = self.bus.exchange.clone();
        config.gateway.listen = format!("127.0.0.1:{hub_port}");
        config.gateway.public_url = self.hub_url.clone();
        config.oidc_front.issuer = self.hub_url.clone();
        config.oidc_front.subject_key = Secret::new(format!("bench-subject-{}", random_text()));
        // Only the SSO points keep a browser's cookies from one sign-in to the next.
        config.oidc_front.sso_enabled = true;
        config.idp_bridge.callback_url = format!("{}/idp/callback", self.hub_url);
        config.idp_bridge.logout_callback_url = format!("{}/idp/logout-callback", self.hub_url);
        config.registry.seed_file = Some(seed_path.display().to_string());
        config.registry.secret_hash_key = Secret::new(format!("bench-registry-{}", random_text()));
        config.registry.listen = format!("127.0.0.1:{}", free_port()?);
        config.trace.listen = format!("127.0.0.1:{}", free_port()?);
        config.idp_bridge.listen = format!("127.0.0.1:{}", free_port()?);
        config.oidc_front.listen = format!("127.0.0.1:{}", free_port()?);
        config.oidc_front.registry_url = format!("http://{}", config.registry.listen);
        config.idp_bridge.registry_url = format!("http://{}", config.registry.listen);
        config.oidc_front.idp_bridge_url = format!("http://{}", config.idp_bridge.listen);
        config.gateway.oidc_front_url = format!("http://{}", config.oidc_front.listen);
        config.gateway.trace_url = format!("http://{}", config.trace.listen);
        config.telemetry.log_level = "warn".into();
        config
            .validate()
            .map_err(|e| anyhow!("hub configuration: {e}"))?;
        self.trace_addr = config.trace.listen.parse()?;

        match self.spec.mode {
            Mode::InProcess => {
                let token = CancellationToken::new();
                let shutdown = token.clone();
                let hub = self
                    .runtimes
                    .hub
                    .spawn(async move { relais::start(config, &Service::ALL, shutdown).await })
                    .await?
                    .map_err(|e| anyhow!("hub: {e}"))?;
                self.running = Some(Running::InProcess(hub, token));
            }
            Mode::AllProcess | Mode::Processes => {
                let bin = relais_binary(self.spec.relais_bin.as_deref())?;
                let file = self.dir.join("relais.toml");
                std::fs::write(&file, toml::to_string(&config)?)?;
                let names: Vec<&str> = if self.spec.mode == Mode::AllProcess {
                    vec!["all"]
                } else {
                    Service::ALL.iter().map(|s| s.name()).collect()
                };
                let mut children = Vec::new();
                for name in names {
                    let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
                    let child = tokio::process::Command::new(&bin)
                        .arg(name)
                        .arg("--config")
                        .arg(&file)
                        .stdout(Stdio::null())
                        .stderr(log)
                        .kill_on_drop(true)
                        .spawn()
                        .with_context(|| format!("cannot start {}", bin.display()))?;
                    let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
                    self.children.push((relais_name(name), pid));
                    children.push((name.to_string(), child));
                }
                self.running = Some(Running::Children(children));
            }
        }
        self.bus.connect().await?;
        Ok(())
    }

    /// The last lines each child wrote, for an error message.
    pub fn child_logs(&self) -> String {
        let out = self.child_lines(5, |_| true);
        if out.is_empty() {
            "hub start".into()
        } else {
            format!("hub start; last log lines:{out}")
        }
    }

    /// The last warnings and errors the children logged, to explain a point's errors.
    pub fn child_problems(&self) -> String {
        self.child_lines(10, |l| l.contains("ERROR") || l.contains("WARN"))
    }

    fn child_lines(&self, n: usize, keep: impl Fn(&str) -> bool) -> String {
        let mut out = String::new();
        for (name, _) in &self.children {
            let short = name.trim_start_matches("relais ");
            let path = self.dir.join(format!("{short}.log"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                let tail: Vec<&str> = text.lines().rev().filter(|l| keep(l)).take(n).collect();
                for line in tail.into_iter().rev() {
                    out.push_str(&format!("\n  [{name}] {line}"));
                }
            }
        }
        out
    }

    /// Whether every child process is still alive.
    pub fn children_alive(&mut self) -> Result<(), String> {
        if let Some(Running::Children(children)) = &mut self.running {
            for (name, child) in children.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("relais {name} exited: {status}"));
                }
            }
        }
        Ok(())
    }

    /// Stops the hub and the IdP, drops the database and deletes the exchange and queues.
    pub async fn stop(&mut self) {
        match self.running.take() {
            Some(Running::InProcess(hub, token)) => {
                let grace = Duration::from_secs(5);
                let stopping = self.runtimes.hub.spawn(async move {
                    token.cancel();
                    hub.join(grace).await;
                });
                let _ = stopping.await;
            }
            Some(Running::Children(children)) => {
                for (_, mut child) in children {
                    let _ = child.kill().await;
                }
            }
            None => {}
        }
        if let Some(idp) = self.idp.take() {
            let _ = self
                .runtimes
                .idp
                .spawn(async move { idp.stop().await })
                .await;
        }
        self.bus.cleanup().await;
        if let Err(e) = self.db.drop_database().await {
            eprintln!("relais-bench: could not drop {}: {e:#}", self.db.name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn relais_name(service: &str) -> String {
    format!("relais {service}")
}

fn relais_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no directory for the current executable"))?
            .join("relais"),
    };
    if !path.is_file() {
        bail!(
            "no relais binary at {} (build it: cargo build --release -p relais, or pass --relais-bin)",
            path.display()
        );
    }
    Ok(path)
}

async fn start_idp(rt: &Handle, hub: &str, secret: &str) -> anyhow::Result<DemoIdpHandle> {
    let config = DemoIdpConfig {
        clients: vec![ClientConfig {
            client_id: IDP_CLIENT_ID.into(),
            client_secret: relais_demo_idp::Secret::new(secret),
            redirect_uris: vec![format!("{hub}/idp/callback")],
            post_logout_redirect_uris: vec![format!("{hub}/idp/logout-callback")],
        }],
        ..DemoIdpConfig::default()
    };
    let handle = rt
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            relais_demo_idp::start(config, listener, CancellationToken::new())
                .await
                .map_err(|e| anyhow!("demo IdP: {e}"))
        })
        .await??;
    Ok(handle)
}

#[derive(Serialize)]
struct SeedFile {
    identity_providers: Vec<SeedIdp>,
    service_providers: Vec<SeedSp>,
}

#[derive(Serialize)]
struct SeedIdp {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    client_secret: String,
    acr_values: Vec<String>,
    scopes: Vec<String>,
    token_endpoint_auth_method: String,
}

#[derive(Serialize)]
struct SeedSp {
    client_id: String,
    name: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    scopes: Vec<String>,
    claims: Vec<String>,
    acr_values: Vec<String>,
    idp_ids: Vec<String>,
    id_token_signed_response_alg: String,
    token_endpoint_auth_method: String,
    /// Single sign-on, for the SSO points (a fresh cookie jar per sign-in otherwise).
    sso: bool,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// N SPs and M IdPs, every IdP being the one demo IdP under another id; SP `i` shows
/// `idps_per_sp` IdPs starting at `7i mod M`.
fn seed(spec: &Spec, issuer: &str, idp_secret: &str, sp_salt: &str) -> (SeedFile, Vec<Sp>) {
    let m = spec.registry.idps;
    let idp_id = |j: usize| format!("bench-idp-{j:04}");
    let identity_providers = (0..m)
        .map(|j| SeedIdp {
            id: idp_id(j),
            name: format!("IdP {j}"),
            issuer: issuer.to_string(),
            client_id: IDP_CLIENT_ID.into(),
            client_secret: idp_secret.to_string(),
            acr_values: strings(&["eidas1", "eidas2", "eidas3"]),
            scopes: strings(&[
                "openid",
                "given_name",
                "usual_name",
                "family_name",
                "email",
                "uid",
            ]),
            token_endpoint_auth_method: "client_secret_basic".into(),
        })
        .collect();
    let per_sp = spec.idps_per_sp.min(m);
    let mut sps = Vec::with_capacity(spec.registry.sps);
    let mut seeded = Vec::with_capacity(spec.registry.sps);
    for i in 0..spec.registry.sps {
        let client_id = format!("bench-sp-{i:05}");
        let secret = format!("{client_id}-{sp_salt}");
        let redirect_uri = format!("http://127.0.0.1:9/{client_id}/callback");
        let idp_ids: Vec<String> = (0..per_sp).map(|k| idp_id((7 * i + k) % m)).collect();
        let rs256 = spec.rs256_every > 0 && i % spec.rs256_every == spec.rs256_every - 1;
        seeded.push(SeedSp {
            client_id: client_id.clone(),
            name: format!("Service {i}"),
            client_secret: secret.clone(),
            redirect_uris: vec![redirect_uri.clone()],
            scopes: SP_SCOPE.split(' ').map(str::to_string).collect(),
            claims: strings(&["given_name", "usual_name", "email", "uid"]),
            acr_values: strings(&["eidas1", "eidas2"]),
            idp_ids: idp_ids.clone(),
            id_token_signed_response_alg: if rs256 { "RS256" } else { "ES256" }.into(),
            token_endpoint_auth_method: "client_secret_basic".into(),
            sso: true,
        });
        sps.push(Sp {
            client_id,
            secret,
            redirect_uri,
            idp_ids,
            rs256,
        });
    }
    (
        SeedFile {
            identity_providers,
            service_providers: seeded,
        },
        sps,
    )
}

fn admin_url() -> String {
    std::env::var("RELAIS_BENCH_PG")
        .or_else(|_| std::env::var("RELAIS_TEST_PG"))
        .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// A connection to the server's admin database.
pub async fn admin_client() -> anyhow::Result<tokio_postgres::Client> {
    connect(&admin_url()).await
}

/// A fresh database on the shared server, named `relais_bench_<uuid>`.
pub struct Database {
    pub name: String,
    pub url: String,
    admin_url: String,
    dropped: bool,
}

impl Database {
    async fn create() -> anyhow::Result<Database> {
        let admin_url = admin_url();
        let name = format!("relais_bench_{}", uuid::Uuid::new_v4().simple());
        connect(&admin_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let mut url = url::Url::parse(&admin_url)?;
        url.set_path(&name);
        Ok(Database {
            name,
            url: url.to_string(),
            admin_url,
            dropped: false,
        })
    }

    /// A connection to this database, outside the hub's pools.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// A connection to the server's admin database.
    pub async fn admin(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.admin_url).await
    }

    async fn drop_database(&mut self) -> anyhow::Result<()> {
        if self.dropped {
            return Ok(());
        }
        self.dropped = true;
        connect(&self.admin_url)
            .await?
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// Runs `job` to completion on a thread of its own: `Drop` cannot await, and may run
/// inside a runtime (an interrupted run).
fn on_own_thread(job: impl Future<Output = ()> + Send + 'static) {
    let done = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(job);
        }
    })
    .join();
    if done.is_err() {
        eprintln!("relais-bench: a clean-up thread failed");
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        on_own_thread(async move {
            if let Ok(c) = connect(&admin).await {
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "cannot reach PostgreSQL (set RELAIS_BENCH_PG)".to_string())?;
    tokio::spawn(async move {
        // Ends when the client is dropped.
        let _ = connection.await;
    });
    Ok(client)
}

/// The stack's own exchange on the shared broker, and a channel to look at its queues.
pub struct Bus {
    pub url: String,
    pub exchange: String,
    connection: Option<Connection>,
    cleaned: bool,
}

impl Bus {
    fn new() -> Bus {
        let url = std::env::var("RELAIS_BENCH_AMQP")
            .or_else(|_| std::env::var("RELAIS_TEST_AMQP"))
            .unwrap_or_else(|_| RelaisConfig::default().bus.url);
        Bus {
            url,
            exchange: format!("relais.bench.{}", uuid::Uuid::new_v4().simple()),
            connection: None,
            cleaned: false,
        }
    }

    /// The queues the hub's consumers declare on this exchange (the trace's first).
    fn queues(&self) -> Vec<String> {
        [
            "trace.connections",
            "oidc-front.partners",
            "registry.incidents",
            "support.notify",
        ]
        .iter()
        .map(|q| format!("{}.{q}", self.exchange))
        .collect()
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let connection = Connection::connect(&self.url, properties)
            .await
            .with_context(|| "cannot reach RabbitMQ (set RELAIS_BENCH_AMQP)".to_string())?;
        self.connection = Some(connection);
        Ok(())
    }

    /// Messages ready in the trace queue (0 before the hub declared it).
    pub async fn trace_queue_depth(&self) -> u64 {
        let Some(connection) = &self.connection else {
            return 0;
        };
        let Ok(channel) = connection.create_channel().await else {
            return 0;
        };
        let queues = self.queues();
        let Some(queue) = queues.first() else {
            return 0;
        };
        let depth = channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| u64::from(q.message_count()))
            .unwrap_or(0);
        let _ = channel.close(200, "bench").await;
        depth
    }

    async fn cleanup(&mut self) {
        self.cleaned = true;
        if self.connection.is_none() && self.connect().await.is_err() {
            eprintln!("relais-bench: could not delete exchange {}", self.exchange);
            return;
        }
        let Some(connection) = self.connection.take() else {
            return;
        };
        // A channel per deletion: an error (a queue this hub never declared) closes it.
        for queue in self.queues() {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(&queue, QueueDeleteOptions::default())
                    .await;
                let _ = channel.close(200, "bench").await;
            }
        }
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .exchange_delete(&self.exchange, ExchangeDeleteOptions::default())
                .await;
        }
        let _ = connection.close(200, "bench done").await;
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let mut bus = Bus {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            connection: None,
            cleaned: true,
        };
        on_own_thread(async move { bus.cleanup().await });
    }
}
