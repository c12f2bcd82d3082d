//! JOSE for the hub: signing keys (ES256 and RS256) with RFC 7638 thumbprint `kid`s, the
//! public JWKS, compact JWS signing of JWT claims, and verification of JWTs against a key
//! set with an allow-list of algorithms (never `none`, never HMAC with a public key).
//! It owns no storage: callers persist keys as private JWK JSON, sealed at rest with
//! [`envelope`] under a key-encryption key. [`sealed`] seals state that the hub hands to
//! browsers instead of storing it.

pub mod envelope;
pub mod sealed;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, JwsHeader, JwsSigner, JwsVerifier, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use envelope::{EnvelopeError, KeyWrap, LocalKek};
pub use sealed::{SealError, Sealer};

#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    #[error("unsupported algorithm {0}")]
    UnsupportedAlg(String),
    #[error("key error: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("no key with kid {0}")]
    UnknownKey(String),
    #[error("signature is invalid")]
    BadSignature,
}

/// Signature algorithms the hub signs with and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Result<Alg, JoseError> {
        match s {
            "ES256" => Ok(Alg::Es256),
            "RS256" => Ok(Alg::Rs256),
            other => Err(JoseError::UnsupportedAlg(other.to_string())),
        }
    }
}

/// As JOSE names it (`ES256`), in seed and configuration files.
impl serde::Serialize for Alg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Alg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Alg, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        Alg::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private signing key with its `kid` and algorithm.
pub struct SigningKey {
    kid: String,
    alg: Alg,
    private: Jwk,
    public: Jwk,
    signer: Box<dyn JwsSigner>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the system CSPRNG (P-256 for ES256, 2048-bit RSA for RS256).
    pub fn generate(alg: Alg) -> Result<SigningKey, JoseError> {
        let private = match alg {
            Alg::Es256 => ES256
                .generate_key_pair()
                .map_err(|e| JoseError::Key(e.to_string()))?
                .to_jwk_key_pair(),
            Alg::Rs256 => RS256
                .generate_key_pair(2048)
                .map_err(|e| JoseError::Key(e.to_string()))?
                .to_jwk_key_pair(),
        };
        SigningKey::from_private_jwk(alg, private)
    }

    /// Restores a key saved with [`SigningKey::private_jwk_json`].
    pub fn from_json(alg: Alg, json: &str) -> Result<SigningKey, JoseError> {
        let jwk = Jwk::from_bytes(json.as_bytes()).map_err(|e| JoseError::Key(e.to_string()))?;
        SigningKey::from_private_jwk(alg, jwk)
    }

    fn from_private_jwk(alg: Alg, mut private: Jwk) -> Result<SigningKey, JoseError> {
        let kid = thumbprint(&private)?;
        private.set_key_id(&kid);
        private.set_algorithm(alg.as_str());
        private.set_key_use("sig");
        let signer: Box<dyn JwsSigner> = match alg {
            Alg::Es256 => Box::new(
                ES256
                    .signer_from_jwk(&private)
                    .map_err(|e| JoseError::Key(e.to_string()))?,
            ),
            Alg::Rs256 => Box::new(
                RS256
                    .signer_from_jwk(&private)
                    .map_err(|e| JoseError::Key(e.to_string()))?,
            ),
        };
        let public = public_part(&private)?;
        Ok(SigningKey {
            kid,
            alg,
            private,
            public,
            signer,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The private JWK as JSON, for the owner's key store only.
    pub fn private_jwk_json(&self) -> String {
        self.private.to_string()
    }

    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// Signs `claims` as a compact JWS with `typ` (usually `JWT`).
    pub fn sign(&self, claims: &Map<String, Value>, typ: &str) -> Result<String, JoseError> {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&self.kid);
        let payload =
            JwtPayload::from_map(claims.clone()).map_err(|e| JoseError::Sign(e.to_string()))?;
        jwt::encode_with_signer(&payload, &header, self.signer.as_ref())
            .map_err(|e| JoseError::Sign(e.to_string()))
    }
}

/// RFC 7638 thumbprint of a key, base64url.
pub fn thumbprint(jwk: &Jwk) -> Result<String, JoseError> {
    let member = |name: &str| -> Result<String, JoseError> {
        jwk.parameter(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| JoseError::Key(format!("missing {name}")))
    };
    // Members in lexicographic order, no whitespace, as the RFC requires.
    let canonical = match jwk.key_type() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member("e")?,
            member("n")?
        ),
        other => return Err(JoseError::Key(format!("unsupported key type {other}"))),
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

fn public_part(private: &Jwk) -> Result<Jwk, JoseError> {
    let mut map = Map::new();
    let keep: &[&str] = match private.key_type() {
        "EC" => &["kty", "crv", "x", "y", "kid", "alg", "use"],
        "RSA" => &["kty", "n", "e", "kid", "alg", "use"],
        other => return Err(JoseError::Key(format!("unsupported key type {other}"))),
    };
    for name in keep {
        if let Some(v) = private.parameter(name) {
            map.insert((*name).to_string(), v.clone());
        }
    }
    Jwk::from_map(map).map_err(|e| JoseError::Key(e.to_string()))
}

/// The keys a party publishes or trusts, looked up by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<(Jwk, Alg, Box<dyn JwsVerifier>)>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|(j, _, _)| j.key_id()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// The public halves of the hub's own signing keys.
    pub fn from_signing_keys<'a>(
        keys: impl IntoIterator<Item = &'a SigningKey>,
    ) -> Result<KeySet, JoseError> {
        let mut set = KeySet::default();
        for k in keys {
            set.add(k.public_jwk().clone(), k.alg())?;
        }
        Ok(set)
    }

