//! The Lexicon v1 schema language: a parsed, checked model of one lexicon document.
//!
//! Documents are parsed from JSON into [`LexiconDoc`]. Parsing checks what the lexicon spec
//! requires of a document (version 1, a valid NSID, primary types only under `main`, no named
//! `ref`/`union`/`unknown` definitions, well-typed constraints, `required` names that exist) and
//! rewrites every reference into its absolute form `nsid#name`, so that resolution later does
//! not need to know which document a reference came from.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::syntax::Nsid;

/// The only lexicon language version there is.
pub const LEXICON_VERSION: u64 = 1;

/// Why a lexicon document is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lexicon {id}: {path}: {reason}")]
pub struct LexiconError {
    /// The document's `id`, or `?` when it has none.
    pub id: String,
    /// Where in the document the problem is (`defs.main.record`, …).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// One parsed lexicon document.
#[derive(Debug, Clone, PartialEq)]
pub struct LexiconDoc {
    /// The NSID the document describes.
    pub id: String,
    /// The optional `revision` counter.
    pub revision: Option<u64>,
    /// The optional one-line description.
    pub description: Option<String>,
    /// The definitions by short name (`main`, `replyRef`, …).
    pub defs: BTreeMap<String, Schema>,
}

/// A schema: one node of the lexicon type language.
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    /// `null` (from early drafts; only `null` matches).
    Null,
    /// `boolean`.
    Boolean(BooleanSchema),
    /// `integer`.
    Integer(IntegerSchema),
    /// `string`.
    String(StringSchema),
    /// `bytes`.
    Bytes(BytesSchema),
    /// `cid-link`.
    CidLink,
    /// `blob`.
    Blob(BlobSchema),
    /// `array`.
    Array(ArraySchema),
    /// `object`.
    Object(ObjectSchema),
    /// `params`: the query-string parameters of an XRPC endpoint.
    Params(ObjectSchema),
    /// `token`: a named symbol with no data; its value is its own `nsid#name`.
    Token,
    /// `ref`: the absolute reference (`nsid#name`) of another definition.
    Ref(String),
    /// `union`: one of several object definitions, told apart by `$type`.
    Union(UnionSchema),
    /// `unknown`: any object.
    Unknown,
    /// `record`: a repository record type (primary; only as `main`).
    Record(RecordSchema),
    /// `query`: an XRPC `GET` endpoint (primary).
    Query(XrpcSchema),
    /// `procedure`: an XRPC `POST` endpoint (primary).
    Procedure(XrpcSchema),
    /// `subscription`: an XRPC event stream (primary).
    Subscription(SubscriptionSchema),
    /// `permission-set`: an OAuth permission bundle (primary; not used for validation).
    PermissionSet,
}

/// Constraints of a `boolean`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BooleanSchema {
    /// The only allowed value.
    pub const_value: Option<bool>,
    /// The value to assume when absent.
    pub default: Option<bool>,
}

/// Constraints of an `integer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegerSchema {
    /// Inclusive lower bound.
    pub minimum: Option<i64>,
    /// Inclusive upper bound.
    pub maximum: Option<i64>,
    /// The closed set of allowed values.
    pub enum_values: Option<Vec<i64>>,
    /// The only allowed value.
    pub const_value: Option<i64>,
    /// The value to assume when absent.
    pub default: Option<i64>,
}

/// The string formats of the lexicon language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringFormat {
    /// `at-identifier`: a DID or a handle.
    AtIdentifier,
    /// `at-uri`.
    AtUri,
    /// `cid`: a CID in its string form.
    Cid,
    /// `datetime`: RFC 3339 with the atproto restrictions.
    Datetime,
    /// `did`.
    Did,
    /// `handle`.
    Handle,
    /// `nsid`.
    Nsid,
    /// `tid`.
    Tid,
    /// `record-key`.
    RecordKey,
    /// `uri`: any URI with a scheme.
    Uri,
    /// `language`: a BCP-47 tag.
    Language,
}

