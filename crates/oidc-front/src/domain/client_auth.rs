//! Client credentials as a back-channel request carries them (RFC 6749 §2.3.1, RFC 7523):
//! exactly one way, parsed without I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::domain::authorize::Params;
use crate::error::FrontError;

pub const PRIVATE_KEY_JWT: &str = "private_key_jwt";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client's credentials, from exactly one of the Basic header, the form's secret or
/// a client assertion: `(client_id, secret or assertion, method)`.
pub fn client_credentials(
    authorization: &str,
    params: &Params,
) -> Result<(String, String, &'static str), FrontError> {
    let form_id = params.single("client_id")?;
    let form_secret = params.single("client_secret")?;
    let header = authorization.trim();
    if let Some(kind) = params.single("client_assertion_type")? {
        if form_secret.is_some() || header.starts_with("Basic ") {
            return Err(FrontError::MultipleClientAuth);
        }
        if kind != JWT_BEARER {
            return Err(FrontError::ClientAuthFailed);
        }
        let assertion = params
            .single("client_assertion")?
            .ok_or(FrontError::ClientAuthFailed)?;
        // The client is named by client_id or, failing that, by the assertion's issuer;
        // the signature check that follows decides whether to believe it.
        let named = relais_jose::decode_claims_unverified(assertion)
            .ok()
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_string));
        let id = match (form_id, named) {
            (Some(f), Some(n)) if f != n => return Err(FrontError::ClientAuthFailed),
            (Some(f), _) => f.to_string(),
            (None, Some(n)) => n,
            (None, None) => return Err(FrontError::ClientAuthFailed),
        };
        return Ok((id, assertion.to_string(), PRIVATE_KEY_JWT));
    }
    if let Some(b64) = header.strip_prefix("Basic ") {
        if form_secret.is_some() {
            return Err(FrontError::MultipleClientAuth);
        }
        let decoded = STANDARD
            .decode(b64.trim())
            .map_err(|_| FrontError::ClientAuthFailed)?;
        let text = String::from_utf8(decoded).map_err(|_| FrontError::ClientAuthFailed)?;
        let (id, secret) = text.split_once(':').ok_or(FrontError::ClientAuthFailed)?;
        // RFC 6749 §2.3.1: both halves are form-urlencoded.
        let id = form_decode(id)?;
        let secret = form_decode(secret)?;
        if form_id.is_some_and(|f| f != id) {
            return Err(FrontError::ClientAuthFailed);
        }
        return Ok((id, secret, "client_secret_basic"));
    }
    match (form_id, form_secret) {
        (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string(), "client_secret_post")),
        _ => Err(FrontError::ClientAuthFailed),
    }
}

fn form_decode(s: &str) -> Result<String, FrontError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| FrontError::ClientAuthFailed)?;
    pairs
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .ok_or(FrontError::ClientAuthFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_one_way_only() {
        let header = format!("Basic {}", STANDARD.encode("sp%3A1:s%40cret"));
        let (id, secret, method) = client_credentials(&header, &Params::default()).unwrap();
        assert_eq!(
            (id.as_str(), secret.as_str(), method),
            ("sp:1", "s@cret", "client_secret_basic")
        );
        let form = Params::new(vec![
            ("client_id".into(), "sp".into()),
            ("client_secret".into(), "x".into()),
        ]);
        assert_eq!(
            client_credentials("", &form).unwrap().2,
            "client_secret_post"
        );
        assert_eq!(
            client_credentials(&header, &form).unwrap_err().code(),
            "multiple_client_auth"
        );
        assert_eq!(
            client_credentials("", &Params::default())
                .unwrap_err()
                .code(),
            "client_authentication_failed"
        );
    }
}
