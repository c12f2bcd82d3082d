//! Who calls a gRPC method, and whether they may: the caller's identity comes from its
//! verified certificate (network) or from the in-process channel it was given
//! ([`crate::LocalServices`]); each service's table names the identities allowed per method.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The DNS name suffix of every Relais identity in a certificate's SAN.
pub const DOMAIN: &str = "relais.internal";

/// Stable codes (`relais-error-code`) of the refusals, documented in docs/errors.md.
pub const UNAUTHENTICATED_CODE: &str = "peer_unauthenticated";
pub const NOT_ALLOWED_CODE: &str = "peer_not_allowed";

/// What a peer is: one of the hub's services, or an operator's tool (`relais admin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Gateway,
    OidcFront,
    IdpBridge,
    Registry,
    Trace,
    Support,
    Operator,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Gateway,
        Role::OidcFront,
        Role::IdpBridge,
        Role::Registry,
        Role::Trace,
        Role::Support,
        Role::Operator,
    ];

    /// The name used on the command line, in file names and in certificates.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::OidcFront => "oidc-front",
            Role::IdpBridge => "idp-bridge",
            Role::Registry => "registry",
            Role::Trace => "trace",
            Role::Support => "support",
            Role::Operator => "operator",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The SAN a service's certificate carries (`registry.relais.internal`).
    pub fn dns_name(self) -> String {
        format!("{}.{DOMAIN}", self.name())
    }
}

/// A verified caller: its role and, for an operator, who (`alice` in
/// `alice.operator.relais.internal`); for a service, its own name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub role: Role,
    pub name: String,
}

impl Peer {
    pub fn service(role: Role) -> Peer {
        Peer {
            role,
            name: role.name().to_string(),
        }
    }

    /// An operator; `name` is one DNS label (letters, digits, hyphens).
    pub fn operator(name: &str) -> Option<Peer> {
        let label = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        label.then(|| Peer {
            role: Role::Operator,
            name: name.to_string(),
        })
    }

    /// The SAN of this peer's certificate.
    pub fn dns_name(&self) -> String {
        match self.role {
            Role::Operator => format!("{}.operator.{DOMAIN}", self.name),
            role => role.dns_name(),
        }
    }

    /// The peer a SAN DNS name stands for, if it is a Relais identity.
    pub fn from_dns_name(dns: &str) -> Option<Peer> {
        let prefix = dns.strip_suffix(DOMAIN)?.strip_suffix('.')?;
        match prefix.split_once('.') {
            Some((name, "operator")) => Peer::operator(name),
            Some(_) => None,
            None => Role::parse(prefix)
                .filter(|r| *r != Role::Operator)
                .map(Peer::service),
        }
    }
}

/// One service's authorisation table: the roles that may call `method` (its name, e.g.
/// `RotateClientSecret`); an unknown method gets none.
pub type Access = fn(method: &str) -> &'static [Role];

/// How a network connection was made, set by the server on every request it carries (a
/// request extension; nothing the client sends can set it).
#[derive(Clone, Debug)]
pub struct PeerConnection {
    pub remote: Option<SocketAddr>,
    pub transport: Transport,
}

#[derive(Clone, Debug)]
pub enum Transport {
    /// mTLS: the identity of the verified certificate, none if the client sent none.
    Tls(Option<Peer>),
    /// `grpc.insecure_plaintext`: nobody is identified, nothing is refused.
    Plaintext,
}

/// The caller stamped by an in-process channel (`LocalServices`); only this crate makes one.
#[derive(Clone, Debug)]
pub(crate) struct LocalCaller(pub(crate) Option<Peer>);

/// The caller as the guard admitted it, for handlers that look further (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Verified(Peer),
    /// A plaintext (development) connection.
    Unverified,
}

/// The admitted caller of a request that went through a [`Guarded`] service.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// An operator's call as it came, recorded before it runs (`operator.call` in the proof
/// store): who, which method of which service, and the request message itself.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OperatorCall {
    pub service: String,
    pub method: String,
    /// The operator's certificate name (`<name>.operator.relais.internal`).
    pub operator: String,
    /// The gRPC request message as sent (length-prefixed protobuf frames, base64).
    pub request: String,
    /// Hex SHA-256 of those bytes.
    pub request_sha256: String,
}

/// Where a service records its operators' calls durably; an error refuses the call.
pub type OperatorAudit = Arc<
    dyn Fn(OperatorCall) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// The most an operator's request may weigh: it is held whole to be recorded.
const MAX_AUDITED_REQUEST: usize = 1 << 20;

