//! A registry, a bridge and the front in-process, with the demo IdP, a database and an
//! exchange of the test's own; the test calls the front as the gateway does, plays the
//! browser at the IdP, and reads the front's tables with SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::Pool;
use relais_config::{DatabaseConfig, Secret};
use relais_demo_idp::{DemoIdpConfig, DemoIdpHandle};
use relais_proto::oidc_front::v1 as pb;
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_runtime::{GrpcChannel, LocalServices, Role, Shutdown, Tasks};
use relais_testkit::{TestBus, TestDb};
use tokio_util::sync::CancellationToken;

pub const HUB: &str = "http://127.0.0.1:9";
pub const SP: &str = "sp";
pub const SP_SECRET: &str = "sp-secret-0123456789-0123456789-0123456789-01";
pub const REDIRECT: &str = "https://sp.example/cb";
pub const LOGOUT: &str = "https://sp.example/logged-out";
/// A legacy confidential SP registered exempt from PKCE.
pub const LEGACY: &str = "legacy";
pub const LEGACY_SECRET: &str = "legacy-secret-0123456789-0123456789-0123456789";
pub const LEGACY_REDIRECT: &str = "https://legacy.example/cb";
/// RFC 7636 appendix B's verifier and its S256 challenge, computed by another hand.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const IDP_SECRET: &str = "hub-at-demo-idp-secret-0123456789-0123456789";

pub struct Hub {
    pub front: OidcFrontClient<GrpcChannel>,
    /// The front called as an operator calls it.
    pub operator: OidcFrontClient<GrpcChannel>,
    /// The front's configuration, for another front on the same database.
    pub config: relais_oidc_front::OidcFrontConfig,
    database: DatabaseConfig,
    pub idp: DemoIdpHandle,
    /// The front's own schema.
    pub sql: Pool,
    browser: reqwest::Client,
    tasks: Vec<Tasks>,
    dir: PathBuf,
    db: TestDb,
    bus: TestBus,
}

fn seed(issuer: &str) -> String {
    format!(
        r#"
[[identity_providers]]
id = "demo-idp"
name = "Démo IdP"
issuer = "{issuer}"
client_id = "relais-hub"
client_secret = "{IDP_SECRET}"
acr_values = ["eidas1", "eidas2", "eidas3"]
scopes = ["openid", "given_name", "usual_name", "email", "uid"]

[[service_providers]]
client_id = "{SP}"
name = "Service"
client_secret = "{SP_SECRET}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["{LOGOUT}"]
scopes = ["openid", "email"]
claims = ["email"]
acr_values = ["eidas1", "eidas2"]
idp_ids = ["demo-idp"]

[[service_providers]]
client_id = "{LEGACY}"
name = "Legacy"
client_secret = "{LEGACY_SECRET}"
redirect_uris = ["{LEGACY_REDIRECT}"]
scopes = ["openid", "email"]
claims = ["email"]
acr_values = ["eidas1"]
idp_ids = ["demo-idp"]
pkce_exempt = true
"#
    )
}

pub fn source() -> pb::Source {
    pb::Source {
        ip: "203.0.113.7".into(),
        port: 50_000,
        request_id: "req-1".into(),
        ..pb::Source::default()
    }
}

