//! The repo projector's arbiter: decides whether a `#commit` applies to an actor's projected
//! state, and if so, exactly what changes.
//!
//! A commit applies only if the actor is enrolled, the commit builds on the actor's projected
//! head, its signature verifies with the actor's key from its `#enrollment`, its revision moves
//! forward, and its ops are exactly what turns the head's MST into the commit's MST. Anything
//! else is rejected with a [`Rejection`] the projector records. The decision reads only its
//! inputs, so a replay reaches the same decisions in the same order. (A commit the command side
//! of the same process built is taken as built once it is known to build on the head: its
//! signature, and its tree change when remembered, come from [`SignedHere`].)

use std::collections::BTreeMap;

use stratos_schema::Cid;
use stratos_schema::blocks::{BlockMap, BlockSource};
use stratos_schema::commit::{Commit, SignedHere};
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{CommitEvent, OpAction};
use stratos_schema::keys::PublicKey;
use stratos_schema::mst::{Mst, MstDiff, MstError, RecordOp, diff};

/// What the projection knows about an actor before an event.
#[derive(Debug, Clone)]
pub struct ActorState {
    /// Whether the actor is currently enrolled.
    pub enrolled: bool,
    /// The actor's repository key from its latest `#enrollment`.
    pub signing_key: PublicKey,
    /// The projected head: commit CID, revision and MST root.
    pub head: Option<Head>,
    /// The actor's data key; `None` once purged (records then project without content).
    pub data_key: Option<DataKey>,
}

pub use stratos_store::Head;

/// Why a commit was not applied. Recorded with the event's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `#enrollment` was ever seen for the actor.
    #[error("unknown actor")]
    UnknownActor,
    /// The actor unenrolled.
    #[error("actor is not enrolled")]
    NotEnrolled,
    /// The commit was built on another head (a fork, or a stale writer).
    #[error("commit builds on {claimed}, but the head is {head}")]
    NotOnHead {
        /// The head the commit claims to build on.
        claimed: String,
        /// The projected head.
        head: String,
    },
    /// The commit's blocks are malformed or do not belong to the event.
    #[error("invalid commit: {0}")]
    Invalid(String),
    /// The signature does not verify with the actor's key.
    #[error("signature does not verify with the actor's key")]
    BadSignature,
    /// The revision does not move forward.
    #[error("revision {rev} is not after the head's {head}")]
    StaleRevision {
        /// The commit's revision.
        rev: String,
        /// The head's revision.
        head: String,
    },
    /// The ops do not turn the head's tree into the commit's tree.
    #[error("ops do not match the commit's tree: {0}")]
    OpsMismatch(String),
    /// A created or updated record's sealed block is missing from the event.
    #[error("record {0} is missing")]
    BadRecord(String),
    /// A node of the head's tree is not in the block source: a caller holding only part of
    /// the tree reads the node and decides again; otherwise the commit is rejected.
    #[error("MST node {0} is missing")]
    MissingNode(Cid),
}

impl Rejection {
    /// `error` of the tree as a rejection: a missing node as [`Rejection::MissingNode`], any
    /// other as `otherwise`.
    fn from_mst(error: MstError, otherwise: fn(String) -> Rejection) -> Rejection {
        match error {
            MstError::MissingBlock(cid) => Rejection::MissingNode(cid),
            error => otherwise(error.to_string()),
        }
    }
}

/// One record row to write or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    /// A created or updated record.
    Put {
        /// `collection/rkey`.
        path: String,
        /// The record CID.
        cid: Cid,
        /// Its qualified boundaries.
        boundaries: Vec<String>,
        /// The record block, or `None` when it does not open with the actor's data key (purged).
        block: Option<Vec<u8>>,
        /// Whether the commit created it (the key was not in the tree before).
        created: bool,
    },
    /// A deleted record.
    Delete {
        /// `collection/rkey`.
        path: String,
        /// The record CID it had.
        prev: Cid,
    },
}

