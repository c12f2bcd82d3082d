//! Witness cosignatures (C2SP `tlog-cosignature`, `cosignature/v1`): a timestamped Ed25519
//! note signature, type 0x04, over `cosignature/v1\ntime <t>\n` followed by the checkpoint's
//! body. `signed_note` 0.2 knows only type 0x01 signatures: the 0x04 signer and verifier are
//! here, plugged into its `Signer` and `Verifier` traits. Keys are in the note formats: the
//! private key `PRIVATE+KEY+<name>+<id>+base64(0x04 || seed)`, the verifier key
//! `<name>+<id>+base64(0x04 || public key)`. No I/O: the time is given.

use base64::prelude::{BASE64_STANDARD, Engine};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use relais_config::Secret;
use signed_note::{Note, NoteError, VerifierList};

/// The signature type of an Ed25519 cosignature.
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Timestamp (8 bytes) and Ed25519 signature (64 bytes).
const SIGNATURE_LEN: usize = 72;

/// Why a witness key or a cosignature was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CosignatureError {
    #[error("not a cosignature/v1 private key (PRIVATE+KEY+<name>+<id>+<base64 0x04||seed>)")]
    PrivateKey,
    #[error("not a cosignature/v1 verifier key (<name>+<id>+<base64 0x04||key>): {0}")]
    VerifierKey(String),
    #[error("{0:?} is not a key name (no spaces, no '+')")]
    Name(String),
    #[error("no cosignature of the witness {0}")]
    Missing(String),
    #[error(
        "the cosignature of the witness {0} does not verify (forged, or of another checkpoint)"
    )]
    Forged(String),
    #[error("not a signed note: {0}")]
    Malformed(String),
}

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let encoded = [&[ALG_COSIGNATURE_V1], public.as_bytes().as_slice()].concat();
    signed_note::key_id(name, &encoded)
}

/// The message a cosignature signs: the header, the time, the checkpoint's body.
fn message(timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

/// A witness's key: what it cosigns with.
#[derive(Clone)]
pub struct WitnessKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessKey")
            .field("verifier_key", &self.verifier_key())
            .finish_non_exhaustive()
    }
}

/// A new witness key named `name` (e.g. `witness.example.org/w1`): its private key (to keep
/// secret) and its verifier key (to give the logs and the verifiers).
pub fn generate_key(name: &str) -> Result<(Secret, String), CosignatureError> {
    if !signed_note::is_key_name_valid(name) {
        return Err(CosignatureError::Name(name.to_string()));
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let witness = WitnessKey {
        name: name.to_string(),
        key,
    };
    Ok((Secret::new(witness.private_text()), witness.verifier_key()))
}

impl WitnessKey {
    pub fn parse(private: &str) -> Result<Self, CosignatureError> {
        let mut parts = private.trim().splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(encoded)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CosignatureError::PrivateKey);
        };
        let bytes = BASE64_STANDARD
            .decode(encoded)
            .map_err(|_| CosignatureError::PrivateKey)?;
        let (Some(&ALG_COSIGNATURE_V1), Some(seed)) = (bytes.first(), bytes.get(1..)) else {
            return Err(CosignatureError::PrivateKey);
        };
        let key = SigningKey::try_from(seed).map_err(|_| CosignatureError::PrivateKey)?;
        if !signed_note::is_key_name_valid(name)
            || u32::from_str_radix(id, 16).ok() != Some(key_id(name, &key.verifying_key()))
        {
            return Err(CosignatureError::PrivateKey);
        }
        Ok(WitnessKey {
            name: name.to_string(),
            key,
        })
    }

    fn private_text(&self) -> String {
        let private = [&[ALG_COSIGNATURE_V1], self.key.to_bytes().as_slice()].concat();
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            key_id(&self.name, &self.key.verifying_key()),
            BASE64_STANDARD.encode(private)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier_key(&self) -> String {
        let public = self.key.verifying_key();
        let encoded = [&[ALG_COSIGNATURE_V1], public.as_bytes().as_slice()].concat();
        format!(
            "{}+{:08x}+{}",
            self.name,
            key_id(&self.name, &public),
            BASE64_STANDARD.encode(encoded)
        )
    }

    /// The cosignature line (`— <name> <base64>\n`) of the note `checkpoint` at `timestamp`
    /// (seconds since the epoch). The note's own signatures are not checked here.
    pub fn cosign(&self, checkpoint: &str, timestamp: u64) -> Result<String, CosignatureError> {
        let note = Note::from_bytes(checkpoint.as_bytes())
            .map_err(|e| CosignatureError::Malformed(e.to_string()))?;
        let signature = self.key.sign(&message(timestamp, note.text()));
        let mut sig = timestamp.to_be_bytes().to_vec();
        sig.extend_from_slice(&signature.to_bytes());
        let line = signed_note::Signature::new(
            self.name.clone(),
            key_id(&self.name, &self.key.verifying_key()),
            sig,
        )
        .map_err(|e| CosignatureError::Malformed(e.to_string()))?;
        String::from_utf8(line.to_bytes()).map_err(|e| CosignatureError::Malformed(e.to_string()))
    }
}