impl StringFormat {
    /// Parses the name used in lexicon documents.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "at-identifier" => Self::AtIdentifier,
            "at-uri" => Self::AtUri,
            "cid" => Self::Cid,
            "datetime" => Self::Datetime,
            "did" => Self::Did,
            "handle" => Self::Handle,
            "nsid" => Self::Nsid,
            "tid" => Self::Tid,
            "record-key" => Self::RecordKey,
            "uri" => Self::Uri,
            "language" => Self::Language,
            _ => return None,
        })
    }

    /// The name used in lexicon documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::AtIdentifier => "at-identifier",
            Self::AtUri => "at-uri",
            Self::Cid => "cid",
            Self::Datetime => "datetime",
            Self::Did => "did",
            Self::Handle => "handle",
            Self::Nsid => "nsid",
            Self::Tid => "tid",
            Self::RecordKey => "record-key",
            Self::Uri => "uri",
            Self::Language => "language",
        }
    }
}

/// Constraints of a `string`. Lengths are in UTF-8 bytes, grapheme counts in extended grapheme
/// clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringSchema {
    /// The syntax the value must have.
    pub format: Option<StringFormat>,
    /// Minimum length in UTF-8 bytes.
    pub min_length: Option<u64>,
    /// Maximum length in UTF-8 bytes.
    pub max_length: Option<u64>,
    /// Minimum number of grapheme clusters.
    pub min_graphemes: Option<u64>,
    /// Maximum number of grapheme clusters.
    pub max_graphemes: Option<u64>,
    /// Suggested values; other values are allowed.
    pub known_values: Vec<String>,
    /// The closed set of allowed values.
    pub enum_values: Option<Vec<String>>,
    /// The only allowed value.
    pub const_value: Option<String>,
    /// The value to assume when absent.
    pub default: Option<String>,
}

/// Constraints of a `bytes` value (lengths in bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BytesSchema {
    /// Minimum length.
    pub min_length: Option<u64>,
    /// Maximum length.
    pub max_length: Option<u64>,
}

/// Constraints of a `blob`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobSchema {
    /// Accepted MIME types; `image/*` and `*/*` patterns allowed. `None` accepts everything.
    pub accept: Option<Vec<String>>,
    /// Maximum size in bytes.
    pub max_size: Option<u64>,
}

/// An `array` and its item schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySchema {
    /// The schema of every element.
    pub items: Box<Schema>,
    /// Minimum number of elements.
    pub min_length: Option<u64>,
    /// Maximum number of elements.
    pub max_length: Option<u64>,
}

/// An `object` (also the shape of `params`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectSchema {
    /// The declared properties; undeclared ones are allowed and not checked.
    pub properties: BTreeMap<String, Schema>,
    /// Properties that must be present.
    pub required: Vec<String>,
    /// Properties that may be `null`.
    pub nullable: Vec<String>,
}

/// A `union` of object definitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnionSchema {
    /// The absolute references (`nsid#name`) of the members.
    pub refs: Vec<String>,
    /// Whether values of any other `$type` are rejected (open unions accept them unchecked).
    pub closed: bool,
}

/// A `record` definition.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSchema {
    /// The record-key type: `tid`, `nsid`, `any` or `literal:<key>`.
    pub key: String,
    /// The record's object schema.
    pub record: ObjectSchema,
}

/// The body of an XRPC input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct XrpcBody {
    /// The MIME type, e.g. `application/json`.
    pub encoding: String,
    /// The schema of a JSON body (an object, a ref or a union).
    pub schema: Option<Box<Schema>>,
}

/// An error an XRPC endpoint declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrpcError {
    /// The error name, as it appears in the `error` field of responses.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
}

/// A `query` or `procedure`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XrpcSchema {
    /// Query-string parameters.
    pub parameters: Option<ObjectSchema>,
    /// The request body (procedures only).
    pub input: Option<XrpcBody>,
    /// The response body.
    pub output: Option<XrpcBody>,
    /// Declared errors.
    pub errors: Vec<XrpcError>,
}

/// A `subscription`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionSchema {
    /// Query-string parameters.
    pub parameters: Option<ObjectSchema>,
    /// The schema of the messages (a union of message objects).
    pub message: Option<Box<Schema>>,
    /// Declared errors.
    pub errors: Vec<XrpcError>,
}

