//! `GET /authorize` (check the request, show the login page) and `POST /authorize/login`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use crate::html::{self, LoginView};
use crate::identities::{Acr, TEST_IDENTITIES, identity_by_email, identity_by_id};
use crate::keys::{random_token, sha256};
use crate::scenario::Scenario;
use crate::state::{
    AppState, BROWSER_COOKIE, CodeRecord, IdpSession, LOGIN_PAGE_LIFETIME, PendingLogin, cookie,
    lock, parse_params, unix_now,
};

/// A refusal shown in the browser, for when no redirect_uri can be trusted.
fn error_page(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store")],
        Html(html::error_page(error, description)),
    )
        .into_response()
}

/// Sends the browser back to a registered redirect_uri with `params` and `iss` (RFC 9207).
fn redirect_back(redirect_uri: &str, issuer: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "adresse de retour illisible",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        query.append_pair("iss", issuer);
    }
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, url.as_str()), (CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

fn redirect_error(
    redirect_uri: &str,
    issuer: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_back(redirect_uri, issuer, &params)
}

fn is_pkce_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub(crate) async fn authorize(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match parse_params(query.as_deref().unwrap_or("")) {
        Ok(params) => params,
        Err(reason) => return error_page(StatusCode::BAD_REQUEST, "invalid_request", &reason),
    };
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };

    // Until client and redirect_uri are known good, nothing may be sent back to the client.
    let Some(client_id) = get("client_id") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id manquant",
        );
    };
    let Some(client) = app.client(client_id) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            &format!("client_id inconnu : {client_id}"),
        );
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri manquant",
        );
    };
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "redirect_uri non enregistrée pour ce client (comparaison exacte) : {redirect_uri}"
            ),
        );
    }

    let state = get("state");
    let fail = |error: &str, description: &str| {
        redirect_error(redirect_uri, &app.issuer, state, error, description)
    };
    match get("response_type") {
        Some("code") => {}
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        None => return fail("invalid_request", "response_type is missing"),
    }
    let scopes: Vec<String> = get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|s| s == "openid") {
        return fail("invalid_scope", "scope must contain openid");
    }
    let Some(state) = state else {
        return fail("invalid_request", "state is missing");
    };
    let Some(nonce) = get("nonce") else {
        return fail("invalid_request", "nonce is missing");
    };
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (Some(challenge), Some("S256")) if challenge.len() == 43 && is_pkce_value(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), Some("S256")) => {
            return fail(
                "invalid_request",
                "code_challenge is not a BASE64URL SHA-256 value",
            );
        }
        (Some(_), None) | (None, Some(_)) | (Some(_), Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge needs code_challenge_method=S256, the only method supported",
            );
        }
    };
    let prompt = |value: &str| get("prompt").is_some_and(|p| p.split(' ').any(|p| p == value));
    // acr_values, or an essential acr in `claims`, lists what the client accepts; the
    // lowest known one is what it requires.
    let from_claims: Vec<String> = get("claims")
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|c| c.pointer("/id_token/acr/values").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let acr_asked = get("acr_values")
        .unwrap_or("")
        .split(' ')
        .map(str::to_owned)
        .chain(from_claims)
        .filter_map(|a| Acr::parse(&a))
        .min();
    let existing = cookie(&headers, BROWSER_COOKIE);
    // With sessions, a browser that signed in here is answered at once, whatever acr is
    // asked, unless prompt=login or max_age asks for a new authentication.
    let max_age = get("max_age").and_then(|m| m.parse::<i64>().ok());
    let session = existing
        .as_ref()
        .filter(|_| app.config.sessions && !prompt("login"))
        .and_then(|b| lock(&app.sessions).get(b).copied())
        .filter(|s| max_age.is_none_or(|m| unix_now() - s.auth_time <= m));
    if let Some(session) = session {
        let scenario = app.setting().scenario;
        let code = issue_code(
            &app,
            CodeRecord {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                identity: session.identity,
                scopes,
                nonce: nonce.to_owned(),
                acr_asked: None,
                code_challenge,
                auth_time: session.auth_time,
                sid: random_token(16),
                scenario,
                expires: Instant::now(),
                redeemed: None,
            },
        );
        tracing::info!(client_id, "answered from the session");
        return redirect_back(
            redirect_uri,
            &app.issuer,
            &[("code", &code), ("state", state)],
        );
    }
    if prompt("none") {
        return fail(
            "login_required",
            "prompt=none cannot be honoured: a login is needed",
        );
    }

    let login_hint = get("login_hint");
    let preselected = login_hint
        .and_then(identity_by_email)
        .or_else(|| {
            TEST_IDENTITIES
                .iter()
                .find(|identity| acr_asked.is_none_or(|asked| identity.acr >= asked))
        })
        .unwrap_or(&TEST_IDENTITIES[0]);

    let browser = existing.clone().unwrap_or_else(|| random_token(32));
    let request_id = random_token(32);
    app.purge();
    lock(&app.pending).insert(
        request_id.clone(),
        PendingLogin {
            browser: browser.clone(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            scopes,
            acr_asked,
            code_challenge,
            expires: Instant::now() + LOGIN_PAGE_LIFETIME,
        },
    );
    tracing::info!(client_id, sp_id = get("sp_id"), "login page shown");

    let page = html::login_page(&LoginView {
        request_id: &request_id,
        sp_name: get("sp_name").unwrap_or(client_id),
        acr_asked,
        preselected,
        scenario: app.setting().scenario,
    });
    let mut response = (StatusCode::OK, [(CACHE_CONTROL, "no-store")], Html(page)).into_response();
    if existing.is_none() {
        let set_cookie = format!("{BROWSER_COOKIE}={browser}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(value) = set_cookie.parse() {
            response.headers_mut().insert(SET_COOKIE, value);
        }
    }
    response
}

