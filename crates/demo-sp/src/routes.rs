//! The pages: `/`, `/login`, `/callback`, `/logout`, `/logged-out`, and the per-browser state
//! they share, kept server side under an HttpOnly cookie.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreIdToken};
use openidconnect::{
    AccessTokenHash, AuthenticationContextClass, AuthorizationCode, CsrfToken, LoginHint,
    LogoutRequest, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, RequestTokenError, Scope, TokenResponse as _,
};
use rand::RngCore as _;
use serde_json::Value;

use crate::Error;
use crate::oidc::{ProviderCache, UserInfo, acr_satisfies, decode_jwt_parts, error_chain};
use crate::pages;

/// Followed by the client id: cookies ignore ports, and two demo SPs on one host (the demo
/// SP and the support console) would otherwise overwrite each other's session.
const SESSION_COOKIE: &str = "demo_sp_session";
/// A browser session unused for this long is forgotten.
const SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// A sign-in not completed within this time is forgotten.
const LOGIN_LIFETIME: Duration = Duration::from_secs(600);

pub(crate) struct AppState {
    pub http: reqwest::Client,
    pub provider: ProviderCache,
    pub scopes: Vec<String>,
    pub acr_values: Vec<String>,
    /// Set for the demo support console: the API its access token opens.
    pub support_api: Option<String>,
    pub post_logout_uri: String,
    pub sessions: Mutex<HashMap<String, BrowserSession>>,
    /// This SP's session cookie: [`SESSION_COOKIE`] and the client id.
    pub cookie_name: String,
    /// Logout tokens' `jti` already used, with when (back-channel logout).
    pub logout_jtis: Mutex<HashMap<String, Instant>>,
}

#[derive(Default)]
pub(crate) struct BrowserSession {
    last_seen: Option<Instant>,
    /// Sign-ins under way, by their `state`, so several tabs can sign in at once.
    pending: HashMap<String, PendingLogin>,
    signed_in: Option<SignedIn>,
    logout_state: Option<String>,
}

struct PendingLogin {
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    acr_asked: Vec<String>,
    started: Instant,
}

struct SignedIn {
    id_token: CoreIdToken,
    /// The provider's session and subject, as a back-channel logout names them.
    sid: Option<String>,
    sub: String,
    raw_id_token: String,
    header: String,
    payload: String,
    acr: Option<String>,
    acr_asked: Vec<String>,
    userinfo: Option<BTreeMap<String, Value>>,
    display_name: String,
    /// Kept only for the demo support console.
    access_token: Option<String>,
}

pub(crate) fn cookie_name(client_id: &str) -> String {
    format!("{SESSION_COOKIE}_{client_id}")
}

pub(crate) fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .route("/logged-out", get(logged_out))
        .route(
            "/backchannel-logout",
            post(crate::backchannel::backchannel_logout),
        )
        .with_state(app)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn session_id(headers: &HeaderMap, cookie: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie)
        .map(|(_, value)| value.to_owned())
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::error("internal_error", "adresse de redirection invalide"),
        ),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::warn!(code = self.code(), "sign-in failed");
        html(self.status(), pages::error(self.code(), &self.to_string()))
    }
}

impl AppState {
    /// Runs `f` on this browser's session, creating it if needed; forgets stale sessions.
    fn with_session<R>(&self, id: &str, f: impl FnOnce(&mut BrowserSession) -> R) -> R {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| {
            s.last_seen
                .is_some_and(|seen| now - seen < SESSION_LIFETIME)
        });
        let session = sessions.entry(id.to_owned()).or_default();
        session.last_seen = Some(now);
        session
            .pending
            .retain(|_, p| now - p.started < LOGIN_LIFETIME);
        f(session)
    }

    /// Signs out every browser whose sign-in `matches` (provider session, subject);
    /// returns how many.
    pub(crate) fn sign_out_where(&self, matches: impl Fn(Option<&str>, &str) -> bool) -> usize {
        let mut ended = 0;
        for session in lock(&self.sessions).values_mut() {
            if session
                .signed_in
                .as_ref()
                .is_some_and(|s| matches(s.sid.as_deref(), &s.sub))
            {
                session.signed_in = None;
                ended += 1;
            }
        }
        ended
    }

    /// Like [`AppState::with_session`], but only for a browser already known.
    fn with_existing<R>(
        &self,
        headers: &HeaderMap,
        f: impl FnOnce(&mut BrowserSession) -> R,
    ) -> Option<R> {
        let id = session_id(headers, &self.cookie_name)?;
        if !lock(&self.sessions).contains_key(&id) {
            return None;
        }
        Some(self.with_session(&id, f))
    }
}