/// A gRPC service behind its authorisation table.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    access: Access,
    audit: Option<OperatorAudit>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, access: Access) -> Self {
        Guarded {
            inner,
            access,
            audit: None,
        }
    }

    /// Every call of an operator is recorded by `audit` before it runs; one that cannot
    /// be recorded is refused.
    pub fn audited(mut self, audit: OperatorAudit) -> Self {
        self.audit = Some(audit);
        self
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

type Body = tonic::body::Body;
type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static>>;

impl<S> tower::Service<http::Request<Body>> for Guarded<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let method = method_of(request.uri().path(), S::NAME);
        match admit(&request, method, self.access) {
            Ok(caller) => {
                let audit = match (&caller, &self.audit) {
                    (Caller::Verified(peer), Some(audit)) if peer.role == Role::Operator => {
                        Some((audit.clone(), peer.dns_name(), method.to_owned()))
                    }
                    _ => None,
                };
                request.extensions_mut().insert(caller);
                let Some((audit, operator, method)) = audit else {
                    return Box::pin(self.inner.call(request));
                };
                // The service polled ready is the one called; a clone takes its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let (parts, body) = request.into_parts();
                    let bytes = match http_body_util::BodyExt::collect(
                        http_body_util::Limited::new(body, MAX_AUDITED_REQUEST),
                    )
                    .await
                    {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => {
                            return Ok(tonic::Status::resource_exhausted(
                                "an operator's request is read whole, up to 1 MiB",
                            )
                            .into_http());
                        }
                    };
                    let call = OperatorCall {
                        service: S::NAME.to_owned(),
                        method,
                        operator,
                        request: base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            &bytes,
                        ),
                        request_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                    };
                    if let Err(e) = audit(call).await {
                        tracing::error!(error = %e, "an operator's call could not be recorded");
                        return Ok(crate::status_with_code(
                            tonic::Code::Unavailable,
                            "the call could not be recorded in the proof store; nothing was done"
                                .into(),
                            AUDIT_UNAVAILABLE_CODE,
                        )
                        .into_http());
                    }
                    let body = Body::new(http_body_util::Full::new(bytes));
                    inner.call(http::Request::from_parts(parts, body)).await
                })
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// The stable code of an operator's call refused because it could not be recorded.
pub const AUDIT_UNAVAILABLE_CODE: &str = "audit_unavailable";

/// `RotateClientSecret` of `/relais.registry.v1.Registry/RotateClientSecret`.
fn method_of<'a>(path: &'a str, service: &str) -> &'a str {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(service))
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or("")
}

fn admit(
    request: &http::Request<Body>,
    method: &str,
    access: Access,
) -> Result<Caller, tonic::Status> {
    let extensions = request.extensions();
    // An in-process caller is who its channel says; a network one who its certificate says.
    let peer = match (
        extensions.get::<LocalCaller>(),
        extensions.get::<PeerConnection>(),
    ) {
        (Some(LocalCaller(peer)), _) => peer.clone(),
        (None, Some(conn)) => match &conn.transport {
            Transport::Tls(peer) => peer.clone(),
            Transport::Plaintext => return Ok(Caller::Unverified),
        },
        (None, None) => None,
    };
    let Some(peer) = peer else {
        tracing::warn!(method, "gRPC call without a client certificate refused");
        return Err(crate::status_with_code(
            tonic::Code::Unauthenticated,
            "a client certificate of this deployment is required".into(),
            UNAUTHENTICATED_CODE,
        ));
    };
    if access(method).contains(&peer.role) {
        return Ok(Caller::Verified(peer));
    }
    tracing::warn!(method, peer = %peer.dns_name(), "gRPC call refused by the authorisation table");
    Err(crate::status_with_code(
        tonic::Code::PermissionDenied,
        format!("{} may not call {method}", peer.dns_name()),
        NOT_ALLOWED_CODE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_dns_names() {
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Operator) {
            let peer = Peer::service(role);
            assert_eq!(Peer::from_dns_name(&peer.dns_name()), Some(peer));
        }
        let alice = Peer::operator("alice").unwrap();
        assert_eq!(alice.dns_name(), "alice.operator.relais.internal");
        assert_eq!(Peer::from_dns_name(&alice.dns_name()), Some(alice));
        for bad in [
            "operator.relais.internal",
            "registry.relais.internal.example",
            "registry.example",
            "x.registry.relais.internal",
            "Alice.operator.relais.internal",
            "relais.internal",
        ] {
            assert_eq!(Peer::from_dns_name(bad), None, "{bad}");
        }
        assert!(Peer::operator("a.b").is_none());
        assert!(Peer::operator("").is_none());
    }

    #[test]
    fn the_method_is_read_from_the_path_of_its_own_service_only() {
        let service = "relais.registry.v1.Registry";
        assert_eq!(
            method_of("/relais.registry.v1.Registry/RotateClientSecret", service),
            "RotateClientSecret"
        );
        assert_eq!(
            method_of("/relais.trace.v1.Trace/GetConnection", service),
            ""
        );
        assert_eq!(method_of("/relais.registry.v1.RegistryX/Get", service), "");
    }
}
