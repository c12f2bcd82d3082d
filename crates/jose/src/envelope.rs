//! Envelope encryption of the hub's keys at rest: each key is sealed under a fresh
//! 256-bit data key (XChaCha20-Poly1305, random 192-bit nonce), and the data key is
//! wrapped by a key-encryption key (KEK) through [`KeyWrap`]. The key's id and algorithm
//! are bound as associated data to both layers, so a sealed key moved to another row, or
//! altered, does not open. The KEK here is local ([`LocalKek`], from configuration); a
//! KMS or an HSM can take its place by implementing [`KeyWrap`] (the data key then never
//! leaves the caller in clear, only the wrapped one is stored).
//!
//! Layout of an envelope, as text: `v1.<kek id>.<wrapped data key>.<nonce ‖ ciphertext ‖
//! tag>`, the last two base64url without padding.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const VERSION: &str = "v1";
const NONCE: usize = 24;
const DATA_KEY: usize = 32;

/// Why a key could not be sealed or opened. Every one of them means the key is unusable:
/// the service refuses to start rather than make another one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an envelope of this version")]
    Malformed,
    #[error("sealed under another key-encryption key ({0}) than the one configured")]
    OtherKek(String),
    #[error("altered, or sealed for another key id or algorithm")]
    Forged,
    #[error("a key-encryption key must carry at least 256 bits (32 bytes)")]
    WeakKek,
    #[error("the key-encryption key could not wrap or unwrap: {0}")]
    Wrap(String),
}

/// What wraps and unwraps data keys: the local KEK, or later a KMS or an HSM. `aad` is
/// bound to the wrapped key; unwrapping with another `aad` must fail.
pub trait KeyWrap: Send + Sync {
    /// Names the key-encryption key, stored in each envelope: a key sealed under another
    /// KEK is told apart from an altered one, and a new KEK can be rolled in.
    fn kek_id(&self) -> &str;
    fn wrap(&self, data_key: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError>;
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError>;
}

/// A KEK held by the hub itself (from a file or the environment).
pub struct LocalKek {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKek({})", self.id)
    }
}

impl LocalKek {
    /// From its configured text (at least 32 bytes; high entropy is the operator's part:
    /// `openssl rand -base64 32`), stretched to a 256-bit key with SHA-256 under a label.
    pub fn new(secret: &str) -> Result<LocalKek, EnvelopeError> {
        if secret.len() < 32 {
            return Err(EnvelopeError::WeakKek);
        }
        let key = Sha256::new()
            .chain_update(b"relais key-encryption key v1\0")
            .chain_update(secret.as_bytes())
            .finalize();
        // A public name: a hash of the derived key under another label reveals nothing of it.
        let id = Sha256::new()
            .chain_update(b"relais key-encryption key id\0")
            .chain_update(key)
            .finalize();
        Ok(LocalKek {
            id: format!("local-{}", URL_SAFE_NO_PAD.encode(&id[..9])),
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }
}

impl KeyWrap for LocalKek {
    fn kek_id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, data_key: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        encrypt(&self.cipher, data_key, aad)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        decrypt(&self.cipher, wrapped, aad)
    }
}

/// The key-encryption keys of a service: the one that seals, and others that only open
/// (while the KEK is changed).
pub struct Keks {
    pub current: Arc<dyn KeyWrap>,
    pub others: Vec<Arc<dyn KeyWrap>>,
}

impl std::fmt::Debug for Keks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let others: Vec<&str> = self.others.iter().map(|k| k.kek_id()).collect();
        write!(f, "Keks({}, others {others:?})", self.current.kek_id())
    }
}

impl Keks {
    /// Local KEKs from their configured texts (each as [`LocalKek::new`] takes it).
    pub fn local<'a>(
        current: &str,
        others: impl IntoIterator<Item = &'a str>,
    ) -> Result<Keks, EnvelopeError> {
        Ok(Keks {
            current: Arc::new(LocalKek::new(current)?),
            others: others
                .into_iter()
                .map(|k| LocalKek::new(k).map(|k| Arc::new(k) as Arc<dyn KeyWrap>))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The KEK an envelope names (the current one when none matches, so that the error
    /// says it is under another KEK).
    pub fn for_envelope(&self, sealed: &str) -> &dyn KeyWrap {
        let id = kek_id_of(sealed);
        self.others
            .iter()
            .find(|k| Some(k.kek_id()) == id)
            .map_or(self.current.as_ref(), |k| k.as_ref())
    }
}

/// Seals `plain` (a private key) under a fresh data key wrapped by `kek`; `context`
/// (the key's id and algorithm) must be given again to open it.
pub fn seal(kek: &dyn KeyWrap, plain: &[u8], context: &[&str]) -> Result<String, EnvelopeError> {
    let aad = associated(kek.kek_id(), context);
    let mut data_key = [0u8; DATA_KEY];
    rand::rngs::OsRng.fill_bytes(&mut data_key);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&data_key));
    let sealed = encrypt(&cipher, plain, &aad);
    let wrapped = kek.wrap(&data_key, &aad);
    data_key.fill(0);
    Ok(format!(
        "{VERSION}.{}.{}.{}",
        kek.kek_id(),
        URL_SAFE_NO_PAD.encode(wrapped?),
        URL_SAFE_NO_PAD.encode(sealed?)
    ))
}

/// The id of the key-encryption key an envelope is sealed under, if it is one.
pub fn kek_id_of(envelope: &str) -> Option<&str> {
    let mut parts = envelope.split('.');
    match (parts.next(), parts.next()) {
        (Some(VERSION), Some(id)) => Some(id),
        _ => None,
    }
}

/// Opens what [`seal`] made with the same `context`.
pub fn open(kek: &dyn KeyWrap, envelope: &str, context: &[&str]) -> Result<Vec<u8>, EnvelopeError> {
    let mut parts = envelope.split('.');
    let (Some(VERSION), Some(kek_id), Some(wrapped), Some(sealed), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(EnvelopeError::Malformed);
    };
    if kek_id != kek.kek_id() {
        return Err(EnvelopeError::OtherKek(kek_id.to_string()));
    }
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .map_err(|_| EnvelopeError::Malformed)
    };
    let aad = associated(kek_id, context);
    let mut data_key = kek.unwrap(&decode(wrapped)?, &aad)?;
    if data_key.len() != DATA_KEY {
        data_key.fill(0);
        return Err(EnvelopeError::Forged);
    }
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&data_key));
    data_key.fill(0);
    decrypt(&cipher, &decode(sealed)?, &aad)
}

