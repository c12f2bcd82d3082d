//! A witness (C2SP `tlog-witness`): it keeps, per log origin, the last checkpoint it
//! cosigned, and cosigns a new checkpoint only when it is signed by the log's key and a
//! consistency proof shows that its tree extends that one. So a log cannot show two
//! different trees to the same witness, and a checkpoint it cosigned is anchored outside
//! the log's operator. This is the decision only, no I/O: the HTTP server and the state file
//! are in `witness_server.rs`.

use std::collections::BTreeMap;

use base64::prelude::{BASE64_STANDARD, Engine};
use serde::{Deserialize, Serialize};
use signed_note::{Note, NoteError, StandardVerifier, VerifierList};
use tlog_tiles::Checkpoint;

use crate::cosignature::{CosignatureError, WitnessKey};
use crate::tree::{self, EMPTY_HASH, Hash};

/// The protocol's bound on consistency proof lines.
const MAX_PROOF_LINES: usize = 63;

/// The last checkpoint cosigned for a log.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cosigned {
    pub size: u64,
    #[serde(with = "base64_hash")]
    pub root: Hash,
}

/// What the witness remembers: per origin, the last checkpoint it cosigned.
pub type State = BTreeMap<String, Cosigned>;

/// Why a checkpoint was not cosigned, each with the HTTP status the protocol gives it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the checkpoint is not signed by a key this witness trusts for {0}")]
    NotSigned(String),
    #[error("this witness does not witness the log {0}")]
    UnknownOrigin(String),
    /// The request's old size is not the last cosigned one (which is given), or the same size
    /// is asked with another root.
    #[error("this witness last cosigned a tree of {size} records: {why}")]
    Conflict { size: u64, why: String },
    #[error("the consistency proof does not show that the tree extends the one cosigned: {0}")]
    Inconsistent(String),
    /// The witness could not keep its state: it cosigns nothing it has not kept.
    #[error("the witness cannot keep its state now: {0}")]
    Unavailable(String),
}

impl Refusal {
    /// The HTTP status of the refusal (C2SP tlog-witness).
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::NotSigned(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::Inconsistent(_) => 422,
            Refusal::Unavailable(_) => 503,
        }
    }
}

/// An `add-checkpoint` request, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    /// The signed note, as sent.
    pub checkpoint: String,
}

