//! A registry of the test's own: a fresh database, an exchange of its own, a seed file in
//! a temporary directory, the real service on a free port and a gRPC client to it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use deadpool_postgres::Pool;
use relais_config::{DatabaseConfig, Secret};
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_registry::{RegistryConfig, RegistryError};
use relais_runtime::{Shutdown, Tasks};
use relais_testkit::{Listener, TestBus, TestDb};
use tonic::transport::Channel;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

/// The key client secrets are stored under in these tests.
pub const HASH_KEY: &str = "test-registry-secret-hash-key-0123456789";
pub const LIFETIME_DAYS: u32 = 3 * 365;

/// 43+ characters: 256 bits in base64url.
pub const BASIC_SECRET: &str = "basic-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const POST_SECRET: &str = "post-secret-0123456789abcdefghijklmnopqrstuvwxyzAB";

/// Two IdPs, an SP authenticating with `client_secret_basic` (secret `basic_secret`) and
/// one with `client_secret_post`.
pub fn seed(basic_secret: &str) -> String {
    format!(
        r#"
[[identity_providers]]
id = "idp-a"
name = "IdP A"
issuer = "https://idp-a.example"
client_id = "relais-hub"
client_secret = "hub-secret-at-idp-a"
acr_values = ["eidas1", "eidas2"]
scopes = ["openid", "email"]

[[identity_providers]]
id = "idp-b"
name = "IdP B"
issuer = "http://127.0.0.1:8600"
client_id = "relais-hub"
client_secret = "hub-secret-at-idp-b"
acr_values = ["eidas1"]
scopes = ["openid"]
token_endpoint_auth_method = "client_secret_post"

[[service_providers]]
client_id = "sp-basic"
name = "SP Basic"
sector_identifier = "sector-basic"
client_secret = "{basic_secret}"
redirect_uris = ["https://sp-basic.example/cb", "http://127.0.0.1:8700/cb"]
post_logout_redirect_uris = ["https://sp-basic.example/bye"]
backchannel_logout_uri = "https://sp-basic.example/backchannel-logout"
scopes = ["openid", "email"]
claims = ["email"]
acr_values = ["eidas1", "eidas2"]
idp_ids = ["idp-a", "idp-b"]
id_token_signed_response_alg = "RS256"
token_endpoint_auth_method = "client_secret_basic"

[[service_providers]]
client_id = "sp-post"
name = "SP Post"
client_secret = "{POST_SECRET}"
redirect_uris = ["https://sp-post.example/cb"]
scopes = ["openid"]
claims = []
acr_values = ["eidas1"]
idp_ids = ["idp-b"]
token_endpoint_auth_method = "client_secret_post"

[[people]]
email = "Ops@SP-Basic.example"
name = "Camille Ops"
role = "contact"
partner = "sp:sp-basic"

[[people]]
email = "n2@relais.example"
name = "Dominique N2"
role = "level2"
"#
    )
}

pub struct Registry {
    pub db: TestDb,
    pub bus: TestBus,
    /// The test's SQL access to the registry's schema.
    pub sql: Pool,
    pub client: RegistryClient<Channel>,
    dir: TempDir,
    tasks: Tasks,
}

impl Registry {
    /// Starts the registry seeded with `seed_text`.
    pub async fn start(seed_text: &str) -> Self {
        Self::start_with(seed_text, |_| {}).await
    }

    /// [`Self::start`] with the test's own changes to the configuration.
    pub async fn start_with(seed_text: &str, configure: impl FnOnce(&mut RegistryConfig)) -> Self {
        Self::start_on(TestDb::create().await, seed_text, configure).await
    }

    /// [`Self::start_with`] on a database the test prepared (an earlier release's schema).
    pub async fn start_on(
        db: TestDb,
        seed_text: &str,
        configure: impl FnOnce(&mut RegistryConfig),
    ) -> Self {
        let bus = TestBus::new();
        let dir = TempDir::new();
        let (tasks, addr) = launch_with(&db, &bus, &dir, seed_text, configure)
            .await
            .unwrap_or_else(|e| panic!("the registry did not start: {e}"));
        let sql = db.pool(relais_registry::SCHEMA, 2).await;
        Self {
            client: connect(addr).await,
            db,
            bus,
            sql,
            dir,
            tasks,
        }
    }

