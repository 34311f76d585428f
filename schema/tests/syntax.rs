//! The atproto syntax interop vectors, line by line, plus accessors, serde and TID ordering.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::str::FromStr;

use proptest::prelude::*;
use stratos_schema::syntax::{
    AtIdentifier, AtUri, Datetime, Did, Handle, Language, Nsid, RecordKey, SyntaxError, SyntaxKind,
    Tid, is_valid_cid_string, is_valid_uri,
};

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/syntax");

/// The cases of a fixture file: every line that is neither blank nor a `#` comment, with its
/// 1-based line number. Lines are not trimmed: leading and trailing spaces are part of the
/// case.
fn cases(file: &str) -> Vec<(usize, String)> {
    let path = format!("{FIXTURE_DIR}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases: Vec<_> = text
        .split('\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect();
    assert!(!cases.is_empty(), "{file} has no cases");
    cases
}

/// A case as it appears in a failure message: quoted and escaped, long ones cut.
fn show(line: &str) -> String {
    let shown: String = line.chars().take(100).collect();
    if shown.len() < line.len() {
        format!("{shown:?}… ({} bytes)", line.len())
    } else {
        format!("{shown:?}")
    }
}

/// Checks that every case of `file` passes `check`, naming every one that does not.
fn assert_valid(file: &str, check: impl Fn(&str) -> Result<(), String>) {
    let failures: Vec<String> = cases(file)
        .into_iter()
        .filter_map(|(n, line)| {
            check(&line)
                .err()
                .map(|why| format!("  {file}:{n}: {} was refused: {why}", show(&line)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "valid cases refused:\n{}",
        failures.join("\n")
    );
}

/// Checks that every case of `file` fails `check`, naming every one that does not.
fn assert_invalid(file: &str, check: impl Fn(&str) -> Result<(), String>) {
    let failures: Vec<String> = cases(file)
        .into_iter()
        .filter(|(_, line)| check(line).is_ok())
        .map(|(n, line)| format!("  {file}:{n}: {} was accepted", show(&line)))
        .collect();
    assert!(
        failures.is_empty(),
        "invalid cases accepted:\n{}",
        failures.join("\n")
    );
}

/// Parses with `FromStr`, both `TryFrom`s and serde, checks they agree, and checks that the
/// parsed value prints as `expected_text(line)`.
fn parse_all_ways<T>(line: &str, expected_text: impl Fn(&str) -> String) -> Result<(), String>
where
    T: FromStr<Err = SyntaxError>
        + TryFrom<String, Error = SyntaxError>
        + for<'a> TryFrom<&'a str, Error = SyntaxError>
        + serde::de::DeserializeOwned
        + AsRef<str>
        + std::fmt::Display
        + PartialEq
        + Debug,
{
    let parsed = line.parse::<T>();
    let from_str_ref = T::try_from(line);
    let from_string = T::try_from(line.to_owned());
    let from_json = serde_json::from_value::<T>(serde_json::Value::String(line.to_owned()));
    match (&parsed, &from_str_ref, &from_string, &from_json) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => {
            if !(a == b && b == c && c == d) {
                return Err(format!("parsers disagree: {a:?} {b:?} {c:?} {d:?}"));
            }
            let expected = expected_text(line);
            if a.to_string() != expected || a.as_ref() != expected {
                return Err(format!(
                    "prints as {:?}, expected {expected:?}",
                    a.to_string()
                ));
            }
            Ok(())
        }
        (Err(a), Err(b), Err(c), Err(_)) => {
            if !(a == b && b == c) {
                return Err(format!("errors disagree: {a} / {b} / {c}"));
            }
            Err(a.to_string())
        }
        _ => Err(format!(
            "parsers disagree: {parsed:?} {from_str_ref:?} {from_string:?} {from_json:?}"
        )),
    }
}

fn exact<T>(line: &str) -> Result<(), String>
where
    T: FromStr<Err = SyntaxError>
        + TryFrom<String, Error = SyntaxError>
        + for<'a> TryFrom<&'a str, Error = SyntaxError>
        + serde::de::DeserializeOwned
        + AsRef<str>
        + std::fmt::Display
        + PartialEq
        + Debug,
{
    parse_all_ways::<T>(line, str::to_owned)
}

fn lowercased<T>(line: &str) -> Result<(), String>
where
    T: FromStr<Err = SyntaxError>
        + TryFrom<String, Error = SyntaxError>
        + for<'a> TryFrom<&'a str, Error = SyntaxError>
        + serde::de::DeserializeOwned
        + AsRef<str>
        + std::fmt::Display
        + PartialEq
        + Debug,
{
    parse_all_ways::<T>(line, str::to_ascii_lowercase)
}

fn uri(line: &str) -> Result<(), String> {
    if is_valid_uri(line) {
        Ok(())
    } else {
        Err("is_valid_uri returned false".to_owned())
    }
}

fn cid(line: &str) -> Result<(), String> {
    if is_valid_cid_string(line) {
        Ok(())
    } else {
        Err("is_valid_cid_string returned false".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The interop vectors

#[test]
fn did_vectors() {
    assert_valid("did_syntax_valid.txt", exact::<Did>);
    assert_invalid("did_syntax_invalid.txt", exact::<Did>);
}

#[test]
fn handle_vectors() {
    assert_valid("handle_syntax_valid.txt", lowercased::<Handle>);
    assert_invalid("handle_syntax_invalid.txt", lowercased::<Handle>);
}

#[test]
fn at_identifier_vectors() {
    // Handles are lowercased, DIDs kept as written.
    let check = |line: &str| {
        parse_all_ways::<AtIdentifier>(line, |l| {
            if l.starts_with("did:") {
                l.to_owned()
            } else {
                l.to_ascii_lowercase()
            }
        })
    };
    assert_valid("atidentifier_syntax_valid.txt", check);
    assert_invalid("atidentifier_syntax_invalid.txt", check);
}

#[test]
fn nsid_vectors() {
    assert_valid("nsid_syntax_valid.txt", exact::<Nsid>);
    assert_invalid("nsid_syntax_invalid.txt", exact::<Nsid>);
}

#[test]
fn at_uri_vectors() {
    // The valid vectors all have lowercase handles, so they print back unchanged.
    assert_valid("aturi_syntax_valid.txt", exact::<AtUri>);
    assert_invalid("aturi_syntax_invalid.txt", exact::<AtUri>);
}

#[test]
fn tid_vectors() {
    assert_valid("tid_syntax_valid.txt", exact::<Tid>);
    assert_invalid("tid_syntax_invalid.txt", exact::<Tid>);
}

#[test]
fn record_key_vectors() {
    assert_valid("recordkey_syntax_valid.txt", exact::<RecordKey>);
    assert_invalid("recordkey_syntax_invalid.txt", exact::<RecordKey>);
}

#[test]
fn datetime_vectors() {
    assert_valid("datetime_syntax_valid.txt", exact::<Datetime>);
    assert_invalid("datetime_syntax_invalid.txt", exact::<Datetime>);
    // Well-formed, but not a real date or time.
    assert_invalid("datetime_parse_invalid.txt", exact::<Datetime>);
}

#[test]
fn language_vectors() {
    assert_valid("language_syntax_valid.txt", exact::<Language>);
    assert_invalid("language_syntax_invalid.txt", exact::<Language>);
    // Well-formed, but a variant or extension singleton repeats.
    assert_invalid("language_parse_invalid.txt", exact::<Language>);
}

#[test]
fn uri_vectors() {
    assert_valid("uri_syntax_valid.txt", uri);
    assert_invalid("uri_syntax_invalid.txt", uri);
}

#[test]
fn cid_vectors() {
    assert_valid("cid_syntax_valid.txt", cid);
    assert_invalid("cid_syntax_invalid.txt", cid);
}

#[test]
fn every_fixture_file_is_covered() {
    let covered: BTreeSet<&str> = [
        "atidentifier_syntax_invalid.txt",
        "atidentifier_syntax_valid.txt",
        "aturi_syntax_invalid.txt",
        "aturi_syntax_valid.txt",
        "cid_syntax_invalid.txt",
        "cid_syntax_valid.txt",
        "datetime_parse_invalid.txt",
        "datetime_syntax_invalid.txt",
        "datetime_syntax_valid.txt",
        "did_syntax_invalid.txt",
        "did_syntax_valid.txt",
        "handle_syntax_invalid.txt",
        "handle_syntax_valid.txt",
        "language_parse_invalid.txt",
        "language_syntax_invalid.txt",
        "language_syntax_valid.txt",
        "nsid_syntax_invalid.txt",
        "nsid_syntax_valid.txt",
        "recordkey_syntax_invalid.txt",
        "recordkey_syntax_valid.txt",
        "tid_syntax_invalid.txt",
        "tid_syntax_valid.txt",
        "uri_syntax_invalid.txt",
        "uri_syntax_valid.txt",
    ]
    .into_iter()
    .collect();
    let present: BTreeSet<String> = std::fs::read_dir(FIXTURE_DIR)
        .expect("fixture directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".txt"))
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(present, covered, "a fixture file is not exercised");
}

#[test]
#[should_panic(expected = "did_syntax_invalid.txt:1: \"did\" was accepted")]
fn harness_names_an_accepted_invalid_line() {
    assert_invalid("did_syntax_invalid.txt", |_| Ok(()));
}

#[test]
#[should_panic(expected = "tid_syntax_valid.txt:4: \"3jzfcijpj2z2a\" was refused: nope")]
fn harness_names_a_refused_valid_line() {
    assert_valid("tid_syntax_valid.txt", |_| Err("nope".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn errors_say_kind_value_and_reason() {
    let err = "did:METHOD:val".parse::<Did>().unwrap_err();
    assert_eq!(err.kind(), SyntaxKind::Did);
    assert_eq!(err.value(), "did:METHOD:val");
    let message = err.to_string();
    assert!(
        message.starts_with("invalid DID \"did:METHOD:val\": "),
        "{message}"
    );
    assert!(message.contains("lowercase"), "{message}");

    let long = "o".repeat(600);
    let err = long.parse::<RecordKey>().unwrap_err();
    assert_eq!(err.kind(), SyntaxKind::RecordKey);
    assert!(err.value().len() < 100, "the value is truncated");
    assert!(err.to_string().contains("512"), "{err}");

    let err = "1985-13-12T23:20:50.123Z".parse::<Datetime>().unwrap_err();
    assert_eq!(err.kind(), SyntaxKind::Datetime);
    assert!(err.reason().contains("month"), "{err}");

    let err = "en-a-foo-a-bar".parse::<Language>().unwrap_err();
    assert_eq!(err.kind(), SyntaxKind::Language);
    assert!(err.reason().contains("twice"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Accessors

#[test]
fn did_accessors() {
    let did: Did = "did:plc:7iza6de2dwap2sbkpav7c6c6".parse().unwrap();
    assert_eq!(did.method(), "plc");
    assert_eq!(did.identifier(), "7iza6de2dwap2sbkpav7c6c6");
    assert_eq!(did.as_str(), "did:plc:7iza6de2dwap2sbkpav7c6c6");
    assert_eq!(did.clone().into_string(), did.to_string());
}

#[test]
fn handle_is_case_insensitive() {
    let upper: Handle = "Alice.Bsky.Social".parse().unwrap();
    let lower: Handle = "alice.bsky.social".parse().unwrap();
    assert_eq!(upper, lower);
    assert_eq!(upper.as_str(), "alice.bsky.social");
    assert_eq!(upper.to_string(), "alice.bsky.social");
    let mut set = std::collections::HashSet::new();
    set.insert(upper);
    assert!(set.contains(&lower));
}

#[test]
fn nsid_accessors() {
    let nsid: Nsid = "zone.stratos.feed.post".parse().unwrap();
    assert_eq!(nsid.authority(), "zone.stratos.feed");
    assert_eq!(nsid.name(), "post");
    assert_eq!(nsid.authority_domain(), "feed.stratos.zone");
}

#[test]
fn at_identifier_variants() {
    let did: AtIdentifier = "did:web:example.com".parse().unwrap();
    assert!(matches!(did, AtIdentifier::Did(_)));
    let handle: AtIdentifier = "Example.COM".parse().unwrap();
    assert!(matches!(handle, AtIdentifier::Handle(_)));
    assert_eq!(handle.as_str(), "example.com");
}

#[test]
fn at_uri_accessors_and_constructor() {
    let did: Did = "did:plc:asdf123".parse().unwrap();
    let collection: Nsid = "zone.stratos.feed.post".parse().unwrap();
    let rkey: RecordKey = "3jzfcijpj2z2a".parse().unwrap();
    let uri = AtUri::for_record(&did, &collection, &rkey);
    assert_eq!(
        uri.as_str(),
        "at://did:plc:asdf123/zone.stratos.feed.post/3jzfcijpj2z2a"
    );
    assert_eq!(uri.authority(), &AtIdentifier::Did(did.clone()));
    assert_eq!(uri.collection(), Some(&collection));
    assert_eq!(uri.rkey(), Some(&rkey));
    assert_eq!(uri.as_str().parse::<AtUri>().unwrap(), uri);

    let repo: AtUri = "at://Alice.Test".parse().unwrap();
    assert_eq!(repo.as_str(), "at://alice.test");
    assert_eq!(repo.authority().as_str(), "alice.test");
    assert_eq!(repo.collection(), None);
    assert_eq!(repo.rkey(), None);

    let coll: AtUri = "at://did:plc:asdf123/zone.stratos.feed.post"
        .parse()
        .unwrap();
    assert_eq!(coll.collection(), Some(&collection));
    assert_eq!(coll.rkey(), None);
}

#[test]
fn datetime_instants() {
    let utc: Datetime = "1985-04-12T23:20:50.123Z".parse().unwrap();
    let offset: Datetime = "1985-04-13T01:05:50.123+01:45".parse().unwrap();
    assert_eq!(utc.timestamp_micros(), 482_196_050_123_000);
    assert_eq!(offset.timestamp_micros(), utc.timestamp_micros());
    assert_eq!(
        offset.as_str(),
        "1985-04-13T01:05:50.123+01:45",
        "text kept as written"
    );
    let epoch = Datetime::from_timestamp_micros(0).unwrap();
    assert_eq!(epoch.as_str(), "1970-01-01T00:00:00.000000Z");
    assert!(Datetime::now().timestamp_micros() > utc.timestamp_micros());
}

#[test]
fn language_primary_subtag() {
    let tag: Language = "pt-BR".parse().unwrap();
    assert_eq!(tag.primary_subtag(), "pt");
    assert_eq!(tag.as_str(), "pt-BR");
}

// ---------------------------------------------------------------------------------------------
// Serde

/// Round-trips through JSON and DAG-CBOR as a plain string.
fn assert_serde_round_trip<T>(value: &T, text: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_string(value).expect("serializes to JSON");
    assert_eq!(
        json,
        serde_json::to_string(text).expect("a string serializes")
    );
    assert_eq!(
        &serde_json::from_str::<T>(&json).expect("deserializes from JSON"),
        value
    );
    let cbor = serde_ipld_dagcbor::to_vec(value).expect("serializes to DAG-CBOR");
    assert_eq!(
        cbor,
        serde_ipld_dagcbor::to_vec(text).expect("a string serializes")
    );
    assert_eq!(
        &serde_ipld_dagcbor::from_slice::<T>(&cbor).expect("deserializes from DAG-CBOR"),
        value
    );
}

#[test]
fn serde_as_plain_strings() {
    let did: Did = "did:plc:asdf123".parse().unwrap();
    assert_serde_round_trip(&did, "did:plc:asdf123");
    let handle: Handle = "Alice.Test".parse().unwrap();
    assert_serde_round_trip(&handle, "alice.test");
    let id: AtIdentifier = "alice.test".parse().unwrap();
    assert_serde_round_trip(&id, "alice.test");
    let nsid: Nsid = "app.bsky.feed.post".parse().unwrap();
    assert_serde_round_trip(&nsid, "app.bsky.feed.post");
    let uri: AtUri = "at://did:plc:asdf123/app.bsky.feed.post/abc"
        .parse()
        .unwrap();
    assert_serde_round_trip(&uri, "at://did:plc:asdf123/app.bsky.feed.post/abc");
    let tid: Tid = "3jzfcijpj2z2a".parse().unwrap();
    assert_serde_round_trip(&tid, "3jzfcijpj2z2a");
    let rkey: RecordKey = "self".parse().unwrap();
    assert_serde_round_trip(&rkey, "self");
    let dt: Datetime = "1985-04-12T23:20:50.123Z".parse().unwrap();
    assert_serde_round_trip(&dt, "1985-04-12T23:20:50.123Z");
    let lang: Language = "en-GB".parse().unwrap();
    assert_serde_round_trip(&lang, "en-GB");
}

#[test]
fn deserializing_validates() {
    let err = serde_json::from_str::<Did>("\"did:METHOD:val\"").unwrap_err();
    assert!(err.to_string().contains("invalid DID"), "{err}");
    assert!(serde_json::from_str::<Tid>("\"3JZFCIJPJ2Z2A\"").is_err());
    assert!(serde_json::from_str::<AtUri>("\"at://did:plc:asdf123/\"").is_err());
    assert!(serde_json::from_str::<Datetime>("\"1985-00-12T23:20:50.123Z\"").is_err());
    assert!(serde_json::from_str::<Handle>("42").is_err());

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Record {
        subject: AtUri,
        created_at: Datetime,
    }
    let err = serde_json::from_str::<Record>(
        r#"{"subject": "at://did:plc:a/app.bsky.feed.post/x", "created_at": "yesterday"}"#,
    )
    .err()
    .expect("a bad datetime inside a struct is refused");
    assert!(err.to_string().contains("invalid datetime"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// TID ordering

#[test]
fn tid_orders_like_its_string_and_its_integer() {
    let tids: Vec<Tid> = [
        "2222222222222",
        "3jzfcijpj2z2a",
        "3zzzzzzzzzzzz",
        "7777777777777",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert!(tids.windows(2).all(|w| w[0] < w[1]));
    assert!(tids.windows(2).all(|w| w[0].as_u64() < w[1].as_u64()));
    assert!(tids.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
}

#[test]
fn tid_parts() {
    let tid = Tid::from_parts(1_700_000_000_000_000, 1023);
    assert_eq!(tid.timestamp_micros(), 1_700_000_000_000_000);
    assert_eq!(tid.clock_id(), 1023);
    assert_eq!(tid.as_str().len(), 13);
    assert!(tid.as_str().parse::<Tid>().is_ok());
    assert_eq!(Tid::from_parts(0, 0).as_str(), "2222222222222");
    assert_eq!(Tid::from_parts(0, 1).as_str(), "2222222222223");
    assert_eq!(Tid::from_parts(1, 0).as_str(), "2222222222322");
    assert_eq!(Tid::from_parts(0, 6).as_str(), "222222222222a");
}

proptest! {
    #[test]
    fn tid_order_is_timestamp_then_clock_id(
        a_micros in 0u64..(1 << 53),
        a_clock in 0u16..1024,
        b_micros in 0u64..(1 << 53),
        b_clock in 0u16..1024,
    ) {
        let a = Tid::from_parts(a_micros, a_clock);
        let b = Tid::from_parts(b_micros, b_clock);
        prop_assert_eq!(a.cmp(&b), (a_micros, a_clock).cmp(&(b_micros, b_clock)));
        prop_assert_eq!(a.as_str().cmp(b.as_str()), a.cmp(&b));
        prop_assert_eq!(a.timestamp_micros(), a_micros);
        prop_assert_eq!(a.clock_id(), a_clock);
        prop_assert_eq!(a.as_str().parse::<Tid>().unwrap(), a);
    }

    #[test]
    fn any_u64_with_the_top_bit_clear_round_trips(value in 0u64..(1 << 63)) {
        let tid = Tid::from_u64(value).unwrap();
        prop_assert_eq!(tid.as_u64(), value);
        prop_assert_eq!(tid.as_str().parse::<Tid>().unwrap(), tid);
    }

    #[test]
    fn generated_datetimes_parse_back(micros in -62_167_219_200_000_000i64..253_402_300_800_000_000) {
        let dt = Datetime::from_timestamp_micros(micros).unwrap();
        let again: Datetime = dt.as_str().parse().unwrap();
        prop_assert_eq!(again.timestamp_micros(), micros);
    }
}
