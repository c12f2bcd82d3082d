//! A real registry and the demo IdP, in-process with the bridge, against a database and
//! an exchange of the test's own; the test calls the bridge as oidc-front does and plays
//! the browser at the IdP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use relais_config::{DatabaseConfig, Secret};
use relais_demo_idp::{DemoIdpConfig, DemoIdpHandle};
use relais_idp_bridge::IdpBridgeConfig;
use relais_proto::idp_bridge::v1 as pb;
use relais_proto::idp_bridge::v1::idp_bridge_client::IdpBridgeClient;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_runtime::{GrpcChannel, LocalServices, Role, Shutdown, Tasks};
use relais_testkit::{TestBus, TestDb};
use tokio_util::sync::CancellationToken;

pub const CALLBACK: &str = "http://127.0.0.1:9/idp/callback";
const IDP_SECRET: &str = "hub-at-demo-idp-secret-0123456789-0123456789";

pub struct Hub {
    pub bridge: IdpBridgeClient<GrpcChannel>,
    /// The registry as the operator reaches it.
    pub registry: RegistryClient<GrpcChannel>,
    pub idp: DemoIdpHandle,
    browser: reqwest::Client,
    tasks: Vec<Tasks>,
    dir: PathBuf,
    db: TestDb,
    bus: TestBus,
}

fn seed(issuer: &str, rogue: &str) -> String {
    format!(
        r#"
[[identity_providers]]
id = "rogue-idp"
name = "Rogue"
issuer = "{rogue}"
client_id = "relais-hub"
client_secret = "{IDP_SECRET}"
acr_values = ["eidas1"]
scopes = ["openid", "email"]

[[identity_providers]]
id = "demo-idp"
name = "Démo IdP"
issuer = "{issuer}"
client_id = "relais-hub"
client_secret = "{IDP_SECRET}"
acr_values = ["eidas1", "eidas2", "eidas3"]
scopes = ["openid", "given_name", "usual_name", "email", "uid"]

[[service_providers]]
client_id = "sp"
name = "Service"
client_secret = "sp-secret-0123456789-0123456789-0123456789-01"
redirect_uris = ["https://sp.example/cb"]
scopes = ["openid", "email"]
claims = ["email"]
acr_values = ["eidas1", "eidas2"]
idp_ids = ["demo-idp", "rogue-idp"]
"#
    )
}

impl Hub {
    pub async fn start() -> Hub {
        Hub::start_with(|_| {}).await
    }

