//! What every Relais service process needs to run and stop cleanly: a set of named tasks
//! under one shutdown token, PostgreSQL pools bound to the service's own schema (as its own
//! role, which `provision_roles` makes) with its migrations applied, gRPC serving on a pre-bound listener, and gRPC client channels
//! (over the network with mTLS, or in-process between services of one process), and the
//! authorisation of each call by its caller's identity. It holds no business rules and no
//! global state.

mod links;
pub mod peer;
mod pg_tls;
pub mod pki;
mod roles;
pub mod tls;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use relais_config::DatabaseConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

pub use links::LocalServices;
pub use peer::{Access, Caller, OperatorAudit, OperatorCall, Peer, Role};
pub use roles::provision_roles;
pub use tokio_util::sync::CancellationToken as Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("database: {0}")]
    Database(String),
    #[error("migrations of schema {schema}: {reason}")]
    Migration { schema: String, reason: String },
    #[error("cannot bind {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("invalid endpoint {0}")]
    Endpoint(String),
    #[error("gRPC server: {0}")]
    Serve(String),
    #[error("gRPC TLS: {0}")]
    Tls(String),
}

/// Named tasks of one service (or of the whole hub), stopped together.
pub struct Tasks {
    shutdown: CancellationToken,
    handles: Vec<(String, JoinHandle<()>)>,
}

impl Tasks {
    pub fn new(shutdown: CancellationToken) -> Self {
        Tasks {
            shutdown,
            handles: Vec::new(),
        }
    }

    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handles.push((name.into(), tokio::spawn(task)));
    }

    /// Runs `job` every `period` until shutdown (the first run after one period).
    pub fn spawn_every<F, Fut>(&mut self, name: impl Into<String>, period: Duration, mut job: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let token = self.shutdown.clone();
        self.spawn(name, async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => job().await,
                }
            }
        });
    }

    /// Adopts another set's tasks (a service's tasks inside the all-in-one process).
    pub fn extend(&mut self, other: Tasks) {
        self.handles.extend(other.handles);
    }

    /// Signals every task to stop and waits for each within `grace`; tasks still
    /// running then are aborted and named in the log.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.join(grace).await;
    }

    /// Waits for the tasks to end on their own (after the token is cancelled elsewhere).
    pub async fn join(self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for (name, handle) in self.handles {
            let abort = handle.abort_handle();
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(())) => tracing::debug!(task = %name, "task stopped"),
                Ok(Err(e)) => tracing::error!(task = %name, error = %e, "task failed"),
                Err(_) => {
                    abort.abort();
                    tracing::warn!(task = %name, "task did not stop within the grace period");
                }
            }
        }
    }
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Binds a listener; port 0 picks a free port (read it back with `local_addr`).
pub async fn bind(addr: &str) -> Result<TcpListener, RuntimeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| RuntimeError::Bind {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}

/// Connection settings whose sessions see only `schema`, as the role of its service
/// (`{service}` in `database.url` and `database.password_file` is `schema`).
pub fn pg_config(
    db: &DatabaseConfig,
    schema: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), RuntimeError> {
    let (mut pg, tls) = pg_connection(db, db.url_for(schema).expose())?;
    if let Some(file) = db.password_file_for(schema) {
        let password = std::fs::read_to_string(&file)
            .map_err(|e| RuntimeError::Database(format!("database.password_file {file}: {e}")))?;
        pg.password(password.trim_end_matches(['\r', '\n']));
    }
    pg.options(format!("-c search_path={schema}"));
    pg.application_name(format!("relais-{schema}"));
    pg.connect_timeout(Duration::from_secs(5));
    Ok((pg, tls))
}

/// The settings of `url` (a `sslmode` in it, or `database.sslmode`, in force) and the TLS
/// connector of `database.ca_file`.
pub fn pg_connection(
    db: &DatabaseConfig,
    url: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), RuntimeError> {
    let (url, mode) = db
        .connection(url)
        .map_err(|e| RuntimeError::Database(e.to_string()))?;
    let mut pg = tokio_postgres::Config::from_str(&url)
        .map_err(|e| RuntimeError::Database(e.to_string()))?;
    let tls = pg_tls::connector(db, mode, &mut pg)?;
    Ok((pg, tls))
}

