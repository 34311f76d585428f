//! The in-memory tree: lazily loaded, structurally shared, edited by path copying.

use cid::Cid;
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use super::MstError;
use super::key::{common_prefix_len, key_height, validate_key};
use super::node::{NodeData, NodeEncoder, decode_node};
use crate::blocks::{BlockMap, BlockSource};
use crate::data::cid_for_dag_cbor;

/// A pointer to a subtree: either a stored node (known by CID, loaded on first use) or a node
/// built in memory (CID computed on first use). Both are cached once known.
#[derive(Clone)]
pub(crate) struct Link(Arc<LinkInner>);

struct LinkInner {
    /// Whether the node came from a block source (as opposed to being built in memory).
    stored: bool,
    cid: OnceLock<Cid>,
    /// The encoded bytes of a node built in memory, kept once computed.
    bytes: OnceLock<Vec<u8>>,
    node: OnceLock<Arc<Node>>,
}

/// A decoded node. `layer` is the height of its keys; children sit one layer below.
pub(crate) struct Node {
    pub layer: u32,
    pub left: Option<Link>,
    pub entries: Vec<Entry>,
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub key: Arc<str>,
    pub value: Cid,
    pub right: Option<Link>,
}

impl Link {
    fn stored(cid: Cid) -> Self {
        let inner = LinkInner {
            stored: true,
            cid: OnceLock::from(cid),
            bytes: OnceLock::new(),
            node: OnceLock::new(),
        };
        Link(Arc::new(inner))
    }

    fn fresh(node: Node) -> Self {
        let inner = LinkInner {
            stored: false,
            cid: OnceLock::new(),
            bytes: OnceLock::new(),
            node: OnceLock::from(Arc::new(node)),
        };
        Link(Arc::new(inner))
    }

    /// The node itself, if this link is its only owner and its CID has not been computed yet:
    /// then it can be edited in place instead of copied.
    fn into_unique_node(self) -> Result<Node, Link> {
        let inner = match Arc::try_unwrap(self.0) {
            Ok(inner) if inner.cid.get().is_none() && inner.bytes.get().is_none() => inner,
            Ok(inner) => return Err(Link(Arc::new(inner))),
            Err(shared) => return Err(Link(shared)),
        };
        let stored = inner.stored;
        match inner.node.into_inner().map(Arc::try_unwrap) {
            Some(Ok(node)) => Ok(node),
            Some(Err(shared)) => Err(Link(Arc::new(LinkInner {
                stored,
                cid: OnceLock::new(),
                bytes: OnceLock::new(),
                node: OnceLock::from(shared),
            }))),
            None => unreachable!("a link without a CID always holds its node"),
        }
    }

    /// The node's CID, encoding it (and any unencoded children) the first time.
    pub(crate) fn cid(&self) -> Cid {
        *self.0.cid.get_or_init(|| cid_for_dag_cbor(self.encoded()))
    }

    /// The bytes of a node built in memory, encoded once.
    fn encoded(&self) -> &[u8] {
        self.0.bytes.get_or_init(|| self.loaded_node().encode())
    }

    /// The node's block bytes: from `store` for a stored node, encoded for a built one.
    pub(crate) fn bytes(&self, store: &dyn BlockSource, layer: u32) -> Result<Vec<u8>, MstError> {
        if self.0.bytes.get().is_none()
            && let Some(bytes) = self.0.cid.get().and_then(|cid| store.get_block(cid))
        {
            return Ok(bytes.to_vec());
        }
        self.node(store, layer)?;
        Ok(self.encoded().to_vec())
    }

    fn loaded_node(&self) -> &Arc<Node> {
        self.0
            .node
            .get()
            .expect("a link without a CID always holds its node")
    }

    /// The node, loaded from `store` on first use and checked to sit on `layer`.
    pub(crate) fn node(&self, store: &dyn BlockSource, layer: u32) -> Result<&Arc<Node>, MstError> {
        if let Some(node) = self.0.node.get() {
            return Ok(node);
        }
        let cid = self.cid();
        let node = load_node(store, &cid, Some(layer))?;
        Ok(self.0.node.get_or_init(|| Arc::new(node)))
    }
}

