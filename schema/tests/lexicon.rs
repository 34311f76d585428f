//! Lexicons and record validation: the atproto lexicon interop vectors, the built-in
//! `zone.stratos.*` documents, the Stratos write rules of spec §3 and stubs (§6.1), and the
//! acceptance cases of §15.10, §15.13, §15.14 and §15.15.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use ipld_core::ipld::Ipld;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use stratos_schema::Cid;
use stratos_schema::boundary::extract_boundaries;
use stratos_schema::data::json_to_ipld;
use stratos_schema::lexicon::schema::Schema;
use stratos_schema::lexicon::{
    BUILTIN_LEXICON_FILES, BoundaryRules, Domains, ENROLLMENT_COLLECTION, EnrollmentRecord,
    LexiconDoc, Lexicons, POST_COLLECTION, Post, RecordErrorCode, RuleSet, ServiceRef, Source,
    ValidationContext, ValidationError, check_author_boundaries, check_bsky_record,
    check_record_author, is_bsky_uri, is_stratos_collection, is_stratos_uri, is_stub, is_stub_json,
    reply_parent_uri, stub_for, stub_for_at, validate_record,
};
use stratos_schema::syntax::{AtUri, Nsid};

const SERVICE: &str = "did:web:stratos.example.com";
const OTHER_SERVICE: &str = "did:web:other.example.com";
const GENERAL: &str = "did:web:stratos.example.com/general";
const WRITERS: &str = "did:web:stratos.example.com/writers";
const CID: &str = "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq";
const PARENT: &str = "at://did:plc:abc/zone.stratos.feed.post/3l2ij3k4k5s22";
const ROOT: &str = "at://did:plc:abc/zone.stratos.feed.post/3l2ij3k4k5s2a";
const BSKY_POST: &str = "at://did:plc:abc/app.bsky.feed.post/3l2ij3k4k5s22";

// ---------------------------------------------------------------------------------------------
// helpers

fn fixture(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/lexicon/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture file is readable");
    serde_json::from_str(&text).expect("fixture file is JSON")
}

fn ipld(value: Value) -> Ipld {
    json_to_ipld(&value).expect("test record converts to the data model")
}

fn nsid(text: &str) -> Nsid {
    text.parse().expect("valid NSID")
}

fn ctx() -> ValidationContext<'static> {
    ValidationContext::new(SERVICE, ["general", "writers"])
}

fn post(extra: Value) -> Value {
    let mut record = json!({
        "$type": POST_COLLECTION,
        "text": "hello private world",
        "boundary": {
            "$type": "zone.stratos.boundary.defs#Domains",
            "values": [{ "$type": "zone.stratos.boundary.defs#Domain", "value": GENERAL }]
        },
        "createdAt": "2026-01-15T12:00:00.000Z"
    });
    let (Value::Object(record_map), Value::Object(extra)) = (&mut record, extra) else {
        panic!("objects expected");
    };
    for (key, value) in extra {
        if value.is_null() {
            record_map.remove(&key);
        } else {
            record_map.insert(key, value);
        }
    }
    record
}

fn boundary(values: &[&str]) -> Value {
    json!({ "values": values.iter().map(|v| json!({ "value": v })).collect::<Vec<_>>() })
}

fn check_post_in(
    ctx: &ValidationContext<'_>,
    record: Value,
) -> Result<(), (RecordErrorCode, String)> {
    validate_record(ctx, &nsid(POST_COLLECTION), &ipld(record)).map_err(|e| (e.code, e.message))
}

fn check_post(record: Value) -> Result<(), (RecordErrorCode, String)> {
    check_post_in(&ctx(), record)
}

#[track_caller]
fn assert_rejected(
    result: Result<(), (RecordErrorCode, String)>,
    code: RecordErrorCode,
    text: &str,
) {
    match result {
        Ok(()) => panic!("expected {code} containing {text:?}, got Ok"),
        Err((actual, message)) => {
            assert_eq!(actual, code, "{message}");
            assert!(
                message.contains(text),
                "{message:?} should contain {text:?}"
            );
        }
    }
}

fn strong_ref(uri: &str) -> Value {
    json!({ "uri": uri, "cid": CID })
}

fn reply(parent: &str, root: &str) -> Value {
    json!({ "reply": { "root": strong_ref(root), "parent": strong_ref(parent) } })
}

fn image_blob() -> Value {
    json!({ "$type": "blob", "ref": { "$link": CID }, "mimeType": "image/png", "size": 1234 })
}

fn enrollment_json() -> Value {
    json!({
        "$type": ENROLLMENT_COLLECTION,
        "service": "https://stratos.example.com",
        "boundaries": [{ "value": GENERAL }],
        "signingKey": "did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo",
        "attestation": {
            "sig": { "$bytes": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QA" },
            "signingKey": "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
        },
        "createdAt": "2026-03-12T00:00:00.000Z"
    })
}

// ---------------------------------------------------------------------------------------------
// the atproto lexicon interop vectors

/// A record lexicon that exercises every field type of the data fixtures (written for these
/// tests from the shapes the fixtures use).
const EXAMPLE_RECORD_LEXICON: &str = r##"{
  "lexicon": 1,
  "id": "example.lexicon.record",
  "defs": {
    "main": {
      "type": "record",
      "key": "literal:demo",
      "record": {
        "type": "object",
        "required": ["integer"],
        "nullable": ["nullableString"],
        "properties": {
          "boolean": { "type": "boolean" },
          "integer": { "type": "integer" },
          "string": { "type": "string" },
          "nullableString": { "type": "string" },
          "bytes": { "type": "bytes" },
          "cidlink": { "type": "cid-link" },
          "cid-link": { "type": "cid-link" },
          "blob": { "type": "blob" },
          "unknown": { "type": "unknown" },
          "array": { "type": "array", "items": { "type": "integer" } },
          "object": {
            "type": "object",
            "properties": { "a": { "type": "integer" }, "b": { "type": "integer" } }
          },
          "ref": { "type": "ref", "ref": "#demoObject" },
          "union": { "type": "union", "refs": ["#demoObject", "#demoObjectTwo"] },
          "formats": { "type": "ref", "ref": "#formats" },
          "constInteger": { "type": "integer", "const": 42 },
          "defaultInteger": { "type": "integer", "default": 123 },
          "enumInteger": { "type": "integer", "enum": [4, 9, 16, 25] },
          "rangeInteger": { "type": "integer", "minimum": 10, "maximum": 20 },
          "lenString": { "type": "string", "minLength": 2, "maxLength": 20 },
          "graphemeString": { "type": "string", "minGraphemes": 3, "maxGraphemes": 20 },
          "enumString": { "type": "string", "enum": ["fish", "tree", "rock"] },
          "knownString": { "type": "string", "knownValues": ["blue", "green"] },
          "sizeBytes": { "type": "bytes", "minLength": 10, "maxLength": 20 },
          "lenArray": {
            "type": "array",
            "items": { "type": "integer" },
            "minLength": 2,
            "maxLength": 5
          },
          "sizeBlob": { "type": "blob", "maxSize": 20 },
          "acceptBlob": { "type": "blob", "accept": ["image/*"] },
          "closedUnion": { "type": "union", "refs": ["#demoObject"], "closed": true }
        }
      }
    },
    "formats": {
      "type": "object",
      "properties": {
        "did": { "type": "string", "format": "did" },
        "handle": { "type": "string", "format": "handle" },
        "atidentifier": { "type": "string", "format": "at-identifier" },
        "aturi": { "type": "string", "format": "at-uri" },
        "nsid": { "type": "string", "format": "nsid" },
        "cid": { "type": "string", "format": "cid" },
        "datetime": { "type": "string", "format": "datetime" },
        "language": { "type": "string", "format": "language" },
        "uri": { "type": "string", "format": "uri" },
        "tid": { "type": "string", "format": "tid" },
        "recordkey": { "type": "string", "format": "record-key" }
      }
    },
    "demoToken": { "type": "token" },
    "demoObject": {
      "type": "object",
      "properties": { "a": { "type": "integer" }, "b": { "type": "integer" } }
    },
    "demoObjectTwo": {
      "type": "object",
      "required": ["c"],
      "properties": { "c": { "type": "integer" } }
    }
  }
}"##;