impl Schema {
    /// The lexicon name of this schema's type (`string`, `record`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean(_) => "boolean",
            Self::Integer(_) => "integer",
            Self::String(_) => "string",
            Self::Bytes(_) => "bytes",
            Self::CidLink => "cid-link",
            Self::Blob(_) => "blob",
            Self::Array(_) => "array",
            Self::Object(_) => "object",
            Self::Params(_) => "params",
            Self::Token => "token",
            Self::Ref(_) => "ref",
            Self::Union(_) => "union",
            Self::Unknown => "unknown",
            Self::Record(_) => "record",
            Self::Query(_) => "query",
            Self::Procedure(_) => "procedure",
            Self::Subscription(_) => "subscription",
            Self::PermissionSet => "permission-set",
        }
    }

    /// Whether this is a primary type (allowed only as the `main` definition).
    pub fn is_primary(&self) -> bool {
        matches!(
            self,
            Self::Record(_)
                | Self::Query(_)
                | Self::Procedure(_)
                | Self::Subscription(_)
                | Self::PermissionSet
        )
    }

    /// Every absolute reference this schema (and its children) points at.
    pub fn refs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        let object = |o: &'a ObjectSchema, out: &mut Vec<&'a str>| {
            for property in o.properties.values() {
                property.collect_refs(out);
            }
        };
        let body = |b: &'a Option<XrpcBody>, out: &mut Vec<&'a str>| {
            if let Some(schema) = b.as_ref().and_then(|b| b.schema.as_deref()) {
                schema.collect_refs(out);
            }
        };
        match self {
            Self::Ref(target) => out.push(target),
            Self::Union(union) => out.extend(union.refs.iter().map(String::as_str)),
            Self::Array(array) => array.items.collect_refs(out),
            Self::Object(o) | Self::Params(o) => object(o, out),
            Self::Record(record) => object(&record.record, out),
            Self::Query(x) | Self::Procedure(x) => {
                if let Some(p) = &x.parameters {
                    object(p, out);
                }
                body(&x.input, out);
                body(&x.output, out);
            }
            Self::Subscription(s) => {
                if let Some(p) = &s.parameters {
                    object(p, out);
                }
                if let Some(message) = &s.message {
                    message.collect_refs(out);
                }
            }
            _ => {}
        }
    }
}

/// Splits an absolute reference into NSID and definition name (`main` when there is no `#`).
pub fn split_ref(reference: &str) -> (&str, &str) {
    match reference.split_once('#') {
        Some((nsid, name)) => (nsid, name),
        None => (reference, "main"),
    }
}

/// The absolute form (`nsid#name`) of a reference written in document `doc_id`:
/// `#name` → `doc_id#name`, `nsid` → `nsid#main`, `nsid#name` unchanged.
pub fn absolute_ref(doc_id: &str, reference: &str) -> String {
    if let Some(name) = reference.strip_prefix('#') {
        format!("{doc_id}#{name}")
    } else if reference.contains('#') {
        reference.to_owned()
    } else {
        format!("{reference}#main")
    }
}

impl LexiconDoc {
    /// Parses and checks a lexicon document given as JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, LexiconError> {
        let value: Value = serde_json::from_str(text).map_err(|e| LexiconError {
            id: "?".into(),
            path: String::new(),
            reason: format!("not JSON: {e}"),
        })?;
        Self::from_json(&value)
    }

    /// Parses and checks a lexicon document given as a JSON value.
    pub fn from_json(value: &Value) -> Result<Self, LexiconError> {
        let mut parser = Parser {
            id: "?".into(),
            path: Vec::new(),
        };
        parser.document(value)
    }

    /// The definition called `name`.
    pub fn def(&self, name: &str) -> Option<&Schema> {
        self.defs.get(name)
    }

    /// The `main` definition if it is a record.
    pub fn record(&self) -> Option<&RecordSchema> {
        match self.defs.get("main") {
            Some(Schema::Record(record)) => Some(record),
            _ => None,
        }
    }

    /// The errors declared by the `main` endpoint (query, procedure or subscription).
    pub fn declared_errors(&self) -> &[XrpcError] {
        match self.defs.get("main") {
            Some(Schema::Query(x) | Schema::Procedure(x)) => &x.errors,
            Some(Schema::Subscription(s)) => &s.errors,
            _ => &[],
        }
    }
}

