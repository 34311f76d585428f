//! Keys and signatures against the atproto interop vectors, plus round trips, low-S, and
//! agreement between the fast (`ring`) P-256 path and the pure-Rust `p256` crate.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use base64::Engine as _;
use ecdsa::signature::{Signer as _, Verifier as _};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use proptest::prelude::*;
use serde_json::Value;
use stratos_schema::keys::{KeyAlgorithm, KeyError, Keypair, PublicKey, SignatureError};

const ALGORITHMS: [KeyAlgorithm; 2] = [KeyAlgorithm::P256, KeyAlgorithm::Secp256k1];

fn fixtures(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/crypto/{name}",
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

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

/// The curve order `n` of each algorithm, big-endian.
fn order(algorithm: KeyAlgorithm) -> [u8; 32] {
    let text = match algorithm {
        KeyAlgorithm::P256 => "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        KeyAlgorithm::Secp256k1 => {
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        }
    };
    hex(text).try_into().expect("32 bytes")
}

/// `⌊n / 2⌋`, big-endian: the largest low-S value.
fn half_order(algorithm: KeyAlgorithm) -> [u8; 32] {
    let text = match algorithm {
        KeyAlgorithm::P256 => "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8",
        KeyAlgorithm::Secp256k1 => {
            "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
        }
    };
    hex(text).try_into().expect("32 bytes")
}

fn is_low_s(algorithm: KeyAlgorithm, signature: &[u8]) -> bool {
    signature[32..] <= half_order(algorithm)[..]
}

/// The same signature with `s` replaced by `n − s` (the other, equally valid ECDSA signature).
fn flip_s(algorithm: KeyAlgorithm, signature: &[u8; 64]) -> [u8; 64] {
    let n = order(algorithm);
    let mut out = *signature;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = i16::from(n[i]) - i16::from(signature[32 + i]) - borrow;
        borrow = i16::from(diff < 0);
        out[32 + i] = diff.rem_euclid(256) as u8;
    }
    assert_eq!(borrow, 0, "s < n");
    out
}

#[test]
fn signature_fixtures_give_the_expected_verdict() {
    let cases = fixtures("signature-fixtures.json");
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["comment"].as_str().expect("comment");
        let algorithm = match case["algorithm"].as_str() {
            Some("ES256") => KeyAlgorithm::P256,
            Some("ES256K") => KeyAlgorithm::Secp256k1,
            other => panic!("{name}: unknown algorithm {other:?}"),
        };
        let did_key = case["publicKeyDid"].as_str().expect("publicKeyDid");
        let key = PublicKey::from_did_key(did_key).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.algorithm(), algorithm, "{name}");
        assert_eq!(key.to_did_key(), did_key, "{name}: did:key round trip");

        let legacy = PublicKey::from_legacy_multibase(
            algorithm,
            case["publicKeyMultibase"]
                .as_str()
                .expect("publicKeyMultibase"),
        )
        .unwrap_or_else(|e| panic!("{name}: publicKeyMultibase: {e}"));
        assert_eq!(legacy, key, "{name}: publicKeyMultibase names the same key");

        let message = base64_unpadded(case["messageBase64"].as_str().expect("message"));
        let signature = base64_unpadded(case["signatureBase64"].as_str().expect("signature"));
        let verdict = key.verify(&message, &signature);
        let tags: Vec<&str> = case["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if case["validSignature"].as_bool().expect("validSignature") {
            assert_eq!(verdict, Ok(()), "{name}");
        } else if tags.contains(&"high-s") {
            assert_eq!(verdict, Err(SignatureError::HighS), "{name}");
        } else if tags.contains(&"der-encoded") {
            assert_eq!(
                verdict,
                Err(SignatureError::Length(signature.len())),
                "{name}"
            );
        } else {
            assert!(verdict.is_err(), "{name}: expected an invalid signature");
        }
    }
}