    /// A JWKS document (`{"keys":[...]}`); keys of unsupported kinds are skipped.
    pub fn from_jwks_json(json: &str) -> Result<KeySet, JoseError> {
        let doc: Value =
            serde_json::from_str(json).map_err(|e| JoseError::Malformed(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JoseError::Malformed("no keys array".into()))?;
        let mut set = KeySet::default();
        for key in keys {
            let Some(obj) = key.as_object() else { continue };
            let Ok(jwk) = Jwk::from_map(obj.clone()) else {
                continue;
            };
            // Encryption keys published beside signing keys are not for verifying.
            if jwk.key_use().is_some_and(|u| u != "sig") {
                continue;
            }
            let alg = match (jwk.key_type(), jwk.algorithm()) {
                ("EC", None | Some("ES256")) if jwk.curve() == Some("P-256") => Alg::Es256,
                ("RSA", None | Some("RS256")) => Alg::Rs256,
                _ => continue,
            };
            set.add(jwk, alg)?;
        }
        Ok(set)
    }

    fn add(&mut self, jwk: Jwk, alg: Alg) -> Result<(), JoseError> {
        let verifier: Box<dyn JwsVerifier> = match alg {
            Alg::Es256 => Box::new(
                ES256
                    .verifier_from_jwk(&jwk)
                    .map_err(|e| JoseError::Key(e.to_string()))?,
            ),
            Alg::Rs256 => Box::new(
                RS256
                    .verifier_from_jwk(&jwk)
                    .map_err(|e| JoseError::Key(e.to_string()))?,
            ),
        };
        self.keys.push((jwk, alg, verifier));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JWKS JSON document of these keys.
    pub fn to_jwks_json(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(j, _, _)| Value::Object(j.as_ref().clone()))
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Verifies a compact JWS and returns its claims. The header's `alg` must be the
    /// one bound to the key named by `kid` (no algorithm confusion); signature only:
    /// the caller checks `iss`, `aud`, `exp` and the rest.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JoseError> {
        let header = decode_header(token)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| JoseError::Malformed("no alg".into()))?;
        let alg = Alg::parse(alg)?;
        let kid = header.get("kid").and_then(Value::as_str);
        let candidates: Vec<_> = self
            .keys
            .iter()
            .filter(|(j, a, _)| *a == alg && (kid.is_none() || j.key_id() == kid))
            .collect();
        if candidates.is_empty() {
            return Err(JoseError::UnknownKey(kid.unwrap_or("").to_string()));
        }
        for (_, _, verifier) in candidates {
            if let Ok((payload, _)) = jwt::decode_with_verifier(token, verifier.as_ref()) {
                return Ok(payload.claims_set().clone());
            }
        }
        Err(JoseError::BadSignature)
    }
}

/// Content encryption of every JWE the hub makes.
pub const JWE_ENC: &str = "A256GCM";

/// Encrypts `payload` (compact JWE) to the first key of `jwks_json` that suits `alg`
/// (`RSA-OAEP-256`: an RSA key; `ECDH-ES`: a P-256 key), never to a signing-only key.
/// `cty` is `JWT` for a signed token nested inside.
pub fn encrypt(
    payload: &[u8],
    cty: Option<&str>,
    jwks_json: &str,
    alg: &str,
    enc: &str,
) -> Result<String, JoseError> {
    Encrypter::new(jwks_json, alg, enc)?.encrypt(payload, cty)
}

/// A relying party's encryption key, chosen and checked: once one is made, encrypting
/// to it fails only on an internal error, so a caller can make it before acting.
pub struct Encrypter {
    kid: Option<String>,
    encrypter: Box<dyn josekit::jwe::JweEncrypter>,
}