    /// Stops the service and starts it again on the same database with a new seed file,
    /// as a redeployment does.
    pub async fn restart(&mut self, seed_text: &str) {
        let (tasks, addr) = launch(&self.db, &self.bus, &self.dir, seed_text)
            .await
            .unwrap_or_else(|e| panic!("the registry did not restart: {e}"));
        let old = std::mem::replace(&mut self.tasks, tasks);
        old.shutdown(WAIT).await;
        self.client = connect(addr).await;
    }

    /// [`Self::restart`] with the test's own changes to the configuration.
    pub async fn restart_with(
        &mut self,
        seed_text: &str,
        configure: impl FnOnce(&mut RegistryConfig),
    ) {
        let (tasks, addr) = launch_with(&self.db, &self.bus, &self.dir, seed_text, configure)
            .await
            .unwrap_or_else(|e| panic!("the registry did not restart: {e}"));
        let old = std::mem::replace(&mut self.tasks, tasks);
        old.shutdown(WAIT).await;
        self.client = connect(addr).await;
    }

    pub async fn stop(self) {
        self.tasks.shutdown(WAIT).await;
        self.bus.cleanup().await;
        self.db.cleanup().await;
    }

    /// A value of the stored SP row, read with SQL.
    pub async fn sp_expiry(&self, client_id: &str) -> time::OffsetDateTime {
        self.sql
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT secret_expires_at FROM service_providers WHERE client_id = $1",
                &[&client_id],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn execute(&self, sql: &str, client_id: &str) {
        let n = self
            .sql
            .get()
            .await
            .unwrap()
            .execute(sql, &[&client_id])
            .await
            .unwrap();
        assert_eq!(n, 1, "{sql} touched {n} rows");
    }

    /// What the service publishes on `routing_key`, from now on.
    pub async fn listen(&self, routing_key: &str) -> Listener {
        self.bus.listen(routing_key).await
    }
}

/// Starts the registry on a free port with `seed_text` as its seed file.
pub async fn launch(
    db: &TestDb,
    bus: &TestBus,
    dir: &std::path::Path,
    seed_text: &str,
) -> Result<(Tasks, SocketAddr), RegistryError> {
    launch_with(db, bus, dir, seed_text, |_| {}).await
}

/// [`launch`] with the test's own changes to the configuration (its KEKs).
pub async fn launch_with(
    db: &TestDb,
    bus: &TestBus,
    dir: &std::path::Path,
    seed_text: &str,
    configure: impl FnOnce(&mut RegistryConfig),
) -> Result<(Tasks, SocketAddr), RegistryError> {
    let seed_file = dir.join("partners.toml");
    std::fs::write(&seed_file, seed_text).unwrap();
    let mut config = RegistryConfig {
        listen: "127.0.0.1:0".into(),
        seed_file: Some(seed_file.to_str().unwrap().to_owned()),
        secret_hash_key: Secret::new(HASH_KEY),
        secret_lifetime_days: LIFETIME_DAYS,
        ..RegistryConfig::default()
    };
    configure(&mut config);
    let database = DatabaseConfig {
        url: Secret::new(db.url()),
        pool_size: 4,
        ..DatabaseConfig::default()
    };
    let listener = relais_runtime::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tasks = relais_registry::start(
        config,
        &database,
        bus.config(),
        Some(listener),
        &relais_runtime::LocalServices::default().for_service(relais_runtime::Role::Registry),
        Shutdown::new(),
    )
    .await?;
    Ok((tasks, addr))
}

/// A directory of the test's own for its seed file, removed when dropped (a failing
/// test included).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("relais-registry-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn connect(addr: SocketAddr) -> RegistryClient<Channel> {
    RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// The stable error code the registry puts in the status metadata.
pub fn error_code(status: &tonic::Status) -> &str {
    relais_runtime::error_code(status).expect("a relais-error-code")
}
