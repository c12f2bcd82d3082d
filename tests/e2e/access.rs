//! The authorisation tables, tried on a running hub: every method of every service (read
//! from `proto/`, so a new method cannot be missed), called over mTLS with every identity
//! and with no certificate, is refused or let through exactly as its table says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use relais::Service;
use relais_runtime::peer::{NOT_ALLOWED_CODE, UNAUTHENTICATED_CODE};
use relais_runtime::{Access, GrpcChannel, LocalServices, Role};
use tonic::Code;

use crate::harness::*;

/// Any request: every field at its default (the methods let through answer what they
/// answer to that; only the guard's refusals matter here).
#[derive(Clone, PartialEq, prost::Message)]
struct Nothing {}

/// `(gRPC service name, method)` of every rpc in `proto/`.
fn methods() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/relais");
    let mut all = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let v1 = dir.unwrap().path().join("v1");
        for file in std::fs::read_dir(v1).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let mut package = String::new();
            let mut service = String::new();
            for line in text.lines().map(str::trim) {
                if let Some(p) = line.strip_prefix("package ") {
                    package = p.trim_end_matches(';').to_string();
                } else if let Some(s) = line.strip_prefix("service ") {
                    service = format!("{package}.{}", s.trim_end_matches('{').trim());
                } else if let Some(rpc) = line.strip_prefix("rpc ") {
                    let name = rpc.split('(').next().unwrap().trim();
                    all.push((service.clone(), name.to_string()));
                }
            }
        }
    }
    all.sort();
    all
}

fn table(service: &str) -> (Service, Access) {
    match service {
        "relais.registry.v1.Registry" => (Service::Registry, relais_registry::access::allowed),
        "relais.oidc_front.v1.OidcFront" => {
            (Service::OidcFront, relais_oidc_front::access::allowed)
        }
        "relais.idp_bridge.v1.IdpBridge" => {
            (Service::IdpBridge, relais_idp_bridge::access::allowed)
        }
        "relais.trace.v1.Trace" => (Service::Trace, relais_trace::access::allowed),
        "relais.support.v1.Support" => (Service::Support, relais_support::access::allowed),
        other => panic!("a gRPC service with no authorisation table: {other}"),
    }
}

