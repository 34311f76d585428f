//! A repository as a set of blocks — a signed commit, its MST and its records — and the checks
//! that tie them together. Used to verify exports and imports.

use cid::Cid;

use crate::blocks::{BlockMap, BlockSource};
use crate::commit::{Commit, CommitError};
use crate::mst::{Mst, MstError};

/// Why a set of blocks is not a complete, consistent repository.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepoError {
    /// The commit block is not among the blocks.
    #[error("commit block {0} is missing")]
    MissingCommit(Cid),
    /// The commit does not decode.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The MST is incomplete or invalid.
    #[error(transparent)]
    Mst(#[from] MstError),
}

/// A repository read from blocks: the commit and every record key with its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoContents {
    /// The CID of the commit block.
    pub commit_cid: Cid,
    /// The decoded commit.
    pub commit: Commit,
    /// Every `collection/rkey` and record CID, in key order.
    pub records: Vec<(String, Cid)>,
}

impl RepoContents {
    /// Keys whose record block is not among `blocks`.
    pub fn missing_records(&self, blocks: &dyn BlockSource) -> Vec<&str> {
        self.records
            .iter()
            .filter(|(_, cid)| blocks.get_block(cid).is_none())
            .map(|(key, _)| key.as_str())
            .collect()
    }
}

/// Decodes the commit at `commit_cid` and walks its whole MST.
pub fn read_repo(blocks: &BlockMap, commit_cid: Cid) -> Result<RepoContents, RepoError> {
    let bytes = blocks
        .get_block(&commit_cid)
        .ok_or(RepoError::MissingCommit(commit_cid))?;
    let commit = Commit::from_block(bytes)?;
    let tree = Mst::load(blocks, commit.data)?;
    let records = tree.entries(blocks)?;
    Ok(RepoContents {
        commit_cid,
        commit,
        records,
    })
}
