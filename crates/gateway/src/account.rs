//! The hub's own account page: a person's connection history. The page is an SP of the
//! hub like any other (`gateway.account_client_id`): `GET /account` without a page
//! session starts an ordinary sign-in at `/authorize` (state, nonce, PKCE S256, sealed in
//! a short-lived cookie); `GET /account/callback` redeems the code at oidc-front over the
//! gateway's own link, checks the state and the ID token's nonce, and keeps the access
//! token sealed in the page's cookie. The cookie holds the token, not the account id: the
//! proof store checks the person's live token itself at each view, so this gateway can
//! show no one's history without that person's own sign-in, and a revoked or expired
//! token (a suspension, a sign-out) ends the page at once.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use relais_jose::Sealer;
use relais_proto::oidc_front::v1::{CookieUpdate, Param, TokenRequest};
use relais_proto::trace::v1::MyConnectionsRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::pages;
use crate::render;
use crate::request::{Meta, cookie, cookie_name, first, query_params};
use crate::routes::Shared;

/// The page's session: the sealed access token.
pub(crate) const PAGE_COOKIE: &str = "relais_account";
/// A sign-in of the page under way: its state, nonce and PKCE verifier, sealed.
pub(crate) const LOGIN_COOKIE: &str = "relais_account_login";
const PAGE_PURPOSE: &str = "relais account page";
const LOGIN_PURPOSE: &str = "relais account login";
/// A sign-in at the IdP fits in ten minutes.
const LOGIN_SECONDS: i64 = 600;
/// The page's session is short: at most this, never longer than its token.
const PAGE_SECONDS: i64 = 900;

pub(crate) struct Account {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    /// The hub's issuer (its public URL), which RFC 9207's `iss` must name.
    issuer: String,
    sealer: Sealer,
}