fn load_node(store: &dyn BlockSource, cid: &Cid, layer: Option<u32>) -> Result<Node, MstError> {
    let bytes = store.get_block(cid).ok_or(MstError::MissingBlock(*cid))?;
    let decoded = decode_node(cid, bytes)?;
    let invalid = |reason: String| MstError::InvalidNode {
        cid: Box::new(*cid),
        reason,
    };
    let layer = match (layer, decoded.layer) {
        (Some(expected), Some(actual)) if expected != actual => {
            return Err(invalid(format!(
                "keys of height {actual} where layer {expected} was expected"
            )));
        }
        (Some(layer), _) | (None, Some(layer)) => layer,
        (None, None) => return Err(invalid("cannot tell the layer of this node".into())),
    };
    if decoded.entries.is_empty() && decoded.left.is_none() {
        return Err(invalid("an empty node inside a tree".into()));
    }
    let has_children =
        decoded.left.is_some() || decoded.entries.iter().any(|(_, _, right)| right.is_some());
    if layer == 0 && has_children {
        return Err(invalid("a node on layer 0 has subtrees".into()));
    }
    Ok(Node {
        layer,
        left: decoded.left.map(Link::stored),
        entries: decoded
            .entries
            .into_iter()
            .map(|(key, value, right)| Entry {
                key: key.into(),
                value,
                right: right.map(Link::stored),
            })
            .collect(),
    })
}

impl Node {
    /// Canonical DAG-CBOR bytes of the node.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut encoder = NodeEncoder::new(self.entries.len());
        let mut previous: &str = "";
        for entry in &self.entries {
            let prefix = common_prefix_len(previous, &entry.key);
            let right = entry.right.as_ref().map(Link::cid);
            encoder.entry(
                prefix,
                &entry.key.as_bytes()[prefix..],
                &entry.value,
                right.as_ref(),
            );
            previous = &entry.key;
        }
        encoder.finish(self.left.as_ref().map(Link::cid).as_ref())
    }

    /// The subtree just before entry `index` (`index == entries.len()` is the last subtree).
    pub(crate) fn child(&self, index: usize) -> Option<&Link> {
        if index == 0 {
            self.left.as_ref()
        } else {
            self.entries[index - 1].right.as_ref()
        }
    }

    fn take_child(&mut self, index: usize) -> Option<Link> {
        if index == 0 {
            self.left.take()
        } else {
            self.entries[index - 1].right.take()
        }
    }

    fn set_child(&mut self, index: usize, link: Option<Link>) {
        if index == 0 {
            self.left = link;
        } else {
            self.entries[index - 1].right = link;
        }
    }

    fn search(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }

    fn copy(&self) -> Node {
        Node {
            layer: self.layer,
            left: self.left.clone(),
            entries: self.entries.clone(),
        }
    }

    /// Wraps the node in a link, or nothing if it holds neither entries nor subtrees.
    fn into_link(self) -> Option<Link> {
        if self.entries.is_empty() && self.left.is_none() {
            None
        } else {
            Some(Link::fresh(self))
        }
    }

    /// Subtree pointers, in order.
    pub(crate) fn children(&self) -> impl Iterator<Item = &Link> {
        self.left
            .iter()
            .chain(self.entries.iter().filter_map(|e| e.right.as_ref()))
    }
}

/// An immutable Merkle Search Tree. Cloning is cheap; edits return a new tree that shares the
/// unchanged nodes with the old one.
#[derive(Clone, Default)]
pub struct Mst {
    root: Option<Link>,
    layer: u32,
}

impl std::fmt::Debug for Mst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mst")
            .field("root", &self.root_cid())
            .field("layer", &self.layer)
            .finish()
    }
}

/// The bytes of the empty node `{"e": [], "l": null}`, the data root of an empty repository.
fn empty_node_bytes() -> Vec<u8> {
    NodeData {
        l: None,
        e: Vec::new(),
    }
    .to_bytes()
}

