//! The Stratos write rules (spec §3): which collections may be written, lexicon validation,
//! and the per-collection business rules — boundaries, reply and embed isolation — plus the
//! author-boundary check.
//!
//! Everything here is pure: the facts a rule needs from storage (the parent post's
//! boundaries, the author's enrolled boundaries) are inputs.

use ipld_core::ipld::Ipld;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use super::catalog::Lexicons;
use super::records::{DOMAINS_TYPE, ENROLLMENT_COLLECTION, POST_COLLECTION};
use crate::boundary::{check_service, extract_boundaries, is_qualified, qualify};
use crate::syntax::{AtUri, Nsid};

/// Every collection Stratos accepts starts with this.
pub const STRATOS_PREFIX: &str = "zone.stratos.";
/// Collections of Bluesky application records start with this.
pub const BSKY_PREFIX: &str = "app.bsky.";
/// The Bluesky post collection (for the symmetric PDS-side rule).
pub const BSKY_POST_COLLECTION: &str = "app.bsky.feed.post";

/// The machine code of a rejected write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordErrorCode {
    /// The collection is not a `zone.stratos.*` record collection this service knows.
    InvalidCollection,
    /// The service has no allowed boundaries, so the Stratos namespace is off.
    NamespaceDisabled,
    /// The record does not match its lexicon or breaks a structural rule.
    InvalidRecord,
    /// The record has no boundary, or an empty one.
    MissingBoundary,
    /// A boundary value is not an allowed boundary of this service.
    ForbiddenDomain,
    /// A reply to, or under, a record outside `zone.stratos.*`.
    CrossNamespaceReply,
    /// A reply with a boundary its parent does not have.
    ReplyBoundaryEscalation,
    /// An embed of a record outside the record's namespace.
    CrossNamespaceEmbed,
    /// A boundary value qualified for another service (author check).
    ServiceMismatch,
    /// A boundary value the author is not enrolled in (author check).
    ForbiddenBoundary,
}

impl RecordErrorCode {
    /// The code's name, e.g. `MissingBoundary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidCollection => "InvalidCollection",
            Self::NamespaceDisabled => "NamespaceDisabled",
            Self::InvalidRecord => "InvalidRecord",
            Self::MissingBoundary => "MissingBoundary",
            Self::ForbiddenDomain => "ForbiddenDomain",
            Self::CrossNamespaceReply => "CrossNamespaceReply",
            Self::ReplyBoundaryEscalation => "ReplyBoundaryEscalation",
            Self::CrossNamespaceEmbed => "CrossNamespaceEmbed",
            Self::ServiceMismatch => "ServiceMismatch",
            Self::ForbiddenBoundary => "ForbiddenBoundary",
        }
    }

    /// The XRPC `error` name to answer with (all HTTP 400): `InvalidCollection`,
    /// `ServiceMismatch` and `ForbiddenBoundary` as themselves, every other code as
    /// `InvalidRecord`.
    pub fn xrpc_error(self) -> &'static str {
        match self {
            Self::InvalidCollection => "InvalidCollection",
            Self::ServiceMismatch => "ServiceMismatch",
            Self::ForbiddenBoundary => "ForbiddenBoundary",
            _ => "InvalidRecord",
        }
    }
}

impl fmt::Display for RecordErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected write: a machine code and a human message naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    /// What kind of rejection.
    pub code: RecordErrorCode,
    /// Why, e.g. `"text": must not be longer than 300 graphemes`.
    pub message: String,
}

