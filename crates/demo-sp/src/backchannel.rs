//! `/backchannel-logout`: the provider's server tells this SP that a session ended
//! (OpenID Connect Back-Channel Logout 1.0). The logout token is checked as §2.6 says —
//! signature by the provider's published keys, issuer, audience, expiry, the logout
//! event, a subject or session, no nonce, a `jti` not seen before — then every browser
//! session signed in under that provider session is signed out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::routes::AppState;

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Tokens older than this are refused whatever their `exp` (and their jti forgotten).
const MAX_AGE: Duration = Duration::from_secs(300);

/// Who a valid logout token signs out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LoggedOut {
    pub sid: Option<String>,
    pub sub: Option<String>,
}

/// The claims checks of §2.6 that do not need the keys.
pub(crate) fn check_claims(claims: &Value) -> Result<LoggedOut, String> {
    if claims.get("nonce").is_some() {
        return Err("a logout token must not carry a nonce".into());
    }
    if !claims
        .get("events")
        .and_then(|e| e.get(LOGOUT_EVENT))
        .is_some_and(Value::is_object)
    {
        return Err("the back-channel logout event is missing".into());
    }
    if !claims.get("jti").is_some_and(Value::is_string) {
        return Err("jti is missing".into());
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let out = LoggedOut {
        sid: text("sid"),
        sub: text("sub"),
    };
    if out.sid.is_none() && out.sub.is_none() {
        return Err("neither sub nor sid".into());
    }
    Ok(out)
}

fn refused(description: String) -> Response {
    tracing::info!(%description, "logout token refused");
    (
        StatusCode::BAD_REQUEST,
        [(CACHE_CONTROL, "no-store")],
        Json(json!({ "error": "invalid_request", "error_description": description })),
    )
        .into_response()
}

pub(crate) async fn backchannel_logout(
    State(app): State<Arc<AppState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(token) = form.get("logout_token") else {
        return refused("logout_token is missing".into());
    };
    let claims = match verify(&app, token).await {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let who = match check_claims(&claims) {
        Ok(w) => w,
        Err(e) => return refused(e),
    };
    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    if !app.first_use_of(&jti) {
        return refused("this logout token was already used".into());
    }
    let ended = app.sign_out_where(|sid, sub| match &who.sid {
        Some(s) => sid == Some(s.as_str()),
        None => who.sub.as_deref() == Some(sub),
    });
    tracing::info!(ended, "signed out by the provider's back channel");
    (StatusCode::OK, [(CACHE_CONTROL, "no-store")]).into_response()
}

/// The signature by one of the provider's published keys, its issuer, this SP as
/// audience, `exp` and `iat`.
async fn verify(app: &AppState, token: &str) -> Result<Value, String> {
    let provider = app
        .provider
        .get(&app.http)
        .await
        .map_err(|e| format!("provider unavailable: {e}"))?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWS: {e}"))?;
    if header.typ.as_deref().is_some_and(|t| t != "logout+jwt") {
        return Err(format!("typ {:?} is not a logout token's", header.typ));
    }
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(&provider.jwks_uri)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("provider keys unavailable: {e}"))?
        .json()
        .await
        .map_err(|e| format!("provider keys unreadable: {e}"))?;
    let kid = header.kid.as_deref().ok_or("no kid")?;
    let jwk = jwks.find(kid).ok_or("unknown kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[app.provider.client_id()]);
    validation.set_issuer(&[provider.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| format!("logout token refused: {e}"))?
        .claims;
    let iat = claims["iat"].as_u64().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.saturating_sub(iat) > MAX_AGE.as_secs() {
        return Err("issued too long ago".into());
    }
    Ok(claims)
}

impl AppState {
    /// True the first time `jti` is seen within [`MAX_AGE`].
    fn first_use_of(&self, jti: &str) -> bool {
        let mut seen = crate::routes::lock(&self.logout_jtis);
        seen.retain(|_, at: &mut Instant| at.elapsed() < MAX_AGE);
        seen.insert(jti.to_owned(), Instant::now()).is_none()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn token(extra: Value) -> Value {
        let mut c = json!({
            "iss": "https://hub", "aud": "sp", "iat": 1, "exp": 2, "jti": "j",
            "sub": "s", "sid": "session-1",
            "events": { LOGOUT_EVENT: {} },
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn a_logout_token_names_who_and_passes_for_nothing_else() {
        assert_eq!(
            check_claims(&token(json!({}))).unwrap(),
            LoggedOut {
                sid: Some("session-1".into()),
                sub: Some("s".into())
            }
        );
        // An ID token replayed as a logout token: it has a nonce and no event.
        assert!(check_claims(&token(json!({ "nonce": "n" }))).is_err());
        assert!(check_claims(&token(json!({ "events": null }))).is_err());
        assert!(check_claims(&token(json!({ "events": { "other": {} } }))).is_err());
        assert!(check_claims(&token(json!({ "jti": null }))).is_err());
        assert!(check_claims(&token(json!({ "sub": null, "sid": null }))).is_err());
        assert!(check_claims(&token(json!({ "sub": null }))).is_ok());
    }
}
