//! Validation of data-model values against lexicon schemas.
//!
//! Errors name the field (a path such as `reply.parent.uri` or `facets[0].index`) and the rule
//! it broke, e.g. `"text": must not be longer than 300 graphemes`.

use ipld_core::ipld::Ipld;
use std::collections::BTreeMap;
use unicode_segmentation::UnicodeSegmentation as _;

use super::catalog::Lexicons;
use super::schema::{
    ArraySchema, BlobSchema, BytesSchema, IntegerSchema, ObjectSchema, Schema, StringFormat,
    StringSchema, UnionSchema, split_ref,
};
use crate::syntax;

/// How deep values may nest before validation gives up (well above what records need).
const MAX_DEPTH: usize = 128;

/// A value that does not match its schema: which field, and which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(path, rule))]
pub struct ValidationError {
    /// Where the problem is: property names joined with `.`, array indexes as `[i]`; empty for
    /// the value itself.
    pub path: String,
    /// The rule that failed, e.g. `must not be longer than 300 graphemes`.
    pub rule: String,
}

fn render(path: &str, rule: &str) -> String {
    if path.is_empty() {
        rule.to_owned()
    } else {
        format!("\"{path}\": {rule}")
    }
}

impl ValidationError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            rule: rule.into(),
        }
    }
}

impl Lexicons {
    /// Validates a record against the record lexicon of `collection`: the value must be an
    /// object whose `$type` is the collection and which matches the record schema.
    pub fn validate_record(&self, collection: &str, record: &Ipld) -> Result<(), ValidationError> {
        let schema = self.record_schema(collection).ok_or_else(|| {
            ValidationError::new("", format!("no record lexicon for `{collection}`"))
        })?;
        let Ipld::Map(map) = record else {
            return Err(ValidationError::new("", "a record must be an object"));
        };
        match map.get("$type") {
            Some(Ipld::String(t)) if t == collection => {}
            Some(_) => {
                return Err(ValidationError::new(
                    "$type",
                    format!("must be '{collection}'"),
                ));
            }
            None => return Err(ValidationError::new("$type", "is required")),
        }
        let mut walker = Walker::new(self);
        walker.object(&schema.record, map, 0)
    }

    /// Validates a value against the definition an absolute reference points at (for example
    /// `zone.stratos.boundary.defs#Domains`, or a record NSID for a record's object schema
    /// without the `$type` check).
    pub fn validate(&self, reference: &str, value: &Ipld) -> Result<(), ValidationError> {
        let mut walker = Walker::new(self);
        walker.reference(reference, value, 0)
    }
}

struct Walker<'a> {
    lexicons: &'a Lexicons,
    path: String,
}

impl<'a> Walker<'a> {
    fn new(lexicons: &'a Lexicons) -> Self {
        Self {
            lexicons,
            path: String::new(),
        }
    }

    fn fail<T>(&self, rule: impl Into<String>) -> Result<T, ValidationError> {
        Err(ValidationError::new(self.path.clone(), rule))
    }

    fn with_segment<T>(
        &mut self,
        segment: Segment<'_>,
        f: impl FnOnce(&mut Self) -> Result<T, ValidationError>,
    ) -> Result<T, ValidationError> {
        let len = self.path.len();
        match segment {
            Segment::Key(key) => {
                if !self.path.is_empty() {
                    self.path.push('.');
                }
                self.path.push_str(key);
            }
            Segment::Index(index) => {
                self.path.push('[');
                self.path.push_str(&index.to_string());
                self.path.push(']');
            }
        }
        let result = f(self);
        self.path.truncate(len);
        result
    }

