//! The verification of the whole log: the tree recomputed from the stored records, a page at
//! a time, against the stored hashes, the head and the signed checkpoints.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use relais_runtime::Prepared;

use crate::TraceError;
use crate::checkpoint::{CheckpointKey, Opened};
use crate::log::{PAGE, int, uint};
use crate::tree::{self, Frontier, Hash};

/// The first record found not as recorded, and why.
type Broken = Option<(i64, String)>;

/// A verification under way.
pub(crate) struct Check<'a> {
    key: &'a CheckpointKey,
    given: Option<Opened>,
    /// The tree recomputed from the records read so far.
    frontier: Frontier,
    /// Where the records start: the last purge's cut (0: none ever was).
    start: u64,
    /// The size of the last checkpoint found right: a wrong one is wrong after it.
    verified_up_to: u64,
    checkpoints: u32,
}

impl<'a> Check<'a> {
    pub(crate) fn new(key: &'a CheckpointKey, given: Option<Opened>) -> Self {
        Check {
            key,
            given,
            frontier: Frontier::empty(),
            start: 0,
            verified_up_to: 0,
            checkpoints: 0,
        }
    }

    /// Records checked so far.
    pub(crate) fn verified(&self) -> u64 {
        self.frontier.size() - self.start
    }

    pub(crate) fn checkpoints(&self) -> u32 {
        self.checkpoints
    }