impl Mst {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the tree whose root node is `root`, reading the root from `store` now and other
    /// nodes as they are needed.
    pub fn load(store: &dyn BlockSource, root: Cid) -> Result<Self, MstError> {
        let bytes = store.get_block(&root).ok_or(MstError::MissingBlock(root))?;
        let decoded = decode_node(&root, bytes)?;
        if decoded.entries.is_empty() && decoded.left.is_none() {
            return Ok(Self::new());
        }
        // A root without entries (not canonical, but readable): its layer is one above its child.
        let mut depth = 0;
        let mut layer = decoded.layer;
        let mut cursor = decoded;
        while layer.is_none() {
            let child = cursor.left.ok_or_else(|| MstError::InvalidNode {
                cid: Box::new(root),
                reason: "an empty node inside a tree".into(),
            })?;
            let bytes = store
                .get_block(&child)
                .ok_or(MstError::MissingBlock(child))?;
            cursor = decode_node(&child, bytes)?;
            depth += 1;
            layer = cursor.layer.map(|l| l + depth);
        }
        let layer = layer.unwrap_or_default();
        let link = Link::stored(root);
        link.node(store, layer)?;
        Ok(Self {
            root: Some(link),
            layer,
        })
    }

    /// The CID of the root node; the empty node's CID for an empty tree.
    pub fn root_cid(&self) -> Cid {
        match &self.root {
            Some(link) => link.cid(),
            None => cid_for_dag_cbor(&empty_node_bytes()),
        }
    }

    /// Whether the tree holds no keys.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The layer of the root node (0 for an empty tree).
    pub fn layer(&self) -> u32 {
        self.layer
    }

    pub(crate) fn root_link(&self) -> Option<&Link> {
        self.root.as_ref()
    }

    /// The value stored under `key`.
    pub fn get(&self, store: &dyn BlockSource, key: &str) -> Result<Option<Cid>, MstError> {
        let Some(mut link) = self.root.clone() else {
            return Ok(None);
        };
        let mut layer = self.layer;
        loop {
            let node = link.node(store, layer)?;
            match node.search(key) {
                Ok(index) => return Ok(Some(node.entries[index].value)),
                Err(index) => match node.child(index) {
                    Some(child) if layer > 0 => {
                        let child = child.clone();
                        link = child;
                        layer -= 1;
                    }
                    _ => return Ok(None),
                },
            }
        }
    }

    /// The tree with `key` set to `value` (inserted or replaced).
    pub fn insert(&self, store: &dyn BlockSource, key: &str, value: Cid) -> Result<Self, MstError> {
        self.clone().inserted(store, key, value)
    }

    /// The tree with a batch of writes applied in order: `Some(cid)` sets a key, `None` removes
    /// it. Nodes built by earlier writes of the batch are edited in place rather than copied, so
    /// a batch costs far less than the same writes one tree at a time. `self` is unchanged, also
    /// on error.
    pub fn apply<'k>(
        &self,
        store: &dyn BlockSource,
        writes: impl IntoIterator<Item = (&'k str, Option<Cid>)>,
    ) -> Result<Self, MstError> {
        let mut tree = self.clone();
        for (key, value) in writes {
            tree = match value {
                Some(value) => tree.inserted(store, key, value)?,
                None => tree.remove(store, key)?.0,
            };
        }
        Ok(tree)
    }

    /// The nodes built in memory since the tree was loaded, with their bytes: what a commit of
    /// this tree adds to the stored blocks (a node rebuilt identical to a stored one is included).
    pub fn new_nodes(&self) -> BlockMap {
        let mut blocks = BlockMap::new();
        let mut stack: Vec<Link> = self.root.iter().cloned().collect();
        while let Some(link) = stack.pop() {
            if link.0.stored {
                continue;
            }
            blocks.insert(link.cid(), link.encoded().to_vec());
            stack.extend(link.loaded_node().children().cloned());
        }
        blocks
    }

