//! SQL of the transparency log: the tree's stored hashes and head (`tree.rs` computes,
//! this stores), appends, proofs, signed checkpoints, the verification's snapshot (its
//! pages in `verify.rs`), and the take-over of the hash chain the log replaced.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use relais_proto::trace::v1 as pb;
use relais_runtime::Prepared;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_postgres::IsolationLevel;

use crate::TraceError;
use crate::checkpoint::CheckpointKey;
use crate::tree::{self, Computation, Frontier, Hash, Known};
use crate::verify::Check;
use crate::witnessing::Witnesses;

/// Records read at once by the verification and the take-over: what bounds their memory.
pub(crate) const PAGE: i64 = 1000;

pub(crate) fn int(n: u64) -> Result<i64, TraceError> {
    i64::try_from(n).map_err(|_| TraceError::BadRequest(format!("{n} is out of range")))
}

pub(crate) fn uint(n: i64) -> Result<u64, TraceError> {
    u64::try_from(n).map_err(|_| TraceError::Database(format!("negative size {n} stored")))
}

pub(crate) fn hash_of(bytes: &[u8]) -> Result<Hash, TraceError> {
    tree::to_hash(bytes).ok_or_else(|| TraceError::Database("a stored hash is not 32 bytes".into()))
}

/// The head locked for an append: appends are serialised on it, so the log has one order.
pub(crate) async fn lock(tx: &Transaction<'_>) -> Result<Frontier, TraceError> {
    let row = tx
        .one(
            "SELECT size, frontier FROM tree_head WHERE id FOR UPDATE",
            &[],
        )
        .await?;
    let hashes: Vec<Vec<u8>> = row.try_get(1)?;
    let hashes = hashes
        .iter()
        .map(|h| hash_of(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Frontier::new(uint(row.try_get(0)?)?, hashes)?)
}

/// What appending leaves writes: their stored hashes and the new head.
pub(crate) struct Growth {
    idx: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    size: i64,
    root: Vec<u8>,
    frontier: Vec<Vec<u8>>,
}

/// Appends `leaves` to `frontier`, in order.
pub(crate) fn grow(frontier: &mut Frontier, leaves: &[Hash]) -> Result<Growth, TraceError> {
    let (mut idx, mut hashes) = (Vec::new(), Vec::new());
    for leaf in leaves {
        for (i, h) in frontier.push(*leaf)? {
            idx.push(int(i)?);
            hashes.push(h.0.to_vec());
        }
    }
    Ok(Growth {
        idx,
        hashes,
        size: int(frontier.size())?,
        root: frontier.root()?.0.to_vec(),
        frontier: frontier.hashes().iter().map(|h| h.0.to_vec()).collect(),
    })
}

/// Writes a growth: sent together with the append's other statements (pipelined).
pub(crate) async fn write(tx: &Transaction<'_>, g: &Growth) -> Result<(), TraceError> {
    let hash_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&g.idx, &g.hashes];
    let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&g.size, &g.root, &g.frontier];
    let hashes = tx.run(
        "INSERT INTO tree_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &hash_params,
    );
    let head = tx.run(
        "UPDATE tree_head SET size = $1, root = $2, frontier = $3 WHERE id",
        &head_params,
    );
    futures::try_join!(hashes, head)?;
    Ok(())
}

/// Runs a tree computation on the stored hashes it needs.
pub(crate) async fn compute<T>(
    client: &impl GenericClient,
    c: &Computation<T>,
) -> Result<T, TraceError> {
    let needs: Vec<i64> = c.needs()?.into_iter().map(int).collect::<Result<_, _>>()?;
    let rows = client
        .all(
            "SELECT idx, hash FROM tree_hashes WHERE idx = ANY($1)",
            &[&needs],
        )
        .await?;
    let mut known = Known::default();
    for r in rows {
        known
            .0
            .insert(uint(r.try_get(0)?)?, hash_of(&r.try_get::<_, Vec<u8>>(1)?)?);
    }
    Ok(c.run(&known)?)
}

/// The legacy chain's link: SHA-256(previous hash || body).
fn legacy_link(prev: &[u8], body: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body.as_bytes());
    h.finalize().to_vec()
}