/// A witness's public key: what its cosignatures are checked with.
#[derive(Clone, Debug)]
pub struct WitnessVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
    text: String,
}

impl WitnessVerifier {
    pub fn parse(vkey: &str) -> Result<Self, CosignatureError> {
        let vkey = vkey.trim();
        let bad = |why: &str| CosignatureError::VerifierKey(why.to_string());
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(encoded)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("three parts separated by '+' expected"));
        };
        if !signed_note::is_key_name_valid(name) {
            return Err(bad("the name has a space or a '+'"));
        }
        let bytes = BASE64_STANDARD
            .decode(encoded)
            .map_err(|_| bad("the key is not base64"))?;
        let (Some(&ALG_COSIGNATURE_V1), Some(public)) = (bytes.first(), bytes.get(1..)) else {
            return Err(bad("not a type 0x04 (cosignature/v1) key"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not an Ed25519 key"))?;
        let expected = key_id(name, &key);
        if id.len() != 8 || u32::from_str_radix(id, 16).ok() != Some(expected) {
            return Err(bad("the key ID is not the key's"));
        }
        Ok(WitnessVerifier {
            name: name.to_string(),
            id: expected,
            key,
            text: vkey.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key's text, as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The time (seconds since the epoch) of this witness's valid cosignature of the note
    /// `checkpoint`: missing and forged cosignatures are told apart.
    pub fn check(&self, checkpoint: &str) -> Result<u64, CosignatureError> {
        let note = Note::from_bytes(checkpoint.as_bytes())
            .map_err(|e| CosignatureError::Malformed(e.to_string()))?;
        let known = VerifierList::new(vec![Box::new(self.clone())]);
        match note.verify(&known) {
            Ok((verified, _)) => verified
                .first()
                .and_then(|s| s.signature().get(..8))
                .and_then(|t| <[u8; 8]>::try_from(t).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| CosignatureError::Forged(self.name.clone())),
            Err(NoteError::UnverifiedNote) => Err(CosignatureError::Missing(self.name.clone())),
            Err(_) => Err(CosignatureError::Forged(self.name.clone())),
        }
    }
}

impl signed_note::Verifier for WitnessVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != SIGNATURE_LEN {
            return false;
        }
        let (time, signature) = sig.split_at(8);
        let Ok(time) = <[u8; 8]>::try_from(time) else {
            return false;
        };
        let timestamp = u64::from_be_bytes(time);
        // The format's bound: a larger time is not a cosignature.
        if timestamp > i64::MAX as u64 {
            return false;
        }
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key
            .verify(&message(timestamp, msg), &signature)
            .is_ok()
    }
}

/// The note `checkpoint` with the signature lines `lines` appended (a note's signatures
/// are its last lines).
pub fn append(checkpoint: &str, lines: &[String]) -> String {
    let mut note = checkpoint.to_string();
    for line in lines {
        if !note.contains(line.as_str()) {
            note.push_str(line);
        }
    }
    note
}