pub fn params(pairs: &[(&str, &str)]) -> Vec<pb::Param> {
    pairs
        .iter()
        .map(|(n, v)| pb::Param {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// Where a flow answer redirects, or a description of what it is instead.
pub fn redirect_of(r: &pb::FlowResponse) -> Result<String, String> {
    match &r.outcome {
        Some(pb::flow_response::Outcome::Redirect(to)) => Ok(to.url.clone()),
        other => Err(format!("{other:?}")),
    }
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

impl Hub {
    pub async fn start() -> Hub {
        Hub::start_with_clock(std::sync::Arc::new(relais_oidc_front::clock::SystemClock)).await
    }

    /// The front reading `clock` (the registry, the bridge and the IdP keep real time).
    pub async fn start_with_clock(
        clock: std::sync::Arc<dyn relais_oidc_front::clock::Clock>,
    ) -> Hub {
        Hub::start_with(clock, |_| {}).await
    }

    /// The front reading `clock`, its configuration changed by `tweak`.
    pub async fn start_with(
        clock: std::sync::Arc<dyn relais_oidc_front::clock::Clock>,
        tweak: fn(&mut relais_oidc_front::OidcFrontConfig),
    ) -> Hub {
        let db = TestDb::create().await;
        let bus = TestBus::new();
        let idp_config: DemoIdpConfig = toml::from_str(&format!(
            r#"
            [[clients]]
            client_id = "relais-hub"
            client_secret = "{IDP_SECRET}"
            redirect_uris = ["{HUB}/idp/callback"]
            "#
        ))
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = relais_demo_idp::start(idp_config, listener, CancellationToken::new())
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("relais-front-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed_file = dir.join("partners.toml");
        std::fs::write(&seed_file, seed(idp.issuer())).unwrap();

        let local = LocalServices::default();
        let database = DatabaseConfig {
            url: Secret::new(db.url()),
            pool_size: 4,
            ..DatabaseConfig::default()
        };
        let registry = relais_registry::start(
            relais_registry::RegistryConfig {
                seed_file: Some(seed_file.display().to_string()),
                secret_hash_key: Secret::new("front-test-registry-key-0123456789-01234"),
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
        let bridge = relais_idp_bridge::start(
            relais_idp_bridge::IdpBridgeConfig {
                callback_url: format!("{HUB}/idp/callback"),
                logout_callback_url: format!("{HUB}/idp/logout-callback"),
                ..relais_idp_bridge::IdpBridgeConfig::default()
            },
            None,
            &local.for_service(Role::IdpBridge),
            Shutdown::new(),
        )
        .await
        .unwrap();
        let mut config = relais_oidc_front::OidcFrontConfig {
            issuer: HUB.into(),
            subject_key: Secret::new("front-test-subject-key-0123456789-012345"),
            ..relais_oidc_front::OidcFrontConfig::default()
        };
        tweak(&mut config);
        let front = relais_oidc_front::start_with_clock(
            config.clone(),
            &database,
            bus.config(),
            None,
            &local.for_service(Role::OidcFront),
            Shutdown::new(),
            clock,
        )
        .await
        .unwrap();
        bus.track(&format!("{}.oidc-front.backchannel-logout", bus.exchange()));
        for delay in [10, 60, 300, 1800, 3600, 7200] {
            bus.track(&format!(
                "{}.oidc-front.backchannel-logout.retry.{}ms",
                bus.exchange(),
                delay * 1000
            ));
        }
        // Called in-process as the gateway calls it: the URL is not used.
        let channel = local
            .for_service(Role::Gateway)
            .channel(Role::OidcFront, "http://127.0.0.1:1")
            .unwrap();
        let sql = db.pool(relais_oidc_front::SCHEMA, 2).await;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let operator = local
            .for_service(Role::Operator)
            .channel(Role::OidcFront, "http://127.0.0.1:1")
            .unwrap();
        Hub {
            front: OidcFrontClient::new(channel),
            operator: OidcFrontClient::new(operator),
            config,
            database,
            idp,
            sql,
            browser,
            tasks: vec![front, bridge, registry],
            dir,
            db,
            bus,
        }
    }

    /// Another front on this hub's database and exchange, with `config` (its registry and
    /// bridge unreachable: enough for its keys), reading `clock`; called as the gateway calls it.
    pub async fn another_front(
        &self,
        config: relais_oidc_front::OidcFrontConfig,
        clock: std::sync::Arc<dyn relais_oidc_front::clock::Clock>,
    ) -> Result<(OidcFrontClient<GrpcChannel>, Tasks), relais_oidc_front::FrontError> {
        let local = LocalServices::default();
        let shutdown = Shutdown::new();
        let started = relais_oidc_front::start_with_clock(
            config,
            &self.database,
            self.bus.config(),
            None,
            &local.for_service(Role::OidcFront),
            shutdown.clone(),
            clock,
        )
        .await;
        // What a refused start had begun (its outbox relay) stops with it.
        let tasks = started.inspect_err(|_| shutdown.cancel())?;
        let channel = local
            .for_service(Role::Gateway)
            .channel(Role::OidcFront, "http://127.0.0.1:1")
            .unwrap();
        Ok((OidcFrontClient::new(channel), tasks))
    }

    /// The partners changed as an operator changes them: a registry replica on this hub's
    /// database and exchange starts with `edit` applied to the seed (stored and announced),
    /// kept running until `heard` says the front follows, then stopped.
    pub async fn reseed<F, Fut>(&self, edit: impl FnOnce(String) -> String, heard: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let seed_file = self.dir.join("partners-changed.toml");
        std::fs::write(&seed_file, edit(seed(self.idp.issuer()))).unwrap();
        let replica = relais_registry::start(
            relais_registry::RegistryConfig {
                seed_file: Some(seed_file.display().to_string()),
                secret_hash_key: Secret::new("front-test-registry-key-0123456789-01234"),
                ..relais_registry::RegistryConfig::default()
            },
            &self.database,
            self.bus.config(),
            None,
            &LocalServices::default().for_service(Role::Registry),
            Shutdown::new(),
        )
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !heard().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the front did not follow the change"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replica.shutdown(Duration::from_secs(5)).await;
    }

    pub async fn stop(self) {
        for t in self.tasks {
            t.shutdown(Duration::from_secs(5)).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        self.bus.cleanup().await;
        self.db.cleanup().await;
    }

    /// Rows of the front's `table`.
    pub async fn rows(&self, table: &str) -> i64 {
        let client = self.sql.get().await.unwrap();
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Whether `needle` appears anywhere in the front's tables (any column, as text).
    pub async fn stored_anywhere(&self, needle: &str) -> Vec<String> {
        let client = self.sql.get().await.unwrap();
        let tables: Vec<String> = client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                &[&relais_oidc_front::SCHEMA],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut found = Vec::new();
        for t in tables {
            let n: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM \"{t}\" x WHERE x::text LIKE '%' || $1 || '%'"),
                    &[&needle],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                found.push(t);
            }
        }
        found
    }

    /// `/authorize` for the SP, with PKCE: the chooser answer (flow cookie set). A
    /// parameter in `extra` replaces the default one; empty, it is not sent.
    pub async fn authorize(&self, extra: &[(&str, &str)]) -> pb::FlowResponse {
        let mut p = vec![
            ("client_id", SP),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "state-0123456789-0123456789-0123456789-0123"),
            ("nonce", "nonce-0123456789-0123456789-0123456789-0123"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        // A parameter given again replaces the default one.
        p.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
        p.extend(extra.iter().copied().filter(|(_, v)| !v.is_empty()));
        self.front
            .clone()
            .authorize(pb::AuthorizeRequest {
                params: params(&p),
                source: Some(source()),
                session: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// The chooser's choice of the demo IdP: where the browser goes, and the flow cookie.
    pub async fn choose(&self, chooser: &pb::FlowResponse) -> (String, String) {
        let flow = chooser.flow_cookie.clone().unwrap().value;
        let Some(pb::flow_response::Outcome::Chooser(page)) = &chooser.outcome else {
            panic!("not the chooser: {chooser:?}");
        };
        let r = self
            .front
            .clone()
            .choose_idp(pb::ChooseIdpRequest {
                flow: flow.clone(),
                csrf: page.csrf.clone(),
                idp_id: "demo-idp".into(),
                source: Some(source()),
            })
            .await
            .unwrap()
            .into_inner();
        let flow = r.flow_cookie.clone().map_or(flow, |c| c.value);
        (redirect_of(&r).unwrap(), flow)
    }

    /// The browser at the IdP signs in as `identity`: the callback's query.
    pub async fn at_idp(&self, url: &str, identity: &str) -> Vec<pb::Param> {
        let page = self
            .browser
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"request_id\" value=\"";
        let start = page.find(marker).expect("a login form") + marker.len();
        let request_id = &page[start..start + page[start..].find('"').unwrap()];
        let answer = self
            .browser
            .post(format!("{}/authorize/login", self.idp.issuer()))
            .form(&[
                ("request_id", request_id),
                ("identity", identity),
                ("scenario", "none"),
                ("action", "login"),
            ])
            .send()
            .await
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_string();
        query(&location)
            .into_iter()
            .map(|(name, value)| pb::Param { name, value })
            .collect()
    }

    pub async fn callback(&self, flow: &str, answer: &[pb::Param]) -> pb::FlowResponse {
        self.front
            .clone()
            .idp_callback(pb::IdpCallbackRequest {
                flow: flow.into(),
                params: answer.to_vec(),
                source: Some(source()),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// `/userinfo` with `access_token`: the HTTP status and the body.
    pub async fn userinfo(&self, access_token: &str) -> (u32, String) {
        let r = self
            .front
            .clone()
            .user_info(pb::UserInfoRequest {
                authorization: format!("Bearer {access_token}"),
                params: Vec::new(),
                source: Some(source()),
                params_in_query: false,
            })
            .await
            .unwrap()
            .into_inner();
        (r.http_status, r.body)
    }

    /// The SP redeems `code` with its verifier: the HTTP status and the JSON body.
    pub async fn token(&self, code: &str) -> (u32, serde_json::Value) {
        self.token_with(code, REDIRECT).await
    }

    /// The SP redeems `code`, saying it was sent to `redirect_uri`.
    pub async fn token_with(&self, code: &str, redirect_uri: &str) -> (u32, serde_json::Value) {
        self.token_as(SP, SP_SECRET, code, redirect_uri, Some(VERIFIER))
            .await
    }

    /// `client` redeems `code` (client_secret_basic), with `verifier` if any.
    pub async fn token_as(
        &self,
        client: &str,
        secret: &str,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> (u32, serde_json::Value) {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        let r = self
            .front
            .clone()
            .token(pb::TokenRequest {
                params: params(&form),
                authorization: format!("Basic {basic}"),
                source: Some(source()),
            })
            .await
            .unwrap()
            .into_inner();
        (r.http_status, serde_json::from_str(&r.body).unwrap())
    }
}