impl Encrypter {
    /// The first key of `jwks_json` that suits `alg` with `enc` (see [`encrypt`]).
    pub fn new(jwks_json: &str, alg: &str, enc: &str) -> Result<Encrypter, JoseError> {
        use josekit::jwe::{ECDH_ES, RSA_OAEP_256};
        if enc != JWE_ENC {
            return Err(JoseError::UnsupportedAlg(enc.to_string()));
        }
        let doc: Value =
            serde_json::from_str(jwks_json).map_err(|e| JoseError::Malformed(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JoseError::Malformed("no keys array".into()))?;
        let wanted_kty = match alg {
            "RSA-OAEP-256" => "RSA",
            "ECDH-ES" => "EC",
            other => return Err(JoseError::UnsupportedAlg(other.to_string())),
        };
        let jwk = keys
            .iter()
            .filter_map(|k| k.as_object().and_then(|o| Jwk::from_map(o.clone()).ok()))
            .find(|k| k.key_type() == wanted_kty && k.key_use() != Some("sig"))
            .ok_or_else(|| JoseError::UnknownKey(format!("no {wanted_kty} encryption key")))?;
        let key = |e: josekit::JoseError| JoseError::Key(e.to_string());
        let encrypter: Box<dyn josekit::jwe::JweEncrypter> = match alg {
            "RSA-OAEP-256" => Box::new(RSA_OAEP_256.encrypter_from_jwk(&jwk).map_err(key)?),
            _ => Box::new(ECDH_ES.encrypter_from_jwk(&jwk).map_err(key)?),
        };
        Ok(Encrypter {
            kid: jwk.key_id().map(str::to_owned),
            encrypter,
        })
    }

    pub fn encrypt(&self, payload: &[u8], cty: Option<&str>) -> Result<String, JoseError> {
        let mut header = josekit::jwe::JweHeader::new();
        header.set_content_encryption(JWE_ENC);
        if let Some(kid) = &self.kid {
            header.set_key_id(kid);
        }
        if let Some(cty) = cty {
            header.set_content_type(cty);
        }
        josekit::jwe::serialize_compact(payload, &header, self.encrypter.as_ref())
            .map_err(|e| JoseError::Sign(e.to_string()))
    }
}

/// A key pair a relying party decrypts with: its private JWK and its public JWKS.
pub struct EncryptionKey {
    pub private_jwk_json: String,
    pub public_jwks_json: String,
}

impl EncryptionKey {
    /// A new key for `alg` (`RSA-OAEP-256`: 2048-bit RSA; `ECDH-ES`: P-256).
    pub fn generate(alg: &str, kid: &str) -> Result<EncryptionKey, JoseError> {
        let mut private = match alg {
            "RSA-OAEP-256" => josekit::jwe::RSA_OAEP_256
                .generate_key_pair(2048)
                .map_err(|e| JoseError::Key(e.to_string()))?
                .to_jwk_key_pair(),
            "ECDH-ES" => ES256
                .generate_key_pair()
                .map_err(|e| JoseError::Key(e.to_string()))?
                .to_jwk_key_pair(),
            other => return Err(JoseError::UnsupportedAlg(other.to_string())),
        };
        private.set_key_id(kid);
        private.set_key_use("enc");
        private.set_algorithm(alg);
        let keep: &[&str] = if alg == "ECDH-ES" {
            &["kty", "crv", "x", "y", "kid", "use"]
        } else {
            &["kty", "n", "e", "kid", "use"]
        };
        let mut public = Map::new();
        for name in keep {
            if let Some(v) = private.parameter(name) {
                public.insert((*name).to_string(), v.clone());
            }
        }
        Ok(EncryptionKey {
            private_jwk_json: private.to_string(),
            public_jwks_json: serde_json::json!({ "keys": [Value::Object(public)] }).to_string(),
        })
    }
}

/// Decrypts a compact JWE with a private JWK (the relying party's side).
pub fn decrypt(token: &str, private_jwk_json: &str) -> Result<Vec<u8>, JoseError> {
    use josekit::jwe::{ECDH_ES, RSA_OAEP_256};
    let jwk =
        Jwk::from_bytes(private_jwk_json.as_bytes()).map_err(|e| JoseError::Key(e.to_string()))?;
    let header = decode_header(token)?;
    let result = match header.get("alg").and_then(Value::as_str) {
        Some("RSA-OAEP-256") => {
            let d = RSA_OAEP_256
                .decrypter_from_jwk(&jwk)
                .map_err(|e| JoseError::Key(e.to_string()))?;
            josekit::jwe::deserialize_compact(token, &d)
        }
        Some("ECDH-ES") => {
            let d = ECDH_ES
                .decrypter_from_jwk(&jwk)
                .map_err(|e| JoseError::Key(e.to_string()))?;
            josekit::jwe::deserialize_compact(token, &d)
        }
        other => return Err(JoseError::UnsupportedAlg(format!("{other:?}"))),
    };
    result
        .map(|(payload, _)| payload)
        .map_err(|_| JoseError::BadSignature)
}

/// The protected header of a compact JWS, unverified.
pub fn decode_header(token: &str) -> Result<Map<String, Value>, JoseError> {
    let first = token
        .split('.')
        .next()
        .ok_or_else(|| JoseError::Malformed("empty token".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(first)
        .map_err(|_| JoseError::Malformed("header is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| JoseError::Malformed("header is not JSON".into()))
}

/// The claims of a compact JWS without checking its signature: only for tokens whose
/// signature is checked right after, or for display.
pub fn decode_claims_unverified(token: &str) -> Result<Map<String, Value>, JoseError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("not a compact JWS".into()));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JoseError::Malformed("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| JoseError::Malformed("payload is not JSON".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("iss".into(), Value::from("https://hub"));
        m.insert("sub".into(), Value::from("abc"));
        m
    }

    #[test]
    fn es256_and_rs256_round_trip_through_jwks() {
        for alg in [Alg::Es256, Alg::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let token = key.sign(&claims(), "JWT").unwrap();
            let header = decode_header(&token).unwrap();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["kid"], key.kid());
            let published = KeySet::from_signing_keys([&key]).unwrap().to_jwks_json();
            assert!(
                !published.contains("\"d\""),
                "private part published: {published}"
            );
            let set = KeySet::from_jwks_json(&published).unwrap();
            assert_eq!(set.verify(&token).unwrap()["sub"], "abc");
            let restored = SigningKey::from_json(alg, &key.private_jwk_json()).unwrap();
            assert_eq!(restored.kid(), key.kid());
        }
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let other = SigningKey::generate(Alg::Es256).unwrap();
        let set = KeySet::from_signing_keys([&key]).unwrap();
        let token = other.sign(&claims(), "JWT").unwrap();
        assert!(matches!(set.verify(&token), Err(JoseError::UnknownKey(_))));
        let good = key.sign(&claims(), "JWT").unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://hub","sub":"admin"}"#);
        parts[1] = &forged;
        assert!(matches!(
            set.verify(&parts.join(".")),
            Err(JoseError::BadSignature)
        ));
    }

    #[test]
    fn none_and_hmac_are_refused() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let set = KeySet::from_signing_keys([&key]).unwrap();
        let body = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        for alg in ["none", "HS256"] {
            let header = URL_SAFE_NO_PAD
                .encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, key.kid()).as_bytes());
            let token = format!("{header}.{body}.");
            assert!(matches!(
                set.verify(&token),
                Err(JoseError::UnsupportedAlg(_))
            ));
        }
    }

    #[test]
    fn encryption_keys_in_a_jwks_are_not_used_to_verify() {
        let sig = SigningKey::generate(Alg::Es256).unwrap();
        let enc = EncryptionKey::generate("RSA-OAEP-256", "e").unwrap();
        let mut keys = vec![Value::Object(sig.public_jwk().as_ref().clone())];
        let doc: Value = serde_json::from_str(&enc.public_jwks_json).unwrap();
        keys.extend(doc["keys"].as_array().unwrap().iter().cloned());
        let set = KeySet::from_jwks_json(&serde_json::json!({ "keys": keys }).to_string()).unwrap();
        let token = sig.sign(&claims(), "JWT").unwrap();
        assert_eq!(set.verify(&token).unwrap()["sub"], "abc");
    }

    #[test]
    fn jwe_round_trips_and_refuses_other_keys() {
        for alg in ["RSA-OAEP-256", "ECDH-ES"] {
            let key = EncryptionKey::generate(alg, "k1").unwrap();
            assert!(!key.public_jwks_json.contains("\"d\""));
            let token = encrypt(
                b"secret claims",
                Some("JWT"),
                &key.public_jwks_json,
                alg,
                JWE_ENC,
            )
            .unwrap();
            assert_eq!(token.split('.').count(), 5, "{alg}");
            assert_eq!(
                decrypt(&token, &key.private_jwk_json).unwrap(),
                b"secret claims"
            );
            let other = EncryptionKey::generate(alg, "k2").unwrap();
            assert!(decrypt(&token, &other.private_jwk_json).is_err(), "{alg}");
        }
        let key = EncryptionKey::generate("ECDH-ES", "k").unwrap();
        assert!(encrypt(b"x", None, &key.public_jwks_json, "RSA-OAEP-256", JWE_ENC).is_err());
        assert!(encrypt(b"x", None, &key.public_jwks_json, "RSA1_5", JWE_ENC).is_err());
        assert!(
            encrypt(
                b"x",
                None,
                &key.public_jwks_json,
                "ECDH-ES",
                "A128CBC-HS256"
            )
            .is_err()
        );
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // The RSA example key of RFC 7638 §3.1.
        let jwk = Jwk::from_bytes(br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