/// Everything applying a commit changes, for the projector to write in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new head.
    pub head: Head,
    /// New blocks: the commit block and the MST nodes it created.
    pub new_blocks: BlockMap,
    /// Blocks no longer reachable: replaced MST nodes and the old commit.
    pub removed_blocks: Vec<Cid>,
    /// Record rows to write or remove, in path order.
    pub records: Vec<RecordChange>,
}

/// Decides a `#commit` against an actor's state. `blocks` holds the nodes of the head's MST
/// (the projection's stored blocks for the actor); a node it lacks gives
/// [`Rejection::MissingNode`].
pub fn decide_commit(
    state: Option<&ActorState>,
    event: &CommitEvent,
    blocks: &dyn BlockSource,
) -> Result<Applied, Rejection> {
    decide_commit_signed_here(state, event, blocks, None)
}

/// [`decide_commit`], taking the signature of a commit this process signed (`signed_here`)
/// as checked, and its tree change too when the command side named the nodes it removed.
pub fn decide_commit_signed_here(
    state: Option<&ActorState>,
    event: &CommitEvent,
    blocks: &dyn BlockSource,
    signed_here: Option<&SignedHere>,
) -> Result<Applied, Rejection> {
    let state = state.ok_or(Rejection::UnknownActor)?;
    if !state.enrolled {
        return Err(Rejection::NotEnrolled);
    }
    let head_cid = state.head.as_ref().map(|h| h.commit);
    if event.prev_commit != head_cid {
        let show = |cid: Option<Cid>| cid.map_or("none".to_string(), |c| c.to_string());
        return Err(Rejection::NotOnHead {
            claimed: show(event.prev_commit),
            head: show(head_cid),
        });
    }
    let (commit, slice_blocks) = event
        .slice
        .open(&event.did)
        .map_err(|e| Rejection::Invalid(e.to_string()))?;
    let removed_here = match signed_here {
        Some(signed_here) => signed_here.verify(&event.slice.commit, &commit, &state.signing_key),
        None => commit.verify(&state.signing_key).map(|()| None),
    }
    .map_err(|_| Rejection::BadSignature)?;
    if let Some(head) = &state.head
        && commit.rev <= head.rev
    {
        return Err(Rejection::StaleRevision {
            rev: commit.rev.to_string(),
            head: head.rev.to_string(),
        });
    }

    // A commit the command side of this process built from this head: its slice holds the
    // nodes it created, and the command side named those it removed.
    let (mut new_blocks, mut removed_blocks) = match removed_here {
        Some(removed) => (slice_blocks, removed),
        None => {
            let changes = tree_change(state, event, &commit, &slice_blocks, blocks)?;
            (changes.created_nodes, changes.removed_nodes)
        }
    };
    let sealed: BTreeMap<Cid, _> = event.records.iter().map(|r| (r.cid, r)).collect();
    let mut records = Vec::with_capacity(event.ops.len());
    removed_blocks.extend(head_cid);
    for op in &event.ops {
        match (op.action, op.cid) {
            (OpAction::Delete, _) => records.push(RecordChange::Delete {
                path: op.path.clone(),
                prev: op
                    .prev
                    .ok_or_else(|| Rejection::OpsMismatch(op.path.clone()))?,
            }),
            (_, Some(cid)) => {
                let record = sealed
                    .get(&cid)
                    .ok_or_else(|| Rejection::BadRecord(op.path.clone()))?;
                // A record sealed with a key the actor no longer has (destroyed by a purge, or
                // replaced on re-enrollment) projects without content, like a purged one.
                let block = state
                    .data_key
                    .as_ref()
                    .and_then(|key| record.open(key, &event.did).ok());
                records.push(RecordChange::Put {
                    path: op.path.clone(),
                    cid,
                    boundaries: op.boundaries.clone(),
                    block,
                    // `check_ops` held every create to a key the old tree did not have.
                    created: op.action == OpAction::Create,
                });
            }
            (_, None) => return Err(Rejection::OpsMismatch(op.path.clone())),
        }
    }
    removed_blocks.sort();
    removed_blocks.dedup();

    let (commit_cid, commit_bytes) = commit.to_block();
    if commit_cid != event.slice.commit {
        return Err(Rejection::Invalid("commit CID mismatch".into()));
    }
    new_blocks.insert(commit_cid, commit_bytes);
    Ok(Applied {
        head: Head {
            commit: commit_cid,
            rev: commit.rev,
            data: commit.data,
        },
        new_blocks,
        removed_blocks,
        records,
    })
}