async fn home(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let page = app
        .with_existing(&headers, |session| {
            session.signed_in.as_ref().map(|s| {
                pages::signed_in(&pages::SignedInView {
                    display_name: &s.display_name,
                    acr: s.acr.as_deref(),
                    acr_asked: &s.acr_asked,
                    userinfo: s.userinfo.as_ref(),
                    raw_id_token: &s.raw_id_token,
                    header: &s.header,
                    payload: &s.payload,
                    support: s.access_token.as_deref().zip(app.support_api.as_deref()),
                })
            })
        })
        .flatten();
    let page = page.unwrap_or_else(|| {
        pages::home(&pages::LoginDefaults {
            scopes: &app.scopes.join(" "),
            acr_values: &app.acr_values.join(" "),
        })
    });
    html(StatusCode::OK, page)
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

async fn login(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = query_params(query.as_deref());
    let field = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let scopes = field("scope").map_or_else(|| app.scopes.clone(), words);
    let acr_asked = field("acr_values").map_or_else(|| app.acr_values.clone(), words);

    let provider = match app.provider.get(&app.http).await {
        Ok(provider) => provider,
        Err(error) => return error.into_response(),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = provider
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            || CsrfToken::new_random_len(32),
            || Nonce::new_random_len(32),
        )
        .set_pkce_challenge(challenge);
    // The crate always asks openid itself.
    for scope in scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    for acr in &acr_asked {
        request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
    }
    if let Some(login_hint) = field("login_hint") {
        request = request.set_login_hint(LoginHint::new(login_hint.to_owned()));
    }
    if let Some(idp_hint) = field("idp_hint") {
        request = request.add_extra_param("idp_hint", idp_hint.to_owned());
    }
    let (url, state, nonce) = request.url();

    let existing = session_id(&headers, &app.cookie_name);
    let id = existing.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    });
    app.with_session(&id, |session| {
        session.pending.insert(
            state.secret().clone(),
            PendingLogin {
                nonce,
                verifier,
                acr_asked,
                started: Instant::now(),
            },
        );
    });
    let mut response = see_other(url.as_str());
    if existing.is_none() {
        let cookie = format!("{}={id}; Path=/; HttpOnly; SameSite=Lax", app.cookie_name);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(SET_COOKIE, value);
        }
    }
    response
}

async fn callback(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match complete_login(&app, &headers, query.as_deref()).await {
        Ok(()) => see_other("/"),
        Err(error) => error.into_response(),
    }
}

async fn complete_login(
    app: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), Error> {
    let params = query_params(query);
    let state = params.get("state").cloned().unwrap_or_default();
    let pending = app
        .with_existing(headers, |session| session.pending.remove(&state))
        .ok_or(Error::NoSession)?
        .ok_or(Error::StateMismatch)?;

    let provider = app.provider.get(&app.http).await?;
    // RFC 9207: the answer must come from the provider the request went to, errors included.
    match params.get("iss") {
        Some(iss) if *iss != provider.issuer => {
            return Err(Error::IssuerMismatch {
                expected: provider.issuer.clone(),
                got: iss.clone(),
            });
        }
        None if provider.sends_iss => return Err(Error::IssuerMissing),
        _ => {}
    }
    if let Some(error) = params.get("error") {
        return Err(Error::Provider {
            error: error.clone(),
            description: params.get("error_description").cloned(),
        });
    }
    let code = params.get("code").ok_or(Error::MissingCode)?;

    let tokens = provider
        .client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .map_err(|e| Error::TokenExchange(e.to_string()))?
        .set_pkce_verifier(pending.verifier)
        .request_async(&app.http)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(response) => Error::Provider {
                error: response.error().to_string(),
                description: response.error_description().cloned(),
            },
            other => Error::TokenExchange(error_chain(&other)),
        })?;

    let id_token = tokens
        .id_token()
        .ok_or_else(|| Error::IdToken("la réponse ne contient pas d'ID token".into()))?;
    let verifier = provider.client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &pending.nonce)
        .map_err(|e| Error::IdToken(error_chain(&e)))?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(|e| Error::IdToken(e.to_string()))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|e| Error::IdToken(e.to_string()))?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
            .map_err(|e| Error::IdToken(e.to_string()))?;
        if actual != *expected {
            return Err(Error::IdToken(
                "at_hash ne correspond pas au jeton d'accès".into(),
            ));
        }
    }
    let acr = claims.auth_context_ref().map(|acr| acr.to_string());
    if !acr_satisfies(&pending.acr_asked, acr.as_deref()) {
        return Err(Error::AcrTooLow {
            asked: pending.acr_asked.join(" "),
            got: acr.unwrap_or_else(|| "aucun".into()),
        });
    }

    let userinfo = match provider.client.user_info(
        tokens.access_token().clone(),
        Some(claims.subject().clone()),
    ) {
        Ok(request) => {
            let info: UserInfo = request
                .request_async(&app.http)
                .await
                .map_err(|e| Error::UserInfo(error_chain(&e)))?;
            Some(flatten_claims(&info))
        }
        Err(_) => None,
    };
    let display_name = display_name(userinfo.as_ref(), claims.subject().as_str());
    let raw_id_token = id_token.to_string();
    let (header, payload) = decode_jwt_parts(&raw_id_token);
    let sid = serde_json::from_str::<Value>(&payload)
        .ok()
        .and_then(|p| p.get("sid").and_then(Value::as_str).map(str::to_owned));
    let signed_in = SignedIn {
        id_token: id_token.clone(),
        sid,
        sub: claims.subject().as_str().to_owned(),
        raw_id_token,
        header,
        payload,
        acr,
        acr_asked: pending.acr_asked,
        userinfo,
        display_name,
        access_token: app
            .support_api
            .as_ref()
            .map(|_| tokens.access_token().secret().clone()),
    };
    app.with_existing(headers, |session| session.signed_in = Some(signed_in))
        .ok_or(Error::NoSession)
}

