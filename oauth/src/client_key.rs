//! The key of a confidential client (`private_key_jwt`): it signs a client assertion for
//! every request to an authorization server, and its public half is published as the client's
//! JWKS.

use serde_json::{Value, json};
use stratos_schema::keys::{KeyAlgorithm, Keypair};

use crate::dpop::{public_jwk, sign_jwt};
use crate::{OAuthError, random_token, unix_now};

/// The key id of the client key in the published JWKS.
pub const CLIENT_KEY_ID: &str = "key-1";

/// A confidential client's ES256 key.
pub struct ClientKey {
    key: Keypair,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({})", self.key.did_key())
    }
}

impl PartialEq for ClientKey {
    fn eq(&self, other: &Self) -> bool {
        self.key.did_key() == other.key.did_key()
    }
}

impl Eq for ClientKey {}

impl ClientKey {
    /// The key from configuration: a P-256 private JWK (`{"kty":"EC","crv":"P-256","d":…}`)
    /// or the 32-byte private scalar as 64 hex characters.
    pub fn from_config(text: &str) -> Result<Self, OAuthError> {
        let text = text.trim();
        let invalid = |why: &str| OAuthError::Stored(format!("the OAuth client key: {why}"));
        if !text.starts_with('{') {
            return Keypair::from_private_hex(KeyAlgorithm::P256, text)
                .map(|key| Self { key })
                .map_err(|_| invalid("neither a P-256 JWK nor 64 hex characters"));
        }
        let jwk: Value = serde_json::from_str(text).map_err(|_| invalid("not JSON"))?;
        if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
            return Err(invalid("only P-256 EC keys are supported"));
        }
        let d = jwk["d"]
            .as_str()
            .ok_or_else(|| invalid("the JWK has no private part (d)"))?;
        let scalar = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, d)
            .map_err(|_| invalid("d is not base64url"))?;
        Keypair::from_private_bytes(KeyAlgorithm::P256, &scalar)
            .map(|key| Self { key })
            .map_err(|_| invalid("not a P-256 private key"))
    }

    /// The public JWKS the client publishes.
    pub fn jwks(&self) -> Value {
        let mut jwk = public_jwk(&self.key);
        jwk["kid"] = json!(CLIENT_KEY_ID);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        json!({"keys": [jwk]})
    }

    /// A client assertion (RFC 7523) of `client_id` for the authorization server `issuer`.
    pub fn assertion(&self, client_id: &str, issuer: &str) -> String {
        let now = unix_now();
        let header = json!({"alg": "ES256", "kid": CLIENT_KEY_ID, "typ": "JWT"});
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": issuer,
            "jti": random_token(16),
            "iat": now,
            "exp": now + 60,
        });
        sign_jwt(&self.key, &header, &claims)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use stratos_schema::keys::PublicKey;

    #[test]
    fn assertions_verify_with_the_published_key() {
        let hex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        let key = ClientKey::from_config(hex).unwrap();
        let assertion = key.assertion(
            "https://s.example/client-metadata.json",
            "https://as.example",
        );
        let parts: Vec<&str> = assertion.split('.').collect();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["kid"], CLIENT_KEY_ID);
        assert_eq!(claims["iss"], "https://s.example/client-metadata.json");
        assert_eq!(claims["sub"], claims["iss"]);
        assert_eq!(claims["aud"], "https://as.example");
        let jwk = &key.jwks()["keys"][0];
        assert_eq!(
            (jwk["kid"].as_str(), jwk.get("d")),
            (Some(CLIENT_KEY_ID), None)
        );
        let mut sec1 = vec![4u8];
        sec1.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        sec1.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        let public = PublicKey::from_sec1_bytes(KeyAlgorithm::P256, &sec1).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
        // The same key as a private JWK.
        let d = URL_SAFE_NO_PAD.encode(
            (0..32)
                .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
                .collect::<Vec<u8>>(),
        );
        let from_jwk =
            ClientKey::from_config(&format!(r#"{{"kty":"EC","crv":"P-256","d":"{d}"}}"#)).unwrap();
        assert_eq!(from_jwk, key);
    }

    #[test]
    fn unusable_keys_are_refused() {
        for bad in [
            "",
            "zz",
            "00",
            r#"{"kty":"EC","crv":"P-256"}"#,
            r#"{"kty":"OKP","crv":"Ed25519","d":"AA"}"#,
        ] {
            assert!(ClientKey::from_config(bad).is_err(), "{bad}");
        }
    }
}
