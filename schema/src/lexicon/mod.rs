//! The `zone.stratos.*` lexicons, typed records and record validation.
//!
//! * [`schema`] — the Lexicon v1 language: [`LexiconDoc`] and its [`Schema`] nodes;
//! * [`Lexicons`] — a set of documents with reference resolution; [`Lexicons::builtin`] holds
//!   the documents of `schema/lexicons/` (embedded at compile time), and more can be added;
//! * validation of data-model values against a lexicon ([`Lexicons::validate_record`]), with
//!   errors naming the field and the rule ([`ValidationError`]);
//! * the Stratos write rules of spec §3 ([`validate_record`], [`check_author_boundaries`]);
//! * typed records ([`Post`], [`Domains`], [`EnrollmentRecord`]) and PDS stubs ([`Stub`],
//!   [`is_stub`], [`stub_for`]).

mod catalog;
mod records;
mod rules;
pub mod schema;
mod stub;
mod validate;

pub use self::catalog::{BUILTIN_LEXICON_FILES, Lexicons, UnresolvedRef};
pub use self::records::{
    Attestation, BoundaryEntry, DOMAIN_TYPE, DOMAINS_TYPE, Domain, Domains, ENROLLMENT_COLLECTION,
    EnrollmentRecord, MAX_BOUNDARY_LENGTH, MAX_ENROLLMENT_BOUNDARIES, MAX_RECORD_BOUNDARIES,
    POST_COLLECTION, Post, RecordParseError, ReplyRef, StrongRef, enrollment_rkey,
};
pub use self::rules::{
    BSKY_POST_COLLECTION, BSKY_PREFIX, BoundaryRules, ParentBoundaries, PostRules, RecordError,
    RecordErrorCode, RecordRules, RuleSet, STRATOS_PREFIX, ValidationContext,
    check_author_boundaries, check_bsky_record, check_record_author, embedded_record_uris,
    is_bsky_uri, is_stratos_collection, is_stratos_uri, reply_parent_uri, validate_record,
};
pub use self::schema::{LexiconDoc, LexiconError, Schema};
pub use self::stub::{
    ServiceRef, Source, Stub, VARY_AUTHENTICATED, VARY_UNAUTHENTICATED, is_stub, is_stub_json,
    stub_for, stub_for_at,
};
pub use self::validate::{ValidationError, matches_format};