impl Account {
    /// `None` when no account page is configured (no client secret).
    pub(crate) fn new(config: &GatewayConfig) -> Option<Account> {
        if config.account_client_secret.is_empty() {
            return None;
        }
        let secrets: Vec<String> = if config.account_cookie_secrets.is_empty() {
            vec![URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())]
        } else {
            config
                .account_cookie_secrets
                .iter()
                .map(|s| s.expose().to_owned())
                .collect()
        };
        let sealer = match Sealer::new(&secrets) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "account page keys refused: no account page");
                return None;
            }
        };
        Some(Account {
            client_id: config.account_client_id.trim().to_owned(),
            client_secret: config.account_client_secret.expose().to_owned(),
            redirect_uri: format!(
                "{}/account/callback",
                config.public_url.trim_end_matches('/')
            ),
            issuer: config.public_url.trim_end_matches('/').to_owned(),
            sealer,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Login {
    state: String,
    nonce: String,
    verifier: String,
}

#[derive(Serialize, Deserialize)]
struct PageSession {
    access_token: String,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn refused(why: &'static str) -> GatewayError {
    GatewayError::AccountSignIn(why)
}

fn open<T: for<'de> Deserialize<'de>>(account: &Account, purpose: &str, value: &str) -> Option<T> {
    if value.is_empty() {
        return None;
    }
    let plain = account.sealer.open(purpose, value, now()).ok()?;
    serde_json::from_slice(&plain).ok()
}

fn set(
    response: &mut Response,
    name: &'static str,
    value: String,
    max_age: i64,
    https: bool,
) -> Result<(), GatewayError> {
    let update = CookieUpdate {
        remove: value.is_empty(),
        value,
        max_age_seconds: max_age,
    };
    let header = render::set_cookie(&cookie_name(name, https), &update, https)?;
    response.headers_mut().append(SET_COOKIE, header);
    Ok(())
}

fn see_other(location: &str) -> Result<Response, GatewayError> {
    let location = HeaderValue::try_from(location)
        .map_err(|_| GatewayError::BackendAnswer("a redirect that is not a header".into()))?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(LOCATION, location);
    render::no_store(&mut response);
    Ok(response)
}

/// An ordinary sign-in of the account page's SP at the hub's own `/authorize`.
fn start_sign_in(account: &Account, https: bool) -> Result<Response, GatewayError> {
    let login = Login {
        state: random(),
        nonce: random(),
        verifier: random(),
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(login.verifier.as_bytes()));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &account.client_id)
        .append_pair("redirect_uri", &account.redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let plain = serde_json::to_vec(&login)
        .map_err(|_| GatewayError::BackendAnswer("a sign-in that does not encode".into()))?;
    let sealed = account
        .sealer
        .seal(LOGIN_PURPOSE, &plain, now() + LOGIN_SECONDS)
        .map_err(|_| GatewayError::BackendAnswer("a sign-in that does not seal".into()))?;
    let mut response = see_other(&format!("/authorize?{query}"))?;
    set(&mut response, LOGIN_COOKIE, sealed, LOGIN_SECONDS, https)?;
    set(&mut response, PAGE_COOKIE, String::new(), 0, https)?;
    Ok(response)
}

/// `GET /account`: the history, or the sign-in that leads to it.
pub(crate) async fn page(State(s): State<Shared>, meta: Meta, headers: HeaderMap) -> Response {
    let result: Result<Response, GatewayError> = async {
        let account = s.account().ok_or(GatewayError::NotFound)?;
        let https = s.https();
        let session: Option<PageSession> = open(
            account,
            PAGE_PURPOSE,
            &cookie(&headers, &cookie_name(PAGE_COOKIE, https)),
        );
        let Some(session) = session else {
            return start_sign_in(account, https);
        };
        let request = MyConnectionsRequest {
            access_token: session.access_token,
        };
        let history = match s.trace().my_connections(s.grpc(request)).await {
            Ok(h) => h.into_inner(),
            // Expired, revoked (a sign-out, a suspension): sign in again.
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                return start_sign_in(account, https);
            }
            Err(status) => return Err(status.into()),
        };
        let mut response = render::html(StatusCode::OK, pages::account(meta.locale, &history));
        render::no_store(&mut response);
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| render::error_page(&meta, &e))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    id_token: String,
    #[serde(default)]
    expires_in: i64,
}

/// The ID token's `nonce`. Its signature is not checked here: it came straight from
/// oidc-front over the gateway's own authenticated link, not through the browser.
fn nonce_of(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    claims.get("nonce")?.as_str().map(str::to_owned)
}

/// `GET /account/callback`: the hub's answer to the page's own sign-in.
pub(crate) async fn callback(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result: Result<Response, GatewayError> = async {
        let account = s.account().ok_or(GatewayError::NotFound)?;
        let https = s.https();
        let params = query_params(&uri)?;
        let login: Login = open(
            account,
            LOGIN_PURPOSE,
            &cookie(&headers, &cookie_name(LOGIN_COOKIE, https)),
        )
        .ok_or(refused("no sign-in of the account page under way here"))?;
        if first(&params, "state") != login.state {
            return Err(refused("the state is not this sign-in's"));
        }
        let iss = first(&params, "iss");
        if !iss.is_empty() && iss.trim_end_matches('/') != account.issuer {
            return Err(refused("the answer is not this hub's"));
        }
        if !first(&params, "error").is_empty() {
            return Err(refused("the sign-in was not completed"));
        }
        let code = first(&params, "code");
        if code.is_empty() {
            return Err(refused("no code"));
        }
        let param = |name: &str, value: &str| Param {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let form = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let basic = STANDARD.encode(format!(
            "{}:{}",
            form(&account.client_id),
            form(&account.client_secret)
        ));
        let request = TokenRequest {
            params: vec![
                param("grant_type", "authorization_code"),
                param("code", &code),
                param("redirect_uri", &account.redirect_uri),
                param("code_verifier", &login.verifier),
            ],
            authorization: format!("Basic {basic}"),
            source: Some(meta.source.clone()),
        };
        let answer = s.front().token(s.grpc(request)).await?.into_inner();
        if answer.http_status != 200 {
            return Err(refused("the code was refused"));
        }
        let tokens: TokenAnswer =
            serde_json::from_str(&answer.body).map_err(|_| refused("the code was refused"))?;
        if nonce_of(&tokens.id_token).as_deref() != Some(login.nonce.as_str()) {
            return Err(refused("the ID token is not this sign-in's"));
        }
        let lifetime = match tokens.expires_in {
            n if n > 0 => n.min(PAGE_SECONDS),
            _ => PAGE_SECONDS,
        };
        let plain = serde_json::to_vec(&PageSession {
            access_token: tokens.access_token,
        })
        .map_err(|_| GatewayError::BackendAnswer("a session that does not encode".into()))?;
        let sealed = account
            .sealer
            .seal(PAGE_PURPOSE, &plain, now() + lifetime)
            .map_err(|_| GatewayError::BackendAnswer("a session that does not seal".into()))?;
        let mut response = see_other("/account")?;
        set(&mut response, PAGE_COOKIE, sealed, lifetime, https)?;
        set(&mut response, LOGIN_COOKIE, String::new(), 0, https)?;
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| render::error_page(&meta, &e))
}
