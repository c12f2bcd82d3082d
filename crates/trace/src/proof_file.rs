//! The proof file of a case, and its offline verification: what a judge or an auditor checks
//! on a machine of their own with nothing but the file and the log's public verifier key
//! (C2SP vkey). No I/O.
//!
//! Format `relais-proof-file/1` (JSON):
//!
//! ```json
//! {
//!   "format": "relais-proof-file/1",
//!   "origin": "relais.example.gouv.fr/trace",
//!   "case": "TICKET-42",
//!   "exported_at": "2026-12-03T14:00:00Z",
//!   "selection": "account_id=… from … to …",
//!   "truncated": false,
//!   "checkpoint": "<C2SP signed note: origin, size, base64 root, blank line, signature,
//!                  then the witnesses' cosignature lines>",
//!   "records": [
//!     { "leaf_index": 7, "body": "<the record's JSON exactly as stored>",
//!       "proof": ["<base64 SHA-256>", "…"] }
//!   ],
//!   "consistency": { "checkpoint": "<a newer signed note>", "proof": ["<base64>", "…"] }
//! }
//! ```
//!
//! `leaf_index` is the record's place in the log (its `seq` minus one); its leaf hash is
//! RFC 6962's `SHA-256(0x00 || body)`; `proof` is its audit path (RFC 6962 §2.1.1) in the
//! tree that `checkpoint` signs. `consistency` (optional) proves that a newer checkpoint's
//! tree extends that one (RFC 6962 §2.1.2). Records are in increasing `leaf_index` order.
//! The checkpoint's signature lines after the log's are witnesses' cosignatures (C2SP
//! tlog-cosignature, cosignature/v1): `verify_witnessed` requires those of given witnesses.
//! `case`, `exported_at`, `selection` and `truncated` describe the export and are not
//! proven by the log (the export's own record in `records` is).

use base64::prelude::{BASE64_STANDARD, Engine};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Opened};
use crate::cosignature::WitnessVerifier;
use crate::tree::{self, Hash};

/// The format this code writes and reads.
pub const FORMAT: &str = "relais-proof-file/1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProofFile {
    pub format: String,
    pub origin: String,
    pub case: String,
    #[serde(default)]
    pub exported_at: String,
    #[serde(default)]
    pub selection: String,
    /// The export reached its bound: more records match than the file holds.
    #[serde(default)]
    pub truncated: bool,
    pub checkpoint: String,
    pub records: Vec<ProvenRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProvenRecord {
    pub leaf_index: u64,
    pub body: String,
    pub proof: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    pub checkpoint: String,
    pub proof: Vec<String>,
}

/// Hashes as the file writes them.
pub fn encode(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect()
}

fn decode(hashes: &[String]) -> Option<Vec<Hash>> {
    hashes
        .iter()
        .map(|h| tree::to_hash(&BASE64_STANDARD.decode(h).ok()?))
        .collect()
}

/// Why a proof file does not verify: the first thing found wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("not a proof file: {0}")]
    Format(String),
    #[error("the verifier key is of the log {key}, and the file is of the log {file}")]
    OtherLog { key: String, file: String },
    #[error("the checkpoint: {0}")]
    Checkpoint(String),
    #[error("record {position} of the file (leaf {leaf_index}): {reason}")]
    Record {
        /// 1-based, in the file's order.
        position: usize,
        leaf_index: u64,
        reason: String,
    },
    #[error("the newer checkpoint: {0}")]
    Consistency(String),
    #[error("the checkpoint's cosignatures: {0}")]
    Cosignature(String),
}

/// What a verified file proves.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub origin: String,
    pub case: String,
    pub records: usize,
    pub checkpoint: Opened,
    /// The newer checkpoint the file's extends, when it has one.
    pub extended_to: Option<Opened>,
    /// The witnesses required whose cosignature of the checkpoint verified (their names),
    /// each with the time it cosigned (seconds since the epoch).
    pub cosigned_by: Vec<(String, u64)>,
}

/// Reads a proof file's JSON.
pub fn parse(text: &str) -> Result<ProofFile, Failure> {
    let file: ProofFile = serde_json::from_str(text).map_err(|e| Failure::Format(e.to_string()))?;
    if file.format != FORMAT {
        return Err(Failure::Format(format!(
            "format {:?}, this verifier reads {FORMAT:?}",
            file.format
        )));
    }
    Ok(file)
}

/// The size a checkpoint's text says (its second line), unverified: what to ask a
/// consistency proof from.
pub fn checkpoint_size(text: &str) -> Result<u64, Failure> {
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| Failure::Checkpoint("no size on its second line".into()))
}

/// The name of a C2SP verifier key (`<name>+<id>+<key>`).
fn key_name(vkey: &str) -> &str {
    vkey.trim().split('+').next().unwrap_or_default()
}

