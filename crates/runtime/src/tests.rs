//! The gRPC links: in-process calls, mTLS refusals, the authorisation guard, reloading.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use relais_config::GrpcConfig;
use relais_proto::trace::v1 as pb;
use relais_proto::trace::v1::trace_client::TraceClient;
use relais_proto::trace::v1::trace_server::{Trace, TraceServer};
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use crate::peer::{Caller, NOT_ALLOWED_CODE, Peer, Role, UNAUTHENTICATED_CODE};
use crate::{LocalServices, Shutdown, Tasks, error_code, grpc_url, pki};

/// Answers with who called (as the guard admitted them) and counts the calls it ran.
#[derive(Clone, Default)]
struct Echo(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Trace for Echo {
    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::Connection>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let who = match crate::peer::caller(&request) {
            Some(Caller::Verified(p)) => p.dns_name(),
            Some(Caller::Unverified) => "unverified".into(),
            None => "nobody".into(),
        };
        Ok(Response::new(pb::Connection {
            connection_id: who,
            ..Default::default()
        }))
    }

    async fn list_connections(
        &self,
        _request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::ListConnectionsResponse::default()))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::VerifyChainResponse::default()))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        Ok(Response::new(pb::Checkpoint::default()))
    }

    async fn make_checkpoint(
        &self,
        _request: Request<pb::MakeCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        Ok(Response::new(pb::Checkpoint::default()))
    }

    async fn purge(
        &self,
        _request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeResponse>, Status> {
        Ok(Response::new(pb::PurgeResponse::default()))
    }

    async fn get_inclusion_proof(
        &self,
        _request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        Ok(Response::new(pb::InclusionProof::default()))
    }

    async fn get_consistency_proof(
        &self,
        _request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        Ok(Response::new(pb::ConsistencyProof::default()))
    }

    async fn export_case(
        &self,
        _request: Request<pb::ExportCaseRequest>,
    ) -> Result<Response<pb::ExportCaseResponse>, Status> {
        Ok(Response::new(pb::ExportCaseResponse::default()))
    }

    async fn search_connections(
        &self,
        _request: Request<pb::SearchConnectionsRequest>,
    ) -> Result<Response<pb::SearchConnectionsResponse>, Status> {
        Ok(Response::new(pb::SearchConnectionsResponse::default()))
    }

    async fn my_connections(
        &self,
        _request: Request<pb::MyConnectionsRequest>,
    ) -> Result<Response<pb::MyConnectionsResponse>, Status> {
        Ok(Response::new(pb::MyConnectionsResponse::default()))
    }
}

/// The stub's table: the gateway reads a connection, an operator lists them, nobody
/// verifies the chain (a method the table forgot).
fn access(method: &str) -> &'static [Role] {
    match method {
        "GetConnection" => &[Role::Gateway],
        "ListConnections" => &[Role::Operator],
        _ => &[],
    }
}

fn get() -> pb::GetConnectionRequest {
    pb::GetConnectionRequest {
        connection_id: "c".into(),
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "relais-runtime-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn grpc_config(dir: &Path) -> GrpcConfig {
    GrpcConfig {
        ca_file: dir.join("ca.pem").display().to_string(),
        cert_file: dir.join("{service}.pem").display().to_string(),
        key_file: dir.join("{service}.key").display().to_string(),
        ..GrpcConfig::default()
    }
}

/// A TLS server of the stub as `role`, from the PKI in `dir`; its URL and call counter.
async fn serve(dir: &Path, role: Role, tasks: &mut Tasks) -> (String, Arc<AtomicUsize>) {
    serve_with(grpc_config(dir), role, tasks).await
}

async fn serve_with(grpc: GrpcConfig, role: Role, tasks: &mut Tasks) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = grpc_url(listener.local_addr().unwrap());
    let echo = Echo::default();
    let calls = echo.0.clone();
    LocalServices::new(&grpc)
        .for_service(role)
        .serve(tasks, Some(listener), TraceServer::new(echo), access)
        .unwrap();
    (url, calls)
}

/// A client process of its own (nothing in-process) calling as `role`.
fn client(grpc: &GrpcConfig, role: Role, to: Role, url: &str) -> TraceClient<crate::GrpcChannel> {
    TraceClient::new(
        LocalServices::new(grpc)
            .for_service(role)
            .channel(to, url)
            .unwrap(),
    )
}

