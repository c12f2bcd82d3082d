//! What every Relais service process needs to run and stop cleanly: a set of named tasks
//! under one shutdown token, PostgreSQL pools bound to the service's own schema with its
//! migrations applied, gRPC serving on a pre-bound listener, and gRPC client channels
//! (over the network, or in-process between services of one process). It holds no
//! business rules and no global state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use relais_config::DatabaseConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// Connection settings whose sessions see only `schema`.
pub fn pg_config(
    db: &DatabaseConfig,
    schema: &str,
) -> Result<tokio_postgres::Config, RuntimeError> {
    let mut pg = tokio_postgres::Config::from_str(db.url.expose())
        .map_err(|e| RuntimeError::Database(e.to_string()))?;
    pg.options(format!("-c search_path={schema}"));
    pg.application_name(format!("relais-{schema}"));
    pg.connect_timeout(Duration::from_secs(5));
    Ok(pg)
}

/// A pool whose connections see only `schema` (created if missing).
pub async fn pg_pool(db: &DatabaseConfig, schema: &str) -> Result<Pool, RuntimeError> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(RuntimeError::Database(format!("bad schema name {schema}")));
    }
    let pg = pg_config(db, schema)?;
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
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
        .map_err(|e| RuntimeError::Database(e.to_string()))?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .or_else(|e| {
            // Two services starting together may race on CREATE SCHEMA.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(RuntimeError::Database(e.to_string()))
            }
        })?;
    Ok(pool)
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

/// A lazily connecting gRPC channel to another service (`http://127.0.0.1:7001`).
pub fn grpc_channel(endpoint: &str) -> Result<GrpcChannel, RuntimeError> {
    let ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|_| RuntimeError::Endpoint(endpoint.to_string()))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    Ok(GrpcChannel::new(ep.connect_lazy()))
}

/// The gRPC services running in this process, by the URL the other services know them
/// by. When `relais all` runs every service in one process, a call between two of them
/// goes through the same generated server code and protobuf encoding as over the
/// network, but skips HTTP/2 and the loopback socket (a third of a sign-in's CPU was
/// kernel time spent on such hops). Services in other processes are still reached over
/// the network.
#[derive(Clone, Default)]
pub struct LocalServices {
    services: Arc<Mutex<HashMap<String, GrpcChannel>>>,
}

impl LocalServices {
    /// Makes `service`, also served on `listener`, callable in-process.
    pub fn add<S>(&self, listener: &TcpListener, service: S) -> Result<(), RuntimeError>
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        use tower::ServiceExt;
        let addr = listener
            .local_addr()
            .map_err(|e| RuntimeError::Serve(format!("listener without an address: {e}")))?;
        let channel = GrpcChannel::new(service.map_err(|never| match never {}));
        self.lock().insert(grpc_url(addr), channel);
        Ok(())
    }

    /// A channel to `endpoint`: in-process when a service of this process answers there.
    pub fn channel(&self, endpoint: &str) -> Result<GrpcChannel, RuntimeError> {
        match self.lock().get(endpoint) {
            Some(local) => Ok(local.clone()),
            None => grpc_channel(endpoint),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, GrpcChannel>> {
        // The map is only inserted into whole: a panic elsewhere cannot leave it half-written.
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The URL other services use to reach a listener bound on `addr`.
pub fn grpc_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Serves a tonic router on an already bound listener until `shutdown`.
pub async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    // Nagle's algorithm would hold each small gRPC frame for a delayed ACK (~40 ms a hop);
    // the builder's tcp_nodelay does not apply to a listener passed in like this one.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(|e| RuntimeError::Serve(e.to_string()))
}

/// The gRPC metadata key carrying a failure's stable code (documented in docs/errors.md),
/// which callers branch on rather than on words.
pub const ERROR_CODE_KEY: &str = "relais-error-code";

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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tower::ServiceExt;

    fn request() -> http::Request<tonic::body::Body> {
        http::Request::builder()
            .uri("/relais.test.v1.Test/Call")
            .body(tonic::body::Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_service_of_this_process_is_called_without_the_network() {
        // Bound but never served: only an in-process call can be answered.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = grpc_url(listener.local_addr().unwrap());
        let local = LocalServices::default();
        let service = tower::service_fn(|req: http::Request<tonic::body::Body>| async move {
            let answer = http::Response::builder()
                .header("grpc-status", "0")
                .header("x-path", req.uri().path())
                .body(tonic::body::Body::empty())
                .unwrap();
            Ok::<_, std::convert::Infallible>(answer)
        });
        local.add(&listener, service).unwrap();
        let answer = local
            .channel(&url)
            .unwrap()
            .oneshot(request())
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-path"], "/relais.test.v1.Test/Call");

        // Any other address goes over the network: nothing listens there.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere = grpc_url(closed.local_addr().unwrap());
        drop(closed);
        assert!(
            local
                .channel(&elsewhere)
                .unwrap()
                .oneshot(request())
                .await
                .is_err()
        );
    }
}
