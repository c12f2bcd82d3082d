//! The router, and the small endpoints: discovery, JWKS, end_session, admin.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::identities::{Acr, SCOPES, all_claims};
use crate::scenario::Scenario;
use crate::state::{AppState, ScenarioSetting, lock, parse_params};
use crate::{authorize, html, token};

pub(crate) fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize::authorize))
        .route("/authorize/login", post(authorize::login))
        .route("/token", post(token::token))
        .route("/userinfo", get(token::userinfo).post(token::userinfo))
        .route("/end_session", get(end_session))
        .route("/admin/scenario", get(read_scenario).post(set_scenario))
        .with_state(app)
}

// Short cache lifetimes: the key changes at every start.
const CACHEABLE: &str = "public, max-age=60";

async fn discovery(State(app): State<Arc<AppState>>) -> Response {
    let body = json!({
        "issuer": app.issuer,
        "authorization_endpoint": app.endpoint("/authorize"),
        "token_endpoint": app.endpoint("/token"),
        "userinfo_endpoint": app.endpoint("/userinfo"),
        "jwks_uri": app.endpoint("/jwks"),
        "end_session_endpoint": app.endpoint("/end_session"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        // HS256 only under the `symmetric_signature` scenario: a relying party must not take
        // an algorithm because an IdP lists it.
        "id_token_signing_alg_values_supported": ["ES256", "HS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": claims_supported(),
        "acr_values_supported": Acr::ALL.map(Acr::as_str),
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    ([(CACHE_CONTROL, CACHEABLE)], Json(body)).into_response()
}

fn claims_supported() -> Vec<&'static str> {
    let mut claims = vec![
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "sid",
        "at_hash",
    ];
    claims.extend(all_claims());
    claims
}

async fn jwks(State(app): State<Arc<AppState>>) -> Response {
    (
        [(CACHE_CONTROL, CACHEABLE)],
        Json(app.keys().jwks().clone()),
    )
        .into_response()
}

/// RP-initiated logout: back to the client only if the hint is ours and the URI registered.
async fn end_session(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // Whatever the request, this browser's session here ends.
    if let Some(browser) = crate::state::cookie(&headers, crate::state::BROWSER_COOKIE) {
        crate::state::lock(&app.sessions).remove(&browser);
    }
    let signed_out = || {
        (
            StatusCode::OK,
            [(CACHE_CONTROL, "no-store")],
            Html(html::signed_out_page()),
        )
            .into_response()
    };
    let Ok(params) = parse_params(query.as_deref().unwrap_or("")) else {
        return signed_out();
    };
    let (Some(hint), Some(target)) = (
        params.get("id_token_hint"),
        params.get("post_logout_redirect_uri"),
    ) else {
        return signed_out();
    };
    let Some(claims) = app.keys().verify(hint) else {
        return signed_out();
    };
    if claims.get("iss").and_then(Value::as_str) != Some(app.issuer.as_str()) {
        return signed_out();
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if params
        .get("client_id")
        .is_some_and(|client_id| !audiences.contains(&client_id.as_str()))
    {
        return signed_out();
    }
    let registered = audiences
        .iter()
        .filter_map(|aud| app.client(aud))
        .any(|client| client.post_logout_redirect_uris.contains(target));
    if !registered {
        return signed_out();
    }
    let Ok(mut url) = Url::parse(target) else {
        return signed_out();
    };
    if let Some(state) = params.get("state") {
        url.query_pairs_mut().append_pair("state", state);
    }
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, url.as_str()), (CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

/// The admin endpoint answers only the machine itself.
pub(crate) fn admin_allowed(peer: SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioRequest {
    scenario: Scenario,
    delay_ms: Option<u64>,
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "error": "forbidden", "error_description": "loopback peers only" })),
    )
        .into_response()
}

async fn read_scenario(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !admin_allowed(peer) {
        return forbidden();
    }
    Json(app.setting()).into_response()
}

async fn set_scenario(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: String,
) -> Response {
    if !admin_allowed(peer) {
        return forbidden();
    }
    let request: ScenarioRequest = match serde_json::from_str(&body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "invalid_request", "error_description": e.to_string() })),
            )
                .into_response();
        }
    };
    let setting = {
        let mut setting = lock(&app.setting);
        setting.scenario = request.scenario;
        if let Some(delay_ms) = request.delay_ms {
            setting.delay_ms = delay_ms;
        }
        *setting
    };
    tracing::info!(
        scenario = setting.scenario.as_str(),
        delay_ms = setting.delay_ms,
        "scenario set"
    );
    Json::<ScenarioSetting>(setting).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn only_loopback_peers_may_administer() {
        for allowed in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(admin_allowed(allowed.parse().unwrap()), "{allowed}");
        }
        for refused in [
            "10.0.0.1:1",
            "192.168.1.2:1",
            "[2001:db8::1]:1",
            "[::ffff:10.0.0.1]:1",
        ] {
            assert!(!admin_allowed(refused.parse().unwrap()), "{refused}");
        }
    }
}
