//! Signed ATProto repository commits, version 3: `{did, version: 3, data, rev, prev: null, sig}`.
//!
//! The signature is ECDSA (low-S, compact `r‖s`) over SHA-256 of the DAG-CBOR bytes of the
//! commit without `sig`; the commit's CID is that of the signed bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cid::Cid;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::data::{CborError, cid_for_dag_cbor, from_dag_cbor, to_dag_cbor};
use crate::keys::{Keypair, PublicKey, SignatureError};
use crate::syntax::{Did, SyntaxError, Tid};

/// The only commit version this crate writes or reads.
pub const COMMIT_VERSION: u64 = 3;

/// Why a commit could not be decoded or verified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommitError {
    /// The block is not a commit.
    #[error("not a commit: {0}")]
    Decode(#[from] CborError),
    /// A commit of another version.
    #[error("commit version {0} is not supported (expected 3)")]
    UnsupportedVersion(u64),
    /// The `did` or `rev` field is malformed.
    #[error("commit field: {0}")]
    Field(#[from] SyntaxError),
    /// The signature does not verify with the given key.
    #[error("commit signature does not verify: {0}")]
    Signature(#[from] SignatureError),
}

/// A commit before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsignedCommit {
    /// The repository's DID.
    pub did: Did,
    /// Always 3.
    pub version: u64,
    /// The root of the repository's MST.
    pub data: Cid,
    /// The revision: a TID, greater than every earlier revision of the repository.
    pub rev: Tid,
    /// Always `null` in version 3.
    pub prev: Option<Cid>,
}

/// A signed commit, as stored in a repository block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    /// The repository's DID.
    pub did: Did,
    /// Always 3.
    pub version: u64,
    /// The root of the repository's MST.
    pub data: Cid,
    /// The revision (a TID).
    pub rev: Tid,
    /// Always present; `null` in version 3.
    #[serde(deserialize_with = "Option::deserialize")]
    pub prev: Option<Cid>,
    /// The 64-byte low-S `r‖s` signature.
    pub sig: ByteBuf,
}

impl UnsignedCommit {
    /// A version-3 commit of `data` at revision `rev`.
    pub fn new(did: Did, data: Cid, rev: Tid) -> Self {
        Self {
            did,
            version: COMMIT_VERSION,
            data,
            rev,
            prev: None,
        }
    }

    /// The bytes that get signed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_dag_cbor(self).expect("commit fields are always encodable")
    }

    /// Signs the commit with the repository's key.
    pub fn sign(self, key: &Keypair) -> Commit {
        let sig = key.sign(&self.signing_bytes());
        Commit {
            did: self.did,
            version: self.version,
            data: self.data,
            rev: self.rev,
            prev: self.prev,
            sig: ByteBuf::from(sig.to_vec()),
        }
    }
}

impl Commit {
    /// The commit without its signature.
    pub fn unsigned(&self) -> UnsignedCommit {
        UnsignedCommit {
            did: self.did.clone(),
            version: self.version,
            data: self.data,
            rev: self.rev.clone(),
            prev: self.prev,
        }
    }

    /// Checks the signature against a public key.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CommitError> {
        key.verify(&self.unsigned().signing_bytes(), &self.sig)?;
        Ok(())
    }

    /// The signed commit's block bytes and CID.
    pub fn to_block(&self) -> (Cid, Vec<u8>) {
        let bytes = to_dag_cbor(self).expect("commit fields are always encodable");
        (cid_for_dag_cbor(&bytes), bytes)
    }

    /// Decodes a commit block, refusing other versions and non-canonical encodings.
    pub fn from_block(bytes: &[u8]) -> Result<Self, CommitError> {
        let commit: Commit = from_dag_cbor(bytes)?;
        if commit.version != COMMIT_VERSION {
            return Err(CommitError::UnsupportedVersion(commit.version));
        }
        if commit.to_block().1 != bytes {
            return Err(CborError::Decode("commit is not in canonical form".into()).into());
        }
        Ok(commit)
    }
}

/// How many commits [`SignedHere`] remembers before it starts over.
const SIGNED_HERE_CAPACITY: usize = 16_384;