fn open(text: &str, vkey: &str, origin: &str) -> Result<Opened, String> {
    checkpoint::open(text, vkey.trim(), origin).map_err(|e| match e {
        checkpoint::CheckpointError::Signature(why) => {
            format!("its signature is not the verifier key's ({why})")
        }
        other => other.to_string(),
    })
}

/// Verifies `file` with the log's verifier key `vkey`: the checkpoint's signature and origin,
/// each record's leaf hash and inclusion proof against the checkpoint's root and size, the
/// consistency proof to a newer checkpoint when there is one.
pub fn verify(file: &ProofFile, vkey: &str) -> Result<Verified, Failure> {
    let named = key_name(vkey);
    if named != file.origin {
        return Err(Failure::OtherLog {
            key: named.to_string(),
            file: file.origin.clone(),
        });
    }
    let signed = open(&file.checkpoint, vkey, &file.origin).map_err(Failure::Checkpoint)?;
    let mut previous: Option<u64> = None;
    for (i, r) in file.records.iter().enumerate() {
        let fail = |reason: String| Failure::Record {
            position: i + 1,
            leaf_index: r.leaf_index,
            reason,
        };
        if previous.is_some_and(|p| r.leaf_index <= p) {
            return Err(fail(
                "out of order or repeated: leaf indexes must increase".into(),
            ));
        }
        previous = Some(r.leaf_index);
        if r.leaf_index >= signed.size {
            return Err(fail(format!(
                "not in the checkpoint's tree of {} records",
                signed.size
            )));
        }
        let proof = decode(&r.proof)
            .ok_or_else(|| fail("a proof hash is not 32 bytes of base64".into()))?;
        let expected = audit_path_len(r.leaf_index, signed.size);
        if proof.len() != expected {
            return Err(fail(format!(
                "the proof has {} hashes, and a leaf {} of a tree of {} records needs {expected} \
                 (truncated or of another tree)",
                proof.len(),
                r.leaf_index,
                signed.size
            )));
        }
        let leaf = tree::leaf_hash(&r.body);
        tree::check_inclusion(&proof, signed.size, signed.root, r.leaf_index, leaf).map_err(
            |_| {
                fail(
                    "the body at this index does not lead to the checkpoint's root (the body \
                     was altered, the index is wrong, or the proof is of another record)"
                        .into(),
                )
            },
        )?;
    }
    let extended_to = match &file.consistency {
        None => None,
        Some(c) => {
            let newer = open(&c.checkpoint, vkey, &file.origin).map_err(Failure::Consistency)?;
            let proof = decode(&c.proof).ok_or_else(|| {
                Failure::Consistency("a proof hash is not 32 bytes of base64".into())
            })?;
            if newer.size < signed.size {
                return Err(Failure::Consistency(format!(
                    "it holds {} records, fewer than the file's checkpoint ({})",
                    newer.size, signed.size
                )));
            }
            let consistent = if newer.size == signed.size {
                newer.root == signed.root && proof.is_empty()
            } else {
                signed.size > 0
                    && tree::check_consistency(
                        &proof,
                        newer.size,
                        newer.root,
                        signed.size,
                        signed.root,
                    )
                    .is_ok()
            };
            if !consistent {
                return Err(Failure::Consistency(format!(
                    "the proof does not show that its tree of {} records extends the file's \
                     of {}",
                    newer.size, signed.size
                )));
            }
            Some(newer)
        }
    };
    Ok(Verified {
        origin: file.origin.clone(),
        case: file.case.clone(),
        records: file.records.len(),
        checkpoint: signed,
        extended_to,
        cosigned_by: Vec::new(),
    })
}

/// Verifies `file` as [`verify`] does, and requires a valid cosignature of its checkpoint
/// (C2SP tlog-cosignature) by each witness of `witness_keys` (cosignature/v1 verifier keys):
/// a missing and a forged cosignature are named.
pub fn verify_witnessed(
    file: &ProofFile,
    vkey: &str,
    witness_keys: &[String],
) -> Result<Verified, Failure> {
    let mut verified = verify(file, vkey)?;
    for key in witness_keys {
        let witness = WitnessVerifier::parse(key)
            .map_err(|e| Failure::Cosignature(format!("the witness key {key:?}: {e}")))?;
        let at = witness
            .check(&file.checkpoint)
            .map_err(|e| Failure::Cosignature(e.to_string()))?;
        verified.cosigned_by.push((witness.name().to_string(), at));
    }
    Ok(verified)
}

/// The length of RFC 6962's audit path of leaf `index` in a tree of `size` (> index):
/// a proof of another length is refused before it is checked, and named as such.
pub fn audit_path_len(index: u64, size: u64) -> usize {
    let (mut index, mut size, mut n) = (index, size, 0);
    // Walk down the tree: at each split the leaf's side is kept, the other costs one hash.
    while size > 1 {
        let k = 1u64 << (63 - (size - 1).leading_zeros());
        if index < k {
            size = k;
        } else {
            index -= k;
            size -= k;
        }
        n += 1;
    }
    n
}
