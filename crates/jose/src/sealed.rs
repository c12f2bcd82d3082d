//! Sealed boxes for state the hub hands to browsers instead of storing it (a sign-in's
//! flow, an IdP round trip): XChaCha20-Poly1305 with a random 192-bit nonce (no birthday
//! limit per key, unlike 96-bit GCM nonces), the purpose and the expiry bound as
//! associated data, several keys for rotation with overlap.
//!
//! Layout, base64url without padding: `version (1) ‖ kid (4) ‖ expires_at (8, unix
//! seconds, big endian) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 8;
const NONCE: usize = 24;
const TAG: usize = 16;

/// Why a sealed box was not opened. Callers answer each the same way to the outside
/// (the state is unusable); the words are for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed box")]
    Malformed,
    #[error("sealed by a key this hub no longer holds")]
    UnknownKey,
    #[error("altered, or sealed for another purpose")]
    Forged,
    #[error("expired")]
    Expired,
    #[error("a sealing key must have at least 32 characters")]
    WeakKey,
    #[error("no sealing key")]
    NoKey,
}

struct SealKey {
    kid: [u8; 4],
    cipher: XChaCha20Poly1305,
}

/// The keys of one service: the first seals, every one opens (so a key can be added
/// everywhere before it is put first, and removed once what it sealed has expired).
pub struct Sealer {
    keys: Vec<SealKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

impl Sealer {
    /// Keys from configured secrets (at least 32 characters each, high entropy); each is
    /// stretched to a 256-bit key with SHA-256 under a label, so any text form works.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Sealer, SealError> {
        if secrets.is_empty() {
            return Err(SealError::NoKey);
        }
        let keys = secrets
            .iter()
            .map(|s| {
                let s = s.as_ref();
                if s.chars().count() < 32 {
                    return Err(SealError::WeakKey);
                }
                let key = Sha256::new()
                    .chain_update(b"relais sealed box key v1\0")
                    .chain_update(s.as_bytes())
                    .finalize();
                let id = Sha256::new()
                    .chain_update(b"relais sealed box kid\0")
                    .chain_update(key)
                    .finalize();
                let mut kid = [0u8; 4];
                kid.copy_from_slice(&id[..4]);
                Ok(SealKey {
                    kid,
                    cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sealer { keys })
    }

    /// Seals `plain` for `purpose` until `expires_at` (unix seconds).
    pub fn seal(&self, purpose: &str, plain: &[u8], expires_at: i64) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKey)?;
        let mut out = Vec::with_capacity(HEADER + NONCE + plain.len() + TAG);
        out.push(VERSION);
        out.extend_from_slice(&key.kid);
        out.extend_from_slice(&expires_at.to_be_bytes());
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated(purpose, &out);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Malformed)?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a box sealed for `purpose`, refusing it once `now` (unix seconds) reaches
    /// its expiry.
    pub fn open(&self, purpose: &str, sealed: &str, now: i64) -> Result<Vec<u8>, SealError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.as_bytes())
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < HEADER + NONCE + TAG || raw[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let (header, rest) = raw.split_at(HEADER);
        let (nonce, body) = rest.split_at(NONCE);
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == header[1..5])
            .ok_or(SealError::UnknownKey)?;
        let aad = associated(purpose, header);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Forged)?;
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&header[5..13]);
        if i64::from_be_bytes(exp) <= now {
            return Err(SealError::Expired);
        }
        Ok(plain)
    }
}

/// The purpose (length-prefixed, so no two purposes and headers read alike) and header.
fn associated(purpose: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + purpose.len() + header.len());
    aad.extend_from_slice(&(purpose.len() as u64).to_be_bytes());
    aad.extend_from_slice(purpose.as_bytes());
    aad.extend_from_slice(header);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "first-sealing-key-of-at-least-32-chars";
    const B: &str = "second-sealing-key-of-at-least-32-chars";

    #[test]
    fn a_box_opens_for_its_purpose_until_it_expires() {
        let s = Sealer::new(&[A]).unwrap();
        let boxed = s.seal("flow", b"hello", 1_000).unwrap();
        assert_eq!(s.open("flow", &boxed, 999).unwrap(), b"hello");
        assert_eq!(s.open("flow", &boxed, 1_000), Err(SealError::Expired));
        assert_eq!(s.open("round_trip", &boxed, 999), Err(SealError::Forged));
        // Same plain text, another nonce: boxes cannot be linked.
        assert_ne!(boxed, s.seal("flow", b"hello", 1_000).unwrap());
    }

    #[test]
    fn an_altered_box_or_a_later_expiry_is_refused() {
        let s = Sealer::new(&[A]).unwrap();
        let boxed = s.seal("flow", b"hello", 1_000).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&boxed).unwrap();
        // Pushing the expiry forward must break the tag.
        raw[12] ^= 0x40;
        assert_eq!(
            s.open("flow", &URL_SAFE_NO_PAD.encode(&raw), 999),
            Err(SealError::Forged)
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&boxed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            s.open("flow", &URL_SAFE_NO_PAD.encode(&raw), 999),
            Err(SealError::Forged)
        );
        assert_eq!(s.open("flow", "not base64 !", 0), Err(SealError::Malformed));
        assert_eq!(s.open("flow", "AAAA", 0), Err(SealError::Malformed));
    }

    #[test]
    fn keys_rotate_with_overlap() {
        let old = Sealer::new(&[A]).unwrap();
        let both = Sealer::new(&[B, A]).unwrap();
        let new = Sealer::new(&[B]).unwrap();
        let by_old = old.seal("flow", b"x", 10).unwrap();
        let by_both = both.seal("flow", b"y", 10).unwrap();
        assert_eq!(both.open("flow", &by_old, 0).unwrap(), b"x");
        assert_eq!(new.open("flow", &by_both, 0).unwrap(), b"y");
        assert_eq!(new.open("flow", &by_old, 0), Err(SealError::UnknownKey));
        assert_eq!(Sealer::new(&["short"]).err(), Some(SealError::WeakKey));
        assert_eq!(Sealer::new::<&str>(&[]).err(), Some(SealError::NoKey));
    }
}
