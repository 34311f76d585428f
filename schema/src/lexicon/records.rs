//! Typed Stratos records: posts, boundaries and the PDS enrollment record.
//!
//! These are conveniences over the data-model values; validation is done by
//! [`validate_record`](super::validate_record) on the raw value. The serde forms are the
//! atproto JSON representation (`$type`, camelCase keys, `{"$bytes"}`), and
//! `from_ipld`/`to_ipld` go through it.

use base64::Engine as _;

use ipld_core::ipld::Ipld;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::stub::Source;
use crate::data::{BASE64, DataModelError, ipld_to_json, json_to_ipld};

/// The collection of private posts.
pub const POST_COLLECTION: &str = "zone.stratos.feed.post";
/// The collection of enrollment records (on the user's PDS).
pub const ENROLLMENT_COLLECTION: &str = "zone.stratos.actor.enrollment";
/// The `$type` of a record's boundary object.
pub const DOMAINS_TYPE: &str = "zone.stratos.boundary.defs#Domains";
/// The `$type` of one boundary entry.
pub const DOMAIN_TYPE: &str = "zone.stratos.boundary.defs#Domain";
/// At most this many boundaries on a record.
pub const MAX_RECORD_BOUNDARIES: usize = 10;
/// At most this many boundaries in an enrollment record.
pub const MAX_ENROLLMENT_BOUNDARIES: usize = 50;
/// A boundary value is at most this many bytes long.
pub const MAX_BOUNDARY_LENGTH: usize = 253;

/// Why a value could not be read as a typed record.
#[derive(Debug, thiserror::Error)]
pub enum RecordParseError {
    /// The value does not have the record's shape.
    #[error("not a valid record: {0}")]
    Shape(#[from] serde_json::Error),
    /// The typed record does not convert back to the data model.
    #[error(transparent)]
    DataModel(#[from] DataModelError),
}

/// A record reference pinned to a version: `{uri, cid}` (`com.atproto.repo.strongRef`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrongRef {
    /// The AT-URI of the record.
    pub uri: String,
    /// The CID of the record version, as a string.
    pub cid: String,
}

/// One boundary entry, `{value}` (`zone.stratos.boundary.defs#Domain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The `$type`, optional on input.
    #[serde(rename = "$type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The qualified boundary, e.g. `did:web:stratos.example.com/general`.
    pub value: String,
}

impl Domain {
    /// An entry with its `$type` set.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            type_: Some(DOMAIN_TYPE.to_owned()),
            value: value.into(),
        }
    }
}

/// The boundaries of a record (`zone.stratos.boundary.defs#Domains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domains {
    /// The `$type`, optional on input.
    #[serde(rename = "$type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The entries; a viewer holding any one of them may see the record.
    pub values: Vec<Domain>,
}

impl Domains {
    /// A boundary object with `$type`s set, from qualified values.
    pub fn new<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        Self {
            type_: Some(DOMAINS_TYPE.to_owned()),
            values: values.into_iter().map(Domain::new).collect(),
        }
    }

    /// The boundary values, in order.
    pub fn values(&self) -> Vec<&str> {
        self.values.iter().map(|d| d.value.as_str()).collect()
    }
}

/// The thread of a reply: its root and its direct parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRef {
    /// The first post of the thread.
    pub root: StrongRef,
    /// The post replied to.
    pub parent: StrongRef,
}

/// A private post (`zone.stratos.feed.post`), or its PDS stub when `source` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Post {
    /// The record type, `zone.stratos.feed.post`.
    #[serde(rename = "$type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The text; absent on stubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Who may see the post; required on full records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Domains>,
    /// Rich-text facets (`app.bsky.richtext.facet`), in their JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<Vec<Value>>,
    /// The thread this post replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyRef>,
    /// The embed (`app.bsky.embed.*`), in its JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<Value>,
    /// Languages of the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub langs: Option<Vec<String>>,
    /// Self labels (`com.atproto.label.defs#selfLabels`), in their JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    /// Extra hashtags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Only on stubs: where the full record lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Client-declared creation time.
    pub created_at: String,
    /// Fields this type does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Post {
    /// A full post with its `$type` set.
    pub fn new(text: impl Into<String>, boundary: Domains, created_at: impl Into<String>) -> Self {
        Self {
            type_: Some(POST_COLLECTION.to_owned()),
            text: Some(text.into()),
            boundary: Some(boundary),
            facets: None,
            reply: None,
            embed: None,
            langs: None,
            labels: None,
            tags: None,
            source: None,
            created_at: created_at.into(),
            extra: BTreeMap::new(),
        }
    }

    /// Reads a post from its JSON form.
    pub fn from_json(value: &Value) -> Result<Self, RecordParseError> {
        Ok(Self::deserialize(value)?)
    }

    /// Reads a post from a data-model value.
    pub fn from_ipld(value: &Ipld) -> Result<Self, RecordParseError> {
        Self::from_json(&ipld_to_json(value))
    }

    /// The JSON form.
    pub fn to_json(&self) -> Result<Value, RecordParseError> {
        Ok(serde_json::to_value(self)?)
    }

    /// The data-model value.
    pub fn to_ipld(&self) -> Result<Ipld, RecordParseError> {
        Ok(json_to_ipld(&self.to_json()?)?)
    }

    /// The boundary values (empty when there is no boundary).
    pub fn boundaries(&self) -> Vec<&str> {
        self.boundary
            .as_ref()
            .map(Domains::values)
            .unwrap_or_default()
    }

    /// Whether this is a PDS stub rather than a full record.
    pub fn is_stub(&self) -> bool {
        self.source.is_some()
    }
}

