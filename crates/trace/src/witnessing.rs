//! The log's side of witnessing: each checkpoint is sent to each configured witness (C2SP
//! tlog-witness `add-checkpoint`) with the consistency proof from the last size that witness
//! cosigned, and the cosignature it answers is checked and kept with the checkpoint. A witness
//! that does not answer, or refuses, is logged and asked again at the next checkpoint: it
//! never holds up the log.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use relais_runtime::Prepared;

use crate::TraceError;
use crate::cosignature::{self, CosignatureError, WitnessVerifier};
use crate::log::{Log, compute, int, uint};
use crate::tree;
use crate::witness;

/// The witnesses of a log, and the HTTP client that reaches them.
#[derive(Clone, Default)]
pub struct Witnesses {
    client: reqwest::Client,
    list: Vec<(String, WitnessVerifier)>,
}

impl Witnesses {
    /// `list`: each witness's submission prefix and verifier key.
    pub fn new(
        list: Vec<(String, WitnessVerifier)>,
        timeout: Duration,
    ) -> Result<Self, TraceError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| TraceError::BadRequest(format!("the witnesses' HTTP client: {e}")))?;
        Ok(Witnesses { client, list })
    }

    pub fn verifiers(&self) -> impl Iterator<Item = &WitnessVerifier> {
        self.list.iter().map(|(_, v)| v)
    }
}

/// Why a witness did not cosign this time.
#[derive(Debug, thiserror::Error)]
enum Unwitnessed {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("its last cosigned tree has {0} records, more than the log's checkpoint")]
    Ahead(u64),
    #[error("its answer holds no valid cosignature of its key")]
    NoCosignature,
    #[error("{0}")]
    Log(#[from] TraceError),
}

enum Answer {
    Cosigned(String),
    /// 409: the size the witness last cosigned.
    Conflict(u64),
}

impl Log {
    /// Asks each witness without a cosignature of the checkpoint of `size` (the log-signed
    /// `note`) for one, and keeps those answered. Failures are logged only.
    pub(crate) async fn ask_witnesses(&self, size: u64, note: &str) {
        for (url, verifier) in &self.witnesses().list {
            match self.ask_witness(url, verifier, size, note).await {
                Ok(true) => tracing::info!(witness = verifier.name(), size, "checkpoint cosigned"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    witness = verifier.name(),
                    size,
                    error = %e,
                    "checkpoint not cosigned; asked again at the next checkpoint"
                ),
            }
        }
    }

    /// The configured witnesses whose cosignature of `checkpoint` verifies; a configured
    /// witness's line that does not verify (forged, or moved from another checkpoint) is
    /// refused, naming the witness.
    pub(crate) fn check_cosignatures(&self, checkpoint: &str) -> Result<Vec<String>, TraceError> {
        let mut names = Vec::new();
        for verifier in self.witnesses().verifiers() {
            match verifier.check(checkpoint) {
                Ok(_) => names.push(verifier.name().to_string()),
                Err(CosignatureError::Missing(_)) => {}
                Err(e) => return Err(TraceError::BadRequest(e.to_string())),
            }
        }
        Ok(names)
    }

    /// Whether a new cosignature was kept (false: there was one already).
    async fn ask_witness(
        &self,
        url: &str,
        verifier: &WitnessVerifier,
        size: u64,
        note: &str,
    ) -> Result<bool, Unwitnessed> {
        let client = self.pool().get().await.map_err(TraceError::from)?;
        let row = client
            .one(
                "SELECT max(size), bool_or(size = $2) FROM witness_cosignatures \
                 WHERE witness = $1",
                &[&verifier.text(), &int(size)?],
            )
            .await
            .map_err(TraceError::from)?;
        if row
            .try_get::<_, Option<bool>>(1)
            .map_err(TraceError::from)?
            == Some(true)
        {
            return Ok(false);
        }
        let last: Option<i64> = row.try_get(0).map_err(TraceError::from)?;
        let mut old = last.map(uint).transpose()?.unwrap_or(0).min(size);
        let mut answer = self.post(&client, url, old, size, note).await?;
        // The witness knows a size this log did not keep (its cosignatures lost, or a
        // request lost on the way): once more, from there.
        if let Answer::Conflict(theirs) = answer {
            if theirs > size {
                return Err(Unwitnessed::Ahead(theirs));
            }
            old = theirs;
            answer = self.post(&client, url, old, size, note).await?;
        }
        let Answer::Cosigned(body) = answer else {
            return Err(Unwitnessed::Refused {
                status: 409,
                body: format!("it holds another size than {old} again"),
            });
        };
        // Only a line of this witness's key over this very checkpoint is kept.
        let line = body
            .lines()
            .filter(|l| l.starts_with('\u{2014}'))
            .map(|l| format!("{l}\n"))
            .find(|l| {
                verifier
                    .check(&cosignature::append(note, std::slice::from_ref(l)))
                    .is_ok()
            })
            .ok_or(Unwitnessed::NoCosignature)?;
        client
            .run(
                "INSERT INTO witness_cosignatures (witness, size, signature) VALUES ($1, $2, $3) \
                 ON CONFLICT (witness, size) DO NOTHING",
                &[&verifier.text(), &int(size)?, &line],
            )
            .await
            .map_err(TraceError::from)?;
        Ok(true)
    }

    async fn post(
        &self,
        client: &impl GenericClient,
        url: &str,
        old: u64,
        size: u64,
        note: &str,
    ) -> Result<Answer, Unwitnessed> {
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            compute(
                client,
                &tree::consistency(old, size).map_err(TraceError::from)?,
            )
            .await?
        };
        let response = self
            .witnesses()
            .client
            .post(format!("{url}/add-checkpoint"))
            .body(witness::request_body(old, &proof, note))
            .send()
            .await
            .map_err(|e| Unwitnessed::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| Unwitnessed::Unreachable(e.to_string()))?;
        match status {
            200 => Ok(Answer::Cosigned(body)),
            409 => body
                .trim()
                .parse()
                .map(Answer::Conflict)
                .map_err(|_| Unwitnessed::Refused { status, body }),
            _ => Err(Unwitnessed::Refused {
                status,
                body: body.trim().chars().take(200).collect(),
            }),
        }
    }
}