fn encrypt(cipher: &XChaCha20Poly1305, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| EnvelopeError::Wrap("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn decrypt(
    cipher: &XChaCha20Poly1305,
    sealed: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < NONCE {
        return Err(EnvelopeError::Malformed);
    }
    let (nonce, body) = sealed.split_at(NONCE);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| EnvelopeError::Forged)
}

/// The version, the KEK's id and each context item, length-prefixed so that no two
/// contexts read alike.
fn associated(kek_id: &str, context: &[&str]) -> Vec<u8> {
    let mut aad = Vec::new();
    for item in [VERSION, kek_id].iter().chain(context) {
        aad.extend_from_slice(&(item.len() as u64).to_be_bytes());
        aad.extend_from_slice(item.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEK: &str = "a-key-encryption-key-of-at-least-32-bytes";
    const CONTEXT: &[&str] = &["kid-1", "ES256"];

    #[test]
    fn a_sealed_key_opens_with_its_kek_and_context_only() {
        let kek = LocalKek::new(KEK).unwrap();
        let sealed = seal(&kek, b"private jwk", CONTEXT).unwrap();
        assert!(!sealed.contains("private"), "{sealed}");
        assert_eq!(kek_id_of(&sealed), Some(kek.kek_id()));
        assert_eq!(open(&kek, &sealed, CONTEXT).unwrap(), b"private jwk");
        // A fresh data key and nonce each time: two envelopes of one key cannot be linked.
        assert_ne!(sealed, seal(&kek, b"private jwk", CONTEXT).unwrap());
        assert_eq!(
            open(&kek, &sealed, &["kid-2", "ES256"]),
            Err(EnvelopeError::Forged)
        );
        assert_eq!(
            open(&kek, &sealed, &["kid-1", "RS256"]),
            Err(EnvelopeError::Forged)
        );
        let other = LocalKek::new("another-key-encryption-key-of-32-bytes-at-least").unwrap();
        assert!(matches!(
            open(&other, &sealed, CONTEXT),
            Err(EnvelopeError::OtherKek(_))
        ));
    }

    #[test]
    fn keks_open_with_the_kek_an_envelope_names_and_seal_with_the_current_one() {
        const OLD: &str = "an-old-key-encryption-key-of-at-least-32-bytes";
        let old = Keks::local(OLD, []).unwrap();
        let sealed = seal(old.current.as_ref(), b"secret", CONTEXT).unwrap();
        let changing = Keks::local(KEK, [OLD]).unwrap();
        let kek = changing.for_envelope(&sealed);
        assert_eq!(kek.kek_id(), old.current.kek_id());
        assert_eq!(open(kek, &sealed, CONTEXT).unwrap(), b"secret");
        // An envelope under a KEK not configured is tried with the current one: refused
        // as under another KEK.
        let without = Keks::local(KEK, []).unwrap();
        assert!(matches!(
            open(without.for_envelope(&sealed), &sealed, CONTEXT),
            Err(EnvelopeError::OtherKek(_))
        ));
        assert_eq!(
            Keks::local(KEK, ["short"]).err(),
            Some(EnvelopeError::WeakKek)
        );
    }

    #[test]
    fn an_altered_envelope_or_a_kek_claiming_anothers_id_is_refused() {
        let kek = LocalKek::new(KEK).unwrap();
        let sealed = seal(&kek, b"private jwk", CONTEXT).unwrap();
        let mut parts: Vec<String> = sealed.split('.').map(str::to_string).collect();
        let mut body = URL_SAFE_NO_PAD.decode(&parts[3]).unwrap();
        let last = body.len() - 1;
        body[last] ^= 1;
        parts[3] = URL_SAFE_NO_PAD.encode(&body);
        assert_eq!(
            open(&kek, &parts.join("."), CONTEXT),
            Err(EnvelopeError::Forged)
        );
        // A wrong KEK that names itself as the right one still opens nothing.
        struct Liar(LocalKek, String);
        impl KeyWrap for Liar {
            fn kek_id(&self) -> &str {
                &self.1
            }
            fn wrap(&self, k: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
                self.0.wrap(k, aad)
            }
            fn unwrap(&self, w: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
                self.0.unwrap(w, aad)
            }
        }
        let liar = Liar(
            LocalKek::new("another-key-encryption-key-of-32-bytes-at-least").unwrap(),
            kek.kek_id().to_string(),
        );
        assert_eq!(open(&liar, &sealed, CONTEXT), Err(EnvelopeError::Forged));
        assert_eq!(open(&kek, "v1.x.y", CONTEXT), Err(EnvelopeError::Malformed));
        assert_eq!(
            open(&kek, "{\"d\":1}", CONTEXT),
            Err(EnvelopeError::Malformed)
        );
        assert_eq!(LocalKek::new("short").err(), Some(EnvelopeError::WeakKek));
    }
}