    fn reference(
        &mut self,
        reference: &str,
        value: &Ipld,
        depth: usize,
    ) -> Result<(), ValidationError> {
        let Some(target) = self.lexicons.resolve(reference) else {
            return self.fail(format!("unresolved lexicon reference `{reference}`"));
        };
        match target {
            Schema::Token => match value {
                Ipld::String(s) if normalise_type(s) == reference => Ok(()),
                _ => self.fail(format!("must be the token '{}'", short_ref(reference))),
            },
            Schema::Record(record) => match value {
                Ipld::Map(map) => self.object(&record.record, map, depth),
                _ => self.fail("must be an object"),
            },
            other => self.value(other, value, depth),
        }
    }

    fn value(
        &mut self,
        schema: &Schema,
        value: &Ipld,
        depth: usize,
    ) -> Result<(), ValidationError> {
        if depth > MAX_DEPTH {
            return self.fail("is nested too deeply");
        }
        match schema {
            Schema::Null => match value {
                Ipld::Null => Ok(()),
                _ => self.fail("must be null"),
            },
            Schema::Boolean(b) => match value {
                Ipld::Bool(v) => match b.const_value {
                    Some(c) if c != *v => self.fail(format!("must be {c}")),
                    _ => Ok(()),
                },
                _ => self.fail("must be a boolean"),
            },
            Schema::Integer(i) => match value {
                Ipld::Integer(v) => self.integer(i, *v),
                _ => self.fail("must be an integer"),
            },
            Schema::String(s) => match value {
                Ipld::String(v) => self.string(s, v),
                _ => self.fail("must be a string"),
            },
            Schema::Bytes(b) => match value {
                Ipld::Bytes(v) => self.bytes(b, v),
                _ => self.fail("must be bytes"),
            },
            Schema::CidLink => match value {
                Ipld::Link(_) => Ok(()),
                _ => self.fail("must be a CID link"),
            },
            Schema::Blob(b) => self.blob(b, value),
            Schema::Array(a) => match value {
                Ipld::List(items) => self.array(a, items, depth),
                _ => self.fail("must be an array"),
            },
            Schema::Object(o) | Schema::Params(o) => match value {
                Ipld::Map(map) if !is_blob(map) => self.object(o, map, depth),
                _ => self.fail("must be an object"),
            },
            Schema::Ref(target) => self.reference(target, value, depth + 1),
            Schema::Union(u) => self.union(u, value, depth),
            Schema::Unknown => match value {
                Ipld::Map(map) if !is_blob(map) => Ok(()),
                _ => self.fail("must be an object"),
            },
            Schema::Token
            | Schema::Record(_)
            | Schema::Query(_)
            | Schema::Procedure(_)
            | Schema::Subscription(_)
            | Schema::PermissionSet => {
                self.fail(format!("a {} is not a data schema", schema.type_name()))
            }
        }
    }

    fn integer(&self, schema: &IntegerSchema, value: i128) -> Result<(), ValidationError> {
        if let Some(c) = schema.const_value
            && value != i128::from(c)
        {
            return self.fail(format!("must be {c}"));
        }
        if let Some(values) = &schema.enum_values
            && !values.iter().any(|v| i128::from(*v) == value)
        {
            return self.fail(format!("must be one of {}", join(values)));
        }
        if let Some(min) = schema.minimum
            && value < i128::from(min)
        {
            return self.fail(format!("must be at least {min}"));
        }
        if let Some(max) = schema.maximum
            && value > i128::from(max)
        {
            return self.fail(format!("must be at most {max}"));
        }
        Ok(())
    }

