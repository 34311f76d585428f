//! Checking inclusion and exclusion proofs made by [`Mst::proof`](super::Mst::proof).

use cid::Cid;

use super::{Mst, MstError};
use crate::blocks::BlockSource;

/// Walks from `root` to `key` using only the proof's blocks. Returns the key's value when the
/// proof shows it present, `None` when it shows it absent, and an error when a node on the path
/// is missing or invalid.
pub fn verify_proof(
    blocks: &dyn BlockSource,
    root: Cid,
    key: &str,
) -> Result<Option<Cid>, MstError> {
    Mst::load(blocks, root)?.get(blocks, key)
}