/// A pool whose connections see only `schema` (created if missing and the role may).
pub async fn pg_pool(db: &DatabaseConfig, schema: &str) -> Result<Pool, RuntimeError> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(RuntimeError::Database(format!("bad schema name {schema}")));
    }
    let (pg, tls) = pg_config(db, schema)?;
    let manager = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(db.pool_size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| RuntimeError::Database(e.to_string()))?;
    let client = pool
        .get()
        .await
        .map_err(|e| RuntimeError::Database(with_causes(&e)))?;
    // A service's own role may not create schemas (`relais admin db-roles` made its one):
    // CREATE SCHEMA IF NOT EXISTS checks that right even when the schema exists.
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| RuntimeError::Database(e.to_string()))?
        .is_some();
    if exists {
        return Ok(pool);
    }
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .or_else(|e| match e.code() {
            // Two services starting together may race on CREATE SCHEMA.
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => Ok(()),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                Err(RuntimeError::Database(format!(
                    "schema {schema} does not exist and this role may not create it: \
                     run `relais admin db-roles`"
                )))
            }
            _ => Err(RuntimeError::Database(e.to_string())),
        })?;
    Ok(pool)
}

/// An error and its causes (a TLS refusal says why only in its source).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A service's pool, its schema created and its migrations applied.
pub async fn service_pool(
    db: &DatabaseConfig,
    schema: &str,
    runner: refinery::Runner,
) -> Result<Pool, RuntimeError> {
    let pool = pg_pool(db, schema).await?;
    migrate(&pool, schema, runner).await?;
    Ok(pool)
}

/// Applies a service's embedded refinery migrations to its schema.
pub async fn migrate(
    pool: &Pool,
    schema: &str,
    runner: refinery::Runner,
) -> Result<(), RuntimeError> {
    let mut client = pool.get().await.map_err(|e| RuntimeError::Migration {
        schema: schema.to_string(),
        reason: e.to_string(),
    })?;
    runner
        .run_async(&mut **client)
        .await
        .map_err(|e| RuntimeError::Migration {
            schema: schema.to_string(),
            reason: e.to_string(),
        })?;
    Ok(())
}

/// Where a service's gRPC calls go: over the network to another process, or straight
/// into a service of this process (see [`LocalServices`]); callers cannot tell which.
pub type GrpcChannel = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    // A concrete error: a boxed one trips rustc's Send check in axum handlers.
    tonic::transport::Error,
>;

/// A lazily connecting plaintext gRPC channel to another service (`http://127.0.0.1:7001`);
/// services reach each other through [`LocalServices::channel`], which adds mTLS.
pub fn grpc_channel(endpoint: &str) -> Result<GrpcChannel, RuntimeError> {
    Ok(GrpcChannel::new(self::endpoint(endpoint)?.connect_lazy()))
}

/// The client settings of every gRPC link.
fn endpoint(endpoint: &str) -> Result<tonic::transport::Endpoint, RuntimeError> {
    Ok(
        tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|_| RuntimeError::Endpoint(endpoint.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30)),
    )
}

/// The URL other services use to reach a listener bound on `addr`.
pub fn grpc_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The gRPC metadata key carrying a failure's stable code (documented in docs/errors.md),
/// which callers branch on rather than on words.
pub const ERROR_CODE_KEY: &str = "relais-error-code";

/// With `insufficient_user_authentication`: the acr levels a new sign-in must reach,
/// space-separated (RFC 9470's `acr_values`).
pub const ACR_VALUES_KEY: &str = "relais-acr-values";

/// A gRPC failure with its stable code attached.
pub fn status_with_code(
    code: tonic::Code,
    message: String,
    error_code: &'static str,
) -> tonic::Status {
    let mut status = tonic::Status::new(code, message);
    status.metadata_mut().insert(
        ERROR_CODE_KEY,
        tonic::metadata::MetadataValue::from_static(error_code),
    );
    status
}

/// The stable code another service put on a failure, if any.
pub fn error_code(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
}

/// A tonic server builder with the settings every service uses.
pub fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
}

/// Queries through the connection's statement cache: each statement is parsed and planned
/// once per connection instead of at every call (a string query costs PostgreSQL a parse
/// and the caller an extra round trip each time).
pub trait Prepared: deadpool_postgres::GenericClient {
    fn run<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }

    fn all<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>>
    + Send
    + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    fn one<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Row, tokio_postgres::Error>> + Send + 'a
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    fn opt<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<
        Output = Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
    > + Send
    + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }
}

impl<T: deadpool_postgres::GenericClient> Prepared for T {}

#[cfg(test)]
mod tests;