/// A stored checkpoint with its witnesses' cosignature lines.
const CHECKPOINT: &str = "SELECT size, root, note, created_at, ARRAY(SELECT w.signature \
     FROM witness_cosignatures w WHERE w.size = c.size ORDER BY w.witness) AS cosignatures \
     FROM checkpoints c";

/// What a verification of the whole log found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub events: i64,
    /// The first record found not as recorded, and why.
    pub broken: Option<(i64, String)>,
    pub tree_size: u64,
    pub root: Hash,
    pub checkpoints: u32,
    /// The configured witnesses whose cosignature of the checkpoint given verified.
    pub cosigned_by: Vec<String>,
    /// Records up to this seq were purged: the log is verified from the cut's checkpoint.
    pub purged_up_to: i64,
}

/// The log: its tree, its checkpoints and the key that signs them.
#[derive(Clone)]
pub struct Log {
    pool: Pool,
    key: CheckpointKey,
    witnesses: Witnesses,
}

/// Which record a proof is of.
pub enum Record {
    Event(uuid::Uuid),
    Leaf(u64),
}

impl Log {
    pub fn new(pool: Pool, key: CheckpointKey) -> Self {
        Log {
            pool,
            key,
            witnesses: Witnesses::default(),
        }
    }

    /// The log whose checkpoints are sent to `witnesses`.
    pub(crate) fn with_witnesses(self, witnesses: Witnesses) -> Self {
        Log { witnesses, ..self }
    }

    pub(crate) fn witnesses(&self) -> &Witnesses {
        &self.witnesses
    }

    pub fn key(&self) -> &CheckpointKey {
        &self.key
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    fn checkpoint_from_row(&self, r: &tokio_postgres::Row) -> Result<pb::Checkpoint, TraceError> {
        let created: OffsetDateTime = r.try_get("created_at")?;
        let note: String = r.try_get("note")?;
        let cosignatures: Vec<String> = r.try_get("cosignatures")?;
        // The witnesses' lines follow the log's signature: one note, several signatures.
        let cosigned_by = cosignatures
            .iter()
            .filter_map(|l| signed_note::Signature::from_bytes(l.trim_end().as_bytes()).ok())
            .map(|s| s.name().to_string())
            .collect();
        Ok(pb::Checkpoint {
            note: crate::cosignature::append(&note, &cosignatures),
            cosigned_by,
            tree_size: uint(r.try_get("size")?)?,
            root_hash: r.try_get("root")?,
            origin: self.key.origin().to_string(),
            created_at: created
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            verifier_key: self.key.verifier_key().to_string(),
        })
    }

    /// The latest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<pb::Checkpoint, TraceError> {
        let client = self.pool.get().await?;
        let row = client
            .opt(&format!("{CHECKPOINT} ORDER BY size DESC LIMIT 1"), &[])
            .await?
            .ok_or(TraceError::Missing("checkpoint signed yet"))?;
        self.checkpoint_from_row(&row)
    }

    /// Signs and stores a checkpoint of the log as it is, unless one of its size is stored
    /// (then that one): the scheduled checkpoint and an operator's on demand alike.
    pub async fn make_checkpoint(&self) -> Result<pb::Checkpoint, TraceError> {
        let client = self.pool.get().await?;
        let head = client
            .one("SELECT size, root FROM tree_head WHERE id", &[])
            .await?;
        let size: i64 = head.try_get(0)?;
        let root = hash_of(&head.try_get::<_, Vec<u8>>(1)?)?;
        let stored = format!("{CHECKPOINT} WHERE size = $1");
        let note = match client
            .opt("SELECT note FROM checkpoints WHERE size = $1", &[&size])
            .await?
        {
            Some(row) => row.try_get(0)?,
            None => self.sign_checkpoint(&client, size, root).await?,
        };
        // Each witness yet without its cosignature of this size is asked (again).
        self.ask_witnesses(uint(size)?, &note).await;
        let row = client.one(&stored, &[&size]).await?;
        self.checkpoint_from_row(&row)
    }

