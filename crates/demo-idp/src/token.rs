//! `POST /token` and `/userinfo`, and the making of ID tokens (where most scenarios act).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::Error;
use crate::config::ClientConfig;
use crate::identities::Acr;
use crate::keys::{at_hash, random_token, s256_challenge, sha256};
use crate::scenario::Scenario;
use crate::state::{AppState, CodeRecord, TokenRecord, form_decode, lock, parse_params, unix_now};

/// An error answer of RFC 6749 §5.2.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (
            self.status,
            [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
            Json(body),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"demo-idp\""),
            );
        }
        response
    }
}

fn no_store(body: Value) -> Response {
    (
        StatusCode::OK,
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response()
}

/// Authenticates by client_secret_basic or client_secret_post, never both at once.
fn authenticate<'a>(
    app: &'a AppState,
    headers: &HeaderMap,
    params: &std::collections::HashMap<String, String>,
) -> Result<&'a ClientConfig, OAuthError> {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, credentials) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| credentials.trim())
        });
    // Candidate secrets: RFC 6749 §2.3.1 form-encodes Basic credentials, many clients do not.
    let (client_id, secrets) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both",
            ));
        }
        (Some(credentials), None) => {
            let decoded = STANDARD
                .decode(credentials)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (raw_id, raw_secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let id = form_decode(raw_id).unwrap_or_else(|| raw_id.to_owned());
            if params
                .get("client_id")
                .is_some_and(|body_id| *body_id != id)
            {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            let mut secrets = vec![raw_secret.to_owned()];
            secrets.extend(form_decode(raw_secret));
            (id, secrets)
        }
        (None, Some(secret)) => {
            let id = params
                .get("client_id")
                .ok_or_else(|| OAuthError::invalid_client("client_id is missing"))?;
            (id.clone(), vec![secret.clone()])
        }
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required (client_secret_basic or client_secret_post)",
            ));
        }
    };
    let client = app
        .client(&client_id)
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    let expected = client.client_secret.expose().as_bytes();
    let matches = secrets.iter().fold(false, |found, secret| {
        found | bool::from(expected.ct_eq(secret.as_bytes()))
    });
    if matches {
        Ok(client)
    } else {
        Err(OAuthError::invalid_client("client authentication failed"))
    }
}

pub(crate) async fn token(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    match exchange(&app, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn exchange(app: &AppState, headers: &HeaderMap, body: &str) -> Result<Response, OAuthError> {
    let params = parse_params(body).map_err(OAuthError::invalid_request)?;
    let client = authenticate(app, headers, &params)?;
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only authorization_code is supported",
            ));
        }
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
    }
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is missing"))?;

    let access_token = random_token(32);
    let token_hash = sha256(&access_token);
    let record = {
        let mut codes = lock(&app.codes);
        let Some(record) = codes.get_mut(&sha256(code)) else {
            return Err(OAuthError::invalid_grant("unknown or expired code"));
        };
        if let Some(issued) = record.redeemed {
            // RFC 6749 §4.1.2: a replayed code revokes what it gave.
            lock(&app.tokens).remove(&issued);
            return Err(OAuthError::invalid_grant("code already used"));
        }
        if record.expires <= Instant::now() {
            return Err(OAuthError::invalid_grant("code expired"));
        }
        if record.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "code was issued to another client",
            ));
        }
        if record.redirect_uri != *redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        match (&record.code_challenge, params.get("code_verifier")) {
            (None, None) => {}
            (Some(challenge), Some(verifier)) => {
                let well_formed = (43..=128).contains(&verifier.len())
                    && verifier.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
                    });
                if !well_formed || s256_challenge(verifier) != *challenge {
                    return Err(OAuthError::invalid_grant("PKCE verification failed"));
                }
            }
            (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier sent but no code_challenge was",
                ));
            }
        }
        record.redeemed = Some(token_hash);
        record.clone()
    };

    match record.scenario {
        Scenario::TokenError => {
            return Ok((
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CACHE_CONTROL, "no-store")],
                Json(json!({
                    "error": "server_error",
                    "error_description": "the token endpoint failed (demo scenario token_error)"
                })),
            )
                .into_response());
        }
        Scenario::Delay => {
            let delay = app.setting().delay_ms;
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        _ => {}
    }

    let lifetime = app.config.access_token_lifetime_secs;
    lock(&app.tokens).insert(
        token_hash,
        TokenRecord {
            identity: record.identity,
            scopes: record.scopes.clone(),
            scenario: record.scenario,
            expires: Instant::now() + Duration::from_secs(lifetime),
        },
    );
    let id_token = id_token(app, &record, &access_token).map_err(|e| {
        tracing::error!(error = %e, "cannot sign the ID token");
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "cannot sign the ID token",
        )
    })?;
    Ok(no_store(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "id_token": id_token,
        "scope": record.scopes.join(" "),
    })))
}

