//! The hub's signing keys, their JWKS, and the discovery document that announces them.
//!
//! Several keys per algorithm live at once, each with the instant it starts signing and,
//! once a newer one is scheduled, the instant it leaves the JWKS. Which key signs and
//! which are published is derived from those stored instants and the clock alone, so every
//! replica holding the same rows makes the same choice at the same time.

use std::sync::{Arc, RwLock};

use relais_jose::{Alg, JoseError, KeySet, SigningKey};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::config::OidcFrontConfig;
use crate::domain::claims;
use crate::error::FrontError;

/// One signing key and when it serves.
#[derive(Clone, Debug)]
pub struct LiveKey {
    pub key: Arc<SigningKey>,
    /// From when it signs (it is published from when it is stored).
    pub activates_at: OffsetDateTime,
    /// When it leaves the JWKS: set when a newer key is scheduled, once every token it
    /// can have signed has expired.
    pub retires_at: Option<OffsetDateTime>,
}

impl LiveKey {
    fn published_at(&self, now: OffsetDateTime) -> bool {
        self.retires_at.is_none_or(|r| now < r)
    }
}

/// The key of `alg` that signs at `now`: the latest activated one still published (ties,
/// which two replicas cannot produce, go to the greater kid so that all agree anyway).
pub fn signing_at(keys: &[LiveKey], alg: Alg, now: OffsetDateTime) -> Option<&LiveKey> {
    keys.iter()
        .filter(|k| k.key.alg() == alg && k.activates_at <= now && k.published_at(now))
        .max_by(|a, b| (a.activates_at, a.key.kid()).cmp(&(b.activates_at, b.key.kid())))
}

/// How far apart a rotation's instants are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// From storing a new key to its first signature: every replica has read it
    /// (`signing_keys_reload_seconds`) and every JWKS cached before then has expired
    /// (`jwks_cache_seconds`).
    pub publish_before: Duration,
    /// The longest lifetime of a token the hub signs: the old key stays published this
    /// long after its last signature.
    pub tokens_live: Duration,
}

impl Rotation {
    pub fn of(config: &OidcFrontConfig) -> Rotation {
        let secs = |s: u32| Duration::seconds(i64::from(s));
        Rotation {
            publish_before: secs(config.jwks_cache_seconds)
                + secs(config.signing_keys_reload_seconds),
            tokens_live: secs(config.id_token_ttl_seconds)
                .max(secs(config.access_token_ttl_seconds))
                .max(Duration::seconds(
                    crate::backchannel::LOGOUT_TOKEN_TTL_SECONDS,
                )),
        }
    }

    /// A key stored at `now`: when it signs, and when the keys it replaces leave the JWKS.
    pub fn schedule(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let activates_at = now + self.publish_before;
        (activates_at, activates_at + self.tokens_live)
    }
}

/// The keys as last read from the store.
struct Ring {
    keys: Vec<LiveKey>,
    /// Every key read, to check the hub's own tokens (an expired token is refused by its
    /// `exp`, whatever its key).
    verifier: KeySet,
}

/// The hub's signing keys, shared by every request and replaced at each reload.
pub struct Keys {
    ring: RwLock<Arc<Ring>>,
    clock: Arc<dyn Clock>,
}

impl Keys {
    /// The keys read from the store; each algorithm must have one that signs now.
    pub fn new(keys: Vec<LiveKey>, clock: Arc<dyn Clock>) -> Result<Keys, FrontError> {
        let ring = Keys::ring(keys, clock.now())?;
        Ok(Keys {
            ring: RwLock::new(Arc::new(ring)),
            clock,
        })
    }

    fn ring(keys: Vec<LiveKey>, now: OffsetDateTime) -> Result<Ring, FrontError> {
        for alg in [Alg::Es256, Alg::Rs256] {
            if signing_at(&keys, alg, now).is_none() {
                return Err(FrontError::Internal(format!(
                    "no {alg} signing key in force"
                )));
            }
        }
        let verifier = KeySet::from_signing_keys(keys.iter().map(|k| k.key.as_ref()))?;
        Ok(Ring { keys, verifier })
    }

    /// Takes the keys read again from the store.
    pub fn replace(&self, keys: Vec<LiveKey>) -> Result<(), FrontError> {
        let ring = Arc::new(Keys::ring(keys, self.clock.now())?);
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ring;
        Ok(())
    }

