//! Boundary qualification: bare names such as `general` become `{serviceDid}/{name}`.
//!
//! A boundary is the access-control label on a record. Operators configure bare names; every
//! value stored in records, enrollments, attestations, sync events and indexer tables is the
//! qualified form, so the same bare name on two services yields two distinct boundaries.
//! Records carry them as `boundary.values[].value` (lexicon `zone.stratos.boundary.defs`).

use ipld_core::ipld::Ipld;

/// What [`ServiceMismatch::actual`] holds when the value is not a parseable qualified boundary.
pub const UNQUALIFIED: &str = "(unqualified)";

/// A qualified boundary split into its service DID and its name (the name may contain `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QualifiedBoundary<'a> {
    /// The service DID, e.g. `did:web:stratos.example.com`.
    pub did: &'a str,
    /// The bare name after the separating `/`, e.g. `general` or `a/b`.
    pub name: &'a str,
}

/// The access rule (spec §8.2) for an actor: `viewer`, holding `viewer_boundaries`, may see a
/// record of `owner` carrying `record_boundaries` when it is theirs, when the record has no
/// boundary, or when they share one of its boundaries.
pub fn may_see(
    viewer: &str,
    viewer_boundaries: &[String],
    owner: &str,
    record_boundaries: &[String],
) -> bool {
    viewer == owner
        || record_boundaries.is_empty()
        || record_boundaries
            .iter()
            .any(|b| viewer_boundaries.iter().any(|own| own == b))
}

/// A boundary value that does not belong to the expected service.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("Boundary \"{boundary}\" belongs to service {actual}, not {expected}")]
pub struct ServiceMismatch {
    /// The offending boundary value, as given.
    pub boundary: String,
    /// The DID of this service.
    pub expected: String,
    /// The DID the value is qualified with, or [`UNQUALIFIED`] if it cannot be parsed.
    pub actual: String,
}

/// Qualifies a bare name: `service_did + "/" + name`.
pub fn qualify(service_did: &str, name: &str) -> String {
    let mut qualified = String::with_capacity(service_did.len() + 1 + name.len());
    qualified.push_str(service_did);
    qualified.push('/');
    qualified.push_str(name);
    qualified
}

/// Qualifies every bare name of a list, keeping its order.
pub fn qualify_all<S: AsRef<str>>(service_did: &str, names: &[S]) -> Vec<String> {
    names
        .iter()
        .map(|name| qualify(service_did, name.as_ref()))
        .collect()
}

/// Whether a value is in qualified form: it starts with `did:` and contains a `/`.
///
/// This is the coarse test of the spec; [`parse_qualified`] is stricter (both parts non-empty).
pub fn is_qualified(value: &str) -> bool {
    value.starts_with("did:") && value.contains('/')
}

/// Splits a qualified value into service DID and name, or `None` for bare names, slash-less
/// values and values whose DID or name would be empty.
///
/// The DID ends at the first `/` after the DID method's closing `:` (the first `:` at byte
/// index ≥ 4); everything after that `/` is the name: `did:web:x/a/b` → (`did:web:x`, `a/b`).
pub fn parse_qualified(value: &str) -> Option<QualifiedBoundary<'_>> {
    if !value.starts_with("did:") {
        return None;
    }
    let search_from = value[4..].find(':').map_or(0, |i| i + 4);
    let slash = value[search_from..].find('/')? + search_from;
    let (did, name) = (&value[..slash], &value[slash + 1..]);
    if did.is_empty() || name.is_empty() {
        return None;
    }
    Some(QualifiedBoundary { did, name })
}

/// The name to show for a boundary: the text after the separator of a qualified value, or the
/// value itself when it is not qualified.
pub fn display_name(value: &str) -> &str {
    parse_qualified(value).map_or(value, |parsed| parsed.name)
}

/// Checks that a value is qualified for `service_did` (it parses and its DID is exactly
/// `service_did`). Unqualified values fail with `actual` = [`UNQUALIFIED`].
pub fn check_service(service_did: &str, value: &str) -> Result<(), ServiceMismatch> {
    match parse_qualified(value) {
        Some(parsed) if parsed.did == service_did => Ok(()),
        parsed => Err(ServiceMismatch {
            boundary: value.to_owned(),
            expected: service_did.to_owned(),
            actual: parsed.map_or(UNQUALIFIED, |p| p.did).to_owned(),
        }),
    }
}