fn example_lexicons() -> Lexicons {
    let mut lexicons = Lexicons::with_builtin();
    let doc = LexiconDoc::from_json_str(EXAMPLE_RECORD_LEXICON).expect("example lexicon parses");
    lexicons.add(doc).expect("registers");
    // The other documents of the valid-lexicon vectors register next to it.
    for case in fixture("lexicon-valid.json") {
        if case["lexicon"]["id"] != "example.lexicon.record" {
            lexicons
                .add_json(&case["lexicon"])
                .expect("valid lexicon registers");
        }
    }
    lexicons
}

#[test]
fn lexicon_documents_of_the_valid_vectors_parse() {
    let cases = fixture("lexicon-valid.json");
    assert!(!cases.is_empty());
    for case in cases {
        LexiconDoc::from_json(&case["lexicon"]).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
    }
}

#[test]
fn lexicon_documents_of_the_invalid_vectors_are_rejected() {
    let cases = fixture("lexicon-invalid.json");
    assert!(cases.len() >= 7);
    for case in cases {
        assert!(
            LexiconDoc::from_json(&case["lexicon"]).is_err(),
            "{} should be rejected",
            case["name"]
        );
    }
}

#[test]
fn record_data_valid_vectors_pass() {
    let lexicons = example_lexicons();
    let cases = fixture("record-data-valid.json");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let value = json_to_ipld(&case["data"]).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        lexicons
            .validate_record("example.lexicon.record", &value)
            .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
    }
}

#[test]
fn record_data_invalid_vectors_are_rejected() {
    let lexicons = example_lexicons();
    let cases = fixture("record-data-invalid.json");
    assert!(cases.len() >= 45);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        match json_to_ipld(&case["data"]) {
            Err(e) => panic!("{name}: conversion failed: {e}"),
            Ok(value) => {
                let result = lexicons.validate_record("example.lexicon.record", &value);
                assert!(result.is_err(), "{name} should be rejected");
            }
        }
    }
}

#[test]
fn data_errors_name_the_field_and_the_rule() {
    let lexicons = example_lexicons();
    let check = |data: Value| {
        lexicons
            .validate_record("example.lexicon.record", &ipld(data))
            .expect_err("invalid")
    };
    let base = |extra: Value| {
        let mut data = json!({ "$type": "example.lexicon.record", "integer": 1 });
        for (k, v) in extra.as_object().expect("object") {
            data[k] = v.clone();
        }
        data
    };
    assert_eq!(
        check(json!({ "$type": "example.lexicon.record" })),
        ValidationError::new("integer", "is required")
    );
    assert_eq!(
        check(base(json!({ "formats": { "did": "123" } }))),
        ValidationError::new("formats.did", "must be a valid did")
    );
    assert_eq!(
        check(base(json!({ "lenArray": [1, 2, 3, 4, 5, 6] }))).to_string(),
        "\"lenArray\": must not have more than 5 items"
    );
    assert_eq!(check(base(json!({ "array": [1, true] }))).path, "array[1]");
    assert_eq!(
        check(base(
            json!({ "closedUnion": { "$type": "example.lexicon.record#demoObjectTwo", "c": 1 } })
        )),
        ValidationError::new(
            "closedUnion.$type",
            "must be one of example.lexicon.record#demoObject"
        )
    );
    assert_eq!(
        check(base(json!({ "rangeInteger": 9 }))).rule,
        "must be at least 10"
    );
    assert_eq!(
        check(json!({ "$type": "example.lexicon.other", "integer": 1 })),
        ValidationError::new("$type", "must be 'example.lexicon.record'")
    );
    // `unknown` takes any object, but not other kinds of value and not a blob. (The vectors
    // for this also lack `integer`, so they are checked here with it.)
    for not_an_object in [
        json!(false),
        json!({ "$bytes": "AQID" }),
        json!({ "$type": "blob", "mimeType": "text/plain", "size": 3, "ref": { "$link": CID } }),
    ] {
        assert_eq!(
            check(base(json!({ "unknown": not_an_object }))),
            ValidationError::new("unknown", "must be an object")
        );
    }
    // An open union accepts members it does not know.
    lexicons
        .validate_record(
            "example.lexicon.record",
            &ipld(base(
                json!({ "union": { "$type": "com.example.unknown", "z": true } }),
            )),
        )
        .expect("open union");
    // A ref to a token takes the token's name as a string.
    let mut with_token = Lexicons::new();
    with_token
        .add_json(&json!({
            "lexicon": 1,
            "id": "example.lexicon.token",
            "defs": {
                "main": { "type": "record", "key": "tid", "record": { "type": "object",
                    "properties": { "t": { "type": "ref", "ref": "#tok" } } } },
                "tok": { "type": "token" }
            }
        }))
        .expect("registers");
    let token_record = |t: &str| ipld(json!({ "$type": "example.lexicon.token", "t": t }));
    with_token
        .validate_record(
            "example.lexicon.token",
            &token_record("example.lexicon.token#tok"),
        )
        .expect("token");
    assert!(
        with_token
            .validate_record(
                "example.lexicon.token",
                &token_record("example.lexicon.token#other")
            )
            .is_err()
    );
}

#[test]
fn duplicate_documents_are_refused() {
    let mut lexicons = Lexicons::with_builtin();
    let doc = LexiconDoc::from_json_str(BUILTIN_LEXICON_FILES[0].1).expect("parses");
    assert!(lexicons.add(doc).is_err());
}

// ---------------------------------------------------------------------------------------------
// the built-in documents

fn lexicon_files_on_disk(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("lexicon directory is readable") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type().expect("file type").is_dir() {
            lexicon_files_on_disk(&entry.path(), &relative, out);
        } else if name.ends_with(".json") {
            out.push(relative);
        }
    }
}

#[test]
fn every_lexicon_file_is_embedded_parses_and_sits_at_its_nsid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lexicons");
    let mut on_disk = Vec::new();
    lexicon_files_on_disk(&root, "", &mut on_disk);
    on_disk.sort();
    let mut embedded: Vec<String> = BUILTIN_LEXICON_FILES
        .iter()
        .map(|(p, _)| (*p).to_owned())
        .collect();
    embedded.sort();
    assert_eq!(
        on_disk, embedded,
        "schema/lexicons and BUILTIN_LEXICON_FILES differ"
    );

    for (path, text) in BUILTIN_LEXICON_FILES {
        let on_disk = std::fs::read_to_string(root.join(path)).expect("readable");
        assert_eq!(&on_disk, text, "{path}");
        let doc = LexiconDoc::from_json_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let expected_path = format!("{}.json", doc.id.replace('.', "/"));
        assert_eq!(*path, expected_path, "file name must follow the NSID");
    }
    assert_eq!(
        Lexicons::builtin().ids().count(),
        BUILTIN_LEXICON_FILES.len()
    );
}

#[test]
fn every_reference_resolves() {
    let lexicons = Lexicons::builtin();
    assert_eq!(lexicons.unresolved_refs(), Vec::new());
    // Union members are object definitions.
    for doc in lexicons.docs() {
        for def in doc.defs.values() {
            collect_unions(def, &mut |refs| {
                for reference in refs {
                    assert!(
                        matches!(
                            lexicons.resolve(reference),
                            Some(Schema::Object(_) | Schema::Record(_))
                        ),
                        "{}: union member {reference} is not an object",
                        doc.id
                    );
                }
            });
        }
    }
}

fn collect_unions(schema: &Schema, f: &mut dyn FnMut(&[String])) {
    use stratos_schema::lexicon::schema::ObjectSchema;
    let object = |o: &ObjectSchema, f: &mut dyn FnMut(&[String])| {
        for property in o.properties.values() {
            collect_unions(property, f);
        }
    };
    match schema {
        Schema::Union(u) => f(&u.refs),
        Schema::Array(a) => collect_unions(&a.items, f),
        Schema::Object(o) | Schema::Params(o) => object(o, f),
        Schema::Record(r) => object(&r.record, f),
        Schema::Query(x) | Schema::Procedure(x) => {
            for body in [&x.input, &x.output].into_iter().flatten() {
                if let Some(schema) = &body.schema {
                    collect_unions(schema, f);
                }
            }
        }
        Schema::Subscription(s) => {
            if let Some(message) = &s.message {
                collect_unions(message, f);
            }
        }
        _ => {}
    }
}