/// Where a schema appears, which decides the types it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// A named definition under `defs` (`main` or another name).
    Def { main: bool },
    /// A property, array item or body schema.
    Field,
}

struct Parser {
    id: String,
    path: Vec<String>,
}

impl Parser {
    fn error(&self, reason: impl Into<String>) -> LexiconError {
        LexiconError {
            id: self.id.clone(),
            path: if self.path.is_empty() {
                "(document)".into()
            } else {
                self.path.join(".")
            },
            reason: reason.into(),
        }
    }

    fn nested<T>(
        &mut self,
        segment: &str,
        f: impl FnOnce(&mut Self) -> Result<T, LexiconError>,
    ) -> Result<T, LexiconError> {
        self.path.push(segment.to_owned());
        let result = f(self);
        self.path.pop();
        result
    }

    fn document(&mut self, value: &Value) -> Result<LexiconDoc, LexiconError> {
        let object = value
            .as_object()
            .ok_or_else(|| self.error("a lexicon document must be an object"))?;
        let id = object
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| self.error("`id` must be a string"))?;
        id.parse::<Nsid>()
            .map_err(|e| self.error(format!("`id` is not a valid NSID: {e}")))?;
        self.id = id.to_owned();
        match object.get("lexicon") {
            Some(Value::Number(n)) if n.as_u64() == Some(LEXICON_VERSION) => {}
            _ => return Err(self.error("`lexicon` must be the integer 1")),
        }
        let revision = match object.get("revision") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| self.error("`revision` must be a non-negative integer"))?,
            ),
        };
        let description = self.opt_string(object, "description")?;
        let defs_value = object
            .get("defs")
            .and_then(Value::as_object)
            .ok_or_else(|| self.error("`defs` must be an object"))?;
        if defs_value.is_empty() {
            return Err(self.error("`defs` must not be empty"));
        }
        let mut defs = BTreeMap::new();
        for (name, def) in defs_value {
            let schema = self.nested(&format!("defs.{name}"), |p| {
                if name.is_empty() || name.contains('#') {
                    return Err(p.error("invalid definition name"));
                }
                p.schema(
                    def,
                    Position::Def {
                        main: name == "main",
                    },
                )
            })?;
            defs.insert(name.clone(), schema);
        }
        Ok(LexiconDoc {
            id: self.id.clone(),
            revision,
            description,
            defs,
        })
    }

    fn opt_string(
        &self,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<String>, LexiconError> {
        match object.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error(format!("`{key}` must be a string"))),
        }
    }

    fn opt_u64(&self, object: &Map<String, Value>, key: &str) -> Result<Option<u64>, LexiconError> {
        match object.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(format!("`{key}` must be a non-negative integer"))),
        }
    }

    fn opt_i64(&self, object: &Map<String, Value>, key: &str) -> Result<Option<i64>, LexiconError> {
        match object.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.error(format!("`{key}` must be an integer"))),
        }
    }

    fn opt_bool(
        &self,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<bool>, LexiconError> {
        match object.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error(format!("`{key}` must be a boolean"))),
        }
    }

    fn opt_strings(
        &self,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Vec<String>>, LexiconError> {
        match object.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.error(format!("`{key}` must be an array of strings")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.error(format!("`{key}` must be an array of strings"))),
        }
    }

    fn check_range(
        &self,
        min: Option<u64>,
        max: Option<u64>,
        what: &str,
    ) -> Result<(), LexiconError> {
        match (min, max) {
            (Some(min), Some(max)) if min > max => {
                Err(self.error(format!("minimum {what} is larger than the maximum")))
            }
            _ => Ok(()),
        }
    }

    fn reference(&self, reference: &str) -> Result<String, LexiconError> {
        let absolute = absolute_ref(&self.id, reference);
        let (nsid, name) = split_ref(&absolute);
        if name.is_empty() || name.contains('#') || nsid.parse::<Nsid>().is_err() {
            return Err(self.error(format!("invalid reference `{reference}`")));
        }
        Ok(absolute)
    }

    fn schema(&mut self, value: &Value, position: Position) -> Result<Schema, LexiconError> {
        let object = value
            .as_object()
            .ok_or_else(|| self.error("a schema must be an object"))?;
        let type_name = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| self.error("a schema needs a string `type`"))?;
        self.opt_string(object, "description")?;
        let schema = match type_name {
            "null" => Schema::Null,
            "boolean" => Schema::Boolean(BooleanSchema {
                const_value: self.opt_bool(object, "const")?,
                default: self.opt_bool(object, "default")?,
            }),
            "integer" => {
                let schema = IntegerSchema {
                    minimum: self.opt_i64(object, "minimum")?,
                    maximum: self.opt_i64(object, "maximum")?,
                    enum_values: match object.get("enum") {
                        None => None,
                        Some(Value::Array(items)) => Some(
                            items
                                .iter()
                                .map(|i| {
                                    i.as_i64().ok_or_else(|| {
                                        self.error("`enum` must be an array of integers")
                                    })
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Some(_) => return Err(self.error("`enum` must be an array of integers")),
                    },
                    const_value: self.opt_i64(object, "const")?,
                    default: self.opt_i64(object, "default")?,
                };
                if let (Some(min), Some(max)) = (schema.minimum, schema.maximum)
                    && min > max
                {
                    return Err(self.error("`minimum` is larger than `maximum`"));
                }
                Schema::Integer(schema)
            }
            "string" => {
                let format = match self.opt_string(object, "format")? {
                    None => None,
                    Some(name) => Some(
                        StringFormat::from_name(&name)
                            .ok_or_else(|| self.error(format!("unknown string format `{name}`")))?,
                    ),
                };
                let schema = StringSchema {
                    format,
                    min_length: self.opt_u64(object, "minLength")?,
                    max_length: self.opt_u64(object, "maxLength")?,
                    min_graphemes: self.opt_u64(object, "minGraphemes")?,
                    max_graphemes: self.opt_u64(object, "maxGraphemes")?,
                    known_values: self.opt_strings(object, "knownValues")?.unwrap_or_default(),
                    enum_values: self.opt_strings(object, "enum")?,
                    const_value: self.opt_string(object, "const")?,
                    default: self.opt_string(object, "default")?,
                };
                self.check_range(schema.min_length, schema.max_length, "length")?;
                self.check_range(schema.min_graphemes, schema.max_graphemes, "grapheme count")?;
                Schema::String(schema)
            }
            "bytes" => {
                let schema = BytesSchema {
                    min_length: self.opt_u64(object, "minLength")?,
                    max_length: self.opt_u64(object, "maxLength")?,
                };
                self.check_range(schema.min_length, schema.max_length, "length")?;
                Schema::Bytes(schema)
            }
            "cid-link" => Schema::CidLink,
            "blob" => Schema::Blob(BlobSchema {
                accept: self.opt_strings(object, "accept")?,
                max_size: self.opt_u64(object, "maxSize")?,
            }),
            "array" => {
                let items = object
                    .get("items")
                    .ok_or_else(|| self.error("an array needs `items`"))?;
                let items = self.nested("items", |p| p.schema(items, Position::Field))?;
                let schema = ArraySchema {
                    items: Box::new(items),
                    min_length: self.opt_u64(object, "minLength")?,
                    max_length: self.opt_u64(object, "maxLength")?,
                };
                self.check_range(schema.min_length, schema.max_length, "length")?;
                Schema::Array(schema)
            }
            "object" => Schema::Object(self.object(object)?),
            "params" => Schema::Params(self.object(object)?),
            "token" => Schema::Token,
            "ref" => {
                let target = object
                    .get("ref")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.error("a ref needs a string `ref`"))?;
                Schema::Ref(self.reference(target)?)
            }
            "union" => {
                let refs = self
                    .opt_strings(object, "refs")?
                    .ok_or_else(|| self.error("a union needs `refs`"))?;
                let refs = refs
                    .iter()
                    .map(|r| self.reference(r))
                    .collect::<Result<Vec<_>, _>>()?;
                let closed = self.opt_bool(object, "closed")?.unwrap_or(false);
                if closed && refs.is_empty() {
                    return Err(self.error("a closed union needs at least one ref"));
                }
                Schema::Union(UnionSchema { refs, closed })
            }
            "unknown" => Schema::Unknown,
            "record" => {
                let key = object
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.error("a record needs a string `key`"))?;
                if !is_valid_record_key_type(key) {
                    return Err(self.error(format!("invalid record key type `{key}`")));
                }
                let record = object
                    .get("record")
                    .ok_or_else(|| self.error("a record needs a `record` schema"))?;
                let record = self.nested("record", |p| match record.get("type") {
                    Some(Value::String(t)) if t == "object" => {
                        p.object(record.as_object().unwrap_or(&Map::new()))
                    }
                    _ => Err(p.error("a record's `record` must be an object schema")),
                })?;
                Schema::Record(RecordSchema {
                    key: key.to_owned(),
                    record,
                })
            }
            "query" | "procedure" => {
                let schema = XrpcSchema {
                    parameters: self.parameters(object)?,
                    input: if type_name == "procedure" {
                        self.body(object, "input")?
                    } else {
                        None
                    },
                    output: self.body(object, "output")?,
                    errors: self.errors(object)?,
                };
                if type_name == "query" {
                    Schema::Query(schema)
                } else {
                    Schema::Procedure(schema)
                }
            }
            "subscription" => {
                let message = match object.get("message") {
                    None => None,
                    Some(message) => self.nested("message", |p| {
                        let schema = message
                            .get("schema")
                            .ok_or_else(|| p.error("a message needs a `schema`"))?;
                        p.nested("schema", |p| p.schema(schema, Position::Field))
                            .map(|s| Some(Box::new(s)))
                    })?,
                };
                Schema::Subscription(SubscriptionSchema {
                    parameters: self.parameters(object)?,
                    message,
                    errors: self.errors(object)?,
                })
            }
            "permission-set" => Schema::PermissionSet,
            other => return Err(self.error(format!("unknown type `{other}`"))),
        };
        match position {
            Position::Def { main } => {
                if schema.is_primary() && !main {
                    return Err(self.error(format!(
                        "a {} must be the `main` definition",
                        schema.type_name()
                    )));
                }
                if matches!(schema, Schema::Ref(_) | Schema::Union(_) | Schema::Unknown) {
                    return Err(self.error(format!(
                        "a {} cannot be a named definition",
                        schema.type_name()
                    )));
                }
                if matches!(schema, Schema::Params(_)) {
                    return Err(self.error("params cannot be a named definition"));
                }
            }
            Position::Field => {
                if schema.is_primary() || matches!(schema, Schema::Token | Schema::Params(_)) {
                    return Err(self.error(format!(
                        "a {} cannot be used as a field",
                        schema.type_name()
                    )));
                }
            }
        }
        Ok(schema)
    }

    fn object(&mut self, object: &Map<String, Value>) -> Result<ObjectSchema, LexiconError> {
        let mut properties = BTreeMap::new();
        match object.get("properties") {
            None => {}
            Some(Value::Object(props)) => {
                for (name, property) in props {
                    let schema = self.nested(&format!("properties.{name}"), |p| {
                        p.schema(property, Position::Field)
                    })?;
                    properties.insert(name.clone(), schema);
                }
            }
            Some(_) => return Err(self.error("`properties` must be an object")),
        }
        let required = self.opt_strings(object, "required")?.unwrap_or_default();
        let nullable = self.opt_strings(object, "nullable")?.unwrap_or_default();
        for name in &required {
            if !properties.contains_key(name) {
                return Err(self.error(format!("required property `{name}` is not defined")));
            }
        }
        Ok(ObjectSchema {
            properties,
            required,
            nullable,
        })
    }

    fn parameters(
        &mut self,
        object: &Map<String, Value>,
    ) -> Result<Option<ObjectSchema>, LexiconError> {
        let Some(value) = object.get("parameters") else {
            return Ok(None);
        };
        self.nested("parameters", |p| {
            let params = value
                .as_object()
                .filter(|o| o.get("type").and_then(Value::as_str) == Some("params"))
                .ok_or_else(|| p.error("`parameters` must be a params schema"))?;
            p.object(params).map(Some)
        })
    }

    fn body(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<XrpcBody>, LexiconError> {
        let Some(value) = object.get(key) else {
            return Ok(None);
        };
        self.nested(key, |p| {
            let body = value
                .as_object()
                .ok_or_else(|| p.error("a body must be an object"))?;
            let encoding = body
                .get("encoding")
                .and_then(Value::as_str)
                .ok_or_else(|| p.error("a body needs a string `encoding`"))?
                .to_owned();
            let schema = match body.get("schema") {
                None => None,
                Some(schema) => {
                    let schema = p.nested("schema", |p| p.schema(schema, Position::Field))?;
                    if !matches!(
                        schema,
                        Schema::Object(_) | Schema::Ref(_) | Schema::Union(_)
                    ) {
                        return Err(p.error("a body schema must be an object, a ref or a union"));
                    }
                    Some(Box::new(schema))
                }
            };
            Ok(Some(XrpcBody { encoding, schema }))
        })
    }

    fn errors(&self, object: &Map<String, Value>) -> Result<Vec<XrpcError>, LexiconError> {
        let Some(value) = object.get("errors") else {
            return Ok(Vec::new());
        };
        let items = value
            .as_array()
            .ok_or_else(|| self.error("`errors` must be an array"))?;
        items
            .iter()
            .map(|item| {
                let item = item
                    .as_object()
                    .ok_or_else(|| self.error("an error must be an object"))?;
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
                    .ok_or_else(|| self.error("an error needs a `name` without whitespace"))?;
                Ok(XrpcError {
                    name: name.to_owned(),
                    description: self.opt_string(item, "description")?,
                })
            })
            .collect()
    }
}

