//! The wire form of MST nodes: `{l, e: [{p, k, v, t}]}` in DAG-CBOR, with prefix-compressed keys.

use cid::Cid;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::MstError;
use super::key::{common_prefix_len, key_height, validate_key};
use crate::data::{from_dag_cbor, to_dag_cbor};

/// One MST node as stored: an optional left subtree and entries in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeData {
    /// The subtree of keys before the first entry (always present, `null` when absent).
    #[serde(deserialize_with = "Option::deserialize")]
    pub l: Option<Cid>,
    /// The entries, in key order.
    pub e: Vec<EntryData>,
}

/// One entry of a stored MST node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryData {
    /// How many leading bytes this key shares with the previous key of the node.
    pub p: usize,
    /// The rest of the key.
    pub k: ByteBuf,
    /// The record CID.
    pub v: Cid,
    /// The subtree of keys between this entry and the next (always present, `null` when absent).
    #[serde(deserialize_with = "Option::deserialize")]
    pub t: Option<Cid>,
}

/// A node decoded and checked: full keys restored, sorted, all on one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedNode {
    pub left: Option<Cid>,
    pub entries: Vec<(String, Cid, Option<Cid>)>,
    /// The layer of the entries; `None` for a node with no entries.
    pub layer: Option<u32>,
}

impl NodeData {
    /// Encodes the node as canonical DAG-CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_dag_cbor(self).expect("MST nodes hold only links, integers and bytes")
    }

    /// Builds the wire form of a node from full keys in order.
    pub(crate) fn from_entries<'a>(
        left: Option<Cid>,
        entries: impl Iterator<Item = (&'a str, Cid, Option<Cid>)>,
    ) -> Self {
        let mut previous = "";
        let e = entries
            .map(|(key, value, right)| {
                let prefix = common_prefix_len(previous, key);
                previous = key;
                EntryData {
                    p: prefix,
                    k: ByteBuf::from(key.as_bytes()[prefix..].to_vec()),
                    v: value,
                    t: right,
                }
            })
            .collect();
        NodeData { l: left, e }
    }
}

/// Decodes and checks an untrusted node block.
pub(crate) fn decode_node(cid: &Cid, bytes: &[u8]) -> Result<DecodedNode, MstError> {
    let data: NodeData =
        from_dag_cbor(bytes).map_err(|source| MstError::Decode { cid: *cid, source })?;
    let invalid = |reason: String| MstError::InvalidNode { cid: *cid, reason };
    if data.to_bytes() != bytes {
        return Err(invalid("not in canonical form".into()));
    }
    let mut entries = Vec::with_capacity(data.e.len());
    let mut previous = String::new();
    let mut layer = None;
    for entry in data.e {
        if entry.p > previous.len() {
            return Err(invalid(format!("prefix length {} too long", entry.p)));
        }
        let suffix = String::from_utf8(entry.k.into_vec())
            .map_err(|_| invalid("key is not UTF-8".into()))?;
        let mut key = String::with_capacity(entry.p + suffix.len());
        key.push_str(
            previous
                .get(..entry.p)
                .ok_or_else(|| invalid("prefix splits a character".into()))?,
        );
        key.push_str(&suffix);
        validate_key(&key).map_err(|e| invalid(e.to_string()))?;
        if !entries.is_empty() && key <= previous {
            return Err(invalid("keys are not in strictly increasing order".into()));
        }
        let height = key_height(&key);
        match layer {
            None => layer = Some(height),
            Some(layer) if layer != height => {
                return Err(invalid(format!(
                    "key {key} has height {height} in a node of layer {layer}"
                )));
            }
            Some(_) => {}
        }
        previous.clone_from(&key);
        entries.push((key, entry.v, entry.t));
    }
    Ok(DecodedNode {
        left: data.l,
        entries,
        layer,
    })
}