/// A TLS client trusting the stack's CA that shows no certificate.
fn without_certificate(stack: &Stack, service: Service, url: &str) -> GrpcChannel {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(&stack.grpc.ca_file).unwrap() {
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
    let name = rustls::pki_types::ServerName::try_from(service.role().dns_name()).unwrap();
    let connector = tower::service_fn(move |uri: http::Uri| {
        let (config, name) = (config.clone(), name.clone());
        async move {
            let tcp =
                tokio::net::TcpStream::connect((uri.host().unwrap(), uri.port_u16().unwrap()))
                    .await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    GrpcChannel::new(
        tonic::transport::Endpoint::from_shared(url.to_string())
            .unwrap()
            .connect_with_connector_lazy(connector),
    )
}

async fn call(channel: GrpcChannel, service: &str, method: &str) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path: http::uri::PathAndQuery = format!("/{service}/{method}").parse().unwrap();
    let codec = tonic_prost::ProstCodec::<Nothing, Nothing>::default();
    grpc.unary(tonic::Request::new(Nothing {}), path, codec)
        .await
        .map(|_| ())
}

/// What the guard did with a call: `None` if it let it through.
fn refusal(result: &Result<(), tonic::Status>) -> Option<(Code, String)> {
    let status = result.as_ref().err()?;
    let code = relais_runtime::error_code(status)?;
    [UNAUTHENTICATED_CODE, NOT_ALLOWED_CODE]
        .contains(&code)
        .then(|| (status.code(), code.to_string()))
}

#[tokio::test]
async fn every_method_of_every_service_admits_exactly_the_identities_of_its_table() {
    let stack = Stack::start_with(Options {
        mode: Mode::Processes,
        ..Options::default()
    })
    .await;
    let methods = methods();
    assert!(
        methods.len() > 40,
        "the proto files were not read: {methods:?}"
    );
    let mut seen = BTreeMap::new();
    for (service, method) in &methods {
        let (target, access) = table(service);
        assert!(
            !access(method).is_empty(),
            "{service}/{method} is in no table: nobody could call it"
        );
        let addr = stack
            .grpc_addrs
            .iter()
            .find(|(s, _)| *s == target)
            .unwrap()
            .1;
        let url = relais_runtime::grpc_url(addr);
        for role in Role::ALL {
            let channel = LocalServices::new(&stack.grpc)
                .for_service(role)
                .channel(target.role(), &url)
                .unwrap();
            let result =
                tokio::time::timeout(Duration::from_secs(10), call(channel, service, method))
                    .await
                    .unwrap_or_else(|_| panic!("{service}/{method} as {role:?} did not answer"));
            let expected = if access(method).contains(&role) {
                None
            } else {
                Some((Code::PermissionDenied, NOT_ALLOWED_CODE.to_string()))
            };
            assert_eq!(
                refusal(&result),
                expected,
                "{service}/{method} as {role:?}: {result:?}"
            );
            if expected.is_none() {
                *seen.entry(role).or_insert(0) += 1;
            }
        }
        let anonymous = without_certificate(&stack, target, &url);
        let result = call(anonymous, service, method).await;
        assert_eq!(
            refusal(&result),
            Some((Code::Unauthenticated, UNAUTHENTICATED_CODE.to_string())),
            "{service}/{method} without a certificate: {result:?}"
        );
    }
    // The rules, read from the tables themselves.
    let allowed = |service: &str, method: &str| table(service).1(method).to_vec();
    let registry = "relais.registry.v1.Registry";
    for m in [
        "RotateClientSecret",
        "SetServiceProviderStatus",
        "SetIdentityProviderStatus",
    ] {
        assert_eq!(allowed(registry, m), [Role::Operator], "{m}");
    }
    for m in [
        "GetServiceProvider",
        "AuthenticateClient",
        "GetIdentityProvider",
        "ListIdentityProviders",
    ] {
        assert_eq!(
            allowed(registry, m),
            [Role::OidcFront, Role::IdpBridge],
            "{m}"
        );
    }
    let front = "relais.oidc_front.v1.OidcFront";
    for m in [
        "ListBlocks",
        "ClearBlock",
        "SuspendAccount",
        "LiftAccountSuspension",
    ] {
        assert_eq!(allowed(front, m), [Role::Operator], "{m}");
    }
    for m in ["Authorize", "Token", "UserInfo", "Revoke", "Introspect"] {
        assert_eq!(allowed(front, m), [Role::Gateway], "{m}");
    }
    // Nobody but an operator reads the proof store's subjects, addresses and proofs, or
    // signs a checkpoint on demand; the gateway publishes the latest checkpoint.
    for m in [
        "GetConnection",
        "ListConnections",
        "VerifyChain",
        "MakeCheckpoint",
        "GetInclusionProof",
        "GetConsistencyProof",
        "ExportCase",
    ] {
        assert_eq!(allowed("relais.trace.v1.Trace", m), [Role::Operator], "{m}");
    }
    assert_eq!(
        allowed("relais.trace.v1.Trace", "GetCheckpoint"),
        [Role::Gateway, Role::Operator]
    );
    // Investigations: an operator, or the gateway carrying an investigator's token, which
    // the proof store checks itself with oidc-front and the registry (its only calls).
    assert_eq!(
        allowed("relais.trace.v1.Trace", "SearchConnections"),
        [Role::Operator, Role::Gateway]
    );
    // A person's own history: the gateway carrying that person's account-page token only.
    assert_eq!(
        allowed("relais.trace.v1.Trace", "MyConnections"),
        [Role::Gateway]
    );
    assert_eq!(
        allowed(front, "VerifyAccessToken"),
        [Role::Support, Role::Trace]
    );
    for m in ["FindPerson", "BindPerson"] {
        assert_eq!(allowed(registry, m), [Role::Support, Role::Trace], "{m}");
    }
    let trace_calls: Vec<(String, String)> = methods
        .iter()
        .filter(|(s, m)| table(s).1(m).contains(&Role::Trace))
        .cloned()
        .collect();
    assert_eq!(
        trace_calls,
        [
            (front.to_string(), "VerifyAccessToken".to_string()),
            (registry.to_string(), "BindPerson".to_string()),
            (registry.to_string(), "FindPerson".to_string()),
        ]
    );
    // The registry calls nobody; the operator is not allowed everything.
    let callers: Vec<Role> = seen.keys().copied().collect();
    assert_eq!(
        callers,
        [
            Role::Gateway,
            Role::OidcFront,
            Role::IdpBridge,
            Role::Trace,
            Role::Support,
            Role::Operator
        ]
    );
    assert!(seen[&Role::Operator] < methods.len());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_process_a_service_without_listen_has_no_port_and_still_answers() {
    let stack = Stack::start_with(Options {
        tweak: |c| {
            c.idp_bridge.listen = String::new();
            c.support.listen = String::new();
        },
        ..Options::default()
    })
    .await;
    for service in [Service::IdpBridge, Service::Support] {
        let addr = stack
            .grpc_addrs
            .iter()
            .find(|(s, _)| *s == service)
            .unwrap()
            .1;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{service:?} listens on {addr}"
        );
    }
    // The front reaches the bridge in-process: a whole sign-in.
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let back = sign_in(&stack, &browser, &req, "camille").await.at_sp();
    let code = req.code(&back);
    let (status, t) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{t}");
    stack.stop().await;
}

#[tokio::test]
async fn check_config_names_the_plaintext_switch_off_loopback_and_missing_certificates() {
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relais"));
        // Defaults and these variables only (no deployment's file).
        cmd.arg("check-config")
            .env_remove("RELAIS_CONFIG")
            .env("RELAIS__GATEWAY__ALLOW_PLAIN_HTTP", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&[]);
    assert!(!ok && err.contains("grpc.ca_file"), "{err}");
    let public = [
        ("RELAIS__GRPC__INSECURE_PLAINTEXT", "true"),
        ("RELAIS__OIDC_FRONT__ISSUER", "https://relais.example"),
        ("RELAIS__GATEWAY__PUBLIC_URL", "https://relais.example"),
    ];
    let (ok, err) = run(&public);
    assert!(!ok && err.contains("grpc.insecure_plaintext"), "{err}");
    let (ok, err) = run(&public[..1]);
    assert!(ok, "plaintext on loopback is allowed: {err}");
}

/// A key of 256 bits (43 base64url characters), and a list of one.
const STRONG_KEY: &str = "Yq3m8Vt2Lr5Nw9Bx1Kc7Hf4Jd6Gs0Pz2Qa8Ue5Ri3To";
const STRONG_KEYS: &str = "[\"Yq3m8Vt2Lr5Nw9Bx1Kc7Hf4Jd6Gs0Pz2Qa8Ue5Ri3To\"]";

#[tokio::test]
async fn off_loopback_checkpoints_need_a_key_of_their_own_which_admin_makes() {
    let dir = std::env::temp_dir().join(format!("relais-ckey-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checkpoint.key");
    let origin = "relais.example/trace";
    let relais = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relais"));
        cmd.args(args).env("RELAIS__TRACE__ORIGIN", origin);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = relais(&["admin", "checkpoint-key", file.to_str().unwrap()], &[]);
    assert!(ok, "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let private = std::fs::read_to_string(&file).unwrap();
    let key = relais_trace::checkpoint::CheckpointKey::parse(&private, origin).unwrap();
    // The verifier key printed is the key's.
    assert!(out.lines().any(|l| l == key.verifier_key()), "{out}");
    assert!(key.verifier_key().starts_with(&format!("{origin}+")));
    // Never over an existing key.
    let (ok, out) = relais(&["admin", "checkpoint-key", file.to_str().unwrap()], &[]);
    assert!(!ok, "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), private);

    let public = [
        ("RELAIS__OIDC_FRONT__ISSUER", "https://relais.example"),
        ("RELAIS__GATEWAY__PUBLIC_URL", "https://relais.example"),
        ("RELAIS__GRPC__CA_FILE", "/etc/relais/ca.pem"),
        ("RELAIS__GRPC__CERT_FILE", "/etc/relais/{service}.pem"),
        ("RELAIS__GRPC__KEY_FILE", "/etc/relais/{service}.key"),
        // TLS ends at a proxy in front.
        ("RELAIS__GATEWAY__ALLOW_PLAIN_HTTP", "true"),
        // The deployment's own keys (`keys::check_config_names_a_development_or_short_key_off_loopback`).
        ("RELAIS__OIDC_FRONT__SUBJECT_KEY", STRONG_KEY),
        ("RELAIS__OIDC_FRONT__FLOW_KEYS", STRONG_KEYS),
        ("RELAIS__REGISTRY__SECRET_HASH_KEY", STRONG_KEY),
        ("RELAIS__IDP_BRIDGE__ROUND_TRIP_KEYS", STRONG_KEYS),
        ("RELAIS__OIDC_FRONT__KEY_ENCRYPTION_KEY", STRONG_KEY),
        ("RELAIS__REGISTRY__KEY_ENCRYPTION_KEY", STRONG_KEY),
    ];
    // The development key is for loopback only.
    let (ok, err) = relais(&["check-config"], &public);
    assert!(!ok && err.contains("trace.checkpoint_key"), "{err}");
    let with_key = [
        &public[..],
        &[("RELAIS__TRACE__CHECKPOINT_KEY", private.trim())],
    ]
    .concat();
    let (ok, err) = relais(&["check-config"], &with_key);
    assert!(ok, "{err}");
    let with_file = [
        &public[..],
        &[("RELAIS__TRACE__CHECKPOINT_KEY_FILE", file.to_str().unwrap())],
    ]
    .concat();
    let (ok, err) = relais(&["check-config"], &with_file);
    assert!(ok, "{err}");
    // A key of another log is refused, naming the field.
    let other = [
        &with_key[..],
        &[("RELAIS__TRACE__ORIGIN", "elsewhere.example/trace")],
    ]
    .concat();
    let (ok, err) = relais(&["check-config"], &other);
    assert!(!ok && err.contains("trace.checkpoint_key"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_names_the_support_caller_instead_of_a_token() {
    use relais_proto::support::v1 as support;
    use relais_proto::support::v1::support_client::SupportClient;
    let stack = Stack::start().await;
    let url = relais_runtime::grpc_url(
        stack
            .grpc_addrs
            .iter()
            .find(|(s, _)| *s == Service::Support)
            .unwrap()
            .1,
    );
    let staff = || support::ListTicketsRequest {
        caller: Some(support::Caller {
            who: Some(support::caller::Who::Staff(support::Staff {
                role: "level3".into(),
                name: "mallory".into(),
            })),
        }),
        ..Default::default()
    };
    // The gateway may call support, but only with the person's access token.
    let gateway = LocalServices::new(&stack.grpc)
        .for_service(Role::Gateway)
        .channel(Role::Support, &url)
        .unwrap();
    let status = SupportClient::new(gateway)
        .list_tickets(staff())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(relais_runtime::error_code(&status), Some("forbidden"));
    stack.support.clone().list_tickets(staff()).await.unwrap();
    stack.stop().await;
}

/// An IdP's client secret is read by the bridge only: the front (which lists IdPs for its
/// chooser) and an operator get the record without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_client_secrets_reach_only_the_bridge() {
    use relais_proto::registry::v1 as reg;
    use relais_proto::registry::v1::registry_client::RegistryClient;
    let stack = Stack::start().await;
    let url = relais_runtime::grpc_url(stack.registry_addr);
    let mut seen = BTreeMap::new();
    for role in [Role::IdpBridge, Role::OidcFront, Role::Operator] {
        let channel = LocalServices::new(&stack.grpc)
            .for_service(role)
            .channel(Role::Registry, &url)
            .unwrap();
        let mut registry = RegistryClient::new(channel);
        let listed = registry
            .list_identity_providers(reg::ListIdentityProvidersRequest::default())
            .await;
        let Ok(listed) = listed else {
            seen.insert(role.name(), None);
            continue;
        };
        let listed = listed.into_inner().identity_providers;
        assert!(!listed.is_empty());
        let one = registry
            .get_identity_provider(reg::GetIdentityProviderRequest {
                id: listed[0].id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let secrets: Vec<bool> = listed
            .iter()
            .chain([&one])
            .map(|idp| !idp.client_secret.is_empty())
            .collect();
        seen.insert(role.name(), Some(secrets));
    }
    let bridge = seen["idp-bridge"].clone().unwrap();
    assert!(bridge.iter().all(|s| *s), "the bridge needs every secret");
    let front = seen["oidc-front"].clone().unwrap();
    assert!(front.iter().all(|s| !*s), "a secret reached the front");
    // An operator is not let read partners at all by the table.
    assert_eq!(seen["operator"], None);
    stack.stop().await;
}