    fn string(&self, schema: &StringSchema, value: &str) -> Result<(), ValidationError> {
        if let Some(c) = &schema.const_value
            && value != c
        {
            return self.fail(format!("must be '{c}'"));
        }
        if let Some(values) = &schema.enum_values
            && !values.iter().any(|v| v == value)
        {
            return self.fail(format!("must be one of {}", join(values)));
        }
        let bytes = value.len() as u64;
        if let Some(min) = schema.min_length
            && bytes < min
        {
            return self.fail(format!("must not be shorter than {min} bytes"));
        }
        if let Some(max) = schema.max_length
            && bytes > max
        {
            return self.fail(format!("must not be longer than {max} bytes"));
        }
        // A string never has more graphemes than bytes, so short strings skip the count.
        let needs_count =
            schema.min_graphemes.is_some() || schema.max_graphemes.is_some_and(|max| bytes > max);
        if needs_count {
            let graphemes = value.graphemes(true).count() as u64;
            if let Some(min) = schema.min_graphemes
                && graphemes < min
            {
                return self.fail(format!("must not be shorter than {min} graphemes"));
            }
            if let Some(max) = schema.max_graphemes
                && graphemes > max
            {
                return self.fail(format!("must not be longer than {max} graphemes"));
            }
        }
        if let Some(format) = schema.format
            && !matches_format(format, value)
        {
            return self.fail(format!("must be a valid {}", format.name()));
        }
        Ok(())
    }

    fn bytes(&self, schema: &BytesSchema, value: &[u8]) -> Result<(), ValidationError> {
        let len = value.len() as u64;
        if let Some(min) = schema.min_length
            && len < min
        {
            return self.fail(format!("must not be shorter than {min} bytes"));
        }
        if let Some(max) = schema.max_length
            && len > max
        {
            return self.fail(format!("must not be longer than {max} bytes"));
        }
        Ok(())
    }

    fn blob(&self, schema: &BlobSchema, value: &Ipld) -> Result<(), ValidationError> {
        let Ipld::Map(map) = value else {
            return self.fail("must be a blob");
        };
        if !is_blob(map) {
            return self.fail("must be a blob");
        }
        let (Some(Ipld::Link(_)), Some(Ipld::String(mime)), Some(Ipld::Integer(size))) =
            (map.get("ref"), map.get("mimeType"), map.get("size"))
        else {
            return self.fail("must be a blob with a link `ref`, a `mimeType` and a `size`");
        };
        if *size < 0 {
            return self.fail("blob size must not be negative");
        }
        if let Some(accept) = &schema.accept
            && !accept.iter().any(|pattern| mime_matches(pattern, mime))
        {
            return self.fail(format!(
                "blob MIME type '{mime}' is not accepted (accepts {})",
                accept.join(", ")
            ));
        }
        if let Some(max) = schema.max_size
            && *size > i128::from(max)
        {
            return self.fail(format!(
                "blob must not be larger than {max} bytes (is {size})"
            ));
        }
        Ok(())
    }

    fn array(
        &mut self,
        schema: &ArraySchema,
        items: &[Ipld],
        depth: usize,
    ) -> Result<(), ValidationError> {
        let len = items.len() as u64;
        if let Some(min) = schema.min_length
            && len < min
        {
            return self.fail(format!("must not have fewer than {min} items"));
        }
        if let Some(max) = schema.max_length
            && len > max
        {
            return self.fail(format!("must not have more than {max} items"));
        }
        for (index, item) in items.iter().enumerate() {
            self.with_segment(Segment::Index(index), |w| {
                w.value(&schema.items, item, depth + 1)
            })?;
        }
        Ok(())
    }

    fn object(
        &mut self,
        schema: &ObjectSchema,
        map: &BTreeMap<String, Ipld>,
        depth: usize,
    ) -> Result<(), ValidationError> {
        for name in &schema.required {
            if !map.contains_key(name) {
                return self.with_segment(Segment::Key(name), |w| w.fail("is required"));
            }
        }
        for (name, property) in &schema.properties {
            let Some(value) = map.get(name) else {
                continue;
            };
            self.with_segment(Segment::Key(name), |w| {
                if matches!(value, Ipld::Null) {
                    if schema.nullable.iter().any(|n| n == name) || matches!(property, Schema::Null)
                    {
                        return Ok(());
                    }
                    return w.fail("must not be null");
                }
                w.value(property, value, depth + 1)
            })?;
        }
        Ok(())
    }