impl RecordError {
    /// An error with this code and message.
    pub fn new(code: RecordErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn at(code: RecordErrorCode, path: &str, message: impl fmt::Display) -> Self {
        Self::new(code, format!("\"{path}\": {message}"))
    }
}

/// Looks up the boundaries of a reply's parent record.
///
/// Return `None` when the parent is not stored on this service (or not found): the subset
/// check is then skipped. Callers whose storage is asynchronous can fetch the parent first
/// (see [`reply_parent_uri`]) and pass a map.
pub trait ParentBoundaries {
    /// The boundary values of the record at `uri`, if it is stored on this service.
    fn parent_boundaries(&self, uri: &str) -> Option<Vec<String>>;
}

impl<F: Fn(&str) -> Option<Vec<String>>> ParentBoundaries for F {
    fn parent_boundaries(&self, uri: &str) -> Option<Vec<String>> {
        self(uri)
    }
}

impl ParentBoundaries for BTreeMap<String, Vec<String>> {
    fn parent_boundaries(&self, uri: &str) -> Option<Vec<String>> {
        self.get(uri).cloned()
    }
}

impl ParentBoundaries for HashMap<String, Vec<String>> {
    fn parent_boundaries(&self, uri: &str) -> Option<Vec<String>> {
        self.get(uri).cloned()
    }
}

/// The business rules of one collection, run after lexicon validation.
pub trait RecordRules: Send + Sync {
    /// Checks a record that already matches its lexicon.
    fn check(&self, ctx: &ValidationContext<'_>, record: &Ipld) -> Result<(), RecordError>;
}

/// The rules of `zone.stratos.feed.post` (spec §3.2): boundary present and allowed, reply
/// isolation and boundary subset, embed isolation, no stub `source` on a full record.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostRules;

/// The rules of a record that only needs a boundary: present, and every value allowed
/// (spec §3.2 rules 1–2). Used for the Stratos-side enrollment collection, and available for
/// registering further collections.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoundaryRules;

impl RecordRules for BoundaryRules {
    fn check(&self, ctx: &ValidationContext<'_>, record: &Ipld) -> Result<(), RecordError> {
        check_boundary(ctx, record).map(|_| ())
    }
}

impl RecordRules for PostRules {
    fn check(&self, ctx: &ValidationContext<'_>, record: &Ipld) -> Result<(), RecordError> {
        let boundaries = check_boundary(ctx, record)?;
        check_reply(ctx, record, &boundaries)?;
        check_embed_isolation(record)?;
        if get(record, &["source"]).is_some() {
            return Err(RecordError::at(
                RecordErrorCode::InvalidRecord,
                "source",
                "a full record must not carry a stub source",
            ));
        }
        Ok(())
    }
}

/// The business rules per collection (the "validator factory"): which collections Stratos
/// accepts, and what each one checks beyond its lexicon.
#[derive(Clone, Default)]
pub struct RuleSet {
    rules: BTreeMap<String, Arc<dyn RecordRules>>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.rules.keys()).finish()
    }
}

impl RuleSet {
    /// No collections.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Posts ([`PostRules`]) and Stratos-side enrollments ([`BoundaryRules`]).
    pub fn standard() -> Self {
        let mut set = Self::empty();
        set.register(POST_COLLECTION, PostRules);
        set.register(ENROLLMENT_COLLECTION, BoundaryRules);
        set
    }

    /// The shared [`standard`](Self::standard) set.
    pub fn builtin() -> &'static RuleSet {
        static BUILTIN: OnceLock<RuleSet> = OnceLock::new();
        BUILTIN.get_or_init(RuleSet::standard)
    }

    /// Registers (or replaces) the rules of a collection.
    pub fn register(&mut self, collection: impl Into<String>, rules: impl RecordRules + 'static) {
        self.rules.insert(collection.into(), Arc::new(rules));
    }

    /// The rules of a collection; `None` for collections Stratos does not accept.
    pub fn get(&self, collection: &str) -> Option<&dyn RecordRules> {
        self.rules.get(collection).map(|rules| rules.as_ref())
    }

    /// The collections with rules, sorted.
    pub fn collections(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

/// What the rules need to know about the service and the write.
#[derive(Clone)]
pub struct ValidationContext<'a> {
    service_did: &'a str,
    allowed: BTreeSet<String>,
    lexicons: &'a Lexicons,
    rules: &'a RuleSet,
    parents: Option<&'a dyn ParentBoundaries>,
}