    fn inserted(self, store: &dyn BlockSource, key: &str, value: Cid) -> Result<Self, MstError> {
        validate_key(key)?;
        let height = key_height(key);
        let edit = Edit { store, key, height };
        let Some(root) = &self.root else {
            return Ok(Self {
                root: Some(edit.single(value, height)),
                layer: height,
            });
        };
        if height > self.layer {
            let (left, right) = edit.split(root, self.layer)?;
            let node = Node {
                layer: height,
                left: lift(left, self.layer, height - 1),
                entries: vec![Entry {
                    key: key.into(),
                    value,
                    right: lift(right, self.layer, height - 1),
                }],
            };
            return Ok(Self {
                root: Some(Link::fresh(node)),
                layer: height,
            });
        }
        let layer = self.layer;
        let root = self.root.expect("checked above");
        Ok(Self {
            root: Some(edit.insert_owned(root, layer, value)?),
            layer,
        })
    }

    /// The tree without `key`, and the value it had (`None`, and an unchanged tree, if absent).
    pub fn remove(
        &self,
        store: &dyn BlockSource,
        key: &str,
    ) -> Result<(Self, Option<Cid>), MstError> {
        let Some(root) = &self.root else {
            return Ok((self.clone(), None));
        };
        let edit = Edit {
            store,
            key,
            height: key_height(key),
        };
        let Some((mut root, removed)) = edit.remove(root, self.layer)? else {
            return Ok((self.clone(), None));
        };
        // Trim root nodes that only hold a left subtree.
        let mut layer = self.layer;
        while let Some(link) = &root {
            let node = link.node(store, layer)?;
            if !node.entries.is_empty() || layer == 0 {
                break;
            }
            root = node.left.clone();
            layer -= 1;
        }
        let tree = match root {
            Some(root) => Self {
                root: Some(root),
                layer,
            },
            None => Self::new(),
        };
        Ok((tree, Some(removed)))
    }

    /// Every key and value in key order.
    pub fn entries(&self, store: &dyn BlockSource) -> Result<Vec<(String, Cid)>, MstError> {
        self.range(store, Bound::Unbounded, Bound::Unbounded, usize::MAX)
    }

    /// Up to `limit` keys and values within the bounds, in key order.
    pub fn range(
        &self,
        store: &dyn BlockSource,
        start: Bound<&str>,
        end: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Cid)>, MstError> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            let walk = RangeWalk {
                store,
                start,
                end,
                limit,
            };
            walk.visit(root, self.layer, &mut out)?;
        }
        Ok(out)
    }

    /// Calls `visit` with the CID and bytes of every node of the tree, parents before children.
    /// For an empty tree that is the empty node.
    pub fn for_each_node(
        &self,
        store: &dyn BlockSource,
        mut visit: impl FnMut(Cid, Vec<u8>),
    ) -> Result<(), MstError> {
        let Some(root) = &self.root else {
            let bytes = empty_node_bytes();
            visit(cid_for_dag_cbor(&bytes), bytes);
            return Ok(());
        };
        let mut stack = vec![(root.clone(), self.layer)];
        while let Some((link, layer)) = stack.pop() {
            let node = link.node(store, layer)?;
            visit(link.cid(), link.bytes(store, layer)?);
            let children: Vec<_> = node.children().cloned().collect();
            stack.extend(
                children
                    .into_iter()
                    .rev()
                    .map(|c| (c, layer.saturating_sub(1))),
            );
        }
        Ok(())
    }

    /// All nodes of the tree as a block map.
    pub fn node_blocks(&self, store: &dyn BlockSource) -> Result<BlockMap, MstError> {
        let mut blocks = BlockMap::new();
        self.for_each_node(store, |cid, bytes| blocks.insert(cid, bytes))?;
        Ok(blocks)
    }

    /// The nodes on the path from the root to where `key` is or would be: together with the
    /// commit, they prove the key's presence (and value) or its absence.
    pub fn proof(&self, store: &dyn BlockSource, key: &str) -> Result<BlockMap, MstError> {
        let mut blocks = BlockMap::new();
        let Some(mut link) = self.root.clone() else {
            blocks.insert_dag_cbor(empty_node_bytes());
            return Ok(blocks);
        };
        let mut layer = self.layer;
        loop {
            let node = link.node(store, layer)?;
            blocks.insert(link.cid(), link.bytes(store, layer)?);
            let Err(index) = node.search(key) else {
                return Ok(blocks);
            };
            match node.child(index) {
                Some(child) if layer > 0 => {
                    let child = child.clone();
                    link = child;
                    layer -= 1;
                }
                _ => return Ok(blocks),
            }
        }
    }
}

