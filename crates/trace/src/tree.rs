//! The log's Merkle tree (RFC 6962 / RFC 9162 hashing), on Cloudflare's `tlog_tiles` (a
//! port of Go's `sumdb/tlog`): no I/O. The tree is kept as its stored hashes, each at its
//! `stored_hash_index`: a leaf's hash, and the root of every complete subtree once its last
//! leaf is appended. Any root and any proof of a past or present size is computed from
//! them; an append needs only the frontier (the roots of the complete subtrees that make up
//! the tree, left to right).

use std::cell::RefCell;
use std::collections::HashMap;

pub use tlog_tiles::{EMPTY_HASH, Hash, record_hash};
use tlog_tiles::{HashReader, stored_hash_index};

/// A failure of the tree's arithmetic or of the hashes given to it.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{0}")]
    Invalid(String),
    #[error("a stored hash of the tree is missing")]
    Missing,
}

/// The leaf hash of a stored record: RFC 6962 `SHA-256(0x00 || body)`, the body being the
/// record's JSON as stored.
pub fn leaf_hash(body: &str) -> Hash {
    record_hash(body.as_bytes())
}

pub fn to_hash(bytes: &[u8]) -> Option<Hash> {
    Some(Hash(bytes.try_into().ok()?))
}

/// Where the stored hashes of records `[first, end)` lie: one contiguous run of indexes.
pub fn stored_range(first: u64, end: u64) -> (u64, u64) {
    (
        stored_hash_index(0, first),
        tlog_tiles::stored_hash_count(end),
    )
}

/// The hashes an append needs: the roots of the complete subtrees of a tree of `size`.
#[derive(Clone, Debug, PartialEq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    pub fn empty() -> Self {
        Frontier {
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// A frontier as stored with the tree's head; refused if it cannot be one of `size`.
    pub fn new(size: u64, hashes: Vec<Hash>) -> Result<Self, TreeError> {
        if u64::try_from(hashes.len()).ok() != Some(u64::from(size.count_ones())) {
            return Err(TreeError::Invalid(format!(
                "a tree of {size} records has {} complete subtrees, not {}",
                size.count_ones(),
                hashes.len()
            )));
        }
        Ok(Frontier { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The stored indexes of the frontier's hashes, in its order.
    fn indexes(&self) -> Vec<u64> {
        frontier_indexes(self.size)
    }

    fn known(&self) -> Known {
        Known(
            self.indexes()
                .into_iter()
                .zip(self.hashes.clone())
                .collect(),
        )
    }

    /// The root of the tree of this size.
    pub fn root(&self) -> Result<Hash, TreeError> {
        tlog_tiles::tree_hash(self.size, &self.known()).map_err(tree_error)
    }

    /// Appends a leaf: the stored hashes it fixes, each with its index (the leaf's own, then
    /// those of the subtrees it completes).
    pub fn push(&mut self, leaf: Hash) -> Result<Vec<(u64, Hash)>, TreeError> {
        let n = self.size;
        let written = tlog_tiles::stored_hashes_for_record_hash(n, leaf, &self.known())
            .map_err(tree_error)?;
        // Each subtree the leaf completes consumes one frontier hash.
        let completed = written.len() - 1;
        self.hashes
            .truncate(self.hashes.len().saturating_sub(completed));
        if let Some(top) = written.last() {
            self.hashes.push(*top);
        }
        self.size = n + 1;
        let first = stored_hash_index(0, n);
        Ok((first..).zip(written).collect())
    }
}

/// Where the frontier of a tree of `size` lies among the stored hashes, in its order: a
/// purged log's tree goes on from them.
pub fn frontier_indexes(size: u64) -> Vec<u64> {
    tlog_tiles::sub_tree_index(0, size, Vec::new())
}

fn tree_error(e: tlog_tiles::Error) -> TreeError {
    match e {
        tlog_tiles::Error::IndexesNotInTree => TreeError::Missing,
        other => TreeError::Invalid(other.to_string()),
    }
}

/// Hashes at hand, by stored index.
#[derive(Default)]
pub struct Known(pub HashMap<u64, Hash>);

impl HashReader for Known {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(i)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// Notes the indexes asked for and answers placeholders: what a computation needs is known
/// before the hashes are fetched (which ones it asks for depends on sizes only).
#[derive(Default)]
struct Wanted(RefCell<Vec<u64>>);

impl HashReader for Wanted {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![Hash([0; 32]); indexes.len()])
    }
}

/// A computation over stored hashes, in two steps: `needs` tells which to fetch, `run`
/// computes with them.
pub struct Computation<T> {
    compute: Box<Compute<T>>,
}

type Compute<T> = dyn Fn(&dyn Reader) -> Result<T, tlog_tiles::Error> + Send + Sync;

/// `HashReader` as an object, for [`Computation`].
pub trait Reader {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error>;
}

impl<R: HashReader> Reader for R {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.read_hashes(indexes)
    }
}

struct Dyn<'a>(&'a dyn Reader);

impl HashReader for Dyn<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.read(indexes)
    }
}

impl<T> Computation<T> {
    /// The stored indexes the computation reads.
    pub fn needs(&self) -> Result<Vec<u64>, TreeError> {
        let wanted = Wanted::default();
        (self.compute)(&wanted).map_err(tree_error)?;
        Ok(wanted.0.into_inner())
    }

    pub fn run(&self, known: &Known) -> Result<T, TreeError> {
        (self.compute)(known).map_err(tree_error)
    }
}

/// The root of the tree of `size` records.
pub fn root_of(size: u64) -> Computation<Hash> {
    Computation {
        compute: Box::new(move |r| tlog_tiles::tree_hash(size, &Dyn(r))),
    }
}

/// The inclusion proof (RFC 6962 audit path) of record `index` in the tree of `size`.
pub fn inclusion(index: u64, size: u64) -> Result<Computation<Vec<Hash>>, TreeError> {
    if index >= size {
        return Err(TreeError::Invalid(format!(
            "record {index} is not in a tree of {size} records"
        )));
    }
    Ok(Computation {
        compute: Box::new(move |r| tlog_tiles::prove_record(size, index, &Dyn(r))),
    })
}

/// The consistency proof that the tree of `new` records extends the tree of `old`.
pub fn consistency(old: u64, new: u64) -> Result<Computation<Vec<Hash>>, TreeError> {
    if old == 0 || old > new {
        return Err(TreeError::Invalid(format!(
            "no consistency proof from {old} to {new} records (1 <= old <= new)"
        )));
    }
    Ok(Computation {
        compute: Box::new(move |r| tlog_tiles::prove_tree(new, old, &Dyn(r))),
    })
}

/// Checks an inclusion proof: `leaf` is record `index` of the tree of `size` and `root`.
pub fn check_inclusion(
    proof: &[Hash],
    size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
) -> Result<(), TreeError> {
    if index >= size {
        return Err(TreeError::Invalid("index beyond the tree".into()));
    }
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).map_err(tree_error)
}

/// Checks a consistency proof from (`old`, `old_root`) to (`new`, `new_root`).
pub fn check_consistency(
    proof: &[Hash],
    new: u64,
    new_root: Hash,
    old: u64,
    old_root: Hash,
) -> Result<(), TreeError> {
    if old == 0 || old > new {
        return Err(TreeError::Invalid("1 <= old <= new".into()));
    }
    tlog_tiles::check_tree(&proof.to_vec(), new, new_root, old, old_root).map_err(tree_error)
}