/// Qualifies bare names and checks already-qualified values belong to `service_did`.
///
/// Values that look qualified ([`is_qualified`]) must parse with exactly this service DID;
/// anything else is treated as a bare name and qualified. The first mismatch is returned.
pub fn ensure_qualified<S: AsRef<str>>(
    service_did: &str,
    values: &[S],
) -> Result<Vec<String>, ServiceMismatch> {
    values
        .iter()
        .map(|value| {
            let value = value.as_ref();
            if is_qualified(value) {
                check_service(service_did, value).map(|()| value.to_owned())
            } else {
                Ok(qualify(service_did, value))
            }
        })
        .collect()
}

/// The boundary values of a record: the string `value`s of `record.boundary.values`, in order,
/// non-strings dropped, `[]` when the record has no boundary.
pub fn extract_boundaries(record: &Ipld) -> Vec<String> {
    let Ipld::Map(record) = record else {
        return Vec::new();
    };
    let Some(Ipld::Map(boundary)) = record.get("boundary") else {
        return Vec::new();
    };
    let Some(Ipld::List(values)) = boundary.get("values") else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(|entry| match entry {
            Ipld::Map(entry) => match entry.get("value") {
                Some(Ipld::String(value)) => Some(value.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// [`extract_boundaries`] for a record in its JSON form.
pub fn extract_boundaries_json(record: &serde_json::Value) -> Vec<String> {
    record
        .pointer("/boundary/values")
        .and_then(serde_json::Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(|entry| entry.get("value")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const WEB: &str = "did:web:stratos.example.com";
    const PLC: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

    #[test]
    fn qualifies_bare_names_with_web_and_plc_dids() {
        assert_eq!(
            qualify(WEB, "general"),
            "did:web:stratos.example.com/general"
        );
        assert_eq!(qualify(PLC, "writers"), format!("{PLC}/writers"));
    }

    #[test]
    fn qualifies_lists_and_empty_lists() {
        assert_eq!(
            qualify_all(WEB, &["general", "writers"]),
            vec![format!("{WEB}/general"), format!("{WEB}/writers")]
        );
        assert!(qualify_all(WEB, &Vec::<String>::new()).is_empty());
    }

    #[test]
    fn is_qualified_needs_a_did_and_a_slash() {
        assert!(is_qualified("did:web:stratos.example.com/general"));
        assert!(is_qualified(&format!("{PLC}/writers")));
        assert!(!is_qualified("general"));
        assert!(!is_qualified("a/b"));
        assert!(!is_qualified("did:web:stratos.example.com"));
        assert!(!is_qualified(""));
    }

    #[test]
    fn parses_web_and_plc_qualified_values() {
        assert_eq!(
            parse_qualified("did:web:stratos.example.com/general"),
            Some(QualifiedBoundary {
                did: WEB,
                name: "general"
            })
        );
        let plc = format!("{PLC}/writers");
        assert_eq!(
            parse_qualified(&plc),
            Some(QualifiedBoundary {
                did: PLC,
                name: "writers"
            })
        );
    }

    #[test]
    fn names_may_contain_slashes() {
        let parsed = parse_qualified("did:web:x/a/b").expect("qualified");
        assert_eq!((parsed.did, parsed.name), ("did:web:x", "a/b"));
        assert_eq!(display_name("did:web:x/a/b"), "a/b");
        assert_eq!(display_name("general"), "general");
    }

    #[test]
    fn the_did_ends_at_the_first_slash_after_the_method() {
        // A percent-encoded port stays in the DID; colons in the name stay in the name.
        let parsed = parse_qualified("did:web:host%3A8080/team:x/y").expect("qualified");
        assert_eq!(
            (parsed.did, parsed.name),
            ("did:web:host%3A8080", "team:x/y")
        );
    }

    #[test]
    fn parse_refuses_bare_slashless_and_empty_parts() {
        assert_eq!(parse_qualified("general"), None);
        assert_eq!(parse_qualified("did:web:stratos.example.com"), None);
        assert_eq!(parse_qualified("did:web:stratos.example.com/"), None);
        assert_eq!(parse_qualified("a/b"), None);
        assert_eq!(parse_qualified("did:"), None);
        assert_eq!(parse_qualified(""), None);
    }

    #[test]
    fn matching_service_passes() {
        assert_eq!(check_service(WEB, &qualify(WEB, "general")), Ok(()));
    }

    #[test]
    fn other_service_raises_with_expected_and_actual() {
        let value = qualify(PLC, "general");
        let err = check_service(WEB, &value).expect_err("other service");
        assert_eq!(err.expected, WEB);
        assert_eq!(err.actual, PLC);
        assert_eq!(err.boundary, value);
        let message = err.to_string();
        assert!(message.contains(WEB) && message.contains(PLC), "{message}");
    }

    #[test]
    fn unqualified_values_raise() {
        for value in ["general", "did:web:stratos.example.com", "did:web:x/"] {
            let err = check_service(WEB, value).expect_err(value);
            assert_eq!(err.actual, UNQUALIFIED, "{value}");
            assert_eq!(err.expected, WEB, "{value}");
        }
    }

    #[test]
    fn a_service_did_prefix_is_not_the_same_service() {
        let value = "did:web:stratos.example.com.evil/general";
        let err = check_service(WEB, value).expect_err("different host");
        assert_eq!(err.actual, "did:web:stratos.example.com.evil");
    }

    #[test]
    fn ensure_qualified_qualifies_bare_names() {
        assert_eq!(
            ensure_qualified(WEB, &["general", "writers"]),
            Ok(vec![format!("{WEB}/general"), format!("{WEB}/writers")])
        );
    }

    #[test]
    fn ensure_qualified_passes_same_service_values() {
        let values = vec![qualify(WEB, "general")];
        assert_eq!(ensure_qualified(WEB, &values), Ok(values.clone()));
    }

    #[test]
    fn ensure_qualified_handles_mixed_lists() {
        let values = vec!["general".to_owned(), qualify(WEB, "writers")];
        assert_eq!(
            ensure_qualified(WEB, &values),
            Ok(vec![qualify(WEB, "general"), qualify(WEB, "writers")])
        );
        assert_eq!(ensure_qualified(WEB, &Vec::<String>::new()), Ok(vec![]));
    }

    #[test]
    fn ensure_qualified_raises_for_other_services() {
        let values = vec!["general".to_owned(), qualify(PLC, "writers")];
        let err = ensure_qualified(WEB, &values).expect_err("other service");
        assert_eq!((err.expected.as_str(), err.actual.as_str()), (WEB, PLC));
    }

    fn domain(value: Ipld) -> Ipld {
        Ipld::Map(BTreeMap::from([("value".to_owned(), value)]))
    }

    fn record_with(values: Vec<Ipld>) -> Ipld {
        let boundary = Ipld::Map(BTreeMap::from([
            (
                "$type".to_owned(),
                Ipld::String("zone.stratos.boundary.defs#Domains".into()),
            ),
            ("values".to_owned(), Ipld::List(values)),
        ]));
        Ipld::Map(BTreeMap::from([
            ("text".to_owned(), Ipld::String("hello".into())),
            ("boundary".to_owned(), boundary),
        ]))
    }

    #[test]
    fn extracts_the_values_of_boundary_values() {
        let record = record_with(vec![
            domain(Ipld::String(qualify(WEB, "general"))),
            domain(Ipld::String(qualify(WEB, "writers"))),
        ]);
        assert_eq!(
            extract_boundaries(&record),
            vec![qualify(WEB, "general"), qualify(WEB, "writers")]
        );
    }

    #[test]
    fn extraction_drops_non_strings() {
        let record = record_with(vec![
            domain(Ipld::Integer(7)),
            domain(Ipld::String("kept".into())),
            Ipld::String("not an object".into()),
            domain(Ipld::Null),
        ]);
        assert_eq!(extract_boundaries(&record), vec!["kept".to_owned()]);
    }

    #[test]
    fn extraction_without_boundary_is_empty() {
        let record = Ipld::Map(BTreeMap::from([(
            "text".to_owned(),
            Ipld::String("hello".into()),
        )]));
        assert!(extract_boundaries(&record).is_empty());
        assert!(extract_boundaries(&Ipld::Null).is_empty());
        let no_values = Ipld::Map(BTreeMap::from([(
            "boundary".to_owned(),
            Ipld::Map(BTreeMap::new()),
        )]));
        assert!(extract_boundaries(&no_values).is_empty());
    }

    #[test]
    fn json_extraction_matches() {
        let record = serde_json::json!({
            "text": "hello",
            "boundary": {
                "$type": "zone.stratos.boundary.defs#Domains",
                "values": [
                    { "$type": "zone.stratos.boundary.defs#Domain", "value": "did:web:x/general" },
                    { "value": 3 },
                    "bare",
                    { "value": "did:web:x/writers" }
                ]
            }
        });
        assert_eq!(
            extract_boundaries_json(&record),
            vec![
                "did:web:x/general".to_owned(),
                "did:web:x/writers".to_owned()
            ]
        );
        assert!(extract_boundaries_json(&serde_json::json!({ "text": "hi" })).is_empty());
        assert!(
            extract_boundaries_json(&serde_json::json!({ "boundary": { "values": 1 } })).is_empty()
        );
    }
}
