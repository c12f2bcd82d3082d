//! A fake oidc-front that records what it receives and answers what the test chose, and
//! a gateway started in front of it on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relais_gateway::{Backends, GatewayConfig};
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::oidc_front::v1::oidc_front_server::{OidcFront, OidcFrontServer};
use relais_proto::oidc_front::v1::*;
use relais_proto::support::v1::support_client::SupportClient;
use relais_runtime::GrpcChannel;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

/// One call oidc-front received.
#[derive(Clone, Debug)]
pub enum Call {
    Discovery,
    Jwks,
    Authorize(AuthorizeRequest),
    ChooseIdp(ChooseIdpRequest),
    ShowChooser(relais_proto::oidc_front::v1::ShowChooserRequest),
    IdpCallback(IdpCallbackRequest),
    Token(TokenRequest),
    Revoke(TokenRequest),
    Introspect(TokenRequest),
    UserInfo(UserInfoRequest),
    EndSession(EndSessionRequest),
    LogoutCallback(LogoutCallbackRequest),
    ConfirmEndSession(ConfirmEndSessionRequest),
}

#[derive(Clone, Default)]
pub struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    flow: Arc<Mutex<FlowResponse>>,
    api: Arc<Mutex<ApiResponse>>,
    delay: Arc<Mutex<Duration>>,
}

impl Fake {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn answer_flow(&self, answer: FlowResponse) {
        *self.flow.lock().unwrap() = answer;
    }

    pub fn answer_api(&self, answer: ApiResponse) {
        *self.api.lock().unwrap() = answer;
    }

    pub fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    async fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
    }

    fn flow(&self) -> Result<Response<FlowResponse>, Status> {
        Ok(Response::new(self.flow.lock().unwrap().clone()))
    }

    fn api(&self) -> Result<Response<ApiResponse>, Status> {
        Ok(Response::new(self.api.lock().unwrap().clone()))
    }
}