/// The commits this process signed, by CID, with the key that signed each. A commit block with
/// one of these CIDs holds exactly the signature this process made (the CID is the hash of the
/// signed bytes), so it verifies with that key without the curve arithmetic; and when the
/// command side also remembered the tree nodes the commit removed, the repo projector takes the
/// commit's tree change as built (it was derived from the same head by the same code) instead of
/// rebuilding the tree. Shared by the command side and a repo projector in the same process;
/// each entry is used once, and past a bound the set starts over (the commits it forgot are
/// checked the long way).
#[derive(Clone, Default)]
pub struct SignedHere(Arc<Mutex<HashMap<Cid, BuiltHere>>>);

/// What [`SignedHere`] remembers of one commit.
struct BuiltHere {
    signer: PublicKey,
    removed_nodes: Option<Vec<Cid>>,
}

impl SignedHere {
    /// Remembers that this process signed the commit whose block has CID `commit` with `key`,
    /// and, when given, which MST nodes of the previous head's tree it removed.
    pub fn remember(&self, commit: Cid, key: PublicKey, removed_nodes: Option<Vec<Cid>>) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= SIGNED_HERE_CAPACITY {
            known.clear();
        }
        known.insert(
            commit,
            BuiltHere {
                signer: key,
                removed_nodes,
            },
        );
    }

    /// Checks the signature of `commit` (whose block has CID `cid`) against `key`: at once when
    /// this process signed it with that key, by verifying otherwise. Returns the removed MST
    /// nodes the command side remembered for it, if any (only for a commit signed here).
    pub fn verify(
        &self,
        cid: &Cid,
        commit: &Commit,
        key: &PublicKey,
    ) -> Result<Option<Vec<Cid>>, CommitError> {
        let signed_here = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cid);
        match signed_here {
            Some(built) if built.signer == *key => Ok(built.removed_nodes),
            _ => commit.verify(key).map(|()| None),
        }
    }
}

#[cfg(test)]
mod signed_here_tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    /// Signs a commit of `data_seed` with `key`, remembering it in `signed_here`.
    fn sign_here(signed_here: &SignedHere, data_seed: &[u8], key: &Keypair) -> Commit {
        let commit = unsigned(data_seed).sign(key);
        signed_here.remember(commit.to_block().0, key.public_key(), None);
        commit
    }

    fn unsigned(data_seed: &[u8]) -> UnsignedCommit {
        UnsignedCommit::new(
            "did:plc:signedhere".parse().unwrap(),
            cid_for_dag_cbor(data_seed),
            "3kabcdefghij2".parse().unwrap(),
        )
    }

    #[test]
    fn only_the_commit_signed_here_with_that_key_skips_verification() {
        let signed_here = SignedHere::default();
        let key = Keypair::generate(KeyAlgorithm::P256);
        let other = Keypair::generate(KeyAlgorithm::P256);
        let commit = sign_here(&signed_here, b"a", &key);
        let cid = commit.to_block().0;
        let remembered = |cid: &Cid| signed_here.0.lock().unwrap().contains_key(cid);
        assert!(remembered(&cid));
        assert!(signed_here.verify(&cid, &commit, &key.public_key()).is_ok());
        assert!(!remembered(&cid), "each entry is used once");
        let commit = sign_here(&signed_here, b"a", &key);
        let cid = commit.to_block().0;
        // Another key: verified the long way (and refused), and the entry is used up.
        assert!(
            signed_here
                .verify(&cid, &commit, &other.public_key())
                .is_err()
        );
        assert!(signed_here.verify(&cid, &commit, &key.public_key()).is_ok());

        // The removed nodes remembered with a commit come back with its signature.
        let commit = unsigned(b"c").sign(&key);
        let cid = commit.to_block().0;
        signed_here.remember(cid, key.public_key(), Some(vec![cid]));
        assert_eq!(
            signed_here
                .verify(&cid, &commit, &key.public_key())
                .unwrap(),
            Some(vec![cid])
        );
        assert_eq!(
            signed_here
                .verify(&cid, &commit, &key.public_key())
                .unwrap(),
            None
        );

        // Another signature makes another block, whose CID was not signed here.
        let forged = Commit {
            sig: ByteBuf::from(vec![1u8; 64]),
            ..sign_here(&signed_here, b"b", &key)
        };
        let forged_cid = forged.to_block().0;
        assert!(
            signed_here
                .verify(&forged_cid, &forged, &key.public_key())
                .is_err()
        );
    }
}
