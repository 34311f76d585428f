//! Inputs the fuzz targets (`schema/fuzz/`) once crashed on, replayed with the targets' checks.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use stratos_schema::car::{CarLimits, read_car};
use stratos_schema::data::{decode_ipld, json_to_ipld, to_dag_cbor};
use stratos_schema::repo::read_repo;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
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

#[test]
fn record_cbor_regressions() {
    let cases = inputs("record_cbor");
    assert!(!cases.is_empty(), "the regression corpus is present");
    for (path, bytes) in cases {
        if let Ok(value) = decode_ipld(&bytes) {
            assert_eq!(to_dag_cbor(&value).unwrap(), bytes, "{}", path.display());
        }
    }
}

#[test]
fn record_json_regressions() {
    for (path, bytes) in inputs("record_json") {
        if let Ok(json) = serde_json::from_slice(&bytes)
            && let Ok(value) = json_to_ipld(&json)
        {
            let encoded = to_dag_cbor(&value).unwrap();
            assert_eq!(decode_ipld(&encoded).unwrap(), value, "{}", path.display());
        }
    }
}

#[test]
fn event_decoder_regressions() {
    for (path, bytes) in inputs("event_decoder") {
        if let Ok(event) = stratos_schema::events::Event::decode(&bytes) {
            let again = stratos_schema::events::Event::decode(&event.encode()).unwrap();
            assert_eq!(again, event, "{}", path.display());
        }
    }
}

#[test]
fn car_reader_regressions() {
    for (_, bytes) in inputs("car_reader") {
        if let Ok((roots, blocks)) = read_car(&bytes, CarLimits::default())
            && let Some(root) = roots.first()
        {
            let _ = read_repo(&blocks, *root);
        }
    }
}