#[tonic::async_trait]
impl OidcFront for Fake {
    async fn discovery(&self, _: Request<Empty>) -> Result<Response<Json>, Status> {
        self.record(Call::Discovery).await;
        Ok(Response::new(Json {
            json: r#"{"issuer":"http://127.0.0.1"}"#.into(),
            max_age_seconds: 0,
        }))
    }
    async fn jwks(&self, _: Request<Empty>) -> Result<Response<Json>, Status> {
        self.record(Call::Jwks).await;
        Ok(Response::new(Json {
            json: r#"{"keys":[]}"#.into(),
            max_age_seconds: 0,
        }))
    }
    async fn authorize(
        &self,
        r: Request<AuthorizeRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::Authorize(r.into_inner())).await;
        self.flow()
    }
    async fn choose_idp(
        &self,
        r: Request<ChooseIdpRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::ChooseIdp(r.into_inner())).await;
        self.flow()
    }
    async fn show_chooser(
        &self,
        r: Request<relais_proto::oidc_front::v1::ShowChooserRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::ShowChooser(r.into_inner())).await;
        self.flow()
    }
    async fn idp_callback(
        &self,
        r: Request<IdpCallbackRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::IdpCallback(r.into_inner())).await;
        self.flow()
    }
    async fn token(&self, r: Request<TokenRequest>) -> Result<Response<ApiResponse>, Status> {
        self.record(Call::Token(r.into_inner())).await;
        self.api()
    }

    async fn verify_access_token(
        &self,
        _r: Request<relais_proto::oidc_front::v1::VerifyAccessTokenRequest>,
    ) -> Result<Response<relais_proto::oidc_front::v1::VerifiedAccessToken>, Status> {
        Err(Status::unauthenticated("the gateway never asks this"))
    }

    async fn list_blocks(&self, _r: Request<Empty>) -> Result<Response<Blocks>, Status> {
        Ok(Response::new(Blocks { blocks: Vec::new() }))
    }

    async fn clear_block(&self, _r: Request<ClearBlockRequest>) -> Result<Response<Empty>, Status> {
        Err(Status::not_found("no such subject"))
    }

    async fn rotate_keys(&self, _r: Request<Empty>) -> Result<Response<RotatedKeys>, Status> {
        Err(Status::permission_denied("the gateway never asks this"))
    }

    async fn suspend_account(
        &self,
        _r: Request<relais_proto::oidc_front::v1::SuspendAccountRequest>,
    ) -> Result<Response<relais_proto::oidc_front::v1::AccountSuspension>, Status> {
        Err(Status::permission_denied("the gateway never asks this"))
    }

    async fn lift_account_suspension(
        &self,
        _r: Request<relais_proto::oidc_front::v1::LiftAccountSuspensionRequest>,
    ) -> Result<Response<relais_proto::oidc_front::v1::AccountSuspension>, Status> {
        Err(Status::permission_denied("the gateway never asks this"))
    }

    async fn revoke(&self, r: Request<TokenRequest>) -> Result<Response<ApiResponse>, Status> {
        self.record(Call::Revoke(r.into_inner())).await;
        self.api()
    }

    async fn introspect(&self, r: Request<TokenRequest>) -> Result<Response<ApiResponse>, Status> {
        self.record(Call::Introspect(r.into_inner())).await;
        self.api()
    }
    async fn user_info(
        &self,
        r: Request<UserInfoRequest>,
    ) -> Result<Response<ApiResponse>, Status> {
        self.record(Call::UserInfo(r.into_inner())).await;
        self.api()
    }
    async fn end_session(
        &self,
        r: Request<EndSessionRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::EndSession(r.into_inner())).await;
        self.flow()
    }
    async fn confirm_end_session(
        &self,
        r: Request<ConfirmEndSessionRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::ConfirmEndSession(r.into_inner())).await;
        self.flow()
    }
    async fn logout_callback(
        &self,
        r: Request<LogoutCallbackRequest>,
    ) -> Result<Response<FlowResponse>, Status> {
        self.record(Call::LogoutCallback(r.into_inner())).await;
        self.flow()
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub fake: Fake,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A gateway in front of a fake oidc-front, with `edit` applied to its configuration.
pub async fn start(edit: impl FnOnce(&mut GatewayConfig)) -> Harness {
    let fake = Fake::default();
    let shutdown = CancellationToken::new();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let server = Server::builder()
        .add_service(OidcFrontServer::new(fake.clone()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            shutdown.clone().cancelled_owned(),
        );
    tokio::spawn(server);
    start_with(fake, client(&format!("http://{grpc_addr}")), shutdown, edit).await
}

/// A gateway whose oidc-front is not running.
pub async fn start_without_backend() -> Harness {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    start_with(
        Fake::default(),
        client(&format!("http://{addr}")),
        CancellationToken::new(),
        |_| {},
    )
    .await
}

async fn start_with(
    fake: Fake,
    front: OidcFrontClient<GrpcChannel>,
    shutdown: CancellationToken,
    edit: impl FnOnce(&mut GatewayConfig),
) -> Harness {
    let mut config = GatewayConfig {
        listen: "127.0.0.1:0".into(),
        allow_plain_http: true,
        ..GatewayConfig::default()
    };
    edit(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backends = Backends {
        oidc_front: front,
        // Nothing listens there: the support API answers 503.
        support: SupportClient::new(relais_runtime::grpc_channel("http://127.0.0.1:1").unwrap()),
        trace: relais_proto::trace::v1::trace_client::TraceClient::new(
            relais_runtime::grpc_channel("http://127.0.0.1:1").unwrap(),
        ),
    };
    let task = relais_gateway::start(config, listener, backends, shutdown.clone())
        .await
        .unwrap();
    Harness {
        addr,
        fake,
        shutdown,
        task: Some(task),
    }
}

fn client(url: &str) -> OidcFrontClient<GrpcChannel> {
    OidcFrontClient::new(relais_runtime::grpc_channel(url).unwrap())
}

/// An HTTP client that shows redirects instead of following them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as written (it should say `Connection: close`) and reads the answer.
pub async fn raw<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &str) -> RawResponse {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The headers every gateway response carries.
pub fn assert_security_headers(headers: &reqwest::header::HeaderMap) {
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers.contains_key("x-request-id"));
}

pub fn assert_no_store(headers: &reqwest::header::HeaderMap) {
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

pub fn redirect(url: &str) -> FlowResponse {
    FlowResponse {
        outcome: Some(flow_response::Outcome::Redirect(Redirect {
            url: url.into(),
        })),
        ..Default::default()
    }
}

pub fn params(pairs: &[(&str, &str)]) -> Vec<Param> {
    pairs
        .iter()
        .map(|(n, v)| Param {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}