#[test]
fn the_catalogue_has_every_stratos_endpoint_and_record() {
    let lexicons = Lexicons::builtin();
    let kinds = [
        ("zone.stratos.feed.post", "record"),
        ("zone.stratos.actor.enrollment", "record"),
        ("zone.stratos.repo.hydrateRecord", "query"),
        ("zone.stratos.repo.hydrateRecords", "procedure"),
        ("zone.stratos.repo.importRepo", "procedure"),
        ("zone.stratos.sync.getRepo", "query"),
        ("zone.stratos.sync.subscribeRecords", "subscription"),
        ("zone.stratos.enrollment.status", "query"),
        ("zone.stratos.enrollment.unenroll", "procedure"),
        ("zone.stratos.identity.resolveEnrollments", "query"),
        ("zone.stratos.server.listDomains", "query"),
        ("zone.stratos.admin.addBoundary", "procedure"),
        ("zone.stratos.admin.removeBoundary", "procedure"),
        ("zone.stratos.admin.setBoundaries", "procedure"),
        ("zone.stratos.feed.getTimeline", "query"),
        ("zone.stratos.feed.getAuthorFeed", "query"),
        ("zone.stratos.feed.getPosts", "query"),
    ];
    for (id, kind) in kinds {
        let doc = lexicons.get(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(doc.def("main").map(Schema::type_name), Some(kind), "{id}");
    }
    for id in ["zone.stratos.defs", "zone.stratos.boundary.defs"] {
        assert!(lexicons.get(id).is_some(), "{id} missing");
    }
    assert_eq!(
        lexicons
            .record_schema(POST_COLLECTION)
            .map(|r| r.key.as_str()),
        Some("tid")
    );
    assert_eq!(
        lexicons
            .record_schema(ENROLLMENT_COLLECTION)
            .map(|r| r.key.as_str()),
        Some("any")
    );
}

#[test]
fn declared_errors_use_the_spec_names() {
    let errors = |id: &str| -> Vec<String> {
        Lexicons::builtin()
            .get(id)
            .expect("document")
            .declared_errors()
            .iter()
            .map(|e| e.name.clone())
            .collect()
    };
    let subscribe = errors("zone.stratos.sync.subscribeRecords");
    for name in ["FutureCursor", "OutdatedCursor", "ConsumerTooSlow"] {
        assert!(subscribe.contains(&name.to_owned()), "{name}");
    }
    assert_eq!(
        errors("zone.stratos.repo.hydrateRecord"),
        [
            "InvalidInput",
            "RecordNotFound",
            "RecordBlocked",
            "HydrationError"
        ]
    );
    assert_eq!(
        errors("zone.stratos.repo.hydrateRecords"),
        ["InvalidInput", "TooManyUris"]
    );
    assert_eq!(
        errors("zone.stratos.repo.importRepo"),
        ["InvalidCar", "NotEnrolled", "RepoAlreadyExists"]
    );
    assert_eq!(errors("zone.stratos.sync.getRepo"), ["RepoNotFound"]);
    assert_eq!(
        errors("zone.stratos.enrollment.unenroll"),
        ["NotEnrolled", "AuthRequired"]
    );
    for admin in ["addBoundary", "removeBoundary", "setBoundaries"] {
        assert!(errors(&format!("zone.stratos.admin.{admin}")).contains(&"NotFound".to_owned()));
    }
}

#[test]
fn feed_queries_page_newest_first_with_limit_1_to_100_default_50() {
    for id in [
        "zone.stratos.feed.getTimeline",
        "zone.stratos.feed.getAuthorFeed",
    ] {
        let Some(Schema::Query(query)) = Lexicons::builtin().get(id).and_then(|d| d.def("main"))
        else {
            panic!("{id} is a query");
        };
        let params = query.parameters.as_ref().expect("parameters");
        let Some(Schema::Integer(limit)) = params.properties.get("limit") else {
            panic!("{id}: limit");
        };
        assert_eq!(
            (limit.minimum, limit.maximum, limit.default),
            (Some(1), Some(100), Some(50))
        );
        assert!(params.properties.contains_key("cursor"), "{id}: cursor");
    }
    // A post view carries the fields AppViews serve.
    let view = json!({
        "uri": PARENT, "cid": CID,
        "author": { "did": "did:plc:abc", "handle": "alice.example.com" },
        "record": post(json!({})),
        "indexedAt": "2026-01-15T12:00:01.000Z",
        "boundaries": [GENERAL]
    });
    let lexicons = Lexicons::builtin();
    lexicons
        .validate("zone.stratos.feed.defs#postView", &ipld(view.clone()))
        .expect("post view");
    let mut missing = view;
    missing
        .as_object_mut()
        .expect("object")
        .remove("boundaries");
    assert!(
        lexicons
            .validate("zone.stratos.feed.defs#postView", &ipld(missing))
            .is_err()
    );
}

#[test]
fn subscribe_records_messages_match_their_defs() {
    let lexicons = Lexicons::builtin();
    let commit = json!({
        "seq": 42, "did": "did:plc:abc", "time": "2026-01-15T12:00:00.123Z", "rev": "3l2ij3k4k5s22",
        "ops": [
            { "action": "create", "path": "zone.stratos.feed.post/3l2ij3k4k5s22",
              "cid": { "$link": CID }, "record": post(json!({})) },
            { "action": "delete", "path": "zone.stratos.feed.post/3l2ij3k4k5s2a" }
        ]
    });
    lexicons
        .validate("zone.stratos.sync.subscribeRecords#commit", &ipld(commit))
        .expect("commit");
    let enrollment = json!({
        "did": "did:plc:abc", "action": "enroll", "service": "https://stratos.example.com",
        "boundaries": [GENERAL], "time": "2026-01-15T12:00:00.000Z"
    });
    lexicons
        .validate(
            "zone.stratos.sync.subscribeRecords#enrollment",
            &ipld(enrollment),
        )
        .expect("enrollment");
    let info = json!({ "name": "OutdatedCursor", "message": "Cursor 3 is too old, some events may be missed" });
    lexicons
        .validate("zone.stratos.sync.subscribeRecords#info", &ipld(info))
        .expect("info");
}

// ---------------------------------------------------------------------------------------------
// §3.1 collections

#[test]
fn only_known_stratos_record_collections_are_accepted() {
    let record = |collection: &str| ipld(post(json!({ "$type": collection })));
    let ctx = ctx();
    let err = validate_record(
        &ctx,
        &nsid("app.bsky.feed.post"),
        &record("app.bsky.feed.post"),
    )
    .expect_err("non-Stratos");
    assert_eq!(err.code, RecordErrorCode::InvalidCollection);
    assert_eq!(err.message, "Only zone.stratos.* collections are supported");
    assert_eq!(err.code.xrpc_error(), "InvalidCollection");

    let err = validate_record(
        &ctx,
        &nsid("zone.stratos.feed.like"),
        &record("zone.stratos.feed.like"),
    )
    .expect_err("unknown Stratos collection");
    assert_eq!(err.code, RecordErrorCode::InvalidCollection);

    // A known non-record NSID is not a collection either.
    let err = validate_record(
        &ctx,
        &nsid("zone.stratos.feed.getTimeline"),
        &record("zone.stratos.feed.getTimeline"),
    )
    .expect_err("not a record");
    assert_eq!(err.code, RecordErrorCode::InvalidCollection);
}

#[test]
fn stratos_writes_fail_when_no_domains_are_configured() {
    let ctx = ValidationContext::new(SERVICE, Vec::<String>::new());
    let err = validate_record(&ctx, &nsid(POST_COLLECTION), &ipld(post(json!({}))))
        .expect_err("namespace off");
    assert_eq!(err.code, RecordErrorCode::NamespaceDisabled);
    assert_eq!(err.code.xrpc_error(), "InvalidRecord");
    assert_eq!(
        err.message,
        "Stratos namespace is not enabled on this service"
    );
}

#[test]
fn type_must_equal_the_collection() {
    assert_rejected(
        check_post(post(json!({ "$type": "zone.stratos.actor.enrollment" }))),
        RecordErrorCode::InvalidRecord,
        "\"$type\": must be 'zone.stratos.feed.post'",
    );
    assert_rejected(
        check_post(post(json!({ "$type": null }))),
        RecordErrorCode::InvalidRecord,
        "$type",
    );
    let err = validate_record(&ctx(), &nsid(POST_COLLECTION), &Ipld::List(vec![]))
        .expect_err("not an object");
    assert_eq!(err.code, RecordErrorCode::InvalidRecord);
}

#[test]
fn floats_never_reach_validation() {
    // Floats are not in the data model: the JSON conversion refuses them first.
    assert!(json_to_ipld(&post(json!({ "score": 1.5 }))).is_err());
    assert!(
        json_to_ipld(&post(
            json!({ "facets": [{ "index": { "byteStart": 0.5, "byteEnd": 2 }, "features": [] }] })
        ))
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// §3.2 posts: lexicon limits

#[test]
fn a_valid_post_passes() {
    check_post(post(json!({}))).expect("minimal post");
    check_post(post(json!({
        "text": "see #rust and @alice",
        "boundary": boundary(&[GENERAL, WRITERS]),
        "facets": [
            { "index": { "byteStart": 4, "byteEnd": 9 },
              "features": [{ "$type": "app.bsky.richtext.facet#tag", "tag": "rust" }] },
            { "index": { "byteStart": 14, "byteEnd": 20 },
              "features": [{ "$type": "app.bsky.richtext.facet#mention", "did": "did:plc:abc" }] }
        ],
        "langs": ["en", "pt-BR", "ja"],
        "labels": { "$type": "com.atproto.label.defs#selfLabels", "values": [{ "val": "nudity" }] },
        "tags": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "embed": { "$type": "app.bsky.embed.images", "images": [{ "image": image_blob(), "alt": "" }] }
    })))
    .expect("full post");
    // Text may be empty (an embed carries the content).
    check_post(post(json!({
        "text": "",
        "embed": { "$type": "app.bsky.embed.record", "record": strong_ref(PARENT) }
    })))
    .expect("empty text with embed");
}

#[test]
fn text_is_at_most_3000_bytes() {
    // 120 family emoji = 3000 bytes but only 120 graphemes.
    let family = "👩‍👩‍👦‍👦";
    assert_eq!(family.len(), 25);
    let at_limit = family.repeat(120);
    assert_eq!(at_limit.len(), 3000);
    check_post(post(json!({ "text": at_limit }))).expect("exactly 3000 bytes");
    assert_rejected(
        check_post(post(json!({ "text": format!("{at_limit}a") }))),
        RecordErrorCode::InvalidRecord,
        "\"text\": must not be longer than 3000 bytes",
    );
}

#[test]
fn text_is_at_most_300_graphemes() {
    check_post(post(json!({ "text": "a".repeat(300) }))).expect("exactly 300 graphemes");
    check_post(post(json!({ "text": "é".repeat(300) }))).expect("300 two-byte graphemes");
    let err = check_post(post(json!({ "text": "a".repeat(301) }))).expect_err("301 graphemes");
    assert_eq!(err.0, RecordErrorCode::InvalidRecord);
    assert_eq!(err.1, "\"text\": must not be longer than 300 graphemes");
    // Combining sequences count once: 300 × "e + combining acute" is 300 graphemes.
    check_post(post(json!({ "text": "e\u{301}".repeat(300) }))).expect("combining marks");
    assert!(check_post(post(json!({ "text": "e\u{301}".repeat(301) }))).is_err());
}

#[test]
fn created_at_is_a_required_datetime() {
    assert_rejected(
        check_post(post(json!({ "createdAt": null }))),
        RecordErrorCode::InvalidRecord,
        "\"createdAt\": is required",
    );
    assert_rejected(
        check_post(post(json!({ "createdAt": "yesterday" }))),
        RecordErrorCode::InvalidRecord,
        "\"createdAt\": must be a valid datetime",
    );
    assert_rejected(
        check_post(post(json!({ "text": 42 }))),
        RecordErrorCode::InvalidRecord,
        "\"text\": must be a string",
    );
}

#[test]
fn langs_are_at_most_three_language_tags() {
    check_post(post(json!({ "langs": ["en", "fr", "de"] }))).expect("three");
    assert_rejected(
        check_post(post(json!({ "langs": ["en", "fr", "de", "es"] }))),
        RecordErrorCode::InvalidRecord,
        "\"langs\": must not have more than 3 items",
    );
    assert_rejected(
        check_post(post(json!({ "langs": ["en", "not a language"] }))),
        RecordErrorCode::InvalidRecord,
        "\"langs[1]\": must be a valid language",
    );
}

#[test]
fn tags_are_at_most_eight_short_strings() {
    let eight: Vec<String> = (0..8).map(|i| format!("tag{i}")).collect();
    check_post(post(json!({ "tags": eight }))).expect("eight tags");
    let nine: Vec<String> = (0..9).map(|i| format!("tag{i}")).collect();
    assert_rejected(
        check_post(post(json!({ "tags": nine }))),
        RecordErrorCode::InvalidRecord,
        "\"tags\": must not have more than 8 items",
    );
    check_post(post(json!({ "tags": ["x".repeat(64)] }))).expect("64 graphemes");
    assert_rejected(
        check_post(post(json!({ "tags": ["x".repeat(65)] }))),
        RecordErrorCode::InvalidRecord,
        "\"tags[0]\": must not be longer than 64 graphemes",
    );
    // 640 bytes in 40 graphemes is fine; 641 is not.
    let wide = "👩‍👩‍👦‍👦".repeat(25) + &"x".repeat(15);
    assert_eq!(wide.len(), 640);
    check_post(post(json!({ "tags": [wide.clone()] }))).expect("640 bytes");
    assert_rejected(
        check_post(post(json!({ "tags": [wide + "x"] }))),
        RecordErrorCode::InvalidRecord,
        "\"tags[0]\": must not be longer than 640 bytes",
    );
}

#[test]
fn reply_refs_are_strong_refs() {
    check_post(post(reply(PARENT, ROOT))).expect("valid reply");
    assert_rejected(
        check_post(post(json!({ "reply": { "root": strong_ref(ROOT) } }))),
        RecordErrorCode::InvalidRecord,
        "\"reply.parent\": is required",
    );
    assert_rejected(
        check_post(post(
            json!({ "reply": { "root": strong_ref(ROOT), "parent": { "uri": PARENT } } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"reply.parent.cid\": is required",
    );
    assert_rejected(
        check_post(post(
            json!({ "reply": { "root": strong_ref(ROOT), "parent": { "uri": PARENT, "cid": "nope" } } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"reply.parent.cid\": must be a valid cid",
    );
    assert_rejected(
        check_post(post(
            json!({ "reply": { "root": strong_ref(ROOT), "parent": strong_ref("https://example.com/x") } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"reply.parent.uri\": must be a valid at-uri",
    );
    assert_rejected(
        check_post(post(
            json!({ "reply": "at://did:plc:abc/zone.stratos.feed.post/3l2ij3k4k5s22" }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"reply\": must be an object",
    );
}

#[test]
fn embeds_are_a_closed_union_of_the_bsky_embeds() {
    check_post(post(json!({
        "embed": { "$type": "app.bsky.embed.external",
                   "external": { "uri": "https://example.com", "title": "t", "description": "d" } }
    })))
    .expect("external");
    assert_rejected(
        check_post(post(
            json!({ "embed": { "$type": "com.example.embed.poll", "options": [] } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"embed.$type\": must be one of",
    );
    assert_rejected(
        check_post(post(json!({ "embed": { "images": [] } }))),
        RecordErrorCode::InvalidRecord,
        "\"embed.$type\": is required",
    );
    let mut text_blob = image_blob();
    text_blob["mimeType"] = json!("text/plain");
    assert_rejected(
        check_post(post(
            json!({ "embed": { "$type": "app.bsky.embed.images", "images": [{ "image": text_blob, "alt": "" }] } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"embed.images[0].image\": blob MIME type 'text/plain' is not accepted",
    );
    let mut huge = image_blob();
    huge["size"] = json!(1_000_001);
    assert_rejected(
        check_post(post(
            json!({ "embed": { "$type": "app.bsky.embed.images", "images": [{ "image": huge, "alt": "" }] } }),
        )),
        RecordErrorCode::InvalidRecord,
        "must not be larger than 1000000 bytes",
    );
}

#[test]
fn a_full_post_must_not_carry_a_stub_source() {
    let source = json!({ "vary": "authenticated", "subject": strong_ref(PARENT), "service": format!("{SERVICE}#atproto_pns") });
    assert_rejected(
        check_post(post(json!({ "source": source }))),
        RecordErrorCode::InvalidRecord,
        "\"source\": a full record must not carry a stub source",
    );
}

// ---------------------------------------------------------------------------------------------
// §3.2 posts: business rules

#[test]
fn boundary_is_required_with_one_to_ten_values() {
    let err = check_post(post(json!({ "boundary": null }))).expect_err("missing");
    assert_eq!(
        err,
        (
            RecordErrorCode::MissingBoundary,
            "\"boundary\": must have a boundary".to_owned()
        )
    );
    assert_eq!(
        RecordErrorCode::MissingBoundary.xrpc_error(),
        "InvalidRecord"
    );
    assert_rejected(
        check_post(post(json!({ "boundary": { "values": [] } }))),
        RecordErrorCode::MissingBoundary,
        "must have a boundary",
    );
    assert_rejected(
        check_post(post(
            json!({ "boundary": { "$type": "zone.stratos.boundary.defs#Domains" } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"boundary.values\": is required",
    );

    let names: Vec<String> = (0..11).map(|i| format!("group{i}")).collect();
    let ctx = ValidationContext::new(SERVICE, &names);
    let qualified: Vec<String> = names.iter().map(|n| format!("{SERVICE}/{n}")).collect();
    let refs: Vec<&str> = qualified.iter().map(String::as_str).collect();
    check_post_in(&ctx, post(json!({ "boundary": boundary(&refs[..10]) }))).expect("ten values");
    assert_rejected(
        check_post_in(&ctx, post(json!({ "boundary": boundary(&refs) }))),
        RecordErrorCode::InvalidRecord,
        "\"boundary.values\": must not have more than 10 items",
    );
}

#[test]
fn boundary_type_may_be_omitted_but_not_wrong() {
    check_post(post(json!({ "boundary": boundary(&[GENERAL]) }))).expect("no $type");
    assert_rejected(
        check_post(post(
            json!({ "boundary": { "$type": "com.example.acl", "values": [{ "value": GENERAL }] } }),
        )),
        RecordErrorCode::InvalidRecord,
        "\"boundary.$type\": must be one of zone.stratos.boundary.defs#Domains",
    );
}

#[test]
fn boundary_values_are_at_most_253_characters() {
    let name_253 = "n".repeat(253 - SERVICE.len() - 1);
    let value_253 = format!("{SERVICE}/{name_253}");
    assert_eq!(value_253.len(), 253);
    let value_254 = format!("{value_253}n");
    let ctx = ValidationContext::new(SERVICE, [value_253.clone(), value_254.clone()]);
    check_post_in(&ctx, post(json!({ "boundary": boundary(&[&value_253]) }))).expect("253");
    assert_rejected(
        check_post_in(&ctx, post(json!({ "boundary": boundary(&[&value_254]) }))),
        RecordErrorCode::InvalidRecord,
        "\"boundary.values[0].value\": must not be longer than 253 bytes",
    );
}

#[test]
fn boundary_values_must_be_allowed_domains_of_this_service() {
    // Qualified values of this service that are allowed pass, alone or together.
    check_post(post(json!({ "boundary": boundary(&[GENERAL, WRITERS]) }))).expect("allowed");
    // Bare names are not accepted in records.
    assert_rejected(
        check_post(post(json!({ "boundary": boundary(&["general"]) }))),
        RecordErrorCode::ForbiddenDomain,
        "Domain 'general' is not allowed",
    );
    // Qualified for this service but not allowed.
    assert_rejected(
        check_post(post(
            json!({ "boundary": boundary(&[GENERAL, "did:web:stratos.example.com/secret"]) }),
        )),
        RecordErrorCode::ForbiddenDomain,
        "\"boundary.values[1].value\": Domain 'did:web:stratos.example.com/secret' is not allowed",
    );
    // Another service's boundary, even with an allowed name.
    assert_rejected(
        check_post(post(
            json!({ "boundary": boundary(&["did:web:other.example.com/general"]) }),
        )),
        RecordErrorCode::ForbiddenDomain,
        "Boundary 'did:web:other.example.com/general' does not belong to this service",
    );
    // A service DID that merely starts like ours is another service.
    assert_rejected(
        check_post(post(
            json!({ "boundary": boundary(&["did:web:stratos.example.comx/general"]) }),
        )),
        RecordErrorCode::ForbiddenDomain,
        "does not belong to this service",
    );
    assert_eq!(
        RecordErrorCode::ForbiddenDomain.xrpc_error(),
        "InvalidRecord"
    );
}

#[test]
fn allowed_domains_may_be_configured_bare_or_qualified() {
    let ctx = ValidationContext::new(SERVICE, ["general", WRITERS]);
    assert_eq!(
        ctx.allowed_domains()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        [GENERAL, WRITERS]
    );
    check_post_in(
        &ctx,
        post(json!({ "boundary": boundary(&[GENERAL, WRITERS]) })),
    )
    .expect("both");
}

#[test]
fn replies_stay_inside_stratos() {
    check_post(post(reply(PARENT, ROOT))).expect("reply to a Stratos post");
    assert_rejected(
        check_post(post(reply(BSKY_POST, ROOT))),
        RecordErrorCode::CrossNamespaceReply,
        "\"reply.parent.uri\": cannot reply to a non-stratos record",
    );
    assert_rejected(
        check_post(post(reply(PARENT, BSKY_POST))),
        RecordErrorCode::CrossNamespaceReply,
        "\"reply.root.uri\": cannot have a non-stratos root",
    );
    assert_rejected(
        check_post(post(reply(
            "at://did:plc:abc/com.example.thing/3l2ij3k4k5s22",
            ROOT,
        ))),
        RecordErrorCode::CrossNamespaceReply,
        "cannot reply to a non-stratos record",
    );
    // A reply to a repository or collection (no record) is not a Stratos record either.
    assert_rejected(
        check_post(post(reply("at://did:plc:abc", ROOT))),
        RecordErrorCode::CrossNamespaceReply,
        "cannot reply",
    );
}

#[test]
fn reply_boundaries_are_a_subset_of_the_parents() {
    let parents: BTreeMap<String, Vec<String>> = BTreeMap::from([(
        PARENT.to_owned(),
        vec![GENERAL.to_owned(), WRITERS.to_owned()],
    )]);
    let ctx = ctx().with_parents(&parents);
    check_post_in(
        &ctx,
        post(json!({ "boundary": boundary(&[GENERAL]) }).merge(reply(PARENT, ROOT))),
    )
    .expect("subset");
    check_post_in(
        &ctx,
        post(json!({ "boundary": boundary(&[GENERAL, WRITERS]) }).merge(reply(PARENT, ROOT))),
    )
    .expect("equal");

    let narrow: BTreeMap<String, Vec<String>> =
        BTreeMap::from([(PARENT.to_owned(), vec![GENERAL.to_owned()])]);
    let ctx = ValidationContext::new(SERVICE, ["general", "writers"]).with_parents(&narrow);
    let err = check_post_in(
        &ctx,
        post(json!({ "boundary": boundary(&[GENERAL, WRITERS]) }).merge(reply(PARENT, ROOT))),
    )
    .expect_err("escalation");
    assert_eq!(err.0, RecordErrorCode::ReplyBoundaryEscalation);
    assert!(err.1.ends_with(&format!(
        "Reply boundaries must be a subset of the parent's boundaries. Domains not in parent: {WRITERS}"
    )), "{}", err.1);

    // A parent this service does not hold: the check is skipped.
    let unknown = |_: &str| None::<Vec<String>>;
    let ctx = ValidationContext::new(SERVICE, ["general", "writers"]).with_parents(&unknown);
    check_post_in(
        &ctx,
        post(json!({ "boundary": boundary(&[WRITERS]) }).merge(reply(PARENT, ROOT))),
    )
    .expect("unknown parent");
    // Without a lookup the check cannot run either.
    check_post(post(
        json!({ "boundary": boundary(&[WRITERS]) }).merge(reply(PARENT, ROOT)),
    ))
    .expect("no lookup");
    assert_eq!(
        reply_parent_uri(&ipld(post(reply(PARENT, ROOT)))),
        Some(PARENT)
    );
    assert_eq!(reply_parent_uri(&ipld(post(json!({})))), None);
}

#[test]
fn embeds_stay_inside_stratos() {
    let quote = |uri: &str| json!({ "embed": { "$type": "app.bsky.embed.record", "record": strong_ref(uri) } });
    check_post(post(quote(PARENT))).expect("quote of a Stratos post");
    assert_rejected(
        check_post(post(quote(BSKY_POST))),
        RecordErrorCode::CrossNamespaceEmbed,
        "\"embed.record.uri\": cannot embed bsky content",
    );
    // Strict variant: any non-Stratos target is refused.
    assert_rejected(
        check_post(post(quote(
            "at://did:plc:abc/com.example.thing/3l2ij3k4k5s22",
        ))),
        RecordErrorCode::CrossNamespaceEmbed,
        "cannot embed non-stratos content",
    );
    let with_media = |uri: &str| {
        json!({ "embed": {
            "$type": "app.bsky.embed.recordWithMedia",
            "record": { "$type": "app.bsky.embed.record", "record": strong_ref(uri) },
            "media": { "$type": "app.bsky.embed.images", "images": [{ "image": image_blob(), "alt": "x" }] }
        } })
    };
    check_post(post(with_media(PARENT))).expect("record with media, Stratos");
    assert_rejected(
        check_post(post(with_media(BSKY_POST))),
        RecordErrorCode::CrossNamespaceEmbed,
        "\"embed.record.record.uri\": cannot embed bsky content",
    );
    assert_eq!(
        RecordErrorCode::CrossNamespaceEmbed.xrpc_error(),
        "InvalidRecord"
    );
}

// ---------------------------------------------------------------------------------------------
// §3.3 enrollment records

#[test]
fn stratos_side_enrollment_records_need_an_allowed_boundary() {
    let collection = nsid(ENROLLMENT_COLLECTION);
    let mut record = enrollment_json();
    record["boundary"] = boundary(&[GENERAL]);
    validate_record(&ctx(), &collection, &ipld(record.clone())).expect("valid boundary");

    let err = validate_record(&ctx(), &collection, &ipld(enrollment_json())).expect_err("missing");
    assert_eq!(err.code, RecordErrorCode::MissingBoundary);

    record["boundary"] = boundary(&["did:web:stratos.example.com/secret"]);
    let err = validate_record(&ctx(), &collection, &ipld(record)).expect_err("disallowed");
    assert_eq!(err.code, RecordErrorCode::ForbiddenDomain);

    // The collection's rules on their own (§15.7), on a boundary-only record.
    let rules = RuleSet::standard();
    let enrollment_rules = rules.get(ENROLLMENT_COLLECTION).expect("enrollment rules");
    let only = |b: Value| ipld(json!({ "$type": ENROLLMENT_COLLECTION, "boundary": b }));
    enrollment_rules
        .check(&ctx(), &only(boundary(&[GENERAL])))
        .expect("valid boundary");
    assert_eq!(
        enrollment_rules
            .check(&ctx(), &only(Value::Null))
            .expect_err("missing")
            .code,
        RecordErrorCode::MissingBoundary
    );
    assert_eq!(
        enrollment_rules
            .check(
                &ctx(),
                &only(boundary(&["did:web:stratos.example.com/secret"]))
            )
            .expect_err("disallowed")
            .code,
        RecordErrorCode::ForbiddenDomain
    );
}

#[test]
fn pds_enrollment_records_match_their_lexicon() {
    let lexicons = Lexicons::builtin();
    lexicons
        .validate_record(ENROLLMENT_COLLECTION, &ipld(enrollment_json()))
        .expect("enrollment record");
    for field in ["service", "signingKey", "attestation", "createdAt"] {
        let mut record = enrollment_json();
        record.as_object_mut().expect("object").remove(field);
        let err = lexicons
            .validate_record(ENROLLMENT_COLLECTION, &ipld(record))
            .expect_err("required");
        assert_eq!(err, ValidationError::new(field, "is required"));
    }
    let mut record = enrollment_json();
    record["boundaries"] = json!(
        (0..51)
            .map(|i| json!({ "value": format!("{SERVICE}/g{i}") }))
            .collect::<Vec<_>>()
    );
    assert!(
        lexicons
            .validate_record(ENROLLMENT_COLLECTION, &ipld(record))
            .is_err()
    );
    let mut record = enrollment_json();
    record["attestation"]["sig"] = json!("not bytes");
    assert_eq!(
        lexicons
            .validate_record(ENROLLMENT_COLLECTION, &ipld(record))
            .expect_err("sig")
            .path,
        "attestation.sig"
    );
}

#[test]
fn enrollment_records_parse_leniently() {
    let parsed = EnrollmentRecord::from_json(&enrollment_json()).expect("parses");
    assert_eq!(parsed.service, "https://stratos.example.com");
    assert_eq!(parsed.boundary_values(), [GENERAL]);
    assert_eq!(parsed.attestation.sig, (1..=64).collect::<Vec<u8>>());
    // The data-model form (raw bytes) reads the same.
    assert_eq!(
        EnrollmentRecord::from_ipld(&ipld(enrollment_json())),
        Some(parsed.clone())
    );
    // Written back, it matches the lexicon.
    Lexicons::builtin()
        .validate_record(ENROLLMENT_COLLECTION, &parsed.to_ipld())
        .expect("round trip");
    assert_eq!(
        EnrollmentRecord::from_ipld(&parsed.to_ipld()),
        Some(parsed.clone())
    );
    assert_eq!(
        parsed.to_json()["attestation"]["sig"]["$bytes"]
            .as_str()
            .map(str::len),
        Some(86)
    );

    // Missing boundaries read as none.
    let mut record = enrollment_json();
    record.as_object_mut().expect("object").remove("boundaries");
    assert_eq!(
        EnrollmentRecord::from_json(&record)
            .expect("parses")
            .boundaries,
        []
    );
    // Padded base64 is fine too.
    let mut record = enrollment_json();
    record["attestation"]["sig"] = json!({ "$bytes": "AQID" });
    assert_eq!(
        EnrollmentRecord::from_json(&record)
            .expect("parses")
            .attestation
            .sig,
        [1, 2, 3]
    );

    for broken in [
        json!({ "service": 1 }),
        json!({ "createdAt": null }),
        json!({ "signingKey": [] }),
        json!({ "attestation": { "sig": { "$bytes": "AQID" } } }),
        json!({ "attestation": { "sig": "AQID", "signingKey": "did:key:z" } }),
        json!({ "attestation": { "sig": { "$bytes": "!!!" }, "signingKey": "did:key:z" } }),
    ] {
        let mut record = enrollment_json();
        for (k, v) in broken.as_object().expect("object") {
            record[k] = v.clone();
        }
        assert_eq!(EnrollmentRecord::from_json(&record), None, "{broken}");
    }
    assert_eq!(EnrollmentRecord::from_json(&json!("record")), None);
}

// ---------------------------------------------------------------------------------------------
// §3.4 author boundaries

#[test]
fn authors_may_only_use_their_own_boundaries() {
    check_author_boundaries(SERVICE, &[GENERAL], &[GENERAL, WRITERS]).expect("own boundary");
    check_author_boundaries::<&str, &str>(SERVICE, &[], &[]).expect("no boundaries");

    let err = check_author_boundaries(SERVICE, &["did:web:other.example.com/general"], &[GENERAL])
        .expect_err("other service");
    assert_eq!(err.code, RecordErrorCode::ServiceMismatch);
    assert_eq!(err.code.xrpc_error(), "ServiceMismatch");
    assert_eq!(
        err.message,
        format!(
            "Boundary \"did:web:other.example.com/general\" belongs to service {OTHER_SERVICE}, not {SERVICE}"
        )
    );
    let err = check_author_boundaries(SERVICE, &["general"], &[GENERAL]).expect_err("bare");
    assert_eq!(
        err.message,
        format!("Boundary \"general\" belongs to service (unqualified), not {SERVICE}")
    );

    let err = check_author_boundaries(SERVICE, &[GENERAL, WRITERS], &[GENERAL])
        .expect_err("not enrolled");
    assert_eq!(err.code, RecordErrorCode::ForbiddenBoundary);
    assert_eq!(err.code.xrpc_error(), "ForbiddenBoundary");
    assert_eq!(
        err.message,
        format!(
            "You do not have access to boundary domain(s): {WRITERS}. Your enrolled domains: {GENERAL}"
        )
    );
    let err =
        check_author_boundaries::<_, &str>(SERVICE, &[GENERAL], &[]).expect_err("no enrollment");
    assert_eq!(
        err.message,
        format!(
            "You do not have access to boundary domain(s): {GENERAL}. Your enrolled domains: (none)"
        )
    );

    let record = ipld(post(json!({ "boundary": boundary(&[GENERAL, WRITERS]) })));
    check_record_author(SERVICE, &record, &[GENERAL, WRITERS]).expect("record author");
    assert_eq!(
        check_record_author(SERVICE, &record, &[GENERAL])
            .expect_err("record author")
            .code,
        RecordErrorCode::ForbiddenBoundary
    );
}

// ---------------------------------------------------------------------------------------------
// typed records

#[test]
fn posts_round_trip_through_the_typed_form() {
    let json = post(json!({ "langs": ["en"], "custom": { "x": 1 } }).merge(reply(PARENT, ROOT)));
    let typed = Post::from_ipld(&ipld(json.clone())).expect("typed");
    assert_eq!(typed.text.as_deref(), Some("hello private world"));
    assert_eq!(typed.boundaries(), [GENERAL]);
    assert_eq!(
        typed.reply.as_ref().map(|r| r.parent.uri.as_str()),
        Some(PARENT)
    );
    assert!(!typed.is_stub());
    assert_eq!(typed.to_json().expect("json"), json);
    assert_eq!(typed.to_ipld().expect("ipld"), ipld(json));

    let built = Post::new("hi", Domains::new([GENERAL]), "2026-01-15T12:00:00.000Z");
    validate_record(
        &ctx(),
        &nsid(POST_COLLECTION),
        &built.to_ipld().expect("ipld"),
    )
    .expect("valid");
}

// ---------------------------------------------------------------------------------------------
// §6.1 / §15.13 stubs

fn full_record_uri() -> AtUri {
    "at://did:plc:abc/zone.stratos.feed.post/3lxyz3k4k5s22"
        .parse()
        .expect("uri")
}

fn cid() -> Cid {
    CID.parse().expect("cid")
}

#[test]
fn stubs_point_at_the_full_record() {
    let service = format!("{SERVICE}#atproto_pns");
    let record = ipld(post(json!({})));
    let stub = stub_for(&record, &full_record_uri(), &cid(), &service);
    assert_eq!(
        stub.to_json(),
        json!({
            "$type": POST_COLLECTION,
            "source": {
                "vary": "authenticated",
                "subject": { "uri": "at://did:plc:abc/zone.stratos.feed.post/3lxyz3k4k5s22", "cid": CID },
                "service": service
            },
            "createdAt": "2026-01-15T12:00:00.000Z"
        })
    );
    assert!(is_stub(&stub.to_ipld()));
    assert!(is_stub_json(&stub.to_json()));
    // A stub is a valid post record as far as the lexicon goes (it is written to the PDS).
    Lexicons::builtin()
        .validate_record(POST_COLLECTION, &stub.to_ipld())
        .expect("stub matches the post lexicon");
    // … but Stratos itself never accepts one.
    assert_eq!(
        validate_record(&ctx(), &nsid(POST_COLLECTION), &stub.to_ipld())
            .expect_err("stub")
            .code,
        RecordErrorCode::MissingBoundary
    );
}

#[test]
fn stub_type_and_created_at_fall_back() {
    let record = ipld(json!({ "text": "no type, no date" }));
    let stub = stub_for_at(
        &record,
        &full_record_uri(),
        &cid(),
        "did:web:x#y",
        "2026-02-02T00:00:00.000Z",
    );
    assert_eq!(stub.type_, POST_COLLECTION);
    assert_eq!(stub.created_at, "2026-02-02T00:00:00.000Z");
    let record = ipld(json!({ "$type": "zone.stratos.custom.thing", "createdAt": 5 }));
    let stub = stub_for(&record, &full_record_uri(), &cid(), "did:web:x#y");
    assert_eq!(stub.type_, "zone.stratos.custom.thing");
    assert!(
        stub.created_at
            .parse::<stratos_schema::syntax::Datetime>()
            .is_ok(),
        "{}",
        stub.created_at
    );
}

#[test]
fn stub_detection_needs_a_complete_source() {
    let source = |s: Value| json!({ "$type": POST_COLLECTION, "source": s, "createdAt": "2026-01-15T12:00:00.000Z" });
    let complete =
        json!({ "vary": "authenticated", "subject": strong_ref(PARENT), "service": "did:web:x#y" });
    assert!(is_stub(&ipld(source(complete.clone()))));
    assert!(is_stub_json(&source(complete.clone())));
    for incomplete in [
        json!({ "subject": strong_ref(PARENT), "service": "did:web:x#y" }),
        json!({ "vary": "authenticated", "service": "did:web:x#y" }),
        json!({ "vary": "authenticated", "subject": strong_ref(PARENT) }),
        json!({ "vary": 1, "subject": strong_ref(PARENT), "service": "did:web:x#y" }),
        json!({ "vary": "authenticated", "subject": "at://x", "service": "did:web:x#y" }),
        json!("source"),
    ] {
        assert!(!is_stub(&ipld(source(incomplete.clone()))), "{incomplete}");
        assert!(!is_stub_json(&source(incomplete.clone())), "{incomplete}");
    }
    assert!(!is_stub(&ipld(post(json!({})))), "full record");
    for primitive in [
        Ipld::Null,
        Ipld::Bool(true),
        Ipld::Integer(3),
        Ipld::String("stub".into()),
    ] {
        assert!(!is_stub(&primitive));
    }
    for primitive in [Value::Null, json!(true), json!(3), json!("stub")] {
        assert!(!is_stub_json(&primitive));
    }
}

#[test]
fn source_extraction() {
    let record = ipld(json!({
        "$type": POST_COLLECTION,
        "source": { "vary": "authenticated", "subject": strong_ref(PARENT), "service": "did:plc:svc#atproto_pns" },
        "createdAt": "2026-01-15T12:00:00.000Z"
    }));
    let source = Source::from_record(&record).expect("a stub");
    assert_eq!(source.subject.uri, PARENT);
    assert_eq!(source.subject.cid, CID);
    assert_eq!(source.service_ref().did, "did:plc:svc");
    assert_eq!(Source::from_record(&ipld(post(json!({})))), None);
    assert_eq!(Source::from_record(&Ipld::Null), None);
    // The typed post reads the stub's source too.
    assert_eq!(
        Post::from_ipld(&record).expect("typed").source,
        Some(source)
    );
}

#[test]
fn service_strings_split_at_the_first_hash() {
    let parse = |s: &str| {
        let r = ServiceRef::parse(s);
        (r.did, r.fragment)
    };
    assert_eq!(
        parse("did:plc:abc123#atproto_pns"),
        ("did:plc:abc123".into(), Some("atproto_pns".into()))
    );
    assert_eq!(
        parse("did:web:stratos.example.com#atproto_pns"),
        (
            "did:web:stratos.example.com".into(),
            Some("atproto_pns".into())
        )
    );
    assert_eq!(
        parse("did:web:stratos.example.com"),
        ("did:web:stratos.example.com".into(), None)
    );
    assert_eq!(
        parse("did:web:x#a#b"),
        ("did:web:x".into(), Some("a#b".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// §15.10 / §15.14 / §15.15

#[test]
fn post_validator_acceptance_cases() {
    // §15.10, in order.
    check_post(post(json!({}))).expect("valid post passes");
    assert_eq!(
        check_post(post(json!({ "boundary": null })))
            .expect_err("")
            .0,
        RecordErrorCode::MissingBoundary
    );
    assert_eq!(
        check_post(post(
            json!({ "boundary": boundary(&["did:web:stratos.example.com/nope"]) })
        ))
        .expect_err("")
        .0,
        RecordErrorCode::ForbiddenDomain
    );
    check_post(post(json!({ "boundary": boundary(&[GENERAL]) })))
        .expect("qualified of this service");
    assert_eq!(
        check_post(post(
            json!({ "boundary": boundary(&["did:plc:other/general"]) })
        ))
        .expect_err("")
        .0,
        RecordErrorCode::ForbiddenDomain
    );
    let parents = |_: &str| Some(vec![GENERAL.to_owned()]);
    let ctx = ctx().with_parents(&parents);
    check_post_in(&ctx, post(reply(PARENT, ROOT))).expect("subset reply");
    assert_eq!(
        check_post_in(
            &ctx,
            post(json!({ "boundary": boundary(&[WRITERS]) }).merge(reply(PARENT, ROOT)))
        )
        .expect_err("")
        .0,
        RecordErrorCode::ReplyBoundaryEscalation
    );
    assert_eq!(
        check_post(post(reply(BSKY_POST, ROOT))).expect_err("").0,
        RecordErrorCode::CrossNamespaceReply
    );
    assert_eq!(
        check_post(post(json!({ "embed": { "$type": "app.bsky.embed.record", "record": strong_ref(BSKY_POST) } })))
            .expect_err("")
            .0,
        RecordErrorCode::CrossNamespaceEmbed
    );
}

#[test]
fn bsky_posts_must_not_embed_stratos_records() {
    let bsky = |embed: Value| {
        let mut record = json!({ "$type": "app.bsky.feed.post", "text": "public", "createdAt": "2026-01-15T12:00:00.000Z" });
        if !embed.is_null() {
            record["embed"] = embed;
        }
        ipld(record)
    };
    let quote = |uri: &str| json!({ "$type": "app.bsky.embed.record", "record": strong_ref(uri) });
    check_bsky_record("app.bsky.feed.post", &bsky(Value::Null)).expect("no embed");
    check_bsky_record("app.bsky.feed.post", &bsky(quote(BSKY_POST))).expect("bsky embed");
    let err =
        check_bsky_record("app.bsky.feed.post", &bsky(quote(PARENT))).expect_err("stratos embed");
    assert_eq!(err.code, RecordErrorCode::CrossNamespaceEmbed);
    assert!(err.message.contains("cannot embed stratos content"));
    let nested = json!({ "$type": "app.bsky.embed.recordWithMedia",
                         "record": { "record": strong_ref(PARENT) }, "media": {} });
    assert!(check_bsky_record("app.bsky.feed.post", &bsky(nested)).is_err());
    // Other collections are not this rule's business.
    check_bsky_record("app.bsky.feed.like", &bsky(quote(PARENT))).expect("skipped");
}

#[test]
fn uri_and_collection_classifiers() {
    assert!(is_stratos_uri(PARENT));
    assert!(!is_stratos_uri(BSKY_POST));
    assert!(!is_stratos_uri("not a uri"));
    assert!(!is_stratos_uri("at://did:plc:abc"));
    assert!(is_bsky_uri(BSKY_POST));
    assert!(!is_bsky_uri(PARENT));
    assert!(!is_bsky_uri("https://bsky.app/profile/x"));
    assert!(is_stratos_collection("zone.stratos.feed.post"));
    assert!(!is_stratos_collection("app.bsky.feed.post"));
    assert!(!is_stratos_collection("zone.stratosphere.feed.post"));
}

#[test]
fn boundary_extraction() {
    let record = ipld(post(json!({ "boundary": boundary(&[GENERAL, WRITERS]) })));
    assert_eq!(extract_boundaries(&record), [GENERAL, WRITERS]);
    assert_eq!(
        extract_boundaries(&ipld(post(json!({ "boundary": null })))),
        Vec::<String>::new()
    );
    assert_eq!(
        extract_boundaries(&ipld(post(json!({ "boundary": { "values": [] } })))),
        Vec::<String>::new()
    );
}

#[test]
fn the_rule_set_is_a_validator_factory() {
    let standard = RuleSet::standard();
    assert_eq!(
        standard.collections().collect::<Vec<_>>(),
        [ENROLLMENT_COLLECTION, POST_COLLECTION]
    );
    assert!(standard.get(POST_COLLECTION).is_some());
    assert!(standard.get(ENROLLMENT_COLLECTION).is_some());
    assert!(standard.get("zone.stratos.feed.like").is_none());
    assert!(standard.get("app.bsky.feed.post").is_none());

    // Registering a collection needs its rules and its lexicon.
    let mut rules = RuleSet::standard();
    rules.register("zone.stratos.feed.like", BoundaryRules);
    let mut lexicons = Lexicons::with_builtin();
    lexicons
        .add_json(&json!({
            "lexicon": 1,
            "id": "zone.stratos.feed.like",
            "defs": { "main": { "type": "record", "key": "tid", "record": {
                "type": "object",
                "required": ["subject", "createdAt"],
                "properties": {
                    "subject": { "type": "ref", "ref": "com.atproto.repo.strongRef" },
                    "boundary": { "type": "union", "refs": ["zone.stratos.boundary.defs#Domains"], "closed": true },
                    "createdAt": { "type": "string", "format": "datetime" }
                } } } }
        }))
        .expect("registers");
    let like = |b: Value| {
        ipld(
            json!({ "$type": "zone.stratos.feed.like", "subject": strong_ref(PARENT),
                     "boundary": b, "createdAt": "2026-01-15T12:00:00.000Z" }),
        )
    };
    let collection = nsid("zone.stratos.feed.like");

    let rules_only = ctx().with_rules(&rules);
    assert_eq!(
        validate_record(&rules_only, &collection, &like(boundary(&[GENERAL])))
            .expect_err("no lexicon")
            .code,
        RecordErrorCode::InvalidCollection
    );
    let full = ctx().with_rules(&rules).with_lexicons(&lexicons);
    validate_record(&full, &collection, &like(boundary(&[GENERAL])))
        .expect("registered collection");
    assert_eq!(
        validate_record(&full, &collection, &like(boundary(&[])))
            .expect_err("empty")
            .code,
        RecordErrorCode::MissingBoundary
    );
    let mut missing_subject = like(boundary(&[GENERAL]));
    if let Ipld::Map(map) = &mut missing_subject {
        map.remove("subject");
    }
    let err = validate_record(&full, &collection, &missing_subject).expect_err("lexicon");
    assert_eq!(
        (err.code, err.message.as_str()),
        (RecordErrorCode::InvalidRecord, "\"subject\": is required")
    );
}

// ---------------------------------------------------------------------------------------------

trait Merge {
    fn merge(self, other: Value) -> Value;
}

impl Merge for Value {
    fn merge(mut self, other: Value) -> Value {
        if let (Value::Object(a), Value::Object(b)) = (&mut self, other) {
            a.extend(b);
        }
        self
    }
}
