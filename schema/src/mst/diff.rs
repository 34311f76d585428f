//! The difference between two trees: record operations and the nodes created and removed, as a
//! firehose commit carries them.

use cid::Cid;
use std::collections::{BTreeMap, HashMap};

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

    let mut old_frontier: BTreeMap<u32, HashMap<Cid, Link>> = BTreeMap::new();
    let mut new_frontier: BTreeMap<u32, HashMap<Cid, Link>> = BTreeMap::new();
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

    let mut old_leaves = BTreeMap::new();
    let mut new_leaves = BTreeMap::new();
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
            let node = link.node(store, layer)?;
            result.created_nodes.insert(cid, node.to_data().to_bytes());
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
    leaves: &mut BTreeMap<String, Cid>,
    frontier: &mut BTreeMap<u32, HashMap<Cid, Link>>,
) -> Result<(), MstError> {
    let node = link.node(store, layer)?;
    for entry in &node.entries {
        leaves.insert(entry.key.to_string(), entry.value);
    }
    if layer > 0 {
        let below = frontier.entry(layer - 1).or_default();
        for child in node.children() {
            below.insert(child.cid(), child.clone());
        }
    }
    Ok(())
}

fn record_ops(old: BTreeMap<String, Cid>, mut new: BTreeMap<String, Cid>) -> Vec<RecordOp> {
    let mut ops = Vec::new();
    for (key, prev) in old {
        match new.remove(&key) {
            Some(cid) if cid == prev => {}
            Some(cid) => ops.push(RecordOp::Update { key, prev, cid }),
            None => ops.push(RecordOp::Delete { key, prev }),
        }
    }
    ops.extend(
        new.into_iter()
            .map(|(key, cid)| RecordOp::Create { key, cid }),
    );
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    ops
}
