//! Signed checkpoints: the log's origin, size and root hash (C2SP `tlog-checkpoint`, through
//! `tlog_tiles`) as a C2SP `signed-note` with an Ed25519 signature of the trace service's own
//! key (through `signed_note`). Keys are in the note formats: the private key
//! `PRIVATE+KEY+<name>+<id>+<key>`, the public verifier key `<name>+<id>+<key>`; the key's
//! name is the log's origin. No I/O.

use base64::prelude::{BASE64_STANDARD, Engine};
use relais_config::Secret;
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::Checkpoint;

use crate::tree::Hash;

/// Why a key or a checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not an Ed25519 signed-note private key (PRIVATE+KEY+<name>+<id>+<key>)")]
    KeyFormat,
    #[error(
        "the key is named {key}, and a checkpoint's key must be named after its log ({origin})"
    )]
    KeyName { key: String, origin: String },
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Signature(String),
    #[error("the checkpoint is of the log {found}, not of {expected}")]
    Origin { found: String, expected: String },
}

/// What a verified checkpoint says.
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// The Ed25519 key the log signs its checkpoints with.
#[derive(Clone)]
pub struct CheckpointKey {
    origin: String,
    signer: StandardSigner,
    verifier_key: String,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

/// The development key's seed: public, so a checkpoint it signs proves nothing. Taken only
/// where the hub runs on loopback (see `TraceConfig::validate`).
const DEVELOPMENT_SEED: [u8; 32] = *b"relais development checkpoints!!";

const ALG_ED25519: u8 = 1;

fn private_key_text(name: &str, key: &ed25519_dalek::SigningKey) -> String {
    let public = [&[ALG_ED25519], key.verifying_key().to_bytes().as_slice()].concat();
    let private = [&[ALG_ED25519], key.to_bytes().as_slice()].concat();
    format!(
        "PRIVATE+KEY+{name}+{:08x}+{}",
        signed_note::key_id(name, &public),
        BASE64_STANDARD.encode(private)
    )
}

/// A new key for the log `origin`: its private key (to keep secret) and its verifier key
/// (to publish).
pub fn generate_key(origin: &str) -> Result<(Secret, String), CheckpointError> {
    if !signed_note::is_key_name_valid(origin) {
        return Err(CheckpointError::KeyName {
            key: origin.to_string(),
            origin: origin.to_string(),
        });
    }
    let (private, public) = signed_note::generate_key(&mut rand::rngs::OsRng, origin);
    Ok((Secret::new(private), public))
}

impl CheckpointKey {
    /// A private key in the note format, which must be named `origin`.
    pub fn parse(private: &str, origin: &str) -> Result<Self, CheckpointError> {
        let private = private.trim();
        let signer = StandardSigner::new(private).map_err(|_| CheckpointError::KeyFormat)?;
        let name = signed_note::Signer::name(&signer).to_string();
        if name != origin {
            return Err(CheckpointError::KeyName {
                key: name,
                origin: origin.to_string(),
            });
        }
        // The signer keeps its public half to itself: derived again from the private key.
        // PRIVATE+KEY+<name>+<id>+<key>: the key is all after the fourth '+' (base64 has some).
        let encoded = private
            .splitn(5, '+')
            .nth(4)
            .ok_or(CheckpointError::KeyFormat)?;
        let bytes = BASE64_STANDARD
            .decode(encoded)
            .map_err(|_| CheckpointError::KeyFormat)?;
        let seed = bytes.get(1..).ok_or(CheckpointError::KeyFormat)?;
        let key =
            ed25519_dalek::SigningKey::try_from(seed).map_err(|_| CheckpointError::KeyFormat)?;
        Ok(CheckpointKey {
            origin: origin.to_string(),
            signer,
            verifier_key: signed_note::new_ed25519_verifier_key(origin, &key.verifying_key()),
        })
    }

    /// The development key of the log `origin` (its seed is public).
    pub fn development(origin: &str) -> Result<Self, CheckpointError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(CheckpointError::KeyFormat);
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&DEVELOPMENT_SEED);
        Self::parse(&private_key_text(origin, &key), origin)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The public key, as verifiers of the log's checkpoints pin it.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The signed checkpoint of the tree of `size` records and `root`.
    pub fn sign(&self, size: u64, root: Hash) -> Result<String, CheckpointError> {
        let body = Checkpoint::new(&self.origin, size, root, "")
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let mut note = Note::new(&body.to_bytes(), &[])
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))
    }

    /// A checkpoint of this log, its signature checked with this key.
    pub fn open(&self, text: &str) -> Result<Opened, CheckpointError> {
        open(text, &self.verifier_key, &self.origin)
    }
}

/// A checkpoint of the log `origin`, its signature checked with the verifier key `public`:
/// what anyone holding the log's public key can do.
pub fn open(text: &str, public: &str, origin: &str) -> Result<Opened, CheckpointError> {
    let verifier =
        StandardVerifier::new(public).map_err(|e| CheckpointError::Signature(e.to_string()))?;
    let note =
        Note::from_bytes(text.as_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| CheckpointError::Signature(e.to_string()))?;
    let body = Checkpoint::from_bytes(note.text())
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    if body.origin() != origin {
        return Err(CheckpointError::Origin {
            found: body.origin().to_string(),
            expected: origin.to_string(),
        });
    }
    Ok(Opened {
        origin: body.origin().to_string(),
        size: body.size(),
        root: *body.hash(),
    })
}
