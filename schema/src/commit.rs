//! Signed ATProto repository commits, version 3: `{did, version: 3, data, rev, prev: null, sig}`.
//!
//! The signature is ECDSA (low-S, compact `r‖s`) over SHA-256 of the DAG-CBOR bytes of the
//! commit without `sig`; the commit's CID is that of the signed bytes.

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
