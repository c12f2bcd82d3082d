//! The gRPC links of one process: its services served (on a port when they have one, and
//! in-process), and the channels its services call others by, each call carrying the
//! caller's identity — its certificate over the network, its channel in-process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relais_config::GrpcConfig;
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tower::ServiceExt;

use crate::peer::{Access, Guarded, LocalCaller, OperatorAudit, Peer, Role};
use crate::tls::{Connector, Material, PlainConn, TlsFiles};
use crate::{GrpcChannel, RuntimeError, Tasks};

/// The gRPC services running in this process and how this process reaches the others.
///
/// When `relais all` runs every service in one process, a call between two of them goes
/// through the same generated server code, protobuf encoding and authorisation table as
/// over the network, but skips TLS, HTTP/2 and the loopback socket (a third of a sign-in's
/// CPU was kernel time spent on such hops). Each service gets its own view
/// ([`LocalServices::for_service`]), which names it to the services it calls.
#[derive(Clone, Default)]
pub struct LocalServices {
    shared: Arc<Shared>,
    me: Option<Role>,
}

#[derive(Default)]
struct Shared {
    services: Mutex<HashMap<Role, GrpcChannel>>,
    /// `None`: plaintext (`grpc.insecure_plaintext`, and tests of a single service).
    tls: Option<TlsSettings>,
    materials: Mutex<HashMap<Role, Arc<Material>>>,
}

struct TlsSettings {
    config: GrpcConfig,
    reload: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Maps inserted into whole: a panic elsewhere cannot leave one half-written.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LocalServices {
    /// The links of a process configured by `grpc` (no service view yet).
    pub fn new(grpc: &GrpcConfig) -> LocalServices {
        let tls = (!grpc.insecure_plaintext).then(|| TlsSettings {
            config: grpc.clone(),
            reload: Duration::from_secs(u64::from(grpc.reload_seconds.max(1))),
        });
        LocalServices {
            shared: Arc::new(Shared {
                tls,
                ..Shared::default()
            }),
            me: None,
        }
    }

    /// The view of `role`: what it serves is registered as `role`, and what it calls is
    /// called as `role`.
    pub fn for_service(&self, role: Role) -> LocalServices {
        LocalServices {
            shared: self.shared.clone(),
            me: Some(role),
        }
    }

    /// Whether the links are authenticated with certificates.
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// The TLS material of this view's identity, loaded once per process (and reloaded).
    pub fn material(&self) -> Result<Arc<Material>, RuntimeError> {
        let (Some(settings), Some(role)) = (&self.shared.tls, self.me) else {
            return Err(RuntimeError::Tls(
                "no identity: mTLS needs a service (or operator) view".into(),
            ));
        };
        let mut materials = lock(&self.shared.materials);
        if let Some(m) = materials.get(&role) {
            return Ok(m.clone());
        }
        let c = &settings.config;
        let files = TlsFiles {
            ca_file: c.ca_file.clone(),
            cert_file: GrpcConfig::path_for(&c.cert_file, role.name()),
            key_file: GrpcConfig::path_for(&c.key_file, role.name()),
        };
        let expected = (role != Role::Operator).then(|| Peer::service(role));
        let material = Material::load(files, expected, settings.reload)?;
        materials.insert(role, material.clone());
        Ok(material)
    }

    /// Serves `service` behind its authorisation table `access`: in-process always, on
    /// `listener` when there is one (a task of `tasks`, until their shutdown).
    pub fn serve<S>(
        &self,
        tasks: &mut Tasks,
        listener: Option<TcpListener>,
        service: S,
        access: Access,
    ) -> Result<(), RuntimeError>
    where
        S: Servable,
        S::Future: Send + 'static,
    {
        self.serve_guarded(tasks, listener, Guarded::new(service, access))
    }

    /// [`serve`](Self::serve), each operator's call recorded by `audit` before it runs.
    pub fn serve_audited<S>(
        &self,
        tasks: &mut Tasks,
        listener: Option<TcpListener>,
        service: S,
        access: Access,
        audit: OperatorAudit,
    ) -> Result<(), RuntimeError>
    where
        S: Servable,
        S::Future: Send + 'static,
    {
        self.serve_guarded(
            tasks,
            listener,
            Guarded::new(service, access).audited(audit),
        )
    }

    fn serve_guarded<S>(
        &self,
        tasks: &mut Tasks,
        listener: Option<TcpListener>,
        guarded: Guarded<S>,
    ) -> Result<(), RuntimeError>
    where
        S: Servable,
        S::Future: Send + 'static,
    {
        let Some(role) = self.me else {
            return Err(RuntimeError::Serve(
                "a service is served from its own view (LocalServices::for_service)".into(),
            ));
        };
        let channel = GrpcChannel::new(guarded.clone().map_err(|never| match never {}));
        lock(&self.shared.services).insert(role, channel);
        let Some(listener) = listener else {
            return Ok(());
        };
        let router = crate::grpc_server().add_service(guarded);
        let token = tasks.token();
        let name = format!("{}.grpc", role.name());
        if self.is_tls() {
            let material = self.material()?;
            tasks.spawn(name, async move {
                let connections = crate::tls::accept_tls(listener, material, token.clone());
                let incoming = tokio_stream::wrappers::ReceiverStream::new(connections)
                    .map(Ok::<_, std::io::Error>);
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                    .await
                {
                    tracing::error!(service = role.name(), error = %e, "gRPC server stopped");
                }
            });
        } else {
            tasks.spawn(name, async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener)
                    .map(|tcp| tcp.map(PlainConn::plain));
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                    .await
                {
                    tracing::error!(service = role.name(), error = %e, "gRPC server stopped");
                }
            });
        }
        Ok(())
    }

    /// A channel to the service `to`: in-process when it runs in this process, else to
    /// `endpoint`, over mTLS (its certificate must be `to`'s) unless plaintext is configured.
    pub fn channel(&self, to: Role, endpoint: &str) -> Result<GrpcChannel, RuntimeError> {
        if let Some(local) = lock(&self.shared.services).get(&to) {
            let caller = LocalCaller(self.me.map(Peer::service));
            let stamped = local.clone().map_request(move |mut req: http::Request<_>| {
                req.extensions_mut().insert(caller.clone());
                req
            });
            return Ok(GrpcChannel::new(stamped));
        }
        if !self.is_tls() {
            return crate::grpc_channel(endpoint);
        }
        let server = rustls::pki_types::ServerName::try_from(to.dns_name())
            .map_err(|e| RuntimeError::Tls(e.to_string()))?;
        let connector = Connector {
            material: self.material()?,
            server,
        };
        let ep = crate::endpoint(endpoint)?;
        Ok(GrpcChannel::new(ep.connect_with_connector_lazy(connector)))
    }
}

/// A tonic service as [`LocalServices::serve`] takes it.
pub trait Servable:
    tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
    > + tonic::server::NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Servable for S where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}