impl fmt::Debug for ValidationContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidationContext")
            .field("service_did", &self.service_did)
            .field("allowed", &self.allowed)
            .field("rules", self.rules)
            .field("parents", &self.parents.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> ValidationContext<'a> {
    /// A context for `service_did` whose allowed boundaries are `allowed_domains` (bare names
    /// are qualified with the service DID), with the built-in lexicons and rules and no parent
    /// lookup.
    pub fn new<S: AsRef<str>>(
        service_did: &'a str,
        allowed_domains: impl IntoIterator<Item = S>,
    ) -> Self {
        let allowed = allowed_domains
            .into_iter()
            .map(|d| {
                let d = d.as_ref();
                if is_qualified(d) {
                    d.to_owned()
                } else {
                    qualify(service_did, d)
                }
            })
            .collect();
        Self {
            service_did,
            allowed,
            lexicons: Lexicons::builtin(),
            rules: RuleSet::builtin(),
            parents: None,
        }
    }

    /// Uses another lexicon set (e.g. the built-ins plus run-time registrations).
    pub fn with_lexicons(mut self, lexicons: &'a Lexicons) -> Self {
        self.lexicons = lexicons;
        self
    }

    /// Uses another rule set.
    pub fn with_rules(mut self, rules: &'a RuleSet) -> Self {
        self.rules = rules;
        self
    }

    /// Looks up reply parents' boundaries here, enabling the reply subset rule.
    pub fn with_parents(mut self, parents: &'a dyn ParentBoundaries) -> Self {
        self.parents = Some(parents);
        self
    }

    /// The service DID.
    pub fn service_did(&self) -> &str {
        self.service_did
    }

    /// The allowed boundaries, qualified.
    pub fn allowed_domains(&self) -> &BTreeSet<String> {
        &self.allowed
    }

    /// The lexicons records are validated against.
    pub fn lexicons(&self) -> &Lexicons {
        self.lexicons
    }

    /// The per-collection rules.
    pub fn rules(&self) -> &RuleSet {
        self.rules
    }
}

/// Validates a record written to `collection` on this service (spec §3.1–§3.3), in order:
///
/// 1. the collection starts with `zone.stratos.` (`InvalidCollection`);
/// 2. the service has allowed boundaries (`NamespaceDisabled`);
/// 3. the record is an object whose `$type` is the collection (`InvalidRecord`);
/// 4. the collection has rules and a record lexicon (`InvalidCollection` otherwise);
/// 5. the record matches the lexicon (`InvalidRecord`; a boundary object without `$type` is
///    accepted as `zone.stratos.boundary.defs#Domains`);
/// 6. the collection's business rules.
///
/// The author-boundary check ([`check_author_boundaries`]) is separate.
pub fn validate_record(
    ctx: &ValidationContext<'_>,
    collection: &Nsid,
    record: &Ipld,
) -> Result<(), RecordError> {
    let collection = collection.as_str();
    if !is_stratos_collection(collection) {
        return Err(RecordError::new(
            RecordErrorCode::InvalidCollection,
            "Only zone.stratos.* collections are supported",
        ));
    }
    if ctx.allowed.is_empty() {
        return Err(RecordError::new(
            RecordErrorCode::NamespaceDisabled,
            "Stratos namespace is not enabled on this service",
        ));
    }
    let Ipld::Map(map) = record else {
        return Err(RecordError::new(
            RecordErrorCode::InvalidRecord,
            "a record must be an object",
        ));
    };
    match map.get("$type") {
        Some(Ipld::String(t)) if t == collection => {}
        _ => {
            return Err(RecordError::at(
                RecordErrorCode::InvalidRecord,
                "$type",
                format_args!("must be '{collection}'"),
            ));
        }
    }
    let Some(rules) = ctx.rules.get(collection) else {
        return Err(RecordError::new(
            RecordErrorCode::InvalidCollection,
            format!("Unknown Stratos collection: {collection}"),
        ));
    };
    if ctx.lexicons.record_schema(collection).is_none() {
        return Err(RecordError::new(
            RecordErrorCode::InvalidCollection,
            format!("No record lexicon for collection: {collection}"),
        ));
    }
    let normalised = with_boundary_type(map);
    ctx.lexicons
        .validate_record(collection, normalised.as_ref().unwrap_or(record))
        .map_err(|e| RecordError::new(RecordErrorCode::InvalidRecord, e.to_string()))?;
    rules.check(ctx, record)
}

/// A copy of the record with `boundary.$type` filled in, if the boundary object lacks it.
fn with_boundary_type(map: &BTreeMap<String, Ipld>) -> Option<Ipld> {
    let Some(Ipld::Map(boundary)) = map.get("boundary") else {
        return None;
    };
    if boundary.contains_key("$type") {
        return None;
    }
    let mut boundary = boundary.clone();
    boundary.insert("$type".into(), Ipld::String(DOMAINS_TYPE.into()));
    let mut map = map.clone();
    map.insert("boundary".into(), Ipld::Map(boundary));
    Some(Ipld::Map(map))
}

