//! The ES256 signing key, generated at start, and a rogue key under the same `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jws::alg::ecdsa::{EcdsaJwsSigner, EcdsaJwsVerifier};
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use rand::RngCore as _;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::Error;

pub(crate) struct SigningKeys {
    kid: String,
    signer: EcdsaJwsSigner,
    rogue_signer: EcdsaJwsSigner,
    verifier: EcdsaJwsVerifier,
    jwks: Value,
}

impl SigningKeys {
    pub(crate) fn generate() -> Result<Self, Error> {
        // A fresh kid at each start lets relying parties see the key changed.
        let kid = format!("demo-idp-{}", random_token(9));
        let key_pair = ES256.generate_key_pair()?;
        let rogue = ES256.generate_key_pair()?;
        let mut public = key_pair.to_jwk_public_key();
        public.set_key_id(&kid);
        public.set_algorithm("ES256");
        public.set_key_use("sig");
        let verifier = ES256.verifier_from_jwk(&public)?;
        let jwks = json!({ "keys": [Value::Object(public.as_ref().clone())] });
        Ok(Self {
            signer: signer(&key_pair, &kid)?,
            rogue_signer: signer(&rogue, &kid)?,
            kid,
            verifier,
            jwks,
        })
    }

    pub(crate) fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs `claims` as a JWT; `rogue` signs with the key nobody published.
    pub(crate) fn sign(&self, claims: Map<String, Value>, rogue: bool) -> Result<String, Error> {
        self.sign_typed(claims, "JWT", rogue)
    }

    /// Signs `claims` as a JWS of type `typ` (a logout token is `logout+jwt`).
    pub(crate) fn sign_typed(
        &self,
        claims: Map<String, Value>,
        typ: &str,
        rogue: bool,
    ) -> Result<String, Error> {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&self.kid);
        let payload = JwtPayload::from_map(claims)?;
        let signer = if rogue {
            &self.rogue_signer
        } else {
            &self.signer
        };
        Ok(jwt::encode_with_signer(&payload, &header, signer)?)
    }

    /// Signs `claims` HS256 keyed with `secret` (a client's secret), under this IdP's `kid`.
    pub(crate) fn sign_with_secret(
        &self,
        claims: Map<String, Value>,
        secret: &[u8],
    ) -> Result<String, Error> {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        let payload = JwtPayload::from_map(claims)?;
        let signer = josekit::jws::HS256.signer_from_bytes(secret)?;
        Ok(jwt::encode_with_signer(&payload, &header, &signer)?)
    }

    /// The claims of a JWT this IdP signed, expired or not (as `id_token_hint` allows).
    pub(crate) fn verify(&self, token: &str) -> Option<Map<String, Value>> {
        let (payload, _) = jwt::decode_with_verifier(token, &self.verifier).ok()?;
        Some(payload.claims_set().clone())
    }
}

fn signer(key_pair: &EcKeyPair, kid: &str) -> Result<EcdsaJwsSigner, Error> {
    let mut signer = ES256.signer_from_der(josekit::jwk::KeyPair::to_der_private_key(key_pair))?;
    signer.set_key_id(kid);
    Ok(signer)
}

/// `n` random bytes from the OS, base64url without padding.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sha256(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The `at_hash` of OpenID Connect Core §3.1.3.6 for ES256: left half of SHA-256.
pub(crate) fn at_hash(access_token: &str) -> String {
    let digest = sha256(access_token);
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// BASE64URL(SHA256(verifier)), the S256 code challenge of RFC 7636.
pub(crate) fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_the_rogue_key() {
        let keys = SigningKeys::generate().unwrap();
        let mut claims = Map::new();
        claims.insert("sub".into(), "x".into());
        let good = keys.sign(claims.clone(), false).unwrap();
        let bad = keys.sign(claims, true).unwrap();
        assert_eq!(keys.verify(&good).unwrap()["sub"], "x");
        assert!(keys.verify(&bad).is_none());
        assert_eq!(keys.jwks()["keys"][0]["kid"], keys.kid.as_str());
        assert!(keys.jwks()["keys"][0].get("d").is_none());
    }

    #[test]
    fn pkce_example_of_rfc_7636() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
