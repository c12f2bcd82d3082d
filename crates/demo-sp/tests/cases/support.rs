//! A demo IdP and a demo SP on 127.0.0.1, and a browser with a cookie jar that follows
//! redirects by hand.

use relais_demo_idp::{ClientConfig, DemoIdpConfig, DemoIdpHandle};
use relais_demo_sp::{DemoSpConfig, DemoSpHandle};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use tokio_util::sync::CancellationToken;

pub const CLIENT_ID: &str = "demo-sp";
pub const SECRET: &str = "demo-sp-secret+with/odd=chars";

pub struct Stack {
    pub idp: DemoIdpHandle,
    pub sp: DemoSpHandle,
    pub browser: reqwest::Client,
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

impl Stack {
    pub async fn start() -> Self {
        let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sp_url = format!("http://{}", sp_listener.local_addr().unwrap());
        let idp = relais_demo_idp::start(
            DemoIdpConfig {
                clients: vec![ClientConfig {
                    client_id: CLIENT_ID.into(),
                    client_secret: relais_demo_idp::Secret::new(SECRET),
                    redirect_uris: vec![relais_demo_sp::redirect_uri(&sp_url)],
                    post_logout_redirect_uris: vec![relais_demo_sp::post_logout_redirect_uri(
                        &sp_url,
                    )],
                }],
                ..DemoIdpConfig::default()
            },
            idp_listener,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let sp = relais_demo_sp::start(
            DemoSpConfig {
                issuer: idp.issuer().to_owned(),
                client_id: CLIENT_ID.into(),
                client_secret: relais_demo_sp::Secret::new(SECRET),
                ..DemoSpConfig::default()
            },
            sp_listener,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { idp, sp, browser }
    }

    pub fn sp_url(&self, path: &str) -> String {
        format!("{}{path}", self.sp.url())
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.browser.get(url).send().await.unwrap()
    }

    /// Starts a sign-in at the SP; returns the authorization request URL it redirects to.
    pub async fn start_login(&self, query: &[(&str, &str)]) -> String {
        let response = self
            .browser
            .get(self.sp_url("/login"))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        location(&response)
    }

    /// Signs in as `identity` under `scenario`; returns the SP's answer at /callback.
    pub async fn sign_in(
        &self,
        query: &[(&str, &str)],
        identity: &str,
        scenario: &str,
    ) -> reqwest::Response {
        let authorize = self.start_login(query).await;
        assert!(authorize.starts_with(self.idp.issuer()), "{authorize}");
        let page = self.get(&authorize).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let request_id = relais_demo_idp::login_request_id(&html).unwrap().to_owned();
        let submitted = self
            .browser
            .post(format!("{}/authorize/login", self.idp.issuer()))
            .form(&[
                ("request_id", request_id.as_str()),
                ("identity", identity),
                ("scenario", scenario),
                ("action", "login"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(submitted.status(), StatusCode::SEE_OTHER);
        let callback = location(&submitted);
        assert!(callback.starts_with(&self.sp.redirect_uri()), "{callback}");
        self.get(&callback).await
    }
}