#[test]
fn w3c_p256_private_keys_give_the_expected_did_keys() {
    let cases = fixtures("w3c_didkey_P256.json");
    assert!(!cases.is_empty());
    for case in cases {
        let encoded = case["privateKeyBytesBase58"].as_str().expect("base58");
        let expected = case["publicDidKey"].as_str().expect("did:key");
        let private = multibase::Base::Base58Btc
            .decode(encoded)
            .expect("fixture base58");
        let keypair = Keypair::from_private_bytes(KeyAlgorithm::P256, &private)
            .unwrap_or_else(|e| panic!("{expected}: {e}"));
        assert_eq!(keypair.did_key(), expected);
        assert_eq!(keypair.private_bytes().as_slice(), private.as_slice());
        let public = PublicKey::from_did_key(expected).expect("fixture did:key parses");
        assert_eq!(public, keypair.public_key(), "{expected}");
    }
}

#[test]
fn w3c_k256_private_keys_give_the_expected_did_keys() {
    let cases = fixtures("w3c_didkey_K256.json");
    assert!(!cases.is_empty());
    for case in cases {
        let private = hex(case["privateKeyBytesHex"].as_str().expect("hex"));
        let expected = case["publicDidKey"].as_str().expect("did:key");
        let keypair = Keypair::from_private_bytes(KeyAlgorithm::Secp256k1, &private)
            .unwrap_or_else(|e| panic!("{expected}: {e}"));
        assert_eq!(keypair.did_key(), expected);
        assert_eq!(keypair.private_bytes().as_slice(), private.as_slice());
        let public = PublicKey::from_did_key(expected).expect("fixture did:key parses");
        assert_eq!(public, keypair.public_key(), "{expected}");
    }
}

#[test]
fn sign_verify_round_trips() {
    for algorithm in ALGORITHMS {
        let keypair = Keypair::generate(algorithm);
        assert_eq!(keypair.algorithm(), algorithm);
        let public = keypair.public_key();
        for message in [&b""[..], b"hello", &[0u8; 10_000]] {
            let signature = keypair.sign(message);
            assert_eq!(public.verify(message, &signature), Ok(()), "{algorithm}");
        }
    }
}

#[test]
fn private_bytes_round_trip() {
    for algorithm in ALGORITHMS {
        let keypair = Keypair::generate(algorithm);
        let restored = Keypair::from_private_bytes(algorithm, keypair.private_bytes().as_slice())
            .expect("own private bytes");
        assert_eq!(restored.public_key(), keypair.public_key(), "{algorithm}");
        assert_eq!(restored.did_key(), keypair.did_key(), "{algorithm}");
        let signature = restored.sign(b"m");
        assert_eq!(keypair.public_key().verify(b"m", &signature), Ok(()));
    }
}

#[test]
fn a_thousand_signatures_are_all_low_s() {
    for algorithm in ALGORITHMS {
        let keypair = Keypair::generate(algorithm);
        let public = keypair.public_key();
        for i in 0..1_000u32 {
            let message = i.to_be_bytes();
            let signature = keypair.sign(&message);
            assert!(
                is_low_s(algorithm, &signature),
                "{algorithm} signature {i} is high-S"
            );
            assert_eq!(
                public.verify(&message, &signature),
                Ok(()),
                "{algorithm} #{i}"
            );
        }
    }
}

#[test]
fn high_s_twins_of_valid_signatures_are_refused() {
    for algorithm in ALGORITHMS {
        let keypair = Keypair::generate(algorithm);
        let public = keypair.public_key();
        let signature = keypair.sign(b"twin");
        let twin = flip_s(algorithm, &signature);
        assert!(!is_low_s(algorithm, &twin));
        assert_eq!(
            public.verify(b"twin", &twin),
            Err(SignatureError::HighS),
            "{algorithm}"
        );
    }
}