    pub(crate) async fn sign_checkpoint(
        &self,
        client: &impl GenericClient,
        size: i64,
        root: Hash,
    ) -> Result<String, TraceError> {
        let note = self.key.sign(uint(size)?, root)?;
        // Another replica may sign the same size at once: the first stored stays.
        client
            .run(
                "INSERT INTO checkpoints (size, root, note) VALUES ($1, $2, $3) \
                 ON CONFLICT (size) DO NOTHING",
                &[&size, &root.0.to_vec(), &note],
            )
            .await?;
        Ok(client
            .one("SELECT note FROM checkpoints WHERE size = $1", &[&size])
            .await?
            .try_get(0)?)
    }

    /// The size a proof is against: the one asked, or the latest checkpoint's; never past
    /// the log's head.
    async fn size_for(&self, client: &impl GenericClient, asked: u64) -> Result<u64, TraceError> {
        let head: i64 = client
            .one("SELECT size FROM tree_head WHERE id", &[])
            .await?
            .try_get(0)?;
        let head = uint(head)?;
        if asked == 0 {
            let latest: Option<i64> = client
                .one("SELECT max(size) FROM checkpoints", &[])
                .await?
                .try_get(0)?;
            return match latest {
                Some(size) => uint(size),
                None => Err(TraceError::Precondition("no checkpoint signed yet".into())),
            };
        }
        if asked > head {
            return Err(TraceError::Precondition(format!(
                "the log holds {head} records, fewer than {asked}"
            )));
        }
        Ok(asked)
    }

