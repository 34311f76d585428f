//! The JSON representation of the data model: `{"$link"}` for CIDs, `{"$bytes"}` for bytes, and
//! blob objects, with the structural rules the atproto data-model spec puts on `$type` and blobs.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ipld_core::ipld::Ipld;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::cid::parse_cid;

/// Standard base64 that accepts input with or without padding; output is unpadded, as atproto
/// JSON requires.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a JSON document is not valid atproto data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DataModelError {
    /// Data-model documents (records, bodies) must be JSON objects.
    #[error("a data-model document must be an object")]
    NotAnObject,
    /// A number with a fractional part: floats are not in the data model.
    #[error("{path}: floats are not allowed")]
    Float {
        /// Where the float was found (JSON pointer).
        path: String,
    },
    /// A malformed `$link`, `$bytes`, `$type` or blob object.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where the problem was found (JSON pointer).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Converts a JSON document to the data model, refusing floats and malformed special objects.
pub fn json_to_ipld(value: &Value) -> Result<Ipld, DataModelError> {
    if !value.is_object() {
        return Err(DataModelError::NotAnObject);
    }
    convert(value, &mut String::new())
}

fn invalid(path: &str, reason: impl Into<String>) -> DataModelError {
    DataModelError::Invalid {
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        reason: reason.into(),
    }
}

fn convert(value: &Value, path: &mut String) -> Result<Ipld, DataModelError> {
    Ok(match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Number(n) => number(n, path)?,
        Value::String(s) => Ipld::String(s.clone()),
        Value::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{index}"));
                list.push(convert(item, path)?);
                path.truncate(len);
            }
            Ipld::List(list)
        }
        Value::Object(object) => object_value(object, path)?,
    })
}

fn number(n: &serde_json::Number, path: &str) -> Result<Ipld, DataModelError> {
    if let Some(i) = n.as_i64() {
        return Ok(Ipld::Integer(i.into()));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Ipld::Integer(u.into()));
    }
    // A float whose value is integral (`123.0`) is an integer in the data model.
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            Ok(Ipld::Integer((f as i64).into()))
        }
        _ => Err(DataModelError::Float {
            path: path.to_string(),
        }),
    }
}

fn object_value(object: &Map<String, Value>, path: &mut String) -> Result<Ipld, DataModelError> {
    if let Some(link) = object.get("$link") {
        if object.len() != 1 {
            return Err(invalid(path, "$link objects have no other keys"));
        }
        let text = link
            .as_str()
            .ok_or_else(|| invalid(path, "$link must be a string"))?;
        let cid = parse_cid(text).map_err(|e| invalid(path, e.to_string()))?;
        return Ok(Ipld::Link(cid));
    }
    if let Some(bytes) = object.get("$bytes") {
        if object.len() != 1 {
            return Err(invalid(path, "$bytes objects have no other keys"));
        }
        let text = bytes
            .as_str()
            .ok_or_else(|| invalid(path, "$bytes must be a base64 string"))?;
        let decoded = BASE64
            .decode(text)
            .map_err(|e| invalid(path, format!("$bytes is not base64: {e}")))?;
        return Ok(Ipld::Bytes(decoded));
    }
    let mut map = BTreeMap::new();
    for (key, item) in object {
        let len = path.len();
        path.push('/');
        path.push_str(key);
        map.insert(key.clone(), convert(item, path)?);
        path.truncate(len);
    }
    check_typed_object(&map, path)?;
    Ok(Ipld::Map(map))
}

/// `$type`, when present, must be a non-empty string; `$type: "blob"` objects must carry a
/// link `ref`, a string `mimeType` and an integer `size`.
fn check_typed_object(map: &BTreeMap<String, Ipld>, path: &str) -> Result<(), DataModelError> {
    let Some(type_value) = map.get("$type") else {
        return Ok(());
    };
    let Ipld::String(type_name) = type_value else {
        return Err(invalid(path, "$type must be a string"));
    };
    if type_name.is_empty() {
        return Err(invalid(path, "$type must not be empty"));
    }
    if type_name == "blob" {
        if !matches!(map.get("ref"), Some(Ipld::Link(_))) {
            return Err(invalid(path, "blob ref must be a link"));
        }
        if !matches!(map.get("mimeType"), Some(Ipld::String(m)) if !m.is_empty()) {
            return Err(invalid(path, "blob mimeType must be a non-empty string"));
        }
        if !matches!(map.get("size"), Some(Ipld::Integer(size)) if *size >= 0) {
            return Err(invalid(path, "blob size must be a non-negative integer"));
        }
    }
    Ok(())
}

/// Converts a data-model value to its JSON representation.
pub fn ipld_to_json(value: &Ipld) -> Value {
    match value {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => i64::try_from(*i)
            .map(Value::from)
            .or_else(|_| u64::try_from(*i).map(Value::from))
            .unwrap_or_else(|_| Value::String(i.to_string())),
        Ipld::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(bytes) => serde_json::json!({ "$bytes": BASE64.encode(bytes) }),
        Ipld::List(items) => Value::Array(items.iter().map(ipld_to_json).collect()),
        Ipld::Map(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), ipld_to_json(item)))
                .collect(),
        ),
        Ipld::Link(cid) => serde_json::json!({ "$link": cid.to_string() }),
    }
}
