//! The attestation payload of spec §5.5 byte for byte, and attestation signing and verification.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::collections::BTreeMap;

use ecdsa::signature::Verifier as _;
use ipld_core::ipld::Ipld;
use proptest::prelude::*;
use stratos_schema::attestation::{
    Attestation, AttestationError, attestation_payload, sign_attestation, verify_attestation,
};
use stratos_schema::data::{decode_ipld, from_dag_cbor, to_dag_cbor};
use stratos_schema::keys::{KeyAlgorithm, KeyError, Keypair, SignatureError};

const DID: &str = "did:plc:abc123";
const USER_KEY: &str = "did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo";

fn boundaries(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| format!("did:web:stratos.example.com/{name}"))
        .collect()
}

/// The CBOR header of a text string of `len` bytes (lengths used here stay below 65,536).
fn text(value: &str) -> Vec<u8> {
    let len = value.len();
    let mut out = match len {
        0..=23 => vec![0x60 | len as u8],
        24..=255 => vec![0x78, len as u8],
        _ => vec![0x79, (len >> 8) as u8, len as u8],
    };
    out.extend_from_slice(value.as_bytes());
    out
}

fn service_key() -> Keypair {
    Keypair::from_private_bytes(KeyAlgorithm::Secp256k1, &[0x42; 32]).expect("valid scalar")
}

fn decoded_map(payload: &[u8]) -> BTreeMap<String, Ipld> {
    match decode_ipld(payload).expect("payload is DAG-CBOR") {
        Ipld::Map(map) => map,
        other => panic!("payload is not a map: {other:?}"),
    }
}

fn decoded_boundaries(payload: &[u8]) -> Vec<String> {
    match decoded_map(payload).remove("boundaries") {
        Some(Ipld::List(items)) => items
            .into_iter()
            .map(|item| match item {
                Ipld::String(value) => value,
                other => panic!("boundary is not text: {other:?}"),
            })
            .collect(),
        other => panic!("boundaries is not a list: {other:?}"),
    }
}

#[test]
fn payload_is_identical_regardless_of_boundary_order() {
    let forward = boundaries(&["alpha", "beta", "gamma"]);
    let backward = boundaries(&["gamma", "alpha", "beta"]);
    assert_eq!(
        attestation_payload(DID, &forward, USER_KEY),
        attestation_payload(DID, &backward, USER_KEY)
    );
}

#[test]
fn decoded_payload_holds_exactly_the_three_fields() {
    let values = boundaries(&["writers", "general"]);
    let map = decoded_map(&attestation_payload(DID, &values, USER_KEY));
    assert_eq!(
        map.keys().map(String::as_str).collect::<Vec<_>>(),
        ["boundaries", "did", "signingKey"]
    );
    assert_eq!(map["did"], Ipld::String(DID.into()));
    assert_eq!(map["signingKey"], Ipld::String(USER_KEY.into()));
    assert_eq!(
        map["boundaries"],
        Ipld::List(
            boundaries(&["general", "writers"])
                .into_iter()
                .map(Ipld::String)
                .collect()
        )
    );
}

#[test]
fn encoded_key_order_is_did_boundaries_signing_key() {
    let values = boundaries(&["general"]);
    let payload = attestation_payload(DID, &values, USER_KEY);
    let mut expected = vec![0xa3];
    expected.extend(text("did"));
    expected.extend(text(DID));
    expected.extend(text("boundaries"));
    expected.push(0x81);
    expected.extend(text(&values[0]));
    expected.extend(text("signingKey"));
    expected.extend(text(USER_KEY));
    assert_eq!(payload, expected);
    assert_eq!(&payload[..5], &[0xa3, 0x63, b'd', b'i', b'd']);
    assert_eq!(&payload[5..7], &[0x6e, b'd']);
}

#[test]
fn empty_boundaries_encode_as_an_empty_array() {
    let payload = attestation_payload(DID, &Vec::<String>::new(), USER_KEY);
    let mut expected = vec![0xa3];
    expected.extend(text("did"));
    expected.extend(text(DID));
    expected.extend(text("boundaries"));
    expected.push(0x80);
    expected.extend(text("signingKey"));
    expected.extend(text(USER_KEY));
    assert_eq!(payload, expected);
    assert_eq!(decoded_map(&payload)["boundaries"], Ipld::List(vec![]));
}

