//! The difference between two trees: record operations and the nodes created and removed, as a
//! firehose commit carries them.

use cid::Cid;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::MstError;
use super::tree::{Link, Mst};
use crate::blocks::{BlockMap, BlockSource};

/// A change to one record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOp {
    /// The key is new.
    Create {
        /// `collection/rkey`.
        key: String,
        /// The new record CID.
        cid: Cid,
    },
    /// The key points to a different record.
    Update {
        /// `collection/rkey`.
        key: String,
        /// The previous record CID.
        prev: Cid,
        /// The new record CID.
        cid: Cid,
    },
    /// The key is gone.
    Delete {
        /// `collection/rkey`.
        key: String,
        /// The previous record CID.
        prev: Cid,
    },
}

impl RecordOp {
    /// The `collection/rkey` the operation applies to.
    pub fn key(&self) -> &str {
        match self {
            Self::Create { key, .. } | Self::Update { key, .. } | Self::Delete { key, .. } => key,
        }
    }
}

/// What changed between two trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MstDiff {
    /// Record operations, in key order.
    pub ops: Vec<RecordOp>,
    /// Nodes of the new tree that the old tree does not have, with their bytes.
    pub created_nodes: BlockMap,
    /// Nodes of the old tree that the new tree no longer has.
    pub removed_nodes: Vec<Cid>,
}

/// Nodes of one layer still to compare, by CID. Seeded hashing (foldhash) keeps lookups cheap
/// without letting crafted trees force collisions.
type Frontier = HashMap<Cid, Link, foldhash::fast::RandomState>;

/// Compares two trees, reading nodes from `store` (nodes built in memory need no store).
///
/// Identical subtrees sit on the same layer in both trees, so the walk goes layer by layer from
/// the top and never descends into a subtree both trees share: the cost follows the size of the
/// change, not the size of the trees.
pub fn diff(store: &dyn BlockSource, old: &Mst, new: &Mst) -> Result<MstDiff, MstError> {
    let mut result = MstDiff::default();
    let (old_root, new_root) = (old.root_cid(), new.root_cid());
    if old_root == new_root {
        return Ok(result);
    }
    // The empty tree's root is the empty node, which has no link of its own.
    if old.is_empty() {
        result.removed_nodes.push(old_root);
    }
    if new.is_empty() {
        new.for_each_node(store, |cid, bytes| result.created_nodes.insert(cid, bytes))?;
    }

    let mut old_frontier: BTreeMap<u32, Frontier> = BTreeMap::new();
    let mut new_frontier: BTreeMap<u32, Frontier> = BTreeMap::new();
    if let Some(root) = old.root_link() {
        old_frontier
            .entry(old.layer())
            .or_default()
            .insert(old_root, root.clone());
    }
    if let Some(root) = new.root_link() {
        new_frontier
            .entry(new.layer())
            .or_default()
            .insert(new_root, root.clone());
    }

    let mut old_leaves: Vec<(Arc<str>, Cid)> = Vec::new();
    let mut new_leaves: Vec<(Arc<str>, Cid)> = Vec::new();
    let top = old.layer().max(new.layer());
    for layer in (0..=top).rev() {
        let mut olds = old_frontier.remove(&layer).unwrap_or_default();
        let mut news = new_frontier.remove(&layer).unwrap_or_default();
        olds.retain(|cid, _| news.remove(cid).is_none());
        for (cid, link) in olds {
            result.removed_nodes.push(cid);
            expand(store, &link, layer, &mut old_leaves, &mut old_frontier)?;
        }
        for (cid, link) in news {
            result.created_nodes.insert(cid, link.bytes(store, layer)?);
            expand(store, &link, layer, &mut new_leaves, &mut new_frontier)?;
        }
    }

    result.ops = record_ops(old_leaves, new_leaves);
    result.removed_nodes.sort();
    Ok(result)
}

/// Records a changed node's entries and queues its subtrees for the layer below.
fn expand(
    store: &dyn BlockSource,
    link: &Link,
    layer: u32,
    leaves: &mut Vec<(Arc<str>, Cid)>,
    frontier: &mut BTreeMap<u32, Frontier>,
) -> Result<(), MstError> {
    let node = link.node(store, layer)?;
    leaves.extend(node.entries.iter().map(|e| (e.key.clone(), e.value)));
    if layer > 0 {
        let below = frontier.entry(layer - 1).or_default();
        for child in node.children() {
            below.insert(child.cid(), child.clone());
        }
    }
    Ok(())
}

/// Pairs up the entries of the removed and the created nodes by key (each key appears at most
/// once per side) and keeps those whose value changed.
///
/// An edited tree shares its key strings with the tree it came from, so most pairs are found by
/// pointer in a hash map; only entries that were not shared (new keys, or trees loaded apart)
/// go through the sorted merge.
fn record_ops(old: Vec<(Arc<str>, Cid)>, new: Vec<(Arc<str>, Cid)>) -> Vec<RecordOp> {
    let mut ops = Vec::new();
    let mut shared: HashMap<usize, (Arc<str>, Cid), BuildHasherDefault<AddressHasher>> =
        HashMap::with_capacity_and_hasher(old.len(), BuildHasherDefault::default());
    for (key, cid) in old {
        shared.insert(Arc::as_ptr(&key).cast::<u8>() as usize, (key, cid));
    }
    let mut new_rest = Vec::new();
    for (key, cid) in new {
        match shared.remove(&(Arc::as_ptr(&key).cast::<u8>() as usize)) {
            Some((_, prev)) if prev == cid => {}
            Some((_, prev)) => ops.push(RecordOp::Update {
                key: key.to_string(),
                prev,
                cid,
            }),
            None => new_rest.push((key, cid)),
        }
    }
    let mut old_rest: Vec<_> = shared.into_values().collect();
    old_rest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    new_rest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    merge_ops(old_rest, new_rest, &mut ops);
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    ops
}

/// Merges two key-sorted entry lists into record operations.
fn merge_ops(old: Vec<(Arc<str>, Cid)>, new: Vec<(Arc<str>, Cid)>, ops: &mut Vec<RecordOp>) {
    let (mut old, mut new) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => {
                let (key, prev) = old.next().expect("peeked");
                ops.push(RecordOp::Delete {
                    key: key.to_string(),
                    prev,
                });
            }
            Ordering::Greater => {
                let (key, cid) = new.next().expect("peeked");
                ops.push(RecordOp::Create {
                    key: key.to_string(),
                    cid,
                });
            }
            Ordering::Equal => {
                let (key, prev) = old.next().expect("peeked");
                let (_, cid) = new.next().expect("peeked");
                if prev != cid {
                    ops.push(RecordOp::Update {
                        key: key.to_string(),
                        prev,
                        cid,
                    });
                }
            }
        }
    }
}

/// Hashes heap addresses: they are unique and not chosen by any input, so a multiply suffices.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_usize(&mut self, address: usize) {
        self.0 = (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}