#[test]
fn tampered_messages_keys_and_signatures_are_refused() {
    for algorithm in ALGORITHMS {
        let keypair = Keypair::generate(algorithm);
        let other = Keypair::generate(algorithm).public_key();
        let signature = keypair.sign(b"message");
        let public = keypair.public_key();
        assert_eq!(
            public.verify(b"messagE", &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            other.verify(b"message", &signature),
            Err(SignatureError::Mismatch)
        );
        let mut bent = signature;
        bent[5] ^= 0x01;
        assert!(public.verify(b"message", &bent).is_err(), "{algorithm}");
        assert_eq!(
            public.verify(b"message", &signature[..63]),
            Err(SignatureError::Length(63))
        );
        let mut longer = signature.to_vec();
        longer.push(0);
        assert_eq!(
            public.verify(b"message", &longer),
            Err(SignatureError::Length(65))
        );
        assert_eq!(
            public.verify(b"message", &[0u8; 64]),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            public.verify(b"message", &[0xffu8; 64]),
            Err(SignatureError::Malformed)
        );
    }
}

#[test]
fn keys_of_one_algorithm_do_not_verify_the_other() {
    let p256 = Keypair::generate(KeyAlgorithm::P256);
    let k256 = Keypair::generate(KeyAlgorithm::Secp256k1);
    let signature = p256.sign(b"m");
    assert!(k256.public_key().verify(b"m", &signature).is_err());
}

#[test]
fn p256_fast_path_agrees_with_the_p256_crate() {
    for _ in 0..50 {
        let keypair = Keypair::generate(KeyAlgorithm::P256);
        let secret = p256::ecdsa::SigningKey::from_slice(keypair.private_bytes().as_slice())
            .expect("p256 accepts our private key");
        let reference_public = *secret.verifying_key();
        let public = keypair.public_key();
        let reference_compressed = reference_public.to_encoded_point(true);
        assert_eq!(
            public.compressed_bytes().as_slice(),
            reference_compressed.as_bytes()
        );

        // Ours verifies with the p256 crate.
        let ours = keypair.sign(b"cross");
        let parsed = p256::ecdsa::Signature::from_slice(&ours).expect("compact signature");
        assert!(reference_public.verify(b"cross", &parsed).is_ok());

        // The p256 crate's signature, once low-S, verifies with ours; its high-S form does not.
        let theirs: p256::ecdsa::Signature = secret.sign(b"cross");
        let low = theirs.normalize_s().unwrap_or(theirs);
        assert_eq!(public.verify(b"cross", &low.to_bytes()), Ok(()));
        let high = flip_s(
            KeyAlgorithm::P256,
            &low.to_bytes()[..].try_into().expect("64 bytes"),
        );
        assert!(
            reference_public
                .verify(
                    b"cross",
                    &p256::ecdsa::Signature::from_slice(&high).expect("compact")
                )
                .is_ok(),
            "the p256 crate accepts high-S"
        );
        assert_eq!(public.verify(b"cross", &high), Err(SignatureError::HighS));
    }
}

#[test]
fn secp256k1_agrees_with_the_k256_crate() {
    let keypair = Keypair::generate(KeyAlgorithm::Secp256k1);
    let secret = k256::ecdsa::SigningKey::from_slice(keypair.private_bytes().as_slice())
        .expect("k256 accepts our private key");
    let ours = keypair.sign(b"cross");
    let parsed = k256::ecdsa::Signature::from_slice(&ours).expect("compact signature");
    assert!(secret.verifying_key().verify(b"cross", &parsed).is_ok());
    let theirs: k256::ecdsa::Signature = secret.sign(b"cross");
    assert_eq!(
        keypair.public_key().verify(b"cross", &theirs.to_bytes()),
        Ok(())
    );
}

#[test]
fn did_key_round_trips() {
    for algorithm in ALGORITHMS {
        let keypair = Keypair::generate(algorithm);
        let did_key = keypair.did_key();
        let parsed = PublicKey::from_did_key(&did_key).expect("own did:key");
        assert_eq!(parsed, keypair.public_key());
        assert_eq!(parsed.to_did_key(), did_key);
        assert_eq!(parsed.to_string(), did_key);
        assert_eq!(did_key.parse::<PublicKey>(), Ok(parsed.clone()));
        let multibase = did_key.strip_prefix("did:key:").expect("prefix");
        assert_eq!(parsed.to_multibase(), multibase);
        assert_eq!(PublicKey::from_multibase(multibase), Ok(parsed.clone()));
        let legacy = multibase::encode(multibase::Base::Base58Btc, parsed.compressed_bytes());
        assert_eq!(
            PublicKey::from_legacy_multibase(algorithm, &legacy),
            Ok(parsed)
        );
    }
}

#[test]
fn invalid_private_keys_are_refused() {
    for algorithm in ALGORITHMS {
        let expected = Err(KeyError::InvalidPrivateKey(algorithm));
        let n = order(algorithm);
        for bytes in [&[0u8; 32][..], &[0xff; 32], &n, &[1; 31], &[1; 33], &[]] {
            assert_eq!(
                Keypair::from_private_bytes(algorithm, bytes).map(|k| k.did_key()),
                expected,
                "{algorithm}: {bytes:02x?}"
            );
        }
    }
}

#[test]
fn garbage_did_keys_are_errors() {
    let uncompressed = {
        let keypair = Keypair::generate(KeyAlgorithm::P256);
        let secret =
            p256::SecretKey::from_slice(keypair.private_bytes().as_slice()).expect("valid key");
        let mut bytes = vec![0x80, 0x24];
        bytes.extend_from_slice(secret.public_key().to_encoded_point(false).as_bytes());
        format!(
            "did:key:{}",
            multibase::encode(multibase::Base::Base58Btc, bytes)
        )
    };
    let ed25519 = format!(
        "did:key:{}",
        multibase::encode(
            multibase::Base::Base58Btc,
            [&[0xed, 0x01][..], &[7; 32]].concat()
        )
    );
    let not_on_curve = format!(
        "did:key:{}",
        multibase::encode(
            multibase::Base::Base58Btc,
            [&[0x80, 0x24, 0x02][..], &[0xff; 32]].concat()
        )
    );
    let long = format!("did:key:z{}", "1".repeat(100_000));
    let cases: Vec<String> = [
        "",
        "did:key:",
        "did:key:z",
        "did:key:zzzz",
        "did:key:z0OIl",
        "did:key:fabcdef",
        "did:key:mAAAA",
        "did:web:example.com",
        "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo",
        "did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQ",
        "did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQoo",
        "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJw",
        "did:key:z\u{1F600}",
        "did:key:zDn\u{0}",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([uncompressed, ed25519, not_on_curve, long])
    .collect();
    for case in &cases {
        assert!(PublicKey::from_did_key(case).is_err(), "{case:.80}");
        if let Some(rest) = case.strip_prefix("did:key:") {
            assert!(PublicKey::from_multibase(rest).is_err(), "{rest:.80}");
        }
        for algorithm in ALGORITHMS {
            let rest = case.strip_prefix("did:key:").unwrap_or(case);
            // Some random base58 may decode to a valid legacy point; it must never panic.
            let _ = PublicKey::from_legacy_multibase(algorithm, rest);
        }
    }
    assert_eq!(
        PublicKey::from_did_key("did:web:example.com"),
        Err(KeyError::NotDidKey)
    );
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(text in "\\PC{0,80}") {
        let _ = PublicKey::from_did_key(&text);
        let _ = PublicKey::from_did_key(&format!("did:key:{text}"));
        let _ = PublicKey::from_did_key(&format!("did:key:z{text}"));
        let _ = PublicKey::from_multibase(&text);
        let _ = PublicKey::from_legacy_multibase(KeyAlgorithm::P256, &text);
    }

    #[test]
    fn arbitrary_prefixed_bytes_never_panic(
        prefix in prop::sample::select(vec![vec![0x80u8, 0x24], vec![0xe7, 0x01], vec![]]),
        body in prop::collection::vec(any::<u8>(), 0..70),
    ) {
        let multibase = multibase::encode(multibase::Base::Base58Btc, [prefix, body].concat());
        let _ = PublicKey::from_did_key(&format!("did:key:{multibase}"));
    }

    #[test]
    fn arbitrary_signatures_never_panic(signature in prop::collection::vec(any::<u8>(), 0..80)) {
        for algorithm in ALGORITHMS {
            let keypair = Keypair::from_private_bytes(algorithm, &[7u8; 32]).expect("valid");
            prop_assert!(keypair.public_key().verify(b"m", &signature).is_err());
        }
    }
}
