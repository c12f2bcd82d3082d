//! Routes, the middleware every request goes through, and the mapping of each route to
//! its oidc-front call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::oidc_front::v1::{
    AuthorizeRequest, ChooseIdpRequest, ConfirmEndSessionRequest, Empty, EndSessionRequest,
    IdpCallbackRequest, LogoutCallbackRequest, Param, ShowChooserRequest, TokenRequest,
    UserInfoRequest,
};
use relais_proto::support::v1::support_client::SupportClient;
use relais_proto::trace::v1::GetCheckpointRequest;
use relais_proto::trace::v1::trace_client::TraceClient;
use relais_runtime::GrpcChannel as Channel;

use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::forwarded::Forwarding;
use crate::render;
use crate::request::{
    FLOW_COOKIE, Meta, SESSION_COOKIE, authorization, cookie, cookie_name, first, form_params,
    query_params,
};
use crate::{investigate_api, support_api};

/// No `form-action`: Chrome applies it to the redirect that follows the chooser's POST,
/// which goes to an IdP on another origin.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";
const HSTS: &str = "max-age=63072000";
const STYLESHEET: &str = include_str!("../static/relais.css");

/// Routes answered in JSON (for SP back ends), as opposed to pages for browsers.
fn is_api(path: &str) -> bool {
    matches!(
        path,
        "/token"
            | "/userinfo"
            | "/jwks"
            | "/.well-known/openid-configuration"
            | "/.well-known/relais-checkpoint"
    ) || path.starts_with("/api/")
}

/// The gRPC services the gateway maps HTTP to.
pub struct Backends {
    pub oidc_front: OidcFrontClient<Channel>,
    pub support: SupportClient<Channel>,
    /// The proof store, whose latest signed checkpoint the gateway publishes.
    pub trace: TraceClient<Channel>,
}

pub(crate) struct AppState {
    front: OidcFrontClient<Channel>,
    support: SupportClient<Channel>,
    trace: TraceClient<Channel>,
    max_body_bytes: usize,
    timeout: Duration,
    https: bool,
    forwarding: Forwarding,
    account: Option<crate::account::Account>,
}

pub(crate) type Shared = Arc<AppState>;

impl AppState {
    pub(crate) fn new(config: &GatewayConfig, backends: Backends) -> Self {
        AppState {
            front: backends.oidc_front,
            support: backends.support,
            trace: backends.trace,
            max_body_bytes: config.max_body_bytes,
            timeout: config.request_timeout(),
            https: config.is_https(),
            forwarding: Forwarding::new(&config.trusted_proxies, config.forwarded_header),
            account: crate::account::Account::new(config),
        }
    }

    /// A gRPC request carrying the gateway's deadline, so oidc-front stops work nobody
    /// waits for any more.
    pub(crate) fn grpc<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    pub(crate) fn front(&self) -> OidcFrontClient<Channel> {
        self.front.clone()
    }

    /// The account page, when configured.
    pub(crate) fn account(&self) -> Option<&crate::account::Account> {
        self.account.as_ref()
    }

    pub(crate) fn https(&self) -> bool {
        self.https
    }

    pub(crate) fn support(&self) -> SupportClient<Channel> {
        self.support.clone()
    }

    pub(crate) fn trace(&self) -> TraceClient<Channel> {
        self.trace.clone()
    }

    async fn authorize(
        &self,
        params: Vec<Param>,
        headers: &HeaderMap,
        meta: &Meta,
    ) -> Result<Response, GatewayError> {
        let request = AuthorizeRequest {
            params,
            source: Some(meta.source.clone()),
            session: cookie(headers, &cookie_name(SESSION_COOKIE, self.https)),
        };
        let answer = self.front().authorize(self.grpc(request)).await?;
        render::flow(answer.into_inner(), meta, self.https)
    }

    async fn user_info(
        &self,
        params: Vec<Param>,
        params_in_query: bool,
        headers: &HeaderMap,
        meta: &Meta,
    ) -> Result<Response, GatewayError> {
        let request = UserInfoRequest {
            authorization: authorization(headers),
            params,
            source: Some(meta.source.clone()),
            params_in_query,
        };
        let answer = self.front().user_info(self.grpc(request)).await?;
        render::api(answer.into_inner())
    }
}