    /// A hub whose bridge settings `adjust` changes.
    pub async fn start_with(adjust: impl FnOnce(&mut IdpBridgeConfig)) -> Hub {
        let mut config = IdpBridgeConfig {
            callback_url: CALLBACK.into(),
            http_timeout_ms: 5_000,
            ..IdpBridgeConfig::default()
        };
        adjust(&mut config);
        let db = TestDb::create().await;
        let bus = TestBus::new();
        let idp_config: DemoIdpConfig = toml::from_str(&format!(
            r#"
            [[clients]]
            client_id = "relais-hub"
            client_secret = "{IDP_SECRET}"
            redirect_uris = ["{CALLBACK}"]
            "#
        ))
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = relais_demo_idp::start(idp_config, listener, CancellationToken::new())
            .await
            .unwrap();
        let dir =
            std::env::temp_dir().join(format!("relais-bridge-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed_file = dir.join("partners.toml");
        let rogue = rogue_idp().await;
        std::fs::write(&seed_file, seed(idp.issuer(), &rogue)).unwrap();

        let local = LocalServices::default();
        let database = DatabaseConfig {
            url: Secret::new(db.url()),
            pool_size: 2,
            ..DatabaseConfig::default()
        };
        let registry = relais_registry::start(
            relais_registry::RegistryConfig {
                seed_file: Some(seed_file.display().to_string()),
                secret_hash_key: Secret::new("bridge-test-registry-key-0123456789-0123"),
                ..relais_registry::RegistryConfig::default()
            },
            &database,
            bus.config(),
            None,
            &local.for_service(Role::Registry),
            Shutdown::new(),
        )
        .await
        .unwrap();
        let bridge_tasks = relais_idp_bridge::start(
            config,
            None,
            &local.for_service(Role::IdpBridge),
            Shutdown::new(),
        )
        .await
        .unwrap();
        // Called in-process as the front calls it: the URL is not used.
        let channel = local
            .for_service(Role::OidcFront)
            .channel(Role::IdpBridge, "http://127.0.0.1:1")
            .unwrap();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let operator = local
            .for_service(Role::Operator)
            .channel(Role::Registry, "http://127.0.0.1:1")
            .unwrap();
        Hub {
            bridge: IdpBridgeClient::new(channel),
            registry: RegistryClient::new(operator),
            idp,
            browser,
            tasks: vec![registry, bridge_tasks],
            dir,
            db,
            bus,
        }
    }

    pub async fn stop(self) {
        for t in self.tasks {
            t.shutdown(Duration::from_secs(5)).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        self.bus.cleanup().await;
        self.db.cleanup().await;
    }

    /// The bridge's request for a sign-in at the demo IdP asking `acr_values`.
    pub async fn start_login(&self, acr_values: &[&str]) -> pb::StartLoginResponse {
        self.try_start_login(acr_values).await.unwrap()
    }

    pub async fn try_start_login(
        &self,
        acr_values: &[&str],
    ) -> Result<pb::StartLoginResponse, tonic::Status> {
        self.bridge
            .clone()
            .start_login(pb::StartLoginRequest {
                flow_id: "flow-1".into(),
                idp_id: "demo-idp".into(),
                sp_id: "sp".into(),
                sp_name: "Service".into(),
                acr_values: acr_values.iter().map(|a| a.to_string()).collect(),
                scopes: vec!["openid".into(), "email".into()],
                source_ip: "127.0.0.1".into(),
                source_port: 50_000,
                ..pb::StartLoginRequest::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The browser at the IdP: the login form for `identity` with `scenario`; the query
    /// the IdP sends back to the hub's callback.
    pub async fn at_idp(
        &self,
        url: &str,
        identity: &str,
        scenario: &str,
    ) -> HashMap<String, String> {
        let page = self.browser.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200, "the IdP's login page");
        let page = page.text().await.unwrap();
        let marker = "name=\"request_id\" value=\"";
        let start = page.find(marker).expect("a login form") + marker.len();
        let request_id = &page[start..start + page[start..].find('"').unwrap()];
        let answer = self
            .browser
            .post(format!("{}/authorize/login", self.idp.issuer()))
            .form(&[
                ("request_id", request_id),
                ("identity", identity),
                ("scenario", scenario),
                ("action", "login"),
            ])
            .send()
            .await
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(CALLBACK), "{location}");
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    /// The IdP's answer handed to the bridge with `round_trip`, as the front does.
    pub async fn finish(
        &self,
        round_trip: &str,
        answer: &HashMap<String, String>,
    ) -> Result<pb::FinishLoginResponse, tonic::Status> {
        let get = |k: &str| answer.get(k).cloned().unwrap_or_default();
        self.bridge
            .clone()
            .finish_login(pb::FinishLoginRequest {
                flow_id: "flow-1".into(),
                state: get("state"),
                code: get("code"),
                iss: get("iss"),
                error: get("error"),
                error_description: get("error_description"),
                source_ip: "127.0.0.1".into(),
                source_port: 50_000,
                request_id: "req-1".into(),
                round_trip: round_trip.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// The stable code a refusal carries.
pub fn code_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("relais-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// An IdP on loopback whose discovery would send the code and the client secret
/// elsewhere: its token endpoint is on another host. It answers every request with its
/// discovery document.
async fn rogue_idp() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let document = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": "https://collector.example/token",
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{document}",
                document.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    issuer
}
