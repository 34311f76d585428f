//! Untrusted JSON record bodies, as clients send them: conversion to the data model, then
//! record validation. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratos_schema::data::{decode_ipld, json_to_ipld, to_dag_cbor};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(value) = json_to_ipld(&json) else {
        return;
    };
    let encoded = to_dag_cbor(&value).expect("a converted value encodes");
    assert_eq!(decode_ipld(&encoded).expect("and decodes"), value);
    stratos_schema_fuzz::validate_as_records(&value);
});