/// Rules 1–2: the record has a non-empty `boundary.values` and every value is an allowed
/// boundary of this service. Returns the values.
fn check_boundary(ctx: &ValidationContext<'_>, record: &Ipld) -> Result<Vec<String>, RecordError> {
    let values = match get(record, &["boundary", "values"]) {
        Some(Ipld::List(values)) if !values.is_empty() => values,
        _ => {
            return Err(RecordError::at(
                RecordErrorCode::MissingBoundary,
                "boundary",
                "must have a boundary",
            ));
        }
    };
    let mut out = Vec::with_capacity(values.len());
    for (index, entry) in values.iter().enumerate() {
        let path = format!("boundary.values[{index}].value");
        let Some(Ipld::String(value)) = get(entry, &["value"]) else {
            return Err(RecordError::at(
                RecordErrorCode::InvalidRecord,
                &path,
                "must be a string",
            ));
        };
        if value.starts_with("did:") && !belongs_to(ctx.service_did, value) {
            return Err(RecordError::at(
                RecordErrorCode::ForbiddenDomain,
                &path,
                format_args!("Boundary '{value}' does not belong to this service"),
            ));
        }
        if !ctx.allowed.contains(value) {
            return Err(RecordError::at(
                RecordErrorCode::ForbiddenDomain,
                &path,
                format_args!("Domain '{value}' is not allowed"),
            ));
        }
        out.push(value.clone());
    }
    Ok(out)
}

fn belongs_to(service_did: &str, value: &str) -> bool {
    value
        .strip_prefix(service_did)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Rules 3–4: a reply's parent and root are Stratos records, and its boundaries are among the
/// parent's (when the parent is known here).
fn check_reply(
    ctx: &ValidationContext<'_>,
    record: &Ipld,
    boundaries: &[String],
) -> Result<(), RecordError> {
    if get(record, &["reply"]).is_none() {
        return Ok(());
    }
    let parent = string_at(record, &["reply", "parent", "uri"]);
    if !parent.is_some_and(is_stratos_uri) {
        return Err(RecordError::at(
            RecordErrorCode::CrossNamespaceReply,
            "reply.parent.uri",
            "cannot reply to a non-stratos record",
        ));
    }
    if let Some(root) = string_at(record, &["reply", "root", "uri"])
        && !is_stratos_uri(root)
    {
        return Err(RecordError::at(
            RecordErrorCode::CrossNamespaceReply,
            "reply.root.uri",
            "cannot have a non-stratos root",
        ));
    }
    let (Some(parent), Some(lookup)) = (parent, ctx.parents) else {
        return Ok(());
    };
    let Some(parent_boundaries) = lookup.parent_boundaries(parent) else {
        return Ok(());
    };
    let missing: Vec<&str> = boundaries
        .iter()
        .filter(|b| !parent_boundaries.contains(b))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RecordError::at(
            RecordErrorCode::ReplyBoundaryEscalation,
            "boundary",
            format_args!(
                "Reply boundaries must be a subset of the parent's boundaries. Domains not in parent: {}",
                missing.join(", ")
            ),
        ))
    }
}

/// Every AT-URI a post's embed points at, with its path: `embed.record.uri`,
/// `embed.record.record.uri` (record with media), and the same inside `embed.media`.
pub fn embedded_record_uris(record: &Ipld) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(embed) = get(record, &["embed"]) {
        collect_embed_uris(embed, "embed", &mut out, 0);
    }
    out
}

fn collect_embed_uris<'r>(
    embed: &'r Ipld,
    path: &str,
    out: &mut Vec<(String, &'r str)>,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    if let Some(Ipld::String(uri)) = get(embed, &["record", "uri"]) {
        out.push((format!("{path}.record.uri"), uri));
    }
    if let Some(Ipld::String(uri)) = get(embed, &["record", "record", "uri"]) {
        out.push((format!("{path}.record.record.uri"), uri));
    }
    if let Some(media @ Ipld::Map(_)) = get(embed, &["media"]) {
        collect_embed_uris(media, &format!("{path}.media"), out, depth + 1);
    }
}

