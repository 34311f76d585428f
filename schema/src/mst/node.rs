//! The wire form of MST nodes: `{l, e: [{p, k, v, t}]}` in DAG-CBOR, with prefix-compressed keys.

use cid::Cid;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::MstError;
use super::key::{key_height, validate_key};
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
        let mut encoder = NodeEncoder::new(self.e.len());
        for entry in &self.e {
            encoder.entry(entry.p, &entry.k, &entry.v, entry.t.as_ref());
        }
        encoder.finish(self.l.as_ref())
    }

    /// Encodes the node through the generic DAG-CBOR serializer (the reference for
    /// [`NodeData::to_bytes`], which writes the same bytes directly).
    pub fn to_bytes_generic(&self) -> Vec<u8> {
        to_dag_cbor(self).expect("MST nodes hold only links, integers and bytes")
    }
}

/// Writes MST nodes straight to canonical DAG-CBOR. Nodes are the hottest encoding in a commit and
/// have one fixed shape, so this skips the generic serializer's per-map buffering and sorting.
/// Canonical order: `e` before `l`; within an entry `k`, `p`, `t`, `v`.
pub(crate) struct NodeEncoder {
    buf: Vec<u8>,
}

impl NodeEncoder {
    pub(crate) fn new(entries: usize) -> Self {
        let mut buf = Vec::with_capacity(16 + entries * 96);
        buf.extend_from_slice(&[0xa2, 0x61, b'e']);
        write_header(&mut buf, 4, entries as u64);
        Self { buf }
    }

    pub(crate) fn entry(&mut self, prefix: usize, suffix: &[u8], value: &Cid, right: Option<&Cid>) {
        let buf = &mut self.buf;
        buf.extend_from_slice(&[0xa4, 0x61, b'k']);
        write_header(buf, 2, suffix.len() as u64);
        buf.extend_from_slice(suffix);
        buf.extend_from_slice(&[0x61, b'p']);
        write_header(buf, 0, prefix as u64);
        buf.extend_from_slice(&[0x61, b't']);
        write_optional_link(buf, right);
        buf.extend_from_slice(&[0x61, b'v']);
        write_link(buf, value);
    }

    pub(crate) fn finish(mut self, left: Option<&Cid>) -> Vec<u8> {
        self.buf.extend_from_slice(&[0x61, b'l']);
        write_optional_link(&mut self.buf, left);
        self.buf
    }
}

fn write_header(buf: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        0..=23 => buf.push(major | value as u8),
        24..=0xff => buf.extend_from_slice(&[major | 24, value as u8]),
        0x100..=0xffff => {
            buf.push(major | 25);
            buf.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            buf.push(major | 26);
            buf.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            buf.push(major | 27);
            buf.extend_from_slice(&value.to_be_bytes());
        }
    }
}

fn write_link(buf: &mut Vec<u8>, cid: &Cid) {
    buf.extend_from_slice(&[0xd8, 0x2a]);
    write_header(buf, 2, cid.encoded_len() as u64 + 1);
    buf.push(0x00);
    cid.write_bytes(&mut *buf)
        .expect("writing to a Vec cannot fail");
}

fn write_optional_link(buf: &mut Vec<u8>, cid: Option<&Cid>) {
    match cid {
        Some(cid) => write_link(buf, cid),
        None => buf.push(0xf6),
    }
}

/// Decodes and checks an untrusted node block.
pub(crate) fn decode_node(cid: &Cid, bytes: &[u8]) -> Result<DecodedNode, MstError> {
    let data: NodeData = from_dag_cbor(bytes).map_err(|source| MstError::Decode {
        cid: Box::new(*cid),
        source,
    })?;
    let invalid = |reason: String| MstError::InvalidNode {
        cid: Box::new(*cid),
        reason,
    };
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
