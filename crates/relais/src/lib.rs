//! Starts Relais services: one per process (`relais <service>`), or all of them in one
//! process (`relais all`). In one process, a service calls another through its gRPC
//! contract in-process (`relais_runtime::LocalServices`: the same generated server,
//! encoding and authorisation table, no socket) and events still go over RabbitMQ, so the
//! all-in-one hub behaves as the split one; there a gRPC port is served only for a service
//! whose `listen` is set. Between processes, gRPC runs over mTLS. It holds no protocol or
//! business rules.

pub mod admin;
pub mod config;
pub mod verify;
pub mod witness;

use std::net::SocketAddr;
use std::time::Duration;

use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::support::v1::support_client::SupportClient;
use relais_proto::trace::v1::trace_client::TraceClient;
use relais_runtime::{Role, Shutdown, Tasks};

pub use config::RelaisConfig;

/// A service of the hub, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Gateway,
    OidcFront,
    IdpBridge,
    Registry,
    Trace,
    Support,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Registry,
        Service::Trace,
        Service::IdpBridge,
        Service::OidcFront,
        // After the registry and oidc-front, whose answers it asks in-process.
        Service::Support,
        Service::Gateway,
    ];

    pub fn parse(s: &str) -> Option<Service> {
        Some(match s {
            "gateway" => Service::Gateway,
            "oidc-front" => Service::OidcFront,
            "idp-bridge" => Service::IdpBridge,
            "registry" => Service::Registry,
            "trace" => Service::Trace,
            "support" => Service::Support,
            _ => return None,
        })
    }

    /// Its identity on gRPC links.
    pub fn role(self) -> Role {
        match self {
            Service::Gateway => Role::Gateway,
            Service::OidcFront => Role::OidcFront,
            Service::IdpBridge => Role::IdpBridge,
            Service::Registry => Role::Registry,
            Service::Trace => Role::Trace,
            Service::Support => Role::Support,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::OidcFront => "oidc-front",
            Service::IdpBridge => "idp-bridge",
            Service::Registry => "registry",
            Service::Trace => "trace",
            Service::Support => "support",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{service}: {reason}")]
    Service {
        service: &'static str,
        reason: String,
    },
}

fn failed(service: Service, reason: impl ToString) -> StartError {
    StartError::Service {
        service: service.name(),
        reason: reason.to_string(),
    }
}

/// Running services and where they listen (services without a port are not listed).
pub struct Hub {
    pub addrs: Vec<(Service, SocketAddr)>,
    /// Where `/metrics` is served, if it is.
    pub metrics: Option<SocketAddr>,
    tasks: Tasks,
}

impl Hub {
    pub fn addr(&self, service: Service) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, a)| *a)
    }

    /// Stops every task, draining within `grace`.
    pub async fn stop(self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }

    /// Waits for the tasks after the shutdown token was cancelled elsewhere.
    pub async fn join(self, grace: Duration) {
        self.tasks.join(grace).await;
    }
}

fn listen_of(config: &RelaisConfig, service: Service) -> &str {
    match service {
        Service::Gateway => &config.gateway.listen,
        Service::OidcFront => &config.oidc_front.listen,
        Service::IdpBridge => &config.idp_bridge.listen,
        Service::Registry => &config.registry.listen,
        Service::Trace => &config.trace.listen,
        Service::Support => &config.support.listen,
    }
}

/// Starts `services` in dependency order. Listeners are bound first, so a port 0 in
/// the config becomes a real port that the other services are then pointed at. A service
/// whose `listen` is empty gets no port: only services of this process can call it.
pub async fn start(
    config: RelaisConfig,
    services: &[Service],
    shutdown: Shutdown,
) -> Result<Hub, StartError> {
    let mut listeners = Vec::new();
    for s in Service::ALL.iter().filter(|s| services.contains(s)) {
        let listen = listen_of(&config, *s);
        let listener = if listen.trim().is_empty() {
            if services.len() == 1 || *s == Service::Gateway {
                return Err(failed(*s, "its `listen` is empty: nothing could reach it"));
            }
            None
        } else {
            Some(
                relais_runtime::bind(listen)
                    .await
                    .map_err(|e| failed(*s, e))?,
            )
        };
        listeners.push((*s, listener));
    }
    start_bound(config, listeners, shutdown).await
}