/// Parses `old <size>\n<proof lines>\n\n<checkpoint>`.
pub fn parse_request(body: &[u8]) -> Result<AddCheckpoint, Refusal> {
    let bad = |why: &str| Refusal::BadRequest(why.to_string());
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .ok_or_else(|| bad("the first line must be `old <size>`"))?;
    // ASCII decimal, no leading zeroes (but `0`).
    if old.is_empty()
        || !old.bytes().all(|b| b.is_ascii_digit())
        || (old.len() > 1 && old.starts_with('0'))
    {
        return Err(bad("the old size is not a decimal without leading zeroes"));
    }
    let old: u64 = old.parse().map_err(|_| bad("the old size is too large"))?;
    let proof = lines
        .map(|l| {
            BASE64_STANDARD
                .decode(l)
                .ok()
                .and_then(|b| tree::to_hash(&b))
                .ok_or_else(|| bad("a consistency proof line is not a base64 SHA-256 hash"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if proof.len() > MAX_PROOF_LINES {
        return Err(bad("more than 63 consistency proof lines"));
    }
    Ok(AddCheckpoint {
        old,
        proof,
        checkpoint: checkpoint.to_string(),
    })
}

/// The body of an `add-checkpoint` request.
pub fn request_body(old: u64, proof: &[Hash], checkpoint: &str) -> String {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&BASE64_STANDARD.encode(h.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    body
}

/// What a witness accepted: the state to keep (before answering) and the cosignature to
/// answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub origin: String,
    pub cosigned: Cosigned,
    pub cosignature: String,
}

/// A witness: its key and the logs it witnesses (origin → the log's verifier key).
#[derive(Clone, Debug)]
pub struct Witness {
    key: WitnessKey,
    logs: BTreeMap<String, String>,
}

/// Why a witness cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the witness key: {0}")]
    Key(#[from] CosignatureError),
    #[error("the log key {key:?}: {why}")]
    LogKey { key: String, why: String },
    #[error("the log {0} is given twice")]
    Twice(String),
}

impl Witness {
    /// `logs`: the verifier keys of the logs witnessed, each named after its log's origin.
    pub fn new(key: WitnessKey, logs: &[String]) -> Result<Self, SetupError> {
        let mut map = BTreeMap::new();
        for vkey in logs {
            let vkey = vkey.trim();
            let verifier = StandardVerifier::new(vkey).map_err(|e| SetupError::LogKey {
                key: vkey.to_string(),
                why: e.to_string(),
            })?;
            let origin = signed_note::Verifier::name(&verifier).to_string();
            if map.insert(origin.clone(), vkey.to_string()).is_some() {
                return Err(SetupError::Twice(origin));
            }
        }
        Ok(Witness { key, logs: map })
    }

    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Decides on `request` given what was cosigned for its log (`last`, none yet: size 0),
    /// at `now` (seconds since the epoch). The caller keeps `Accepted::cosigned` before it
    /// answers, and decides and keeps under one lock per origin.
    pub fn add_checkpoint(
        &self,
        request: &AddCheckpoint,
        state: &State,
        now: u64,
    ) -> Result<Accepted, Refusal> {
        let malformed = |e: &dyn std::fmt::Display| Refusal::BadRequest(format!("{e}"));
        let note = Note::from_bytes(request.checkpoint.as_bytes()).map_err(|e| malformed(&e))?;
        let body = Checkpoint::from_bytes(note.text()).map_err(|e| malformed(&e))?;
        let origin = body.origin().to_string();
        let vkey = self
            .logs
            .get(&origin)
            .ok_or_else(|| Refusal::UnknownOrigin(origin.clone()))?;
        let verifier = StandardVerifier::new(vkey).map_err(|e| malformed(&e))?;
        // Signatures of unknown keys are ignored; one of the log's key must verify.
        match note.verify(&VerifierList::new(vec![Box::new(verifier)])) {
            Ok(_) => {}
            Err(NoteError::UnverifiedNote | NoteError::InvalidSignature { .. }) => {
                return Err(Refusal::NotSigned(origin));
            }
            Err(e) => return Err(malformed(&e)),
        }
        let (size, root) = (body.size(), *body.hash());
        if request.old > size {
            return Err(Refusal::BadRequest(format!(
                "the old size {} is larger than the checkpoint's {size}",
                request.old
            )));
        }
        let last = state.get(&origin).copied().unwrap_or(Cosigned {
            size: 0,
            root: EMPTY_HASH,
        });
        if request.old != last.size {
            return Err(Refusal::Conflict {
                size: last.size,
                why: format!("the request is from a tree of {} records", request.old),
            });
        }
        if size == last.size {
            if root != last.root {
                return Err(Refusal::Conflict {
                    size: last.size,
                    why: "the checkpoint is of another tree of that size".into(),
                });
            }
            if !request.proof.is_empty() {
                return Err(Refusal::Inconsistent(
                    "a tree of the same size needs no proof".into(),
                ));
            }
        } else if last.size == 0 {
            if !request.proof.is_empty() {
                return Err(Refusal::BadRequest(
                    "the proof must be empty from the old size 0".into(),
                ));
            }
        } else {
            tree::check_consistency(&request.proof, size, root, last.size, last.root)
                .map_err(|e| Refusal::Inconsistent(e.to_string()))?;
        }
        let cosignature = self
            .key
            .cosign(&request.checkpoint, now)
            .map_err(|e| malformed(&e))?;
        Ok(Accepted {
            origin,
            cosigned: Cosigned { size, root },
            cosignature,
        })
    }
}

mod base64_hash {
    use base64::prelude::{BASE64_STANDARD, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::tree::{self, Hash};

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64_STANDARD.encode(h.0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        BASE64_STANDARD
            .decode(&text)
            .ok()
            .and_then(|b| tree::to_hash(&b))
            .ok_or_else(|| serde::de::Error::custom("not a base64 SHA-256 hash"))
    }
}
