//! The ATProto Merkle Search Tree: the ordered map from `collection/rkey` to record CIDs that a
//! repository commit signs.
//!
//! [`Mst`] is an immutable, structurally shared tree whose nodes load lazily from a
//! [`BlockSource`](crate::blocks::BlockSource); edits return a new tree and leave the old one
//! intact, so a commit can be built beside the committed state. [`diff`] yields what a firehose
//! commit needs (record ops, created and removed nodes) and [`Mst::proof`] the nodes that prove a
//! key's presence or absence. The tree is canonical: the same key set gives the same root CID in
//! any insertion order.

mod diff;
mod key;
mod node;
mod proof;
mod tree;

pub use self::diff::{MstDiff, RecordOp, diff};
pub use self::key::{common_prefix_len, key_height, validate_key};
pub use self::node::{EntryData, NodeData};
pub use self::proof::verify_proof;
pub use self::tree::Mst;

use cid::Cid;

use crate::data::CborError;

/// Why an MST operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MstError {
    /// A key that is not `collection/rkey` in the MST key alphabet.
    #[error("invalid MST key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A node the tree refers to is not in the block source.
    #[error("MST node {0} is missing")]
    MissingBlock(Cid),
    /// A node's bytes are not a valid MST node.
    #[error("MST node {cid} is invalid: {reason}")]
    InvalidNode {
        /// The node.
        cid: Box<Cid>,
        /// What is wrong with it.
        reason: String,
    },
    /// A node's bytes are not DAG-CBOR.
    #[error("MST node {cid}: {source}")]
    Decode {
        /// The node.
        cid: Box<Cid>,
        /// The decoding error.
        source: CborError,
    },
}
