//! Untrusted DAG-CBOR record bytes: decoding is strict, so whatever decodes must re-encode to the
//! same bytes; the JSON conversion and record validation must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratos_schema::data::{decode_ipld, ipld_to_json, json_to_ipld, to_dag_cbor};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = decode_ipld(data) else {
        return;
    };
    let encoded = to_dag_cbor(&value).expect("a decoded value re-encodes");
    assert_eq!(
        encoded, data,
        "strict decoding accepted non-canonical bytes"
    );
    // Maps shaped like `{"$link"}` or `{"$bytes"}` legitimately change on the JSON trip, so only
    // the absence of panics is checked here.
    let _ = json_to_ipld(&ipld_to_json(&value));
    stratos_schema_fuzz::validate_as_records(&value);
});