/// Whether `key` is a valid record-key type: `tid`, `nsid`, `any` or `literal:<record key>`.
fn is_valid_record_key_type(key: &str) -> bool {
    match key {
        "tid" | "nsid" | "any" => true,
        _ => key
            .strip_prefix("literal:")
            .is_some_and(|literal| literal.parse::<crate::syntax::RecordKey>().is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_become_absolute() {
        assert_eq!(absolute_ref("a.b.c", "#x"), "a.b.c#x");
        assert_eq!(absolute_ref("a.b.c", "d.e.f"), "d.e.f#main");
        assert_eq!(absolute_ref("a.b.c", "d.e.f#y"), "d.e.f#y");
        assert_eq!(split_ref("d.e.f"), ("d.e.f", "main"));
        assert_eq!(split_ref("d.e.f#y"), ("d.e.f", "y"));
    }

    fn parse(defs: serde_json::Value) -> Result<LexiconDoc, LexiconError> {
        LexiconDoc::from_json(&json!({ "lexicon": 1, "id": "com.example.test", "defs": defs }))
    }

    #[test]
    fn documents_are_checked() {
        assert!(parse(json!({})).is_err(), "no defs");
        assert!(parse(json!({ "main": { "type": "string", "format": "colour" } })).is_err());
        assert!(
            parse(json!({ "main": { "type": "string", "minLength": 5, "maxLength": 2 } })).is_err()
        );
        assert!(parse(json!({ "main": { "type": "integer", "minimum": 1.5 } })).is_err());
        assert!(
            parse(json!({ "main": { "type": "array" } })).is_err(),
            "no items"
        );
        assert!(parse(json!({ "main": { "type": "union", "refs": [], "closed": true } })).is_err());
        assert!(
            parse(json!({ "main": { "type": "object", "required": ["a"], "properties": {} } }))
                .is_err(),
            "required but undefined"
        );
        assert!(
            parse(json!({ "main": { "type": "record", "key": "bogus",
                                    "record": { "type": "object" } } }))
            .is_err(),
            "bad key type"
        );
        assert!(
            parse(json!({ "x": { "type": "object",
                                 "properties": { "q": { "type": "query" } } } }))
            .is_err(),
            "primary type as a field"
        );
        let doc = parse(json!({
            "main": { "type": "record", "key": "literal:self", "record": { "type": "object",
                "properties": { "r": { "type": "ref", "ref": "#other" } } } },
            "other": { "type": "token" }
        }))
        .expect("valid");
        assert_eq!(
            doc.def("main").map(Schema::refs),
            Some(vec!["com.example.test#other"])
        );
        assert_eq!(doc.record().map(|r| r.key.as_str()), Some("literal:self"));
    }
}