#[test]
fn the_callers_boundaries_are_not_mutated() {
    let values = boundaries(&["zeta", "alpha", "mu"]);
    let before = values.clone();
    let _ = attestation_payload(DID, &values, USER_KEY);
    let _ = sign_attestation(&service_key(), DID, &values, USER_KEY);
    assert_eq!(values, before);
}

#[test]
fn different_dids_produce_different_payloads() {
    let values = boundaries(&["general"]);
    assert_ne!(
        attestation_payload("did:plc:abc123", &values, USER_KEY),
        attestation_payload("did:plc:xyz789", &values, USER_KEY)
    );
}

#[test]
fn string_slices_and_vectors_give_the_same_payload() {
    let owned = boundaries(&["general"]);
    let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_eq!(
        attestation_payload(DID, &owned, USER_KEY),
        attestation_payload(DID, &borrowed, USER_KEY)
    );
}

#[test]
fn sign_and_verify_round_trip() {
    let service = service_key();
    let values = boundaries(&["general", "writers"]);
    let attestation = sign_attestation(&service, DID, &values, USER_KEY);
    assert_eq!(attestation.sig.len(), 64);
    assert_eq!(attestation.signing_key, service.did_key());
    assert!(attestation.signing_key.starts_with("did:key:zQ3s"));
    assert_eq!(
        verify_attestation(&attestation, DID, &values, USER_KEY),
        Ok(())
    );
    // Boundary order is irrelevant to verification, as to the payload.
    let reversed: Vec<String> = values.iter().rev().cloned().collect();
    assert_eq!(
        verify_attestation(&attestation, DID, &reversed, USER_KEY),
        Ok(())
    );
}

#[test]
fn the_signature_is_ecdsa_secp256k1_over_sha256_of_the_payload() {
    let service = service_key();
    let values = boundaries(&["general"]);
    let attestation = sign_attestation(&service, DID, &values, USER_KEY);
    let payload = attestation_payload(DID, &values, USER_KEY);
    let verifying_key =
        k256::ecdsa::VerifyingKey::from_sec1_bytes(service.public_key().compressed_bytes())
            .expect("service key");
    let signature = k256::ecdsa::Signature::from_slice(&attestation.sig).expect("compact");
    assert!(verifying_key.verify(&payload, &signature).is_ok());
    assert!(signature.normalize_s().is_none(), "signature is low-S");
}

#[test]
fn any_change_invalidates_the_attestation() {
    let service = service_key();
    let values = boundaries(&["general", "writers"]);
    let attestation = sign_attestation(&service, DID, &values, USER_KEY);
    let mismatch = Err(AttestationError::Signature(SignatureError::Mismatch));

    assert_eq!(
        verify_attestation(&attestation, "did:plc:abc124", &values, USER_KEY),
        mismatch,
        "changed DID"
    );
    assert_eq!(
        verify_attestation(&attestation, DID, &boundaries(&["general"]), USER_KEY),
        mismatch,
        "removed boundary"
    );
    assert_eq!(
        verify_attestation(
            &attestation,
            DID,
            &boundaries(&["general", "writers", "admins"]),
            USER_KEY
        ),
        mismatch,
        "added boundary"
    );
    assert_eq!(
        verify_attestation(
            &attestation,
            DID,
            &boundaries(&["general", "writer"]),
            USER_KEY
        ),
        mismatch,
        "renamed boundary"
    );
    let other_user_key = Keypair::generate(KeyAlgorithm::P256).did_key();
    assert_eq!(
        verify_attestation(&attestation, DID, &values, &other_user_key),
        mismatch,
        "changed user signing key"
    );

    let mut forged = attestation.clone();
    forged.signing_key = Keypair::generate(KeyAlgorithm::Secp256k1).did_key();
    assert_eq!(
        verify_attestation(&forged, DID, &values, USER_KEY),
        mismatch,
        "other service key"
    );

    let mut bent = attestation.clone();
    bent.sig[10] ^= 0x80;
    assert!(
        verify_attestation(&bent, DID, &values, USER_KEY).is_err(),
        "altered signature"
    );

    let mut garbage_key = attestation;
    garbage_key.signing_key = "did:key:z0OIl".into();
    assert!(matches!(
        verify_attestation(&garbage_key, DID, &values, USER_KEY),
        Err(AttestationError::SigningKey(KeyError::Multibase(_)))
    ));
}