pub(crate) fn router(state: Shared) -> Router {
    let (support, openapi) = support_api::router();
    let openapi = Arc::new(openapi);
    let support = support
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { support_api::document(&openapi) }
            }),
        )
        .fallback(support_api::not_found)
        // JSON bodies within the limit of every other route (axum's own is 2 MiB); the
        // mail intake reads its raw body with a bound of its own.
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    let (investigations, openapi) = investigate_api::router();
    let openapi = Arc::new(openapi);
    let investigations = investigations
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { support_api::document(&openapi) }
            }),
        )
        .fallback(investigate_api::not_found);
    Router::new()
        .nest(support_api::BASE, support)
        .nest(investigate_api::BASE, investigations)
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/.well-known/relais-checkpoint", get(checkpoint))
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/chooser", get(show_chooser).post(choose_idp))
        .route("/idp/callback", get(idp_callback))
        .route("/token", post(token))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
        .route("/userinfo", get(userinfo_get).post(userinfo_post))
        .route("/end_session", get(end_session))
        .route("/end_session/confirm", post(confirm_end_session))
        .route("/idp/logout-callback", get(logout_callback))
        .route("/account", get(crate::account::page))
        .route("/account/callback", get(crate::account::callback))
        .route("/healthz", get(healthz))
        .route("/static/relais.css", get(stylesheet))
        .route("/docs/errors", get(error_docs))
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), deadline))
        .layer(from_fn_with_state(state.clone(), request_meta))
        .layer(from_fn_with_state(state.clone(), security_headers))
        .with_state(state)
}

async fn security_headers(State(s): State<Shared>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if s.https {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

async fn request_meta(State(s): State<Shared>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let meta = Meta::new(request.headers(), peer, &s.forwarding);
    let id = HeaderValue::try_from(meta.request_id.as_str());
    request.extensions_mut().insert(meta);
    let mut response = next.run(request).await;
    if let Ok(id) = id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

async fn deadline(State(s): State<Shared>, meta: Meta, request: Request, next: Next) -> Response {
    let api = is_api(request.uri().path());
    match tokio::time::timeout(s.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if api => render::error_json(&meta, &GatewayError::Timeout),
        Err(_) => render::error_page(&meta, &GatewayError::Timeout),
    }
}

fn page(meta: &Meta, result: Result<Response, GatewayError>) -> Response {
    result.unwrap_or_else(|e| render::error_page(meta, &e))
}

fn json(meta: &Meta, result: Result<Response, GatewayError>) -> Response {
    result.unwrap_or_else(|e| render::error_json(meta, &e))
}

async fn discovery(State(s): State<Shared>, meta: Meta) -> Response {
    let result = s.front().discovery(s.grpc(Empty {})).await;
    json(
        &meta,
        result
            .map(|doc| render::public_json(doc.into_inner()))
            .map_err(GatewayError::from),
    )
}

async fn jwks(State(s): State<Shared>, meta: Meta) -> Response {
    let result = s.front().jwks(s.grpc(Empty {})).await;
    json(
        &meta,
        result
            .map(|doc| render::public_json(doc.into_inner()))
            .map_err(GatewayError::from),
    )
}

/// The proof store's latest signed checkpoint (C2SP signed note), as published like the
/// JWKS: anyone holding the log's public key can check it and keep it.
async fn checkpoint(State(s): State<Shared>, meta: Meta) -> Response {
    let result = s
        .trace
        .clone()
        .get_checkpoint(s.grpc(GetCheckpointRequest {}))
        .await;
    json(
        &meta,
        result
            .map(|c| {
                (
                    StatusCode::OK,
                    [
                        (CONTENT_TYPE, "text/plain; charset=utf-8"),
                        // A new one is signed at the log's interval: always revalidated.
                        (CACHE_CONTROL, "no-cache"),
                    ],
                    c.into_inner().note,
                )
                    .into_response()
            })
            .map_err(GatewayError::from),
    )
}

async fn authorize_get(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = match query_params(&uri) {
        Ok(params) => s.authorize(params, &headers, &meta).await,
        Err(e) => Err(e),
    };
    page(&meta, result)
}

async fn authorize_post(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match form_params(&headers, body, s.max_body_bytes).await {
        Ok(params) => s.authorize(params, &headers, &meta).await,
        Err(e) => Err(e),
    };
    page(&meta, result)
}

async fn choose_idp(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let params = form_params(&headers, body, s.max_body_bytes).await?;
        let request = ChooseIdpRequest {
            flow: cookie(&headers, &cookie_name(FLOW_COOKIE, s.https)),
            csrf: first(&params, "csrf"),
            idp_id: first(&params, "idp"),
            source: Some(meta.source.clone()),
        };
        let answer = s.front().choose_idp(s.grpc(request)).await?;
        render::flow(answer.into_inner(), &meta, s.https)
    }
    .await;
    page(&meta, result)
}

async fn show_chooser(State(s): State<Shared>, meta: Meta, headers: HeaderMap) -> Response {
    let result: Result<Response, GatewayError> = async {
        let request = ShowChooserRequest {
            flow: cookie(&headers, &cookie_name(FLOW_COOKIE, s.https)),
            source: Some(meta.source.clone()),
        };
        let answer = s.front().show_chooser(s.grpc(request)).await?;
        render::flow(answer.into_inner(), &meta, s.https)
    }
    .await;
    page(&meta, result)
}

async fn idp_callback(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let request = IdpCallbackRequest {
            flow: cookie(&headers, &cookie_name(FLOW_COOKIE, s.https)),
            params: query_params(&uri)?,
            source: Some(meta.source.clone()),
        };
        let answer = s.front().idp_callback(s.grpc(request)).await?;
        render::flow(answer.into_inner(), &meta, s.https)
    }
    .await;
    page(&meta, result)
}

async fn token(State(s): State<Shared>, meta: Meta, headers: HeaderMap, body: Body) -> Response {
    client_call(s, meta, headers, body, Backchannel::Token).await
}

async fn revoke(State(s): State<Shared>, meta: Meta, headers: HeaderMap, body: Body) -> Response {
    client_call(s, meta, headers, body, Backchannel::Revoke).await
}

async fn introspect(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    client_call(s, meta, headers, body, Backchannel::Introspect).await
}

/// The authenticated client endpoints: the same form and header, another call.
enum Backchannel {
    Token,
    Revoke,
    Introspect,
}

async fn client_call(
    s: Shared,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
    call: Backchannel,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let request = s.grpc(TokenRequest {
            params: form_params(&headers, body, s.max_body_bytes).await?,
            authorization: authorization(&headers),
            source: Some(meta.source.clone()),
        });
        let mut front = s.front();
        let answer = match call {
            Backchannel::Token => front.token(request).await?,
            Backchannel::Revoke => front.revoke(request).await?,
            Backchannel::Introspect => front.introspect(request).await?,
        };
        render::api(answer.into_inner())
    }
    .await;
    json(&meta, result)
}