    pub(crate) async fn run(
        &mut self,
        tx: &Transaction<'_>,
        size: u64,
        root: Hash,
        purged: u64,
    ) -> Result<Broken, TraceError> {
        if purged > 0 {
            if let Some(b) = self.start_at_cut(tx, purged).await? {
                return Ok(Some(b));
            }
        } else {
            let mut stored_checkpoints = page_checkpoints(tx, -1, 0).await?;
            if let Some(b) = self.checkpoints_at(&mut stored_checkpoints)? {
                return Ok(Some(b));
            }
        }
        loop {
            let next = int(self.frontier.size() + 1)?;
            let rows = tx
                .all(
                    "SELECT seq, body FROM events WHERE seq >= $1 ORDER BY seq LIMIT $2",
                    &[&next, &PAGE],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            let last: i64 = last.try_get(0)?;
            let first = self.frontier.size();
            let end = uint(last)?.min(size);
            let mut stored = HashMap::new();
            if end > first {
                let (lo, hi) = tree::stored_range(first, end);
                for r in tx
                    .all(
                        "SELECT idx, hash FROM tree_hashes WHERE idx >= $1 AND idx < $2",
                        &[&int(lo)?, &int(hi)?],
                    )
                    .await?
                {
                    stored.insert(uint(r.try_get(0)?)?, r.try_get::<_, Vec<u8>>(1)?);
                }
            }
            let mut checkpoints = page_checkpoints(tx, int(first)?, last).await?;
            for r in &rows {
                let seq: i64 = r.try_get(0)?;
                let expected = int(self.frontier.size() + 1)?;
                if seq != expected {
                    return Ok(Some((
                        seq.min(expected),
                        "a record is missing or out of its place".into(),
                    )));
                }
                if uint(seq)? > size {
                    return Ok(Some((
                        seq,
                        format!("the record is not in the log's tree ({size} records)"),
                    )));
                }
                let body: String = r.try_get(1)?;
                let written = self.frontier.push(tree::leaf_hash(&body))?;
                for (i, (idx, hash)) in written.iter().enumerate() {
                    if stored.get(idx).map(Vec::as_slice) != Some(hash.0.as_slice()) {
                        let why = if i == 0 {
                            "the record does not hash to its leaf in the tree"
                        } else {
                            "a hash of the tree above the record is not the one it gives"
                        };
                        return Ok(Some((seq, why.into())));
                    }
                }
                if let Some(b) = self.checkpoints_at(&mut checkpoints)? {
                    return Ok(Some(b));
                }
            }
        }
        let count = self.frontier.size();
        if count < size {
            return Ok(Some((
                int(count + 1)?,
                format!("the log's head holds {size} records and the store {count}"),
            )));
        }
        if self.frontier.root()? != root {
            return Ok(Some((
                int(size)?,
                "the head's root is not the tree's".into(),
            )));
        }
        let beyond: Option<i64> = tx
            .one(
                "SELECT min(size) FROM checkpoints WHERE size > $1",
                &[&int(count)?],
            )
            .await?
            .try_get(0)?;
        let beyond = beyond
            .map(uint)
            .transpose()?
            .into_iter()
            .chain(self.given.as_ref().map(|g| g.size).filter(|s| *s > count))
            .min();
        if let Some(signed) = beyond {
            return Ok(Some((
                int(count + 1)?,
                format!("a signed checkpoint covers {signed} records and the log holds {count}"),
            )));
        }
        Ok(None)
    }

    /// A purged log: the tree of `cut` records is taken from the stored hashes (its
    /// frontier), and must be the one the checkpoint signed at the cut holds; every stored
    /// checkpoint (and the one given) of a size up to the cut must match the root the
    /// stored hashes give. The records above the cut are then recomputed from it.
    async fn start_at_cut(&mut self, tx: &Transaction<'_>, cut: u64) -> Result<Broken, TraceError> {
        let at = int(cut + 1)?;
        let indexes = tree::frontier_indexes(cut);
        let wanted: Vec<i64> = indexes.iter().map(|i| int(*i)).collect::<Result<_, _>>()?;
        let stored: HashMap<u64, Vec<u8>> = tx
            .all(
                "SELECT idx, hash FROM tree_hashes WHERE idx = ANY($1)",
                &[&wanted],
            )
            .await?
            .iter()
            .map(|r| Ok((uint(r.try_get(0)?)?, r.try_get(1)?)))
            .collect::<Result<_, TraceError>>()?;
        let mut hashes = Vec::with_capacity(indexes.len());
        for i in &indexes {
            match stored.get(i).and_then(|h| tree::to_hash(h)) {
                Some(h) => hashes.push(h),
                None => {
                    return Ok(Some((
                        at,
                        format!("a stored hash of the tree at the purge's cut ({cut}) is missing"),
                    )));
                }
            }
        }
        // The cut is the purge's own word, in a record of the log above it (verified with
        // the rest): a cut written into `purges` alone would hide every record below it.
        let recorded: i64 = tx
            .one(
                "SELECT count(*) FROM events WHERE kind = $2 AND seq > $1 \
                 AND (body::jsonb -> 'payload' ->> 'cut_seq') = $1::text",
                &[&int(cut)?, &crate::retention::PURGED],
            )
            .await?
            .try_get(0)?;
        if recorded == 0 {
            return Ok(Some((
                at,
                format!("no purge recorded in the log cut it at {cut} records"),
            )));
        }
        self.frontier = Frontier::new(cut, hashes)?;
        self.start = cut;
        let mut signed_at_cut = false;
        for (size, note) in page_checkpoints(tx, -1, int(cut)?).await? {
            self.checkpoints += 1;
            let root = if size == cut {
                signed_at_cut = true;
                self.frontier.root()?
            } else {
                crate::log::compute(tx, &tree::root_of(size)).await?
            };
            match self.key.open(&note) {
                Ok(c) if c.size == size && c.root == root => {}
                Ok(_) => {
                    return Ok(Some((
                        at,
                        format!(
                            "the stored tree of {size} records is not the one its checkpoint signed"
                        ),
                    )));
                }
                Err(e) => return Ok(Some((at, format!("checkpoint of {size} records: {e}")))),
            }
        }
        if !signed_at_cut {
            return Ok(Some((
                at,
                format!("no signed checkpoint at the purge's cut ({cut} records)"),
            )));
        }
        if let Some(g) = self.given.clone().filter(|g| g.size <= cut) {
            self.checkpoints += 1;
            if crate::log::compute(tx, &tree::root_of(g.size)).await? != g.root {
                return Ok(Some((
                    at,
                    format!(
                        "the stored tree of {} records is not the one the checkpoint given signed",
                        g.size
                    ),
                )));
            }
        }
        self.verified_up_to = cut;
        Ok(None)
    }

    /// Checks the checkpoints of the tree's present size (stored ones, then the one given).
    fn checkpoints_at(&mut self, page: &mut Vec<(u64, String)>) -> Result<Broken, TraceError> {
        let size = self.frontier.size();
        let mut texts = Vec::new();
        while page.first().is_some_and(|(s, _)| *s <= size) {
            let (s, note) = page.remove(0);
            if s == size {
                texts.push(note);
            }
        }
        let given = self.given.clone().filter(|g| g.size == size);
        if texts.is_empty() && given.is_none() {
            return Ok(None);
        }
        let root = self.frontier.root()?;
        let after = int(self.verified_up_to + 1)?;
        for text in texts {
            self.checkpoints += 1;
            match self.key.open(&text) {
                Ok(c) if c.size == size && c.root == root => {}
                Ok(_) => {
                    return Ok(Some((
                        after,
                        format!("the tree of {size} records is not the one its checkpoint signed"),
                    )));
                }
                Err(e) => return Ok(Some((after, format!("checkpoint of {size} records: {e}")))),
            }
        }
        if let Some(g) = given {
            self.checkpoints += 1;
            if g.root != root {
                return Ok(Some((
                    after,
                    format!(
                        "the tree of {size} records is not the one the checkpoint given signed"
                    ),
                )));
            }
        }
        self.verified_up_to = size;
        Ok(None)
    }
}

/// Stored checkpoints of sizes in `(after, up_to]`, smallest first.
async fn page_checkpoints(
    tx: &Transaction<'_>,
    after: i64,
    up_to: i64,
) -> Result<Vec<(u64, String)>, TraceError> {
    tx.all(
        "SELECT size, note FROM checkpoints WHERE size > $1 AND size <= $2 ORDER BY size",
        &[&after, &up_to],
    )
    .await?
    .iter()
    .map(|r| Ok((uint(r.try_get(0)?)?, r.try_get(1)?)))
    .collect()
}