/// Lifts a subtree from `from` to `to` by wrapping it in nodes that hold only a left subtree.
fn lift(mut link: Option<Link>, from: u32, to: u32) -> Option<Link> {
    for layer in from + 1..=to {
        link = link.map(|child| {
            Link::fresh(Node {
                layer,
                left: Some(child),
                entries: Vec::new(),
            })
        });
    }
    link
}

/// One key being inserted or removed, with what every recursive step needs.
struct Edit<'a> {
    store: &'a dyn BlockSource,
    key: &'a str,
    height: u32,
}

impl Edit<'_> {
    /// A subtree on `layer` holding only this key.
    fn single(&self, value: Cid, layer: u32) -> Link {
        let entry = Entry {
            key: self.key.into(),
            value,
            right: None,
        };
        let mut link = Link::fresh(Node {
            layer: self.height,
            left: None,
            entries: vec![entry],
        });
        for layer in self.height + 1..=layer {
            link = Link::fresh(Node {
                layer,
                left: Some(link),
                entries: Vec::new(),
            });
        }
        link
    }

    /// Like [`Edit::insert`], but edits nodes in place where this is their only link.
    fn insert_owned(&self, link: Link, layer: u32, value: Cid) -> Result<Link, MstError> {
        let mut node = match link.into_unique_node() {
            Ok(node) => node,
            Err(shared) => return self.insert(&shared, layer, value),
        };
        match node.search(self.key) {
            Ok(index) => node.entries[index].value = value,
            Err(index) if self.height == layer => {
                let (left, right) = match node.take_child(index) {
                    Some(child) => self.split(&child, layer - 1)?,
                    None => (None, None),
                };
                node.set_child(index, left);
                node.entries.insert(
                    index,
                    Entry {
                        key: self.key.into(),
                        value,
                        right,
                    },
                );
            }
            Err(index) => {
                let child = match node.take_child(index) {
                    Some(child) => self.insert_owned(child, layer - 1, value)?,
                    None => self.single(value, layer - 1),
                };
                node.set_child(index, Some(child));
            }
        }
        Ok(Link::fresh(node))
    }

    fn insert(&self, link: &Link, layer: u32, value: Cid) -> Result<Link, MstError> {
        let node = link.node(self.store, layer)?;
        match node.search(self.key) {
            Ok(index) => {
                if node.entries[index].value == value {
                    return Ok(link.clone());
                }
                let mut copy = node.copy();
                copy.entries[index].value = value;
                Ok(Link::fresh(copy))
            }
            Err(index) if self.height == layer => {
                let (left, right) = match node.child(index) {
                    Some(child) => self.split(child, layer - 1)?,
                    None => (None, None),
                };
                let mut copy = node.copy();
                copy.set_child(index, left);
                copy.entries.insert(
                    index,
                    Entry {
                        key: self.key.into(),
                        value,
                        right,
                    },
                );
                Ok(Link::fresh(copy))
            }
            Err(index) => {
                let child = match node.child(index) {
                    Some(child) => self.insert(child, layer - 1, value)?,
                    None => self.single(value, layer - 1),
                };
                let mut copy = node.copy();
                copy.set_child(index, Some(child));
                Ok(Link::fresh(copy))
            }
        }
    }

    /// Splits a subtree into the parts before and after the key (which it does not hold).
    fn split(&self, link: &Link, layer: u32) -> Result<(Option<Link>, Option<Link>), MstError> {
        let node = link.node(self.store, layer)?;
        let index = node.search(self.key).unwrap_or_else(|index| index);
        let (inner_left, inner_right) = match node.child(index) {
            Some(child) if layer > 0 => self.split(child, layer - 1)?,
            _ => (None, None),
        };
        let mut left = Node {
            layer,
            left: node.left.clone(),
            entries: node.entries[..index].to_vec(),
        };
        left.set_child(index, inner_left);
        let right = Node {
            layer,
            left: inner_right,
            entries: node.entries[index..].to_vec(),
        };
        Ok((left.into_link(), right.into_link()))
    }

    fn remove(&self, link: &Link, layer: u32) -> Result<Option<(Option<Link>, Cid)>, MstError> {
        let node = link.node(self.store, layer)?;
        match node.search(self.key) {
            Ok(index) => {
                let removed = node.entries[index].clone();
                let merged = match layer {
                    0 => None,
                    _ => self.merge(node.child(index), removed.right.as_ref(), layer - 1)?,
                };
                let mut copy = node.copy();
                copy.entries.remove(index);
                copy.set_child(index, merged);
                Ok(Some((copy.into_link(), removed.value)))
            }
            Err(index) => {
                let Some(child) = node.child(index).filter(|_| layer > 0) else {
                    return Ok(None);
                };
                let Some((child, removed)) = self.remove(child, layer - 1)? else {
                    return Ok(None);
                };
                let mut copy = node.copy();
                copy.set_child(index, child);
                Ok(Some((copy.into_link(), removed)))
            }
        }
    }

    /// Joins two adjacent subtrees of one layer (every key of `left` is before every key of
    /// `right`).
    fn merge(
        &self,
        left: Option<&Link>,
        right: Option<&Link>,
        layer: u32,
    ) -> Result<Option<Link>, MstError> {
        let (left, right) = match (left, right) {
            (None, other) | (other, None) => return Ok(other.cloned()),
            (Some(left), Some(right)) => (left, right),
        };
        let left_node = left.node(self.store, layer)?;
        let right_node = right.node(self.store, layer)?;
        let seam = match layer {
            0 => None,
            _ => self.merge(
                left_node.child(left_node.entries.len()),
                right_node.left.as_ref(),
                layer - 1,
            )?,
        };
        let mut joined = left_node.copy();
        joined.set_child(joined.entries.len(), seam);
        joined.entries.extend(right_node.entries.iter().cloned());
        Ok(joined.into_link())
    }
}