async fn userinfo_get(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = match query_params(&uri) {
        Ok(params) => s.user_info(params, true, &headers, &meta).await,
        Err(e) => Err(e),
    };
    json(&meta, result)
}

async fn userinfo_post(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match form_params(&headers, body, s.max_body_bytes).await {
        Ok(params) => s.user_info(params, false, &headers, &meta).await,
        Err(e) => Err(e),
    };
    json(&meta, result)
}

async fn end_session(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let request = EndSessionRequest {
            params: query_params(&uri)?,
            session: cookie(&headers, &cookie_name(SESSION_COOKIE, s.https)),
            source: Some(meta.source.clone()),
        };
        let answer = s.front().end_session(s.grpc(request)).await?;
        render::flow(answer.into_inner(), &meta, s.https)
    }
    .await;
    page(&meta, result)
}

/// The logout confirmation page's form: its token and the person's answer.
async fn confirm_end_session(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let params = form_params(&headers, body, s.max_body_bytes).await?;
        let request = ConfirmEndSessionRequest {
            token: first(&params, "token"),
            session: cookie(&headers, &cookie_name(SESSION_COOKIE, s.https)),
            source: Some(meta.source.clone()),
            stay: first(&params, "answer") == "stay",
        };
        let answer = s.front().confirm_end_session(s.grpc(request)).await?;
        render::flow(answer.into_inner(), &meta, s.https)
    }
    .await;
    page(&meta, result)
}

async fn logout_callback(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let request = LogoutCallbackRequest {
            params: query_params(&uri)?,
            session: cookie(&headers, &cookie_name(SESSION_COOKIE, s.https)),
            source: Some(meta.source.clone()),
        };
        let answer = s.front().logout_callback(s.grpc(request)).await?;
        render::flow(answer.into_inner(), &meta, s.https)
    }
    .await;
    page(&meta, result)
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        "ok",
    )
        .into_response()
}

/// docs/errors.md, built into the binary so the pages' links always match the codes.
const ERROR_DOCS: &str = include_str!("../../../docs/errors.md");

async fn error_docs() -> Response {
    match crate::pages::error_docs(ERROR_DOCS) {
        Ok(html) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (CACHE_CONTROL, "public, max-age=3600"),
            ],
            html,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn not_found(meta: Meta) -> Response {
    render::error_page(&meta, &GatewayError::NotFound)
}
