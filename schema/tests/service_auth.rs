//! Service tokens: every claim rule and every way a signature can be wrong.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::service_auth::{
    Claims, JwtError, MAX_LIFETIME_SECONDS, ServiceToken, sign_token,
};

const SERVICE: &str = "did:web:stratos.example.com";
const METHOD: &str = "com.atproto.repo.createRecord";
const NOW: i64 = 1_764_000_000;

fn claims() -> Claims {
    Claims {
        iss: "did:plc:alice".into(),
        aud: SERVICE.into(),
        exp: NOW + 60,
        iat: Some(NOW),
        lxm: Some(METHOD.into()),
        jti: Some("a5b6c7".into()),
    }
}

fn check(token: &str, key: &Keypair) -> Result<(), JwtError> {
    let parsed = ServiceToken::parse(token)?;
    parsed.check_claims(SERVICE, METHOD, NOW)?;
    parsed.verify(&[key.public_key()])
}

#[test]
fn tokens_of_both_algorithms_verify() {
    for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::Secp256k1] {
        let key = Keypair::generate(algorithm);
        let token = sign_token(&key, &claims());
        assert_eq!(check(&token, &key), Ok(()));
        assert_eq!(
            ServiceToken::parse(&token).unwrap().issuer_did(),
            "did:plc:alice"
        );
        // The audience may carry the service fragment.
        let with_fragment = sign_token(
            &key,
            &Claims {
                aud: format!("{SERVICE}#atproto_pns"),
                ..claims()
            },
        );
        assert_eq!(check(&with_fragment, &key), Ok(()));
    }
}

#[test]
fn every_claim_rule_has_its_error() {
    let key = Keypair::generate(KeyAlgorithm::Secp256k1);
    let cases = [
        (
            Claims {
                aud: "did:web:other.example.com".into(),
                ..claims()
            },
            "BadJwtAudience",
        ),
        (
            Claims {
                lxm: Some("com.atproto.repo.deleteRecord".into()),
                ..claims()
            },
            "BadJwtLexiconMethod",
        ),
        (
            Claims {
                lxm: None,
                ..claims()
            },
            "BadJwtLexiconMethod",
        ),
        (
            Claims {
                exp: NOW - 31,
                ..claims()
            },
            "JwtExpired",
        ),
        (
            Claims {
                exp: NOW + MAX_LIFETIME_SECONDS + 3_600,
                ..claims()
            },
            "JwtExpired",
        ),
        (
            Claims {
                jti: None,
                ..claims()
            },
            "BadJwt",
        ),
        (
            Claims {
                iss: "alice".into(),
                ..claims()
            },
            "BadJwt",
        ),
    ];
    for (claims, expected) in cases {
        let error = check(&sign_token(&key, &claims), &key).unwrap_err();
        assert_eq!(error.name(), expected, "{claims:?}: {error}");
    }
    // Within the clock skew is fine.
    let late = sign_token(
        &key,
        &Claims {
            exp: NOW - 10,
            ..claims()
        },
    );
    assert_eq!(check(&late, &key), Ok(()));
}

#[test]
fn bad_signatures_are_refused() {
    let key = Keypair::generate(KeyAlgorithm::P256);
    let token = sign_token(&key, &claims());
    // Another key.
    let stranger = Keypair::generate(KeyAlgorithm::P256);
    assert_eq!(
        check(&token, &stranger).unwrap_err().name(),
        "BadJwtSignature"
    );
    // A tampered payload.
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = Claims {
        lxm: Some(METHOD.into()),
        iss: "did:plc:mallory".into(),
        ..claims()
    };
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap()),
        parts[2]
    );
    assert_eq!(check(&forged, &key).unwrap_err().name(), "BadJwtSignature");
    // The same signature in its high-S form.
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let low = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    let high = p256::ecdsa::Signature::from_scalars(low.r(), -*low.s()).unwrap();
    let high_s = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(high.to_bytes())
    );
    let error = check(&high_s, &key).unwrap_err();
    assert_eq!(error.name(), "BadJwtSignature");
    assert!(error.to_string().contains("low-S"), "{error}");
    // A key of the other algorithm is not tried.
    let k1 = Keypair::generate(KeyAlgorithm::Secp256k1);
    assert_eq!(check(&token, &k1).unwrap_err().name(), "BadJwtSignature");
}

#[test]
fn malformed_tokens_and_other_algorithms_are_refused() {
    let key = Keypair::generate(KeyAlgorithm::P256);
    let token = sign_token(&key, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        parts[1]
    );
    let hs256 = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
        parts[1],
        parts[2]
    );
    for (bad, expected) in [
        ("", "BadJwt"),
        ("a.b", "BadJwt"),
        ("a.b.c.d", "BadJwt"),
        ("!!.??.**", "BadJwt"),
        (none.as_str(), "BadJwt"),
        (hs256.as_str(), "BadJwt"),
    ] {
        let error = ServiceToken::parse(bad).unwrap_err();
        assert_eq!(error.name(), expected, "{bad}: {error}");
    }
    assert!(matches!(
        ServiceToken::parse(&hs256),
        Err(JwtError::Algorithm(alg)) if alg == "HS256"
    ));
    assert!(ServiceToken::parse(&"a".repeat(9_000)).is_err());
}
