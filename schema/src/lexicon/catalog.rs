//! A set of lexicon documents with reference resolution, and the built-in set: the
//! `zone.stratos.*` lexicons plus the `app.bsky.*` and `com.atproto.*` definitions posts use.
//!
//! The built-in documents live in `schema/lexicons/` and are embedded at compile time, so the
//! crate does no I/O; more documents can be registered at run time.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::schema::{LexiconDoc, LexiconError, RecordSchema, Schema, split_ref};

macro_rules! builtin {
    ($($path:literal),* $(,)?) => {
        /// The embedded lexicon files: their path under `schema/lexicons/` and their JSON text.
        pub const BUILTIN_LEXICON_FILES: &[(&str, &str)] = &[
            $(($path, include_str!(concat!("../../lexicons/", $path)))),*
        ];
    };
}

builtin![
    "app/bsky/embed/defs.json",
    "app/bsky/embed/external.json",
    "app/bsky/embed/images.json",
    "app/bsky/embed/record.json",
    "app/bsky/embed/recordWithMedia.json",
    "app/bsky/embed/video.json",
    "app/bsky/richtext/facet.json",
    "com/atproto/label/defs.json",
    "com/atproto/repo/strongRef.json",
    "zone/stratos/actor/enrollment.json",
    "zone/stratos/admin/addBoundary.json",
    "zone/stratos/admin/removeBoundary.json",
    "zone/stratos/admin/setBoundaries.json",
    "zone/stratos/boundary/defs.json",
    "zone/stratos/defs.json",
    "zone/stratos/enrollment/status.json",
    "zone/stratos/enrollment/unenroll.json",
    "zone/stratos/feed/defs.json",
    "zone/stratos/feed/getAuthorFeed.json",
    "zone/stratos/feed/getPosts.json",
    "zone/stratos/feed/getTimeline.json",
    "zone/stratos/feed/post.json",
    "zone/stratos/identity/resolveEnrollments.json",
    "zone/stratos/repo/hydrateRecord.json",
    "zone/stratos/repo/hydrateRecords.json",
    "zone/stratos/repo/importRepo.json",
    "zone/stratos/server/listDomains.json",
    "zone/stratos/sync/getRepo.json",
    "zone/stratos/sync/subscribeRecords.json",
];

/// A reference that points at no definition of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedRef {
    /// The document holding the reference.
    pub document: String,
    /// The absolute reference (`nsid#name`).
    pub reference: String,
}

/// A set of lexicon documents, keyed by NSID.
#[derive(Debug, Clone, Default)]
pub struct Lexicons {
    docs: BTreeMap<String, LexiconDoc>,
}

impl Lexicons {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in documents, parsed once.
    ///
    /// # Panics
    ///
    /// If an embedded document is invalid — a build defect the test suite rules out.
    pub fn builtin() -> &'static Lexicons {
        static BUILTIN: OnceLock<Lexicons> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut set = Lexicons::new();
            for (path, text) in BUILTIN_LEXICON_FILES {
                let doc = LexiconDoc::from_json_str(text)
                    .unwrap_or_else(|e| panic!("embedded lexicon {path} is invalid: {e}"));
                if let Err(e) = set.add(doc) {
                    panic!("embedded lexicon {path} clashes: {e}");
                }
            }
            set
        })
    }

    /// A copy of the built-in set, to register more documents in.
    pub fn with_builtin() -> Self {
        Self::builtin().clone()
    }

    /// Registers a parsed document. A second document with the same `id` is refused.
    pub fn add(&mut self, doc: LexiconDoc) -> Result<(), LexiconError> {
        if self.docs.contains_key(&doc.id) {
            return Err(LexiconError {
                id: doc.id,
                path: "id".into(),
                reason: "a document with this id is already registered".into(),
            });
        }
        self.docs.insert(doc.id.clone(), doc);
        Ok(())
    }

    /// Parses, checks and registers a document given as JSON.
    pub fn add_json(&mut self, value: &Value) -> Result<(), LexiconError> {
        self.add(LexiconDoc::from_json(value)?)
    }

    /// The document with this NSID.
    pub fn get(&self, id: &str) -> Option<&LexiconDoc> {
        self.docs.get(id)
    }

    /// The NSIDs of every registered document, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// The documents, sorted by NSID.
    pub fn docs(&self) -> impl Iterator<Item = &LexiconDoc> {
        self.docs.values()
    }

    /// The definition an absolute reference (`nsid#name`, or `nsid` for `main`) points at.
    pub fn resolve(&self, reference: &str) -> Option<&Schema> {
        let (nsid, name) = split_ref(reference);
        self.docs.get(nsid)?.defs.get(name)
    }

    /// The record schema of a collection, if its document's `main` is a record.
    pub fn record_schema(&self, collection: &str) -> Option<&RecordSchema> {
        self.docs.get(collection)?.record()
    }

    /// Every reference in the set that resolves to nothing.
    pub fn unresolved_refs(&self) -> Vec<UnresolvedRef> {
        let mut missing = Vec::new();
        for doc in self.docs.values() {
            for def in doc.defs.values() {
                for reference in def.refs() {
                    if self.resolve(reference).is_none() {
                        missing.push(UnresolvedRef {
                            document: doc.id.clone(),
                            reference: reference.to_owned(),
                        });
                    }
                }
            }
        }
        missing
    }
}