/// Rule 5 (strict variant): every embedded record is a Stratos record.
fn check_embed_isolation(record: &Ipld) -> Result<(), RecordError> {
    for (path, uri) in embedded_record_uris(record) {
        if !is_stratos_uri(uri) {
            let message = if is_bsky_uri(uri) {
                "cannot embed bsky content"
            } else {
                "cannot embed non-stratos content"
            };
            return Err(RecordError::at(
                RecordErrorCode::CrossNamespaceEmbed,
                &path,
                message,
            ));
        }
    }
    Ok(())
}

/// The symmetric rule for a PDS plug-in: an `app.bsky.feed.post` must not embed a
/// `zone.stratos.*` record. Other collections pass unchecked.
pub fn check_bsky_record(collection: &str, record: &Ipld) -> Result<(), RecordError> {
    if collection != BSKY_POST_COLLECTION {
        return Ok(());
    }
    for (path, uri) in embedded_record_uris(record) {
        if is_stratos_uri(uri) {
            return Err(RecordError::at(
                RecordErrorCode::CrossNamespaceEmbed,
                &path,
                "cannot embed stratos content",
            ));
        }
    }
    Ok(())
}

/// The author-boundary check (spec §3.4), run after validation for every write whose record
/// has boundary values: each value must be qualified for this service (`ServiceMismatch`) and
/// be one of the author's enrolled boundaries (`ForbiddenBoundary`).
pub fn check_author_boundaries<R: AsRef<str>, A: AsRef<str>>(
    service_did: &str,
    record_boundaries: &[R],
    author_boundaries: &[A],
) -> Result<(), RecordError> {
    for value in record_boundaries {
        check_service(service_did, value.as_ref())
            .map_err(|e| RecordError::new(RecordErrorCode::ServiceMismatch, e.to_string()))?;
    }
    let missing: Vec<&str> = record_boundaries
        .iter()
        .map(AsRef::as_ref)
        .filter(|v| !author_boundaries.iter().any(|a| a.as_ref() == *v))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let enrolled = if author_boundaries.is_empty() {
        "(none)".to_owned()
    } else {
        author_boundaries
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(RecordError::new(
        RecordErrorCode::ForbiddenBoundary,
        format!(
            "You do not have access to boundary domain(s): {}. Your enrolled domains: {enrolled}",
            missing.join(", ")
        ),
    ))
}

/// [`check_author_boundaries`] with the record's own boundary values.
pub fn check_record_author<A: AsRef<str>>(
    service_did: &str,
    record: &Ipld,
    author_boundaries: &[A],
) -> Result<(), RecordError> {
    check_author_boundaries(service_did, &extract_boundaries(record), author_boundaries)
}

/// The parent URI of a reply record (so callers can fetch the parent's boundaries first).
pub fn reply_parent_uri(record: &Ipld) -> Option<&str> {
    string_at(record, &["reply", "parent", "uri"])
}

/// Whether a collection NSID is in the Stratos namespace.
pub fn is_stratos_collection(collection: &str) -> bool {
    collection.starts_with(STRATOS_PREFIX)
}

/// Whether a string is an AT-URI of a record in a `zone.stratos.*` collection.
pub fn is_stratos_uri(uri: &str) -> bool {
    uri_collection_has_prefix(uri, STRATOS_PREFIX)
}

/// Whether a string is an AT-URI of a record in an `app.bsky.*` collection.
pub fn is_bsky_uri(uri: &str) -> bool {
    uri_collection_has_prefix(uri, BSKY_PREFIX)
}

fn uri_collection_has_prefix(uri: &str, prefix: &str) -> bool {
    uri.parse::<AtUri>().ok().is_some_and(|uri| {
        uri.collection()
            .is_some_and(|collection| collection.as_str().starts_with(prefix))
    })
}

/// The value at a path of map keys.
fn get<'r>(value: &'r Ipld, path: &[&str]) -> Option<&'r Ipld> {
    path.iter().try_fold(value, |value, key| match value {
        Ipld::Map(map) => map.get(*key),
        _ => None,
    })
}

fn string_at<'r>(value: &'r Ipld, path: &[&str]) -> Option<&'r str> {
    match get(value, path) {
        Some(Ipld::String(s)) => Some(s),
        _ => None,
    }
}
