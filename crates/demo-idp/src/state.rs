//! The IdP's memory: pending logins, codes and tokens, and the scenario in force.
//! Codes and tokens are kept under their SHA-256 only, so a memory dump replays nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use serde::{Deserialize, Serialize};

use crate::config::{ClientConfig, DemoIdpConfig};
use crate::identities::{Acr, TestIdentity};
use crate::keys::SigningKeys;
use crate::scenario::Scenario;

/// The cookie that ties a login form to the browser that opened it.
pub(crate) const BROWSER_COOKIE: &str = "demo_idp_browser";
/// How long a login page stays usable.
pub(crate) const LOGIN_PAGE_LIFETIME: Duration = Duration::from_secs(600);

/// The global failure scenario and the delay of the `delay` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioSetting {
    pub scenario: Scenario,
    pub delay_ms: u64,
}

pub(crate) struct AppState {
    pub issuer: String,
    pub config: DemoIdpConfig,
    keys: Mutex<Arc<SigningKeys>>,
    pub setting: Mutex<ScenarioSetting>,
    pub pending: Mutex<HashMap<String, PendingLogin>>,
    pub codes: Mutex<HashMap<[u8; 32], CodeRecord>>,
    pub tokens: Mutex<HashMap<[u8; 32], TokenRecord>>,
    /// With `sessions`: who signed in in each browser, and when.
    pub sessions: Mutex<HashMap<String, IdpSession>>,
}

/// A browser's session at this IdP.
#[derive(Clone, Copy)]
pub(crate) struct IdpSession {
    pub identity: &'static TestIdentity,
    pub auth_time: i64,
}

/// An authorization request waiting for the person to pick an identity.
pub(crate) struct PendingLogin {
    pub browser: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: String,
    pub scopes: Vec<String>,
    /// The lowest level among the `acr_values` this IdP knows.
    pub acr_asked: Option<Acr>,
    pub code_challenge: Option<String>,
    pub expires: Instant,
}

#[derive(Clone)]
pub(crate) struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub identity: &'static TestIdentity,
    pub scopes: Vec<String>,
    pub nonce: String,
    pub acr_asked: Option<Acr>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub sid: String,
    pub scenario: Scenario,
    pub expires: Instant,
    /// Set once redeemed: the hash of the access token it gave, revoked if the code is replayed.
    pub redeemed: Option<[u8; 32]>,
}

pub(crate) struct TokenRecord {
    pub identity: &'static TestIdentity,
    pub scopes: Vec<String>,
    pub scenario: Scenario,
    pub expires: Instant,
}

impl AppState {
    /// The signing keys in force.
    pub(crate) fn keys(&self) -> Arc<SigningKeys> {
        Arc::clone(&lock(&self.keys))
    }

    /// Puts new keys in force (the JWKS changes with them).
    pub(crate) fn set_keys(&self, keys: SigningKeys) {
        *lock(&self.keys) = Arc::new(keys);
    }

    pub(crate) fn new(issuer: String, config: DemoIdpConfig, keys: SigningKeys) -> Self {
        let setting = ScenarioSetting {
            scenario: config.scenario,
            delay_ms: config.delay_ms,
        };
        Self {
            issuer,
            config,
            keys: Mutex::new(Arc::new(keys)),
            setting: Mutex::new(setting),
            pending: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<&ClientConfig> {
        self.config
            .clients
            .iter()
            .find(|client| client.client_id == client_id)
    }

    pub(crate) fn setting(&self) -> ScenarioSetting {
        *lock(&self.setting)
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Drops what has expired, so memory stays bounded however long the IdP runs.
    pub(crate) fn purge(&self) {
        let now = Instant::now();
        lock(&self.pending).retain(|_, p| p.expires > now);
        // A redeemed code is kept until it expires, to catch its replay.
        lock(&self.codes).retain(|_, c| c.expires > now);
        lock(&self.tokens).retain(|_, t| t.expires > now);
    }
}

/// A poisoned lock only means another request panicked; the maps stay consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Parameters of a query or form, refusing repeated names (RFC 6749 §3.1 and §3.2).
pub(crate) fn parse_params(encoded: &str) -> Result<HashMap<String, String>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(encoded).map_err(|e| format!("malformed parameters: {e}"))?;
    let mut params = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        if params.contains_key(&key) {
            return Err(format!("parameter {key} is repeated"));
        }
        params.insert(key, value);
    }
    Ok(params)
}

/// Decodes `application/x-www-form-urlencoded` text, as client_secret_basic credentials are.
pub(crate) fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parse_params("a=1&b=2").is_ok());
        assert!(parse_params("a=1&a=2").unwrap_err().contains("repeated"));
    }

    #[test]
    fn decodes_form_encoding() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn finds_a_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("x=1; demo_idp_browser=abc; y=2"),
        );
        assert_eq!(cookie(&headers, BROWSER_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "z"), None);
    }
}