/// The TLS handshake failed (the server's alert, or the client refusing the server): no
/// gRPC answer at all.
fn handshake_refused(status: &Status) {
    let text = format!("{status:?}");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::Unknown)
            && error_code(status).is_none()
            && (text.contains("alert")
                || text.contains("certificate")
                || text.contains("Certificate")),
        "{text}"
    );
}

fn refused(status: &Status, code: Code, error: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_code(status), Some(error), "{status:?}");
}

#[tokio::test]
async fn in_process_calls_carry_the_callers_identity_through_the_table() {
    let links = LocalServices::default();
    let mut tasks = Tasks::new(Shutdown::new());
    let echo = Echo::default();
    // No port: only this process's services reach it.
    links
        .for_service(Role::Trace)
        .serve(&mut tasks, None, TraceServer::new(echo.clone()), access)
        .unwrap();
    let unreachable = "http://127.0.0.1:1";
    let as_role = |role: Role| {
        TraceClient::new(
            links
                .for_service(role)
                .channel(Role::Trace, unreachable)
                .unwrap(),
        )
    };
    let answer = as_role(Role::Gateway).get_connection(get()).await.unwrap();
    assert_eq!(answer.into_inner().connection_id, "gateway.relais.internal");

    let denied = as_role(Role::Support)
        .get_connection(get())
        .await
        .unwrap_err();
    refused(&denied, Code::PermissionDenied, NOT_ALLOWED_CODE);
    let unlisted = as_role(Role::Operator)
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .unwrap_err();
    refused(&unlisted, Code::PermissionDenied, NOT_ALLOWED_CODE);
    // A view of no service names nobody.
    let anonymous = TraceClient::new(links.channel(Role::Trace, unreachable).unwrap());
    let status = anonymous.clone().get_connection(get()).await.unwrap_err();
    refused(&status, Code::Unauthenticated, UNAUTHENTICATED_CODE);
    assert_eq!(echo.0.load(Ordering::SeqCst), 1);

    // A service elsewhere is reached over the network: nothing listens there.
    let remote = links
        .for_service(Role::Gateway)
        .channel(Role::Registry, unreachable)
        .unwrap();
    let status = TraceClient::new(remote)
        .get_connection(get())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    tasks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn mtls_names_the_caller_by_its_certificate() {
    let dir = TempDir::new();
    pki::init(&dir.0, 1, 1).unwrap();
    let mut tasks = Tasks::new(Shutdown::new());
    let (url, calls) = serve(&dir.0, Role::Trace, &mut tasks).await;
    let grpc = grpc_config(&dir.0);

    let answer = client(&grpc, Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().connection_id, "gateway.relais.internal");

    // The right CA, the wrong service for the method.
    for role in [Role::OidcFront, Role::Registry, Role::Support, Role::Trace] {
        let status = client(&grpc, role, Role::Trace, &url)
            .get_connection(get())
            .await
            .unwrap_err();
        refused(&status, Code::PermissionDenied, NOT_ALLOWED_CODE);
    }
    pki::issue_into(&dir.0, &Peer::operator("alice").unwrap(), 1).unwrap();
    let operator = client(&grpc, Role::Operator, Role::Trace, &url);
    operator
        .clone()
        .list_connections(pb::ListConnectionsRequest::default())
        .await
        .unwrap();
    let status = operator.clone().get_connection(get()).await.unwrap_err();
    refused(&status, Code::PermissionDenied, NOT_ALLOWED_CODE);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    tasks.shutdown(Duration::from_secs(1)).await;
}

/// A TLS client with the deployment's CA but no certificate of its own.
fn client_without_certificate(dir: &Path, url: &str) -> TraceClient<tonic::transport::Channel> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let connector = tower::service_fn(move |uri: http::Uri| {
        let config = config.clone();
        async move {
            let tcp =
                tokio::net::TcpStream::connect((uri.host().unwrap(), uri.port_u16().unwrap()))
                    .await?;
            let name = rustls::pki_types::ServerName::try_from("trace.relais.internal").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_with_connector_lazy(connector);
    TraceClient::new(channel)
}

#[tokio::test]
async fn mtls_refuses_no_certificate_another_ca_an_expired_one_and_plaintext() {
    let dir = TempDir::new();
    pki::init(&dir.0, 1, 1).unwrap();
    let mut tasks = Tasks::new(Shutdown::new());
    let (url, calls) = serve(&dir.0, Role::Trace, &mut tasks).await;

    // No client certificate: the handshake completes, the guard answers.
    let status = client_without_certificate(&dir.0, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    refused(&status, Code::Unauthenticated, UNAUTHENTICATED_CODE);

    // A gateway certificate from another CA (which also trusts only itself).
    let other = TempDir::new();
    pki::init(&other.0, 1, 1).unwrap();
    let status = client(&grpc_config(&other.0), Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    handshake_refused(&status);
    // Trusting the right CA does not help a certificate the other one signed.
    std::fs::copy(dir.0.join("ca.pem"), other.0.join("ca.pem")).unwrap();
    let status = client(&grpc_config(&other.0), Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    handshake_refused(&status);

    // An expired gateway certificate from the right CA.
    let expired = TempDir::new();
    let ca = pki::Pem {
        cert: std::fs::read_to_string(dir.0.join("ca.pem")).unwrap(),
        key: std::fs::read_to_string(dir.0.join("ca.key")).unwrap(),
    };
    let now = time::OffsetDateTime::now_utc();
    let old = pki::issue(
        &ca,
        &Peer::service(Role::Gateway),
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    )
    .unwrap();
    std::fs::copy(dir.0.join("ca.pem"), expired.0.join("ca.pem")).unwrap();
    pki::write(&expired.0.join("gateway.pem"), &old.cert, false).unwrap();
    pki::write(&expired.0.join("gateway.key"), &old.key, true).unwrap();
    let status = client(&grpc_config(&expired.0), Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    handshake_refused(&status);

    // Plain HTTP/2 to the TLS port.
    let plain = TraceClient::new(crate::grpc_channel(&url).unwrap());
    assert!(plain.clone().get_connection(get()).await.is_err());

    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a refused caller reached the service"
    );
    tasks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_client_refuses_a_server_that_is_not_the_service_it_called() {
    let dir = TempDir::new();
    pki::init(&dir.0, 1, 1).unwrap();
    let mut tasks = Tasks::new(Shutdown::new());
    // The trace service's certificate at the address the gateway believes is support's.
    let (url, calls) = serve(&dir.0, Role::Trace, &mut tasks).await;
    let status = client(&grpc_config(&dir.0), Role::Gateway, Role::Support, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    handshake_refused(&status);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    tasks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_service_refuses_to_start_with_another_identitys_certificate() {
    let dir = TempDir::new();
    pki::init(&dir.0, 1, 1).unwrap();
    let grpc = GrpcConfig {
        cert_file: dir.0.join("trace.pem").display().to_string(),
        key_file: dir.0.join("trace.key").display().to_string(),
        ..grpc_config(&dir.0)
    };
    let err = LocalServices::new(&grpc)
        .for_service(Role::Registry)
        .material()
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("is trace.relais.internal, not registry.relais.internal"),
        "{err}"
    );
    // An operator's tool takes an operator's certificate only.
    let err = LocalServices::new(&grpc)
        .for_service(Role::Operator)
        .material()
        .err()
        .unwrap();
    assert!(err.to_string().contains("not an operator's"), "{err}");
}

#[tokio::test]
async fn renewed_certificates_and_a_new_ca_are_taken_at_the_next_reload() {
    let dir = TempDir::new();
    pki::init(&dir.0, 1, 1).unwrap();
    let grpc = GrpcConfig {
        reload_seconds: 1,
        ..grpc_config(&dir.0)
    };
    let mut tasks = Tasks::new(Shutdown::new());
    let (url, _) = serve_with(grpc.clone(), Role::Trace, &mut tasks).await;
    let old_ca = TempDir::new();
    for f in ["ca.pem", "gateway.pem", "gateway.key"] {
        std::fs::copy(dir.0.join(f), old_ca.0.join(f)).unwrap();
    }
    client(&grpc, Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap();

    // The deployment moves to a new CA: new files in place of the old.
    let fresh = TempDir::new();
    pki::init(&fresh.0, 1, 1).unwrap();
    for f in [
        "ca.pem",
        "trace.pem",
        "trace.key",
        "gateway.pem",
        "gateway.key",
    ] {
        std::fs::copy(fresh.0.join(f), dir.0.join(f)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = client(&grpc_config(&old_ca.0), Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    handshake_refused(&status);
    client(&grpc, Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap();
    tasks.shutdown(Duration::from_secs(1)).await;
}

/// A Kubernetes Secret volume: each file a link through `..data` to the directory of the
/// current version, which the kubelet swaps at once (a new link renamed over `..data`),
/// then removes the old version.
#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_secret_swapped_under_its_links_is_taken_at_the_next_reload() {
    use std::os::unix::fs::symlink;
    const FILES: [&str; 5] = [
        "ca.pem",
        "trace.pem",
        "trace.key",
        "gateway.pem",
        "gateway.key",
    ];
    let volume = TempDir::new();
    let first = volume.0.join("..2026_12_03_v1");
    pki::init(&first, 1, 1).unwrap();
    symlink("..2026_12_03_v1", volume.0.join("..data")).unwrap();
    for f in FILES {
        symlink(format!("..data/{f}"), volume.0.join(f)).unwrap();
    }
    let grpc = GrpcConfig {
        reload_seconds: 1,
        ..grpc_config(&volume.0)
    };
    let mut tasks = Tasks::new(Shutdown::new());
    let (url, _) = serve_with(grpc.clone(), Role::Trace, &mut tasks).await;
    let old = TempDir::new();
    for f in ["ca.pem", "gateway.pem", "gateway.key"] {
        std::fs::copy(first.join(f), old.0.join(f)).unwrap();
    }
    client(&grpc, Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap();

    // The Secret now holds a new CA's files: swapped as the kubelet does.
    pki::init(&volume.0.join("..2026_12_03_v2"), 1, 1).unwrap();
    symlink("..2026_12_03_v2", volume.0.join("..data_tmp")).unwrap();
    std::fs::rename(volume.0.join("..data_tmp"), volume.0.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = client(&grpc_config(&old.0), Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap_err();
    handshake_refused(&status);
    client(&grpc, Role::Gateway, Role::Trace, &url)
        .get_connection(get())
        .await
        .unwrap();
    tasks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn plaintext_identifies_nobody_on_the_network() {
    let grpc = GrpcConfig {
        insecure_plaintext: true,
        ..GrpcConfig::default()
    };
    let mut tasks = Tasks::new(Shutdown::new());
    let (url, _) = serve_with(grpc.clone(), Role::Trace, &mut tasks).await;
    let answer = TraceClient::new(crate::grpc_channel(&url).unwrap())
        .get_connection(get())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().connection_id, "unverified");
    tasks.shutdown(Duration::from_secs(1)).await;
}

/// Records every operator's call it is given, or refuses all when `fail`.
fn recorder(
    fail: bool,
) -> (
    crate::OperatorAudit,
    Arc<std::sync::Mutex<Vec<crate::OperatorCall>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let audit: crate::OperatorAudit = Arc::new(move |call| {
        let kept = kept.clone();
        Box::pin(async move {
            if fail {
                return Err("the proof store's outbox is down".to_string());
            }
            kept.lock().unwrap().push(call);
            Ok(())
        })
    });
    (audit, seen)
}

#[tokio::test]
async fn an_operators_call_is_recorded_with_its_request_before_it_runs_or_refused() {
    for fail in [false, true] {
        let links = LocalServices::default();
        let mut tasks = Tasks::new(Shutdown::new());
        let echo = Echo::default();
        let (audit, seen) = recorder(fail);
        links
            .for_service(Role::Trace)
            .serve_audited(
                &mut tasks,
                None,
                TraceServer::new(echo.clone()),
                access,
                audit,
            )
            .unwrap();
        let as_role = |role: Role| {
            TraceClient::new(
                links
                    .for_service(role)
                    .channel(Role::Trace, "http://127.0.0.1:1")
                    .unwrap(),
            )
        };
        let asked = pb::ListConnectionsRequest {
            sp_id: "sp-under-investigation".into(),
            ..Default::default()
        };
        let answer = as_role(Role::Operator).list_connections(asked).await;
        // Another service's call is not an operator's: not recorded.
        as_role(Role::Gateway).get_connection(get()).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        if fail {
            let status = answer.unwrap_err();
            refused(&status, Code::Unavailable, "audit_unavailable");
            assert_eq!(
                echo.0.load(Ordering::SeqCst),
                1,
                "only the gateway's call ran"
            );
            assert!(seen.is_empty());
        } else {
            answer.unwrap();
            assert_eq!(echo.0.load(Ordering::SeqCst), 2);
            assert_eq!(seen.len(), 1, "{seen:?}");
            let call = &seen[0];
            assert_eq!(call.service, "relais.trace.v1.Trace");
            assert_eq!(call.method, "ListConnections");
            assert_eq!(call.operator, Peer::service(Role::Operator).dns_name());
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &call.request)
                    .unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("sp-under-investigation"), "{text}");
            assert_eq!(
                call.request_sha256,
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
            );
        }
        tasks.shutdown(Duration::from_secs(1)).await;
    }
}