/// The service's signature over an enrollment (`zone.stratos.actor.enrollment#attestation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// The 64-byte compact signature.
    pub sig: Vec<u8>,
    /// The service key as a `did:key`.
    pub signing_key: String,
}

/// The record key of a service's enrollment record on the user's PDS: the service DID with
/// every `%3A` (any case) turned into `:`, so that `did:web:host%3A3100` is a valid key.
pub fn enrollment_rkey(service_did: &str) -> String {
    let mut key = String::with_capacity(service_did.len());
    let mut rest = service_did;
    while let Some(index) = rest.find('%') {
        key.push_str(&rest[..index]);
        let escape = rest.get(index..index + 3).unwrap_or("");
        if escape.eq_ignore_ascii_case("%3A") {
            key.push(':');
            rest = &rest[index + 3..];
        } else {
            key.push('%');
            rest = &rest[index + 1..];
        }
    }
    key.push_str(rest);
    key
}

/// One boundary of an enrollment record, `{value}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundaryEntry {
    /// The qualified boundary.
    pub value: String,
}

/// The enrollment record the service writes to the user's PDS
/// (`zone.stratos.actor.enrollment`, record key = the service DID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRecord {
    /// The public URL of the service.
    pub service: String,
    /// The boundaries granted at signing time (`[]` when the record has none).
    pub boundaries: Vec<BoundaryEntry>,
    /// The user's P-256 record-signing key as a `did:key`.
    pub signing_key: String,
    /// The service's attestation.
    pub attestation: Attestation,
    /// When the record was written.
    pub created_at: String,
}

impl EnrollmentRecord {
    /// Reads an enrollment record leniently (as consumers must): `service`, `createdAt`,
    /// `signingKey` and `attestation.signingKey` must be strings and `attestation.sig` must be
    /// bytes (raw, or `{"$bytes": base64}`); a missing `boundaries` is read as `[]` and entries
    /// without a string `value` are skipped. Anything else yields `None`.
    pub fn from_ipld(value: &Ipld) -> Option<Self> {
        let Ipld::Map(map) = value else {
            return None;
        };
        let string = |m: &BTreeMap<String, Ipld>, key: &str| match m.get(key) {
            Some(Ipld::String(s)) => Some(s.clone()),
            _ => None,
        };
        let Some(Ipld::Map(attestation)) = map.get("attestation") else {
            return None;
        };
        let sig = match attestation.get("sig")? {
            Ipld::Bytes(bytes) => bytes.clone(),
            Ipld::Map(wrapper) if wrapper.len() == 1 => match wrapper.get("$bytes")? {
                Ipld::String(text) => BASE64.decode(text).ok()?,
                _ => return None,
            },
            _ => return None,
        };
        let boundaries = match map.get("boundaries") {
            Some(Ipld::List(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Ipld::Map(entry) => string(entry, "value").map(|value| BoundaryEntry { value }),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Self {
            service: string(map, "service")?,
            boundaries,
            signing_key: string(map, "signingKey")?,
            attestation: Attestation {
                sig,
                signing_key: string(attestation, "signingKey")?,
            },
            created_at: string(map, "createdAt")?,
        })
    }

    /// [`from_ipld`](Self::from_ipld) for the JSON form. The JSON is read as-is, without the
    /// `$link`/`$bytes` conversion, so that one malformed field does not hide the record.
    pub fn from_json(value: &Value) -> Option<Self> {
        Self::from_ipld(&json_as_ipld(value))
    }

    /// The boundary values, in order.
    pub fn boundary_values(&self) -> Vec<&str> {
        self.boundaries.iter().map(|b| b.value.as_str()).collect()
    }

    /// The record as written to the PDS, with `$type`.
    pub fn to_ipld(&self) -> Ipld {
        let text = |s: &str| Ipld::String(s.to_owned());
        let boundaries = self
            .boundaries
            .iter()
            .map(|b| Ipld::Map(BTreeMap::from([("value".to_owned(), text(&b.value))])))
            .collect();
        let attestation = BTreeMap::from([
            ("sig".to_owned(), Ipld::Bytes(self.attestation.sig.clone())),
            ("signingKey".to_owned(), text(&self.attestation.signing_key)),
        ]);
        Ipld::Map(BTreeMap::from([
            ("$type".to_owned(), text(ENROLLMENT_COLLECTION)),
            ("service".to_owned(), text(&self.service)),
            ("boundaries".to_owned(), Ipld::List(boundaries)),
            ("signingKey".to_owned(), text(&self.signing_key)),
            ("attestation".to_owned(), Ipld::Map(attestation)),
            ("createdAt".to_owned(), text(&self.created_at)),
        ]))
    }

    /// The JSON form of [`to_ipld`](Self::to_ipld) (`sig` as `{"$bytes"}`).
    pub fn to_json(&self) -> Value {
        ipld_to_json(&self.to_ipld())
    }
}

/// A plain structural copy of JSON into the data model: no `$link`/`$bytes` conversion, and
/// numbers that are not 64-bit integers become `null`.
fn json_as_ipld(value: &Value) -> Ipld {
    match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Number(n) => n.as_i64().map_or(Ipld::Null, |i| Ipld::Integer(i.into())),
        Value::String(s) => Ipld::String(s.clone()),
        Value::Array(items) => Ipld::List(items.iter().map(json_as_ipld).collect()),
        Value::Object(map) => Ipld::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), json_as_ipld(v)))
                .collect(),
        ),
    }
}
