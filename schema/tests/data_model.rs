//! The atproto data-model interop vectors: JSON ⇄ DAG-CBOR byte for byte, CID for CID.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use base64::Engine as _;
use serde_json::Value;
use stratos_schema::data::{
    cid_for_dag_cbor, decode_ipld, ipld_to_json, json_to_ipld, to_dag_cbor,
};

fn fixtures(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/data-model/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture file is readable");
    serde_json::from_str(&text).expect("fixture file is JSON")
}

fn base64_unpadded(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("fixture base64")
}

#[test]
fn fixtures_encode_byte_for_byte_and_cid_for_cid() {
    let cases = fixtures("data-model-fixtures.json");
    assert!(!cases.is_empty());
    for case in cases {
        let expected_cbor = base64_unpadded(case["cbor_base64"].as_str().expect("cbor"));
        let expected_cid = case["cid"].as_str().expect("cid");

        let value = json_to_ipld(&case["json"]).expect("fixture JSON converts");
        let cbor = to_dag_cbor(&value).expect("encodes");
        assert_eq!(cbor, expected_cbor, "bytes of {}", case["json"]);
        assert_eq!(cid_for_dag_cbor(&cbor).to_string(), expected_cid);

        let decoded = decode_ipld(&expected_cbor).expect("fixture CBOR decodes");
        assert_eq!(decoded, value);
        assert_eq!(ipld_to_json(&decoded), case["json"], "JSON round trip");
    }
}

#[test]
fn valid_documents_convert() {
    for case in fixtures("data-model-valid.json") {
        let value = json_to_ipld(&case["json"]).unwrap_or_else(|e| panic!("{}: {e}", case["note"]));
        let cbor = to_dag_cbor(&value).expect("encodes");
        assert_eq!(
            decode_ipld(&cbor).expect("decodes"),
            value,
            "{}",
            case["note"]
        );
    }
}

#[test]
fn invalid_documents_are_rejected() {
    let cases = fixtures("data-model-invalid.json");
    assert!(cases.len() >= 10);
    for case in cases {
        assert!(
            json_to_ipld(&case["json"]).is_err(),
            "accepted invalid document: {}",
            case["note"]
        );
    }
}