    fn union(
        &mut self,
        schema: &UnionSchema,
        value: &Ipld,
        depth: usize,
    ) -> Result<(), ValidationError> {
        let Ipld::Map(map) = value else {
            return self.fail("must be an object with a $type");
        };
        let Some(Ipld::String(type_name)) = map.get("$type") else {
            return self.with_segment(Segment::Key("$type"), |w| {
                w.fail("is required (the value is a union)")
            });
        };
        let wanted = normalise_type(type_name);
        match schema.refs.iter().find(|r| **r == wanted) {
            Some(reference) => self.reference(reference, value, depth + 1),
            None if schema.closed => self.with_segment(Segment::Key("$type"), |w| {
                let allowed: Vec<&str> = schema.refs.iter().map(|r| short_ref(r)).collect();
                w.fail(format!("must be one of {}", allowed.join(", ")))
            }),
            // Open unions accept members they do not know, unchecked.
            None => Ok(()),
        }
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Whether a map is a blob (`$type: "blob"`).
fn is_blob(map: &BTreeMap<String, Ipld>) -> bool {
    matches!(map.get("$type"), Some(Ipld::String(t)) if t == "blob")
}

/// The absolute reference a `$type` value names: `nsid` means `nsid#main`.
fn normalise_type(type_name: &str) -> String {
    if type_name.contains('#') {
        type_name.to_owned()
    } else {
        format!("{type_name}#main")
    }
}

/// A reference as people write it: `nsid` for `nsid#main`.
fn short_ref(reference: &str) -> &str {
    match split_ref(reference) {
        (nsid, "main") => nsid,
        _ => reference,
    }
}

fn mime_matches(pattern: &str, mime: &str) -> bool {
    if pattern == "*/*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(prefix) => mime
            .split_once('/')
            .is_some_and(|(kind, _)| kind.eq_ignore_ascii_case(prefix)),
        None => pattern.eq_ignore_ascii_case(mime),
    }
}

fn join<T: std::fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `value` has the syntax of `format`.
pub fn matches_format(format: StringFormat, value: &str) -> bool {
    match format {
        StringFormat::AtIdentifier => value.parse::<syntax::AtIdentifier>().is_ok(),
        StringFormat::AtUri => value.parse::<syntax::AtUri>().is_ok(),
        StringFormat::Cid => syntax::is_valid_cid_string(value),
        StringFormat::Datetime => value.parse::<syntax::Datetime>().is_ok(),
        StringFormat::Did => value.parse::<syntax::Did>().is_ok(),
        StringFormat::Handle => value.parse::<syntax::Handle>().is_ok(),
        StringFormat::Nsid => value.parse::<syntax::Nsid>().is_ok(),
        StringFormat::Tid => value.parse::<syntax::Tid>().is_ok(),
        StringFormat::RecordKey => value.parse::<syntax::RecordKey>().is_ok(),
        StringFormat::Uri => syntax::is_valid_uri(value),
        StringFormat::Language => value.parse::<syntax::Language>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_patterns() {
        assert!(mime_matches("*/*", "application/octet-stream"));
        assert!(mime_matches("image/*", "image/png"));
        assert!(!mime_matches("image/*", "video/mp4"));
        assert!(!mime_matches("image/*", "imagery"));
        assert!(mime_matches("video/mp4", "video/mp4"));
        assert!(!mime_matches("video/mp4", "video/webm"));
    }

    #[test]
    fn types_name_absolute_references() {
        assert_eq!(normalise_type("a.b.c"), "a.b.c#main");
        assert_eq!(normalise_type("a.b.c#d"), "a.b.c#d");
        assert_eq!(short_ref("a.b.c#main"), "a.b.c");
        assert_eq!(short_ref("a.b.c#d"), "a.b.c#d");
    }

    #[test]
    fn errors_render_path_and_rule() {
        let e = ValidationError::new("text", "must not be longer than 300 graphemes");
        assert_eq!(
            e.to_string(),
            "\"text\": must not be longer than 300 graphemes"
        );
        assert_eq!(
            ValidationError::new("", "must be an object").to_string(),
            "must be an object"
        );
    }
}