/// Rebuilds the commit's tree from the head's tree (`blocks`, under the slice's new nodes) and
/// the event's ops, and checks that it is the tree the commit signs and that the ops are exactly
/// its record changes.
fn tree_change(
    state: &ActorState,
    event: &CommitEvent,
    commit: &Commit,
    slice_blocks: &BlockMap,
    blocks: &dyn BlockSource,
) -> Result<MstDiff, Rejection> {
    let layered = Layered {
        top: slice_blocks,
        bottom: blocks,
    };
    // The empty tree (a genesis commit's) is known without its node block.
    let empty = Mst::new();
    let old = match &state.head {
        Some(head) if head.data != empty.root_cid() => Mst::load(&layered, head.data)
            .map_err(|e| Rejection::from_mst(e, Rejection::Invalid))?,
        _ => empty,
    };
    let mut new = old.clone();
    for op in &event.ops {
        new = match (op.action, op.cid) {
            (OpAction::Create | OpAction::Update, Some(cid)) => new.insert(&layered, &op.path, cid),
            (OpAction::Delete, None) => new.remove(&layered, &op.path).map(|(tree, _)| tree),
            _ => {
                return Err(Rejection::OpsMismatch(format!(
                    "malformed op on {}",
                    op.path
                )));
            }
        }
        .map_err(|e| Rejection::from_mst(e, Rejection::OpsMismatch))?;
    }
    if new.root_cid() != commit.data {
        return Err(Rejection::OpsMismatch(format!(
            "ops give root {}, the commit signs {}",
            new.root_cid(),
            commit.data
        )));
    }
    let changes =
        diff(&layered, &old, &new).map_err(|e| Rejection::from_mst(e, Rejection::Invalid))?;
    check_ops(event, &changes.ops)?;
    Ok(changes)
}

/// The event's ops must be exactly the record changes between the two trees, with the right
/// previous CIDs.
fn check_ops(event: &CommitEvent, expected: &[RecordOp]) -> Result<(), Rejection> {
    let mismatch = |what: String| Err(Rejection::OpsMismatch(what));
    let mut claimed: Vec<_> = event.ops.iter().collect();
    claimed.sort_by(|a, b| a.path.cmp(&b.path));
    if claimed.len() != expected.len() {
        return mismatch(format!(
            "{} ops for {} changed records",
            claimed.len(),
            expected.len()
        ));
    }
    for (op, change) in claimed.into_iter().zip(expected) {
        let ok = match change {
            RecordOp::Create { key, cid } => {
                op.action == OpAction::Create
                    && &op.path == key
                    && op.cid == Some(*cid)
                    && op.prev.is_none()
            }
            RecordOp::Update { key, prev, cid } => {
                op.action == OpAction::Update
                    && &op.path == key
                    && op.cid == Some(*cid)
                    && op.prev == Some(*prev)
            }
            RecordOp::Delete { key, prev } => {
                op.action == OpAction::Delete
                    && &op.path == key
                    && op.cid.is_none()
                    && op.prev == Some(*prev)
            }
        };
        if !ok {
            return mismatch(format!("op on {} does not match the tree", op.path));
        }
    }
    Ok(())
}

/// Blocks from the event's slice over the projection's stored blocks.
struct Layered<'a> {
    top: &'a BlockMap,
    bottom: &'a dyn BlockSource,
}

impl BlockSource for Layered<'_> {
    fn get_block(&self, cid: &Cid) -> Option<&[u8]> {
        self.top
            .get_block(cid)
            .or_else(|| self.bottom.get_block(cid))
    }
}