    pub async fn inclusion_proof(
        &self,
        record: Record,
        tree_size: u64,
    ) -> Result<pb::InclusionProof, TraceError> {
        let client = self.pool.get().await?;
        let row = match record {
            Record::Event(id) => {
                client
                    .opt(
                        "SELECT seq, event_id, body FROM events WHERE event_id = $1",
                        &[&id],
                    )
                    .await?
            }
            Record::Leaf(index) => {
                client
                    .opt(
                        "SELECT seq, event_id, body FROM events WHERE seq = $1",
                        &[&int(index.saturating_add(1))?],
                    )
                    .await?
            }
        };
        let purged = crate::retention::purged_up_to(&client).await?;
        if let Record::Leaf(index) = record
            && index < uint(purged)?
        {
            return Err(TraceError::Purged {
                seq: int(index.saturating_add(1))?,
                up_to: purged,
            });
        }
        let row = row.ok_or(TraceError::Missing("such record"))?;
        let seq: i64 = row.try_get(0)?;
        // A record a purge under way has not deleted yet is purged all the same.
        if seq <= purged {
            return Err(TraceError::Purged { seq, up_to: purged });
        }
        let index = uint(seq - 1)?;
        let size = self.size_for(&client, tree_size).await?;
        if index >= size {
            return Err(TraceError::Precondition(format!(
                "record {index} came after the tree of {size} records"
            )));
        }
        let proof = compute(&client, &tree::inclusion(index, size)?).await?;
        let root = compute(&client, &tree::root_of(size)).await?;
        let body: String = row.try_get(2)?;
        let id: uuid::Uuid = row.try_get(1)?;
        Ok(pb::InclusionProof {
            leaf_index: index,
            tree_size: size,
            root_hash: root.0.to_vec(),
            hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
            leaf_hash: tree::leaf_hash(&body).0.to_vec(),
            body,
            event_id: id.to_string(),
        })
    }

    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<pb::ConsistencyProof, TraceError> {
        let client = self.pool.get().await?;
        let new = self.size_for(&client, new).await?;
        let proof = compute(&client, &tree::consistency(old, new)?).await?;
        Ok(pb::ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root_hash: compute(&client, &tree::root_of(old)).await?.0.to_vec(),
            new_root_hash: compute(&client, &tree::root_of(new)).await?.0.to_vec(),
            hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
        })
    }

    /// Recomputes the tree from the stored records, a page at a time in one snapshot, and
    /// compares it with the stored hashes, the head, every stored checkpoint and `given`
    /// (a signed checkpoint's text). Memory stays that of one page.
    pub async fn verify(&self, given: Option<&str>) -> Result<Verification, TraceError> {
        let given_text = given;
        let given = given
            .map(|text| {
                self.key
                    .open(text)
                    .map_err(|e| TraceError::BadRequest(e.to_string()))
            })
            .transpose()?;
        let cosigned_by = match given_text {
            Some(text) => self.check_cosignatures(text)?,
            None => Vec::new(),
        };
        let mut client = self.pool.get().await?;
        // One snapshot for the records, the tree and the head: appends committing meanwhile
        // are not seen, rather than seen in part.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let head = tx
            .one("SELECT size, root FROM tree_head WHERE id", &[])
            .await?;
        let size = uint(head.try_get(0)?)?;
        let root = hash_of(&head.try_get::<_, Vec<u8>>(1)?)?;
        let purged = crate::retention::purged_up_to(&tx).await?;
        let mut check = Check::new(&self.key, given);
        let outcome = check.run(&tx, size, root, uint(purged)?).await?;
        tx.commit().await?;
        Ok(Verification {
            events: int(check.verified())?,
            broken: outcome,
            tree_size: size,
            root,
            checkpoints: check.checkpoints(),
            cosigned_by,
            purged_up_to: purged,
        })
    }

    /// Moves the records of the hash chain the log replaced into the log, in seq order, a
    /// page per transaction, each checked against its chain link first (and the chain's last
    /// link against its head): a record altered before the log took it over stops the
    /// service rather than being signed into the log. Returns how many were moved.
    pub async fn take_over_legacy_chain(&self) -> Result<u64, TraceError> {
        let mut moved = 0;
        loop {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let mut frontier = lock(&tx).await?;
            let size = int(frontier.size())?;
            let rows = tx
                .all(
                    "SELECT seq, body, legacy_prev_hash, legacy_hash FROM events \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&size, &PAGE],
                )
                .await?;
            if rows.is_empty() {
                return Ok(moved);
            }
            if moved == 0 {
                legacy_head_matches(&tx).await?;
            }
            let mut prev: Vec<u8> = if size == 0 {
                vec![0; 32]
            } else {
                tx.one("SELECT legacy_hash FROM events WHERE seq = $1", &[&size])
                    .await?
                    .try_get::<_, Option<Vec<u8>>>(0)?
                    .ok_or_else(|| broken_legacy(size + 1, "it follows a record of the log"))?
            };
            let mut leaves = Vec::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                let seq: i64 = r.try_get(0)?;
                let body: String = r.try_get(1)?;
                let link: Option<Vec<u8>> = r.try_get(2)?;
                let hash: Option<Vec<u8>> = r.try_get(3)?;
                let expected = size + 1 + int(i as u64)?;
                if seq != expected {
                    return Err(broken_legacy(expected, "the record is missing"));
                }
                let (Some(link), Some(hash)) = (link, hash) else {
                    return Err(broken_legacy(seq, "the record has no chain link"));
                };
                if link != prev || legacy_link(&prev, &body) != hash {
                    return Err(broken_legacy(
                        seq,
                        "the record does not match its chain link",
                    ));
                }
                prev = hash;
                leaves.push(tree::leaf_hash(&body));
            }
            let growth = grow(&mut frontier, &leaves)?;
            write(&tx, &growth).await?;
            tx.commit().await?;
            moved += leaves.len() as u64;
        }
    }
}

fn broken_legacy(seq: i64, reason: &str) -> TraceError {
    TraceError::LegacyChain {
        seq,
        reason: reason.to_string(),
    }
}

/// The legacy chain's head names its last record: records removed from its end would
/// otherwise go unnoticed.
async fn legacy_head_matches(tx: &Transaction<'_>) -> Result<(), TraceError> {
    let head = tx
        .opt("SELECT seq, hash FROM legacy_chain_head WHERE id", &[])
        .await?;
    let last = tx
        .opt(
            "SELECT seq, legacy_hash FROM events WHERE legacy_hash IS NOT NULL \
             ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let (head_seq, head_hash): (i64, Vec<u8>) = match &head {
        Some(h) => (h.try_get(0)?, h.try_get(1)?),
        None => (0, vec![0; 32]),
    };
    let (last_seq, last_hash): (i64, Vec<u8>) = match &last {
        Some(l) => (l.try_get(0)?, l.try_get(1)?),
        None => (0, vec![0; 32]),
    };
    if head_seq != last_seq || head_hash != last_hash {
        return Err(broken_legacy(
            head_seq.min(last_seq) + 1,
            "the chain's head does not name its last record",
        ));
    }
    Ok(())
}