/// Userinfo as one flat map: the standard claims and the others, as the provider named them.
fn flatten_claims(info: &UserInfo) -> BTreeMap<String, Value> {
    match serde_json::to_value(info) {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

fn display_name(userinfo: Option<&BTreeMap<String, Value>>, sub: &str) -> String {
    let claim = |name: &str| {
        userinfo
            .and_then(|claims| claims.get(name))
            .and_then(Value::as_str)
    };
    let last = claim("usual_name").or_else(|| claim("family_name"));
    match (claim("given_name"), last) {
        (Some(given), Some(last)) => format!("{given} {last}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => sub.to_owned(),
    }
}

async fn logout(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(signed_in) = app
        .with_existing(&headers, |session| session.signed_in.take())
        .flatten()
    else {
        return see_other("/");
    };
    let provider = match app.provider.get(&app.http).await {
        Ok(provider) => provider,
        Err(error) => return error.into_response(),
    };
    let Some(end_session) = provider.end_session.clone() else {
        return html(
            StatusCode::OK,
            pages::logged_out(
                "Session locale fermée ; le fournisseur ne propose pas de déconnexion.",
            ),
        );
    };
    let post_logout = match PostLogoutRedirectUrl::new(app.post_logout_uri.clone()) {
        Ok(url) => url,
        Err(e) => return Error::Discovery(e.to_string()).into_response(),
    };
    let state = CsrfToken::new_random_len(32);
    let url = LogoutRequest::from(end_session)
        .set_id_token_hint(&signed_in.id_token)
        .set_post_logout_redirect_uri(post_logout)
        .set_state(state.clone())
        .http_get_url();
    app.with_existing(&headers, |session| {
        session.logout_state = Some(state.secret().clone());
    });
    see_other(url.as_str())
}

async fn logged_out(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = query_params(query.as_deref());
    let expected = app
        .with_existing(&headers, |session| session.logout_state.take())
        .flatten();
    match (expected, params.get("state")) {
        (Some(expected), Some(got)) if expected == *got => html(
            StatusCode::OK,
            pages::logged_out("Vous avez été déconnecté du service et du fournisseur d'identité."),
        ),
        _ => Error::LogoutStateMismatch.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn display_name_prefers_usual_name() {
        let mut claims = BTreeMap::new();
        claims.insert("given_name".to_owned(), Value::from("Jean"));
        claims.insert("family_name".to_owned(), Value::from("Martin"));
        assert_eq!(display_name(Some(&claims), "s"), "Jean Martin");
        claims.insert("usual_name".to_owned(), Value::from("Dupont"));
        assert_eq!(display_name(Some(&claims), "s"), "Jean Dupont");
        assert_eq!(display_name(None, "sub-1"), "sub-1");
    }
}
