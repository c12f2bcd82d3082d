//! Starts a demo IdP on 127.0.0.1:0 and drives it like a browser and a relying party would.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::JwkSet;
use josekit::jws::ES256;
use relais_demo_idp::{ClientConfig, DemoIdpConfig, DemoIdpHandle, Secret};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

pub const CLIENT_ID: &str = "sp-test";
pub const SECRET: &str = "sp-test-secret";
pub const OTHER_CLIENT_ID: &str = "sp-other";
pub const OTHER_SECRET: &str = "sp-other-secret";
// Never contacted: the tests read the Location header instead of following it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
pub const LOGOUT_URI: &str = "http://127.0.0.1:9/logged-out";

pub struct TestIdp {
    pub handle: DemoIdpHandle,
    pub http: reqwest::Client,
}

/// What a relying party keeps between the authorization request and the token request.
pub struct Login {
    pub code: String,
    pub verifier: String,
    pub nonce: String,
}

pub fn config() -> DemoIdpConfig {
    DemoIdpConfig {
        clients: vec![
            ClientConfig {
                client_id: CLIENT_ID.into(),
                client_secret: Secret::new(SECRET),
                redirect_uris: vec![REDIRECT_URI.into()],
                post_logout_redirect_uris: vec![LOGOUT_URI.into()],
            },
            ClientConfig {
                client_id: OTHER_CLIENT_ID.into(),
                client_secret: Secret::new(OTHER_SECRET),
                redirect_uris: vec![REDIRECT_URI.into()],
                post_logout_redirect_uris: Vec::new(),
            },
        ],
        ..DemoIdpConfig::default()
    }
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The query parameters of a Location header.
pub fn location(response: &reqwest::Response) -> (Url, HashMap<String, String>) {
    let url = Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    let query = url.query_pairs().into_owned().collect();
    (url, query)
}

/// A JWT's payload, without checking anything.
pub fn payload(jwt: &str) -> Map<String, Value> {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

impl TestIdp {
    pub async fn start() -> Self {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: DemoIdpConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = relais_demo_idp::start(config, listener, CancellationToken::new())
            .await
            .unwrap();
        Self {
            handle,
            http: browser(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.issuer())
    }

    /// The standard parameters, overridden or extended by `extra` (an empty value removes one).
    pub fn authorize_url(&self, extra: &[(&str, &str)], verifier: &str) -> String {
        let challenge = challenge(verifier);
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid given_name usual_name email"),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in extra {
            params.retain(|(k, _)| k != key);
            if !value.is_empty() {
                params.push((key, value));
            }
        }
        let mut url = Url::parse(&self.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.into()
    }

    /// Opens the login page and returns its HTML and request id.
    pub async fn login_page(&self, extra: &[(&str, &str)], verifier: &str) -> (String, String) {
        let response = self
            .http
            .get(self.authorize_url(extra, verifier))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        let request_id = relais_demo_idp::login_request_id(&html)
            .expect("login page has a request_id")
            .to_owned();
        (html, request_id)
    }

    /// Submits the login form; `scenario` None leaves the field out (the global one applies).
    pub async fn submit(
        &self,
        request_id: &str,
        identity: &str,
        scenario: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("request_id", request_id),
            ("identity", identity),
            ("action", "login"),
        ];
        if let Some(scenario) = scenario {
            form.push(("scenario", scenario));
        }
        self.http
            .post(self.url("/authorize/login"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// A complete front-channel login; returns the code.
    pub async fn login(
        &self,
        identity: &str,
        scenario: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Login {
        let verifier = format!("verifier-{}", "x".repeat(40));
        let (_, request_id) = self.login_page(extra, &verifier).await;
        let response = self.submit(&request_id, identity, scenario).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (url, query) = location(&response);
        assert!(url.as_str().starts_with(REDIRECT_URI), "{url}");
        assert_eq!(query["state"], "state-123");
        assert_eq!(query["iss"], self.handle.issuer());
        let nonce = extra
            .iter()
            .find(|(k, _)| *k == "nonce")
            .map_or("nonce-456", |(_, v)| v)
            .to_owned();
        Login {
            code: query.get("code").expect("a code").clone(),
            verifier,
            nonce,
        }
    }

    /// The token request of a confidential client using client_secret_basic.
    pub async fn token(&self, code: &str, verifier: Option<&str>) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        self.http
            .post(self.url("/token"))
            .basic_auth(CLIENT_ID, Some(SECRET))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Logs in and redeems the code; returns the token response body.
    pub async fn tokens(
        &self,
        identity: &str,
        scenario: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Value {
        let login = self.login(identity, scenario, extra).await;
        let response = self.token(&login.code, Some(&login.verifier)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    /// Verifies an ID token's signature with the key published at /jwks.
    pub async fn verify(&self, id_token: &str) -> Result<Map<String, Value>, josekit::JoseError> {
        let jwks = self
            .http
            .get(self.url("/jwks"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let jwks = JwkSet::from_bytes(&jwks)?;
        let header = josekit::jwt::decode_header(id_token)?;
        let kid = header
            .claim("kid")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let jwk = jwks.get(&kid)[0];
        let verifier = ES256.verifier_from_jwk(jwk)?;
        let (payload, header) = josekit::jwt::decode_with_verifier(id_token, &verifier)?;
        assert_eq!(header.algorithm(), Some("ES256"));
        Ok(payload.claims_set().clone())
    }
}
