//! The ATProto data model: DAG-CBOR encoding, CIDv1 links, and the JSON representation with its
//! `$link`, `$bytes` and blob conventions.
//!
//! Values are held as [`Ipld`](ipld_core::ipld::Ipld). DAG-CBOR here is the strict, canonical
//! form the atproto specs require (map keys sorted by length then bytes, no floats in records,
//! links as tag 42). This module does not know about records or lexicons; see
//! [`crate::lexicon`] for that.

mod blobs;
mod cbor;
mod cid;
mod json;

pub use self::blobs::{blob_refs, blob_refs_in_block};
pub use self::cbor::{
    CborError, MAX_NESTING_DEPTH, check_nesting, decode_ipld, from_dag_cbor, to_dag_cbor,
};
pub use self::cid::{
    CidError, DAG_CBOR_CODEC, RAW_CODEC, SHA2_256_CODE, check_repo_cid, cid_for_dag_cbor,
    cid_for_raw, parse_cid, verify_cid,
};
pub(crate) use self::json::BASE64;
pub use self::json::{DataModelError, ipld_to_json, json_to_ipld};
