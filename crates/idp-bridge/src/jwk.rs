//! An IdP's public signing key: read as `openidconnect` reads a JWK, its signatures
//! checked with `ring`, and only for the hub's own algorithms (RS256, PS256, ES256),
//! never one the IdP's metadata would add (HS256 keyed with the client secret, say).
//! `openidconnect`'s own P-256 arithmetic was about a tenth of the hub's CPU per sign-in.

use openidconnect::core::{
    CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeyUse, SignatureVerificationError,
};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The ID token algorithms the hub accepts from IdPs.
pub const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 3] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
];

/// The key material `ring` verifies with, decoded once when the JWKS is read.
#[derive(Clone, Debug)]
enum Public {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
    P256(Vec<u8>),
    /// Any other key: listed, never used to verify.
    Other,
}

#[derive(Clone, Debug)]
pub struct IdpKey {
    jwk: CoreJsonWebKey,
    public: Public,
}

impl Serialize for IdpKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.jwk.serialize(s)
    }
}

impl<'de> Deserialize<'de> for IdpKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let jwk = CoreJsonWebKey::deserialize(&value).map_err(serde::de::Error::custom)?;
        Ok(IdpKey {
            public: public_of(&value),
            jwk,
        })
    }
}

fn member(value: &Value, name: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = value.get(name)?.as_str()?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

fn public_of(value: &Value) -> Public {
    let kty = value.get("kty").and_then(Value::as_str);
    let crv = value.get("crv").and_then(Value::as_str);
    match (kty, crv) {
        (Some("RSA"), _) => match (member(value, "n"), member(value, "e")) {
            (Some(n), Some(e)) => Public::Rsa { n, e },
            _ => Public::Other,
        },
        (Some("EC"), Some("P-256")) => match (member(value, "x"), member(value, "y")) {
            (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Public::P256(point)
            }
            _ => Public::Other,
        },
        _ => Public::Other,
    }
}

impl JsonWebKey for IdpKey {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.jwk.key_id()
    }

    fn key_type(&self) -> &CoreJsonWebKeyType {
        self.jwk.key_type()
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.jwk.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.jwk.signing_alg()
    }

    /// The verifier makes one of the client secret; it can never verify anything here.
    fn new_symmetric(key: Vec<u8>) -> Self {
        IdpKey {
            jwk: CoreJsonWebKey::new_symmetric(key),
            public: Public::Other,
        }
    }

    fn verify_signature(
        &self,
        alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        if !ALLOWED_ALGS.contains(alg) {
            return Err(SignatureVerificationError::DisallowedAlg(format!(
                "{alg:?}"
            )));
        }
        if self.key_use().is_some_and(|u| !u.allows_signature()) {
            return Err(SignatureVerificationError::InvalidKey(
                "the key is not for signatures".into(),
            ));
        }
        match self.signing_alg() {
            JsonWebKeyAlgorithm::Algorithm(own) if own != alg => {
                return Err(SignatureVerificationError::InvalidKey(format!(
                    "the key is for {own:?}"
                )));
            }
            JsonWebKeyAlgorithm::Unsupported => {
                return Err(SignatureVerificationError::InvalidKey(
                    "the key is not for signatures".into(),
                ));
            }
            _ => {}
        }
        let checked = match (alg, &self.public) {
            (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Public::Rsa { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(
                    &RSA_PKCS1_2048_8192_SHA256,
                    message,
                    signature,
                )
            }
            (CoreJwsSigningAlgorithm::RsaSsaPssSha256, Public::Rsa { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(
                    &RSA_PSS_2048_8192_SHA256,
                    message,
                    signature,
                )
            }
            (CoreJwsSigningAlgorithm::EcdsaP256Sha256, Public::P256(point)) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            _ => {
                return Err(SignatureVerificationError::InvalidKey(format!(
                    "a {:?} key cannot check {alg:?}",
                    self.key_type()
                )));
            }
        };
        checked.map_err(|_| SignatureVerificationError::CryptoError("bad signature".into()))
    }

    /// For `at_hash`: the hash of the algorithm, as the crate computes it.
    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.jwk.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn es256_key() -> (EcdsaKeyPair, IdpKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generated");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key read");
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": "k1",
            "x": b64(&point[1..33]), "y": b64(&point[33..]),
        });
        let key: IdpKey = serde_json::from_value(jwk).expect("jwk read");
        (pair, key)
    }

    #[test]
    fn an_es256_signature_verifies_and_a_changed_message_does_not() {
        let (pair, key) = es256_key();
        let sig = pair
            .sign(&SystemRandom::new(), b"header.payload")
            .expect("signed");
        let es256 = CoreJwsSigningAlgorithm::EcdsaP256Sha256;
        assert!(
            key.verify_signature(&es256, b"header.payload", sig.as_ref())
                .is_ok()
        );
        assert!(
            key.verify_signature(&es256, b"header.payloaD", sig.as_ref())
                .is_err()
        );
    }

    #[test]
    fn algorithms_outside_the_hubs_list_and_secret_keys_never_verify() {
        use hmac::Mac;
        let secret = b"the client secret the IdP also knows";
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
        mac.update(b"header.payload");
        let tag = mac.finalize().into_bytes();
        let symmetric = IdpKey::new_symmetric(secret.to_vec());
        // The same key and MAC that openidconnect's own key type accepts.
        let core = CoreJsonWebKey::new_symmetric(secret.to_vec());
        let hs256 = CoreJwsSigningAlgorithm::HmacSha256;
        assert!(
            core.verify_signature(&hs256, b"header.payload", &tag)
                .is_ok()
        );
        assert!(matches!(
            symmetric.verify_signature(&hs256, b"header.payload", &tag),
            Err(SignatureVerificationError::DisallowedAlg(_))
        ));
        let (pair, key) = es256_key();
        let sig = pair
            .sign(&SystemRandom::new(), b"header.payload")
            .expect("signed");
        // An EC key asked to check an RSA signature, and an algorithm off the list.
        for alg in [
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        ] {
            assert!(
                key.verify_signature(&alg, b"header.payload", sig.as_ref())
                    .is_err()
            );
        }
    }
}
