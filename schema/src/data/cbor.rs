//! Canonical DAG-CBOR encoding and bounded decoding.

use ipld_core::ipld::Ipld;
use serde::{Serialize, de::DeserializeOwned};

/// The deepest nesting of arrays, maps and tags accepted from untrusted bytes. Deeper input is
/// refused before decoding, so a hostile block cannot exhaust the stack.
pub const MAX_NESTING_DEPTH: usize = 128;

/// Why bytes could not be encoded or decoded as DAG-CBOR.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CborError {
    /// The value cannot be represented in DAG-CBOR.
    #[error("cannot encode as DAG-CBOR: {0}")]
    Encode(String),
    /// The bytes are not canonical DAG-CBOR of the expected shape.
    #[error("invalid DAG-CBOR: {0}")]
    Decode(String),
    /// The bytes end in the middle of an item.
    #[error("invalid DAG-CBOR: truncated input")]
    Truncated,
    /// Arrays, maps or tags are nested deeper than [`MAX_NESTING_DEPTH`].
    #[error("invalid DAG-CBOR: nested deeper than {MAX_NESTING_DEPTH} levels")]
    TooDeep,
    /// Floats are valid CBOR but not part of the atproto data model.
    #[error("floats are not allowed in the atproto data model")]
    Float,
}

/// Encodes a value as canonical DAG-CBOR (map keys sorted by length, then bytes).
pub fn to_dag_cbor<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CborError> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| CborError::Encode(e.to_string()))
}

/// Decodes untrusted DAG-CBOR bytes into `T`, refusing over-deep nesting and trailing bytes.
pub fn from_dag_cbor<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CborError> {
    check_nesting(bytes)?;
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| CborError::Decode(e.to_string()))
}

/// Decodes untrusted DAG-CBOR bytes into a data-model value, refusing floats and any encoding
/// that is not the canonical one (the value must re-encode to exactly these bytes, so a block's
/// CID is a function of its value).
pub fn decode_ipld(bytes: &[u8]) -> Result<Ipld, CborError> {
    let value: Ipld = from_dag_cbor(bytes)?;
    if contains_float(&value) {
        return Err(CborError::Float);
    }
    if to_dag_cbor(&value)? != bytes {
        return Err(CborError::Decode("not in canonical form".into()));
    }
    Ok(value)
}

fn contains_float(value: &Ipld) -> bool {
    match value {
        Ipld::Float(_) => true,
        Ipld::List(items) => items.iter().any(contains_float),
        Ipld::Map(map) => map.values().any(contains_float),
        _ => false,
    }
}

/// Walks the item structure of CBOR bytes without building values, checking that every item is
/// complete and that nesting stays within [`MAX_NESTING_DEPTH`]. Runs in time linear in the input.
pub fn check_nesting(bytes: &[u8]) -> Result<(), CborError> {
    // Each stack entry counts the items still expected at that nesting level.
    let mut pending: Vec<u64> = vec![1];
    let mut pos = 0usize;
    loop {
        while pending.last() == Some(&0) {
            pending.pop();
        }
        let Some(remaining) = pending.last_mut() else {
            return Ok(());
        };
        *remaining -= 1;
        let initial = *bytes.get(pos).ok_or(CborError::Truncated)?;
        pos += 1;
        let major = initial >> 5;
        let argument = read_argument(bytes, &mut pos, initial & 0x1f)?;
        let children = match major {
            0 | 1 | 7 => 0,
            2 | 3 => {
                let len = usize::try_from(argument).map_err(|_| CborError::Truncated)?;
                pos = pos
                    .checked_add(len)
                    .filter(|end| *end <= bytes.len())
                    .ok_or(CborError::Truncated)?;
                0
            }
            4 => argument,
            5 => argument
                .checked_mul(2)
                .ok_or_else(|| CborError::Decode("map length overflows".into()))?,
            _ => 1, // a tag wraps exactly one item
        };
        if children > 0 {
            if pending.len() >= MAX_NESTING_DEPTH {
                return Err(CborError::TooDeep);
            }
            pending.push(children);
        }
    }
}

fn read_argument(bytes: &[u8], pos: &mut usize, info: u8) -> Result<u64, CborError> {
    let width = match info {
        0..=23 => return Ok(u64::from(info)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => {
            return Err(CborError::Decode(
                "indefinite lengths and reserved values are not DAG-CBOR".into(),
            ));
        }
    };
    let end = pos.checked_add(width).ok_or(CborError::Truncated)?;
    let slice = bytes.get(*pos..end).ok_or(CborError::Truncated)?;
    *pos = end;
    Ok(slice
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_before_decoding() {
        let mut bytes = vec![0x81; 100_000];
        bytes.push(0x01);
        assert_eq!(decode_ipld(&bytes), Err(CborError::TooDeep));
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert_eq!(check_nesting(&[0x82, 0x01]), Err(CborError::Truncated));
        assert_eq!(
            check_nesting(&[0x5a, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        assert!(decode_ipld(&[0x82, 0x01]).is_err());
    }

    #[test]
    fn floats_are_refused() {
        let bytes = [
            0xa1, 0x61, 0x61, 0xfb, 0x40, 0x5e, 0xdd, 0x2f, 0x1a, 0x9f, 0xbe, 0x77,
        ];
        assert!(matches!(decode_ipld(&bytes), Err(CborError::Float)));
    }

    #[test]
    fn links_with_non_canonical_cid_bytes_are_refused() {
        // Found by the `record_cbor` fuzz target: a tag-42 link whose CID bytes decode but do not
        // re-encode to themselves.
        let bytes = [
            0x93, 0xd8, 0x2a, 0x52, 0x00, 0x01, 0x40, 0x00, 0x00, 0x00, 0x34, 0x50, 0x40, 0x50,
            0x50, 0x50, 0x50, 0x50, 0x50, 0x00, 0x00, 0x20, 0x00, 0x18, 0x18, 0x00, 0x50, 0x52,
            0x50, 0x58, 0x50, 0x50, 0x50, 0x50, 0x50, 0x50, 0x50, 0x71, 0x00, 0x00, 0x06, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00,
            0x40, 0x50, 0x50, 0xf6, 0xf6, 0xf6, 0xf4, 0x09, 0xf4, 0xf4, 0xf6, 0x00, 0xf6, 0x00,
            0x00, 0xf6, 0xf6, 0x00, 0x07, 0x00,
        ];
        assert!(decode_ipld(&bytes).is_err());
    }

    #[test]
    fn non_canonical_key_order_is_refused() {
        // {"bb": 1, "a": 2}: longer key first is not canonical.
        let bytes = [0xa2, 0x62, 0x62, 0x62, 0x01, 0x61, 0x61, 0x02];
        assert!(decode_ipld(&bytes).is_err());
    }
}