#[test]
fn different_users_get_different_signatures() {
    let service = service_key();
    let values = boundaries(&["general"]);
    let first = sign_attestation(&service, "did:plc:first", &values, USER_KEY);
    let second = sign_attestation(&service, "did:plc:second", &values, USER_KEY);
    assert_ne!(first.sig, second.sig);
}

/// `n − s` for secp256k1: the high-S twin of a low-S signature.
fn high_s_twin(signature: &[u8]) -> Vec<u8> {
    let sig = k256::ecdsa::Signature::from_slice(signature).expect("compact");
    let twin = k256::ecdsa::Signature::from_scalars(sig.r(), -*sig.s()).expect("valid scalars");
    assert!(twin.normalize_s().is_some(), "twin is high-S");
    twin.to_bytes().to_vec()
}

/// Minimal DER `SEQUENCE { INTEGER r, INTEGER s }` of a compact signature.
fn der(signature: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            vec![]
        };
        body.extend(trimmed);
        let mut out = vec![0x02, body.len() as u8];
        out.extend(body);
        out
    };
    let mut content = integer(&signature[..32]);
    content.extend(integer(&signature[32..]));
    let mut out = vec![0x30, content.len() as u8];
    out.extend(content);
    out
}

#[test]
fn high_s_and_der_signatures_are_refused() {
    let service = service_key();
    let values = boundaries(&["general"]);
    let attestation = sign_attestation(&service, DID, &values, USER_KEY);

    let mut high = attestation.clone();
    high.sig = high_s_twin(&attestation.sig);
    assert_eq!(
        verify_attestation(&high, DID, &values, USER_KEY),
        Err(AttestationError::Signature(SignatureError::HighS))
    );

    let mut der_encoded = attestation.clone();
    der_encoded.sig = der(&attestation.sig);
    assert_eq!(
        verify_attestation(&der_encoded, DID, &values, USER_KEY),
        Err(AttestationError::Signature(SignatureError::Length(
            der_encoded.sig.len()
        )))
    );
}

#[test]
fn attestation_serializes_with_sig_bytes_and_signing_key() {
    let attestation = sign_attestation(&service_key(), DID, &boundaries(&["general"]), USER_KEY);
    let bytes = to_dag_cbor(&attestation).expect("encodes");
    let map = decoded_map(&bytes);
    assert_eq!(map.len(), 2);
    assert_eq!(map["sig"], Ipld::Bytes(attestation.sig.clone()));
    assert_eq!(
        map["signingKey"],
        Ipld::String(attestation.signing_key.clone())
    );
    let back: Attestation = from_dag_cbor(&bytes).expect("decodes");
    assert_eq!(back, attestation);
}

fn boundary_lists() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("(did:[a-z]{3}:[a-z0-9.]{1,12}/)?\\PC{0,12}", 0..8)
}

proptest! {
    #[test]
    fn payloads_are_deterministic_and_boundaries_sorted(
        did in "did:plc:[a-z2-7]{24}",
        values in boundary_lists(),
        seed in any::<u64>(),
        key in "did:key:z[1-9A-HJ-NP-Za-km-z]{40,50}",
    ) {
        let payload = attestation_payload(&did, &values, &key);
        prop_assert_eq!(&payload, &attestation_payload(&did, &values, &key));

        // A reordering of the same list gives the same bytes.
        let mut shuffled = values.clone();
        let len = shuffled.len();
        if len > 1 {
            shuffled.rotate_left((seed as usize) % len);
            shuffled.swap(0, (seed as usize / 7) % len);
        }
        prop_assert_eq!(&payload, &attestation_payload(&did, &shuffled, &key));

        let decoded = decoded_boundaries(&payload);
        let mut expected = values.clone();
        expected.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        prop_assert_eq!(&decoded, &expected);
        prop_assert!(decoded
            .windows(2)
            .all(|w| w[0].encode_utf16().le(w[1].encode_utf16())));
        let map = decoded_map(&payload);
        prop_assert_eq!(&map["did"], &Ipld::String(did));
        prop_assert_eq!(&map["signingKey"], &Ipld::String(key));
    }

    #[test]
    fn ascii_boundaries_sort_bytewise(values in prop::collection::vec("[ -~]{0,16}", 0..8)) {
        let decoded = decoded_boundaries(&attestation_payload(DID, &values, USER_KEY));
        let mut expected = values;
        expected.sort();
        prop_assert_eq!(decoded, expected);
    }
}
