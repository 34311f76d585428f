//! The fuzz targets' seeds (valid inputs, which every target must accept) and the inputs the
//! targets once crashed on (`schema/fuzz/`), replayed with the targets' checks.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use stratos_schema::car::{CarLimits, read_car};
use stratos_schema::data::{decode_ipld, json_to_ipld, to_dag_cbor};
use stratos_schema::repo::read_repo;

/// The files under `fuzz/<folder>/<target>`.
fn inputs(folder: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// A target's cases: its seeds (`true`: must be accepted), then its regressions.
fn cases(target: &str) -> Vec<(PathBuf, Vec<u8>, bool)> {
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "the seeds of {target} are present");
    let regressions = inputs("regressions", target);
    seeds
        .into_iter()
        .map(|(path, bytes)| (path, bytes, true))
        .chain(
            regressions
                .into_iter()
                .map(|(path, bytes)| (path, bytes, false)),
        )
        .collect()
}

#[test]
fn record_cbor_regressions() {
    assert!(
        !inputs("regressions", "record_cbor").is_empty(),
        "the regression corpus is present"
    );
    for (path, bytes, seed) in cases("record_cbor") {
        match decode_ipld(&bytes) {
            Ok(value) => assert_eq!(to_dag_cbor(&value).unwrap(), bytes, "{}", path.display()),
            Err(error) => assert!(!seed, "{}: {error}", path.display()),
        }
    }
}

#[test]
fn record_json_regressions() {
    for (path, bytes, seed) in cases("record_json") {
        let value = serde_json::from_slice(&bytes)
            .ok()
            .and_then(|json| json_to_ipld(&json).ok());
        match value {
            Some(value) => {
                let encoded = to_dag_cbor(&value).unwrap();
                assert_eq!(decode_ipld(&encoded).unwrap(), value, "{}", path.display());
            }
            None => assert!(!seed, "{} is refused", path.display()),
        }
    }
}

#[test]
fn event_decoder_regressions() {
    for (path, bytes, seed) in cases("event_decoder") {
        match stratos_schema::events::Event::decode(&bytes) {
            Ok(event) => {
                let again = stratos_schema::events::Event::decode(&event.encode()).unwrap();
                assert_eq!(again, event, "{}", path.display());
            }
            Err(error) => assert!(!seed, "{}: {error}", path.display()),
        }
    }
}

#[test]
fn car_reader_regressions() {
    for (path, bytes, seed) in cases("car_reader") {
        match read_car(&bytes, CarLimits::default()) {
            Ok((roots, blocks)) => {
                // A repository or not, reading it never panics.
                if let Some(root) = roots.first() {
                    let _ = read_repo(&blocks, *root);
                }
                assert!(!seed || !roots.is_empty(), "{} has no root", path.display());
            }
            Err(error) => assert!(!seed, "{}: {error}", path.display()),
        }
    }
}