pub(crate) async fn login(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(reason) => return error_page(StatusCode::BAD_REQUEST, "invalid_request", &reason),
    };
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let scenario = match get("scenario") {
        "" => app.setting().scenario,
        name => match name.parse::<Scenario>() {
            Ok(scenario) => scenario,
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "scénario inconnu",
                );
            }
        },
    };
    let cancelled = get("action") == "cancel";
    let identity = identity_by_id(get("identity"));
    if identity.is_none() && !cancelled {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "choisissez une identité",
        );
    }

    let browser = cookie(&headers, BROWSER_COOKIE);
    let pending = {
        let mut pending = lock(&app.pending);
        // Only the browser that opened the form may submit it.
        match pending.get(get("request_id")) {
            Some(p) if Some(&p.browser) == browser.as_ref() => pending.remove(get("request_id")),
            _ => None,
        }
    };
    let Some(pending) = pending.filter(|p| p.expires > Instant::now()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "cette page de connexion a expiré ou a été ouverte dans un autre navigateur",
        );
    };
    let back_error = |description: &str| {
        redirect_error(
            &pending.redirect_uri,
            &app.issuer,
            Some(&pending.state),
            "access_denied",
            description,
        )
    };
    let identity = match identity {
        Some(identity) if !cancelled => identity,
        _ => return back_error("the user cancelled the login"),
    };
    if scenario == Scenario::ErrorResponse {
        return back_error(
            "the identity provider refused the login (demo scenario error_response)",
        );
    }

    let auth_time = unix_now();
    if app.config.sessions {
        lock(&app.sessions).insert(
            pending.browser.clone(),
            IdpSession {
                identity,
                auth_time,
            },
        );
    }
    let code = issue_code(
        &app,
        CodeRecord {
            client_id: pending.client_id,
            redirect_uri: pending.redirect_uri.clone(),
            identity,
            scopes: pending.scopes,
            nonce: pending.nonce,
            acr_asked: pending.acr_asked,
            code_challenge: pending.code_challenge,
            auth_time,
            sid: random_token(16),
            scenario,
            expires: Instant::now(),
            redeemed: None,
        },
    );
    tracing::info!(scenario = scenario.as_str(), "code issued");
    redirect_back(
        &pending.redirect_uri,
        &app.issuer,
        &[("code", &code), ("state", &pending.state)],
    )
}

/// Stores a code for `record` (its lifetime counted from now) and returns the code.
fn issue_code(app: &AppState, mut record: CodeRecord) -> String {
    let code = random_token(32);
    record.expires = Instant::now() + Duration::from_secs(app.config.code_lifetime_secs);
    lock(&app.codes).insert(sha256(&code), record);
    code
}