    fn current(&self) -> Arc<Ring> {
        Arc::clone(
            &self
                .ring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The keys as last read (a reload opens only the keys it does not hold yet).
    pub fn loaded(&self) -> Vec<LiveKey> {
        self.current().keys.clone()
    }

    /// The key that signs with `alg` now.
    pub fn signer(&self, alg: Alg) -> Result<Arc<SigningKey>, FrontError> {
        let ring = self.current();
        signing_at(&ring.keys, alg, self.clock.now())
            .map(|k| Arc::clone(&k.key))
            .ok_or_else(|| FrontError::Internal(format!("no {alg} signing key in force")))
    }

    /// The JWKS now: every key from when it is stored until it retires.
    pub fn jwks_json(&self) -> String {
        let now = self.clock.now();
        let keys: Vec<Value> = self
            .current()
            .keys
            .iter()
            .filter(|k| k.published_at(now))
            .map(|k| Value::Object(k.key.public_jwk().as_ref().clone()))
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// Checks the signature of a token the hub signed.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JoseError> {
        self.current().verifier.verify(token)
    }
}

/// The discovery document: only what the hub really does.
pub fn discovery(config: &OidcFrontConfig) -> String {
    let iss = &config.issuer;
    json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "userinfo_endpoint": format!("{iss}/userinfo"),
            "jwks_uri": format!("{iss}/jwks"),
            "end_session_endpoint": format!("{iss}/end_session"),
            "revocation_endpoint": format!("{iss}/revoke"),
            "introspection_endpoint": format!("{iss}/introspect"),
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "scopes_supported": claims::scopes_supported(),
            "claims_supported": claims::claims_supported(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "userinfo_signing_alg_values_supported": ["ES256", "RS256"],
            "id_token_encryption_alg_values_supported": ["RSA-OAEP-256", "ECDH-ES"],
            "id_token_encryption_enc_values_supported": ["A256GCM"],
            "userinfo_encryption_alg_values_supported": ["RSA-OAEP-256", "ECDH-ES"],
            "userinfo_encryption_enc_values_supported": ["A256GCM"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": config.acr_levels,
            "claims_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "require_request_uri_registration": false,
            "authorization_response_iss_parameter_supported": true,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "ui_locales_supported": ["fr", "en"],
            "claim_types_supported": ["normal"],
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_000_000 + seconds)
    }

    fn key(activates: i64, retires: Option<i64>) -> LiveKey {
        LiveKey {
            key: Arc::new(SigningKey::generate(Alg::Es256).unwrap()),
            activates_at: at(activates),
            retires_at: retires.map(at),
        }
    }

    #[test]
    fn the_newest_activated_key_signs_and_the_old_one_stays_published_until_it_retires() {
        // The old key signed until 100; its tokens live 50 more.
        let keys = vec![key(0, Some(150)), key(100, None)];
        let signer = |t| signing_at(&keys, Alg::Es256, at(t)).map(|k| k.key.kid().to_string());
        assert_eq!(signer(99).as_deref(), Some(keys[0].key.kid()));
        assert_eq!(signer(100).as_deref(), Some(keys[1].key.kid()));
        assert_eq!(signer(200).as_deref(), Some(keys[1].key.kid()));
        assert!(signing_at(&keys, Alg::Rs256, at(100)).is_none());
        assert!(keys[0].published_at(at(149)));
        assert!(!keys[0].published_at(at(150)));
        assert!(keys[1].published_at(at(-10)), "published before it signs");
    }

    #[test]
    fn a_rotation_publishes_for_the_cache_and_reload_times_and_retires_after_the_tokens() {
        let config = OidcFrontConfig {
            jwks_cache_seconds: 300,
            signing_keys_reload_seconds: 60,
            id_token_ttl_seconds: 600,
            access_token_ttl_seconds: 1800,
            ..OidcFrontConfig::default()
        };
        let r = Rotation::of(&config);
        assert_eq!(r.publish_before, Duration::seconds(360));
        assert_eq!(r.tokens_live, Duration::seconds(1800));
        assert_eq!(r.schedule(at(0)), (at(360), at(2160)));
    }
}
