//! Content-addressed blocks: the [`BlockSource`] trait the MST reads through, and [`BlockMap`],
//! an in-memory set of blocks keyed by CID.
//!
//! This crate does no I/O: stores that live in a database implement [`BlockSource`] over blocks
//! they have already loaded.

use cid::Cid;
use std::collections::BTreeMap;

use crate::data::{CidError, cid_for_dag_cbor, verify_cid};

/// Something that can hand out blocks by CID.
pub trait BlockSource {
    /// The bytes of the block with this CID, if present.
    fn get_block(&self, cid: &Cid) -> Option<&[u8]>;
}

/// No blocks at all: for trees built entirely in memory.
impl BlockSource for () {
    fn get_block(&self, _cid: &Cid) -> Option<&[u8]> {
        None
    }
}

impl<S: BlockSource + ?Sized> BlockSource for &S {
    fn get_block(&self, cid: &Cid) -> Option<&[u8]> {
        (**self).get_block(cid)
    }
}

/// An ordered, in-memory map of blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockMap {
    blocks: BTreeMap<Cid, Vec<u8>>,
}

impl BlockMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a DAG-CBOR block and returns its CID.
    pub fn insert_dag_cbor(&mut self, bytes: Vec<u8>) -> Cid {
        let cid = cid_for_dag_cbor(&bytes);
        self.blocks.insert(cid, bytes);
        cid
    }

    /// Stores a block under a CID after checking that the bytes hash to it.
    pub fn insert_verified(&mut self, cid: Cid, bytes: Vec<u8>) -> Result<(), CidError> {
        verify_cid(&cid, &bytes)?;
        self.blocks.insert(cid, bytes);
        Ok(())
    }

    /// Stores a block under a CID the caller vouches for.
    pub fn insert(&mut self, cid: Cid, bytes: Vec<u8>) {
        self.blocks.insert(cid, bytes);
    }

    /// Removes a block, returning its bytes.
    pub fn remove(&mut self, cid: &Cid) -> Option<Vec<u8>> {
        self.blocks.remove(cid)
    }

    /// Whether a block is present.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid)
    }

    /// The number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Total size of the block bytes.
    pub fn byte_len(&self) -> usize {
        self.blocks.values().map(Vec::len).sum()
    }

    /// Iterates over blocks in CID order.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> {
        self.blocks
            .iter()
            .map(|(cid, bytes)| (cid, bytes.as_slice()))
    }

    /// Moves every block of `other` into this map.
    pub fn extend(&mut self, other: BlockMap) {
        self.blocks.extend(other.blocks);
    }
}

impl BlockSource for BlockMap {
    fn get_block(&self, cid: &Cid) -> Option<&[u8]> {
        self.blocks.get(cid).map(Vec::as_slice)
    }
}

impl IntoIterator for BlockMap {
    type Item = (Cid, Vec<u8>);
    type IntoIter = std::collections::btree_map::IntoIter<Cid, Vec<u8>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.into_iter()
    }
}

impl FromIterator<(Cid, Vec<u8>)> for BlockMap {
    fn from_iter<T: IntoIterator<Item = (Cid, Vec<u8>)>>(iter: T) -> Self {
        Self {
            blocks: iter.into_iter().collect(),
        }
    }
}