/// The acr given for a login: the identity's level, or one below what was asked under `lower_acr`.
fn acr_given(record: &CodeRecord) -> Option<Acr> {
    if record.scenario == Scenario::LowerAcr {
        record.acr_asked.unwrap_or(record.identity.acr).lower()
    } else {
        Some(record.identity.acr)
    }
}

fn id_token(app: &AppState, record: &CodeRecord, access_token: &str) -> Result<String, Error> {
    let now = unix_now();
    let lifetime = i64::try_from(app.config.id_token_lifetime_secs).unwrap_or(i64::MAX);
    let scenario = record.scenario;
    let mut claims: Map<String, Value> = record
        .identity
        .claims_for_scopes(record.scopes.iter().map(String::as_str));
    if scenario == Scenario::MissingClaim {
        claims.remove("email");
    }
    if scenario == Scenario::InvalidClaim && claims.contains_key("email") {
        claims.insert("email".into(), "not-an-email".into());
    }
    let issuer = if scenario == Scenario::WrongIssuer {
        format!("{}/not-the-issuer", app.issuer)
    } else {
        app.issuer.clone()
    };
    let audience = if scenario == Scenario::WrongAudience {
        format!("{}-other", record.client_id)
    } else {
        record.client_id.clone()
    };
    // Expired well beyond the usual clock-skew allowances.
    let (iat, exp) = if scenario == Scenario::ExpiredIdToken {
        (now - lifetime - 600, now - 600)
    } else {
        (now, now.saturating_add(lifetime))
    };
    let nonce = if scenario == Scenario::WrongNonce {
        format!("wrong-{}", random_token(16))
    } else {
        record.nonce.clone()
    };
    claims.insert("iss".into(), issuer.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), exp.into());
    claims.insert("auth_time".into(), record.auth_time.into());
    claims.insert("nonce".into(), nonce.into());
    claims.insert("sid".into(), record.sid.clone().into());
    let hashed = if scenario == Scenario::BadAtHash {
        format!("{access_token}-other")
    } else {
        access_token.to_string()
    };
    // at_hash is optional in the code flow: without it, nothing else needs the IdP's key.
    if scenario != Scenario::SymmetricSignature {
        claims.insert("at_hash".into(), at_hash(&hashed).into());
    }
    let acr = acr_given(record);
    if let Some(acr) = acr {
        claims.insert("acr".into(), acr.as_str().into());
    }
    let amr = acr.unwrap_or(Acr::Eidas1).amr();
    claims.insert("amr".into(), json!(amr));
    if scenario == Scenario::SymmetricSignature {
        let secret = app
            .client(&record.client_id)
            .map(|c| c.client_secret.expose().as_bytes().to_vec())
            .unwrap_or_default();
        return app.keys().sign_with_secret(claims, &secret);
    }
    app.keys().sign(claims, scenario == Scenario::BadSignature)
}

pub(crate) async fn userinfo(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = token else {
        return bearer_error(None);
    };
    let claims = {
        let tokens = lock(&app.tokens);
        match tokens.get(&sha256(token)) {
            Some(record) if record.expires > Instant::now() => {
                let mut claims = record
                    .identity
                    .claims_for_scopes(record.scopes.iter().map(String::as_str));
                match record.scenario {
                    Scenario::MissingClaim => {
                        claims.remove("email");
                    }
                    Scenario::InvalidClaim if claims.contains_key("email") => {
                        claims.insert("email".into(), "not-an-email".into());
                    }
                    Scenario::UserinfoSubMismatch => {
                        claims.insert(
                            "sub".into(),
                            format!("{}-other", record.identity.sub).into(),
                        );
                    }
                    _ => {}
                }
                claims
            }
            _ => return bearer_error(Some("the access token is unknown or expired")),
        }
    };
    no_store(Value::Object(claims))
}

/// RFC 6750 §3: 401 with a `WWW-Authenticate: Bearer` challenge.
fn bearer_error(description: Option<&str>) -> Response {
    let challenge = match description {
        Some(description) => format!(
            "Bearer realm=\"demo-idp\", error=\"invalid_token\", error_description=\"{description}\""
        ),
        None => "Bearer realm=\"demo-idp\"".to_owned(),
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(CACHE_CONTROL, "no-store")],
        Json(json!({
            "error": "invalid_token",
            "error_description": description.unwrap_or("a Bearer access token is required"),
        })),
    )
        .into_response();
    if let Ok(value) = challenge.parse() {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}