/// An in-order walk that skips subtrees outside the bounds.
struct RangeWalk<'a> {
    store: &'a dyn BlockSource,
    start: Bound<&'a str>,
    end: Bound<&'a str>,
    limit: usize,
}

impl RangeWalk<'_> {
    fn after_start(&self, key: &str) -> bool {
        match self.start {
            Bound::Included(start) => key >= start,
            Bound::Excluded(start) => key > start,
            Bound::Unbounded => true,
        }
    }

    fn before_end(&self, key: &str) -> bool {
        match self.end {
            Bound::Included(end) => key <= end,
            Bound::Excluded(end) => key < end,
            Bound::Unbounded => true,
        }
    }

    /// Visits a subtree; returns `false` once the walk is past the end or the limit.
    fn visit(
        &self,
        link: &Link,
        layer: u32,
        out: &mut Vec<(String, Cid)>,
    ) -> Result<bool, MstError> {
        let node = link.node(self.store, layer)?;
        for index in 0..=node.entries.len() {
            // The subtree before entry `index` holds keys between entry index-1 and entry index.
            let subtree_may_match = (index == node.entries.len()
                || self.after_start(&node.entries[index].key))
                && (index == 0 || self.before_end(&node.entries[index - 1].key));
            let child = node.child(index).filter(|_| subtree_may_match && layer > 0);
            if let Some(child) = child
                && !self.visit(child, layer - 1, out)?
            {
                return Ok(false);
            }
            let Some(entry) = node.entries.get(index) else {
                break;
            };
            if !self.before_end(&entry.key) {
                return Ok(false);
            }
            if self.after_start(&entry.key) {
                if out.len() >= self.limit {
                    return Ok(false);
                }
                out.push((entry.key.to_string(), entry.value));
            }
        }
        Ok(true)
    }
}