/// Starts the given services, each on its already bound listener if it has one (their
/// `listen` settings are ignored), so a caller can hold its ports from the start.
pub async fn start_bound(
    mut config: RelaisConfig,
    bound: Vec<(Service, Option<tokio::net::TcpListener>)>,
    shutdown: Shutdown,
) -> Result<Hub, StartError> {
    let mut listeners = Vec::new();
    for s in Service::ALL {
        if let Some(pos) = bound.iter().position(|(b, _)| *b == s) {
            listeners.push(pos);
        }
    }
    let mut bound: Vec<Option<(Service, Option<tokio::net::TcpListener>)>> =
        bound.into_iter().map(Some).collect();
    let mut ordered = Vec::new();
    for pos in listeners {
        if let Some((s, listener)) = bound[pos].take() {
            let addr = listener
                .as_ref()
                .map(|l| l.local_addr().map_err(|e| failed(s, e)))
                .transpose()?;
            ordered.push((s, listener, addr));
        }
    }
    let listeners = ordered;
    let url = |addr: SocketAddr| relais_runtime::grpc_url(addr);
    // A service without a port is reached in-process whatever its URL says.
    for (s, addr) in listeners
        .iter()
        .filter_map(|(s, _, a)| a.as_ref().map(|a| (s, a)))
    {
        match s {
            Service::Registry => {
                config.oidc_front.registry_url = url(*addr);
                config.idp_bridge.registry_url = url(*addr);
                config.support.registry_url = url(*addr);
                config.trace.registry_url = url(*addr);
            }
            Service::IdpBridge => config.oidc_front.idp_bridge_url = url(*addr),
            Service::OidcFront => {
                config.gateway.oidc_front_url = url(*addr);
                config.support.oidc_front_url = url(*addr);
                config.trace.oidc_front_url = url(*addr);
            }
            Service::Support => config.gateway.support_url = url(*addr),
            Service::Trace => config.gateway.trace_url = url(*addr),
            Service::Gateway => {}
        }
    }
    let mut tasks = Tasks::new(shutdown.clone());
    let mut addrs = Vec::new();
    if config.grpc.insecure_plaintext {
        tracing::warn!("grpc.insecure_plaintext: gRPC links unauthenticated, for development only");
    }
    let links = relais_runtime::LocalServices::new(&config.grpc);
    for (s, listener, addr) in listeners {
        let token = shutdown.clone();
        let db = &config.database;
        let bus = config.bus.clone();
        let local = links.for_service(s.role());
        let local = &local;
        let started = match s {
            Service::Registry => {
                relais_registry::start(config.registry.clone(), db, bus, listener, local, token)
                    .await
                    .map_err(|e| failed(s, e))?
            }
            Service::Trace => {
                relais_trace::start(config.trace.clone(), db, bus, listener, local, token)
                    .await
                    .map_err(|e| failed(s, e))?
            }
            Service::Support => {
                relais_support::start(config.support.clone(), db, bus, listener, local, token)
                    .await
                    .map_err(|e| failed(s, e))?
            }
            Service::IdpBridge => {
                relais_idp_bridge::start(config.idp_bridge.clone(), listener, local, token)
                    .await
                    .map_err(|e| failed(s, e))?
            }
            Service::OidcFront => {
                relais_oidc_front::start(config.oidc_front.clone(), db, bus, listener, local, token)
                    .await
                    .map_err(|e| failed(s, e))?
            }
            Service::Gateway => {
                let Some(listener) = listener else {
                    return Err(failed(s, "the gateway needs its listener"));
                };
                let channel =
                    |to: Role, url: &str| local.channel(to, url).map_err(|e| failed(s, e));
                let backends = relais_gateway::Backends {
                    oidc_front: OidcFrontClient::new(channel(
                        Role::OidcFront,
                        &config.gateway.oidc_front_url,
                    )?),
                    support: SupportClient::new(channel(
                        Role::Support,
                        &config.gateway.support_url,
                    )?),
                    trace: TraceClient::new(channel(Role::Trace, &config.gateway.trace_url)?),
                };
                let handle = relais_gateway::start(
                    config.gateway.clone(),
                    listener,
                    backends,
                    token.clone(),
                )
                .await
                .map_err(|e| failed(s, e))?;
                let mut t = Tasks::new(token);
                t.spawn("gateway.http", async move {
                    let _ = handle.await;
                });
                t
            }
        };
        match addr {
            Some(addr) => {
                tracing::info!(service = s.name(), %addr, "service started");
                addrs.push((s, addr));
            }
            None => tracing::info!(service = s.name(), "service started (in-process only)"),
        }
        tasks.extend(started);
    }
    let metrics = serve_metrics(&config.telemetry.metrics_listen, &mut tasks, shutdown).await?;
    Ok(Hub {
        addrs,
        metrics,
        tasks,
    })
}

/// `/metrics` of the whole process, on its own listener (kept off the public gateway).
async fn serve_metrics(
    listen: &str,
    tasks: &mut Tasks,
    shutdown: Shutdown,
) -> Result<Option<SocketAddr>, StartError> {
    let listen = listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let fail = |e: &dyn std::fmt::Display| StartError::Service {
        service: "metrics",
        reason: format!("telemetry.metrics_listen: {e}"),
    };
    let listener = relais_runtime::bind(listen).await.map_err(|e| fail(&e))?;
    let addr = listener.local_addr().map_err(|e| fail(&e))?;
    tasks.spawn("metrics.http", async move {
        let served = axum::serve(listener, relais_telemetry::metrics::router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%addr, "metrics served at /metrics");
    Ok(Some(addr))
}
