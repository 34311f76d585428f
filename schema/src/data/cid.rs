//! CIDv1 with sha2-256, for DAG-CBOR blocks (codec 0x71) and raw blobs (codec 0x55).

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

/// Multicodec code of DAG-CBOR: records, MST nodes and commits.
pub const DAG_CBOR_CODEC: u64 = 0x71;
/// Multicodec code of raw bytes: blobs.
pub const RAW_CODEC: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256_CODE: u64 = 0x12;

/// Why a CID string or a block's CID was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    /// The text or bytes are not a CID at all.
    #[error("invalid CID: {0}")]
    Malformed(String),
    /// A CID version, codec or hash that atproto repositories do not use.
    #[error("unsupported CID: {0}")]
    Unsupported(String),
    /// The block's bytes do not hash to the CID it was stored under.
    #[error("CID {cid} does not match the block bytes")]
    Mismatch {
        /// The CID the block claimed.
        cid: Cid,
    },
}

fn sha256_cid(codec: u64, bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    let hash = Multihash::<64>::wrap(SHA2_256_CODE, &digest)
        .expect("a 32-byte digest always fits a 64-byte multihash");
    Cid::new_v1(codec, hash)
}

/// The CID of a DAG-CBOR block: CIDv1, codec 0x71, sha2-256.
pub fn cid_for_dag_cbor(bytes: &[u8]) -> Cid {
    sha256_cid(DAG_CBOR_CODEC, bytes)
}

/// The CID of a blob: CIDv1, codec 0x55, sha2-256.
pub fn cid_for_raw(bytes: &[u8]) -> Cid {
    sha256_cid(RAW_CODEC, bytes)
}

/// Parses a CID string as atproto uses it: CIDv1 (any multibase), dag-cbor or raw, sha2-256.
pub fn parse_cid(text: &str) -> Result<Cid, CidError> {
    let cid = Cid::try_from(text).map_err(|e| CidError::Malformed(e.to_string()))?;
    check_repo_cid(&cid)?;
    Ok(cid)
}

/// Checks that a CID is of the kind repositories hold: CIDv1, dag-cbor or raw, sha2-256/32 bytes.
pub fn check_repo_cid(cid: &Cid) -> Result<(), CidError> {
    if cid.version() != cid::Version::V1 {
        return Err(CidError::Unsupported(format!("{cid}: not CIDv1")));
    }
    if cid.codec() != DAG_CBOR_CODEC && cid.codec() != RAW_CODEC {
        return Err(CidError::Unsupported(format!(
            "{cid}: codec 0x{:x}",
            cid.codec()
        )));
    }
    let hash = cid.hash();
    if hash.code() != SHA2_256_CODE || hash.size() != 32 {
        return Err(CidError::Unsupported(format!(
            "{cid}: hash 0x{:x}",
            hash.code()
        )));
    }
    Ok(())
}

/// Recomputes the CID of `bytes` with the codec of `cid` and checks that they match.
pub fn verify_cid(cid: &Cid, bytes: &[u8]) -> Result<(), CidError> {
    check_repo_cid(cid)?;
    if sha256_cid(cid.codec(), bytes) == *cid {
        Ok(())
    } else {
        Err(CidError::Mismatch { cid: *cid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_cbor_cids_use_their_codecs() {
        assert!(cid_for_raw(b"abc").to_string().starts_with("bafkrei"));
        assert!(cid_for_dag_cbor(b"\xa0").to_string().starts_with("bafyrei"));
    }

    #[test]
    fn verify_detects_mismatch() {
        let cid = cid_for_dag_cbor(b"\xa0");
        assert!(verify_cid(&cid, b"\xa0").is_ok());
        assert_eq!(verify_cid(&cid, b"\x80"), Err(CidError::Mismatch { cid }));
    }

    #[test]
    fn parse_rejects_garbage_and_v0() {
        assert!(parse_cid("not a cid").is_err());
        assert!(parse_cid("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").is_err());
        let cid = cid_for_dag_cbor(b"\xa0");
        assert_eq!(parse_cid(&cid.to_string()), Ok(cid));
    }
}
