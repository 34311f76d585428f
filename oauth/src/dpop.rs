//! DPoP (RFC 9449): a P-256 key bound to a session, and the signed proof sent with every token
//! request and every call made with the session's access token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use zeroize::Zeroizing;

use crate::{OAuthError, random_token, unix_now};

/// A session's DPoP key (ES256).
pub struct DpopKey {
    key: Keypair,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKey(..)")
    }
}

impl DpopKey {
    /// A fresh key.
    pub fn generate() -> Self {
        Self {
            key: Keypair::generate(KeyAlgorithm::P256),
        }
    }

    /// The key from its stored form (32-byte scalar as base64url).
    pub fn from_stored(text: &str) -> Result<Self, OAuthError> {
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| OAuthError::Stored("a DPoP key is not base64url".into()))?,
        );
        Keypair::from_private_bytes(KeyAlgorithm::P256, &bytes)
            .map(|key| Self { key })
            .map_err(|_| OAuthError::Stored("a DPoP key is not a P-256 scalar".into()))
    }

    /// The stored form of the key; keep it only where secrets are kept (sealed at rest).
    pub fn to_stored(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(self.key.private_bytes().as_slice()))
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        public_jwk(&self.key)
    }

    /// A proof for `method` on `url` (query and fragment are not part of `htu`), with the
    /// server's `nonce` when it asked for one, and the hash of `access_token` when the call
    /// uses one.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> String {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = json!({
            "jti": random_token(16),
            "htm": method,
            "htu": htu,
            "iat": unix_now(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk()});
        sign_jwt(&self.key, &header, &claims)
    }
}

/// The public half of a P-256 key as a JWK.
pub(crate) fn public_jwk(key: &Keypair) -> Value {
    let compressed = key.public_key().compressed_bytes().to_vec();
    let point = p256::PublicKey::from_sec1_bytes(&compressed)
        .expect("a P-256 keypair's public key decodes")
        .to_encoded_point(false);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(point.x().expect("an uncompressed point has x")),
        "y": URL_SAFE_NO_PAD.encode(point.y().expect("an uncompressed point has y")),
    })
}

/// A compact JWS of `claims` under `header`, signed by `key` (ES256 / ES256K: r‖s, low-S).
pub(crate) fn sign_jwt(key: &Keypair, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stratos_schema::keys::PublicKey;

    fn part(token: &str, index: usize) -> Value {
        let text = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
    }

    #[test]
    fn proofs_carry_the_public_key_and_verify_with_it() {
        let key = DpopKey::generate();
        let proof = key.proof(
            "POST",
            "https://pds.example/xrpc/x?y=1#z",
            Some("n1"),
            Some("tok"),
        );
        let header = part(&proof, 0);
        let claims = part(&proof, 1);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["htu"], "https://pds.example/xrpc/x");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["nonce"], "n1");
        assert_eq!(
            claims["ath"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok"))
        );
        // The JWK in the header is the key that signed the proof.
        let jwk = &header["jwk"];
        let mut sec1 = vec![4u8];
        sec1.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        sec1.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        let public = PublicKey::from_sec1_bytes(KeyAlgorithm::P256, &sec1).unwrap();
        let (input, signature) = proof.rsplit_once('.').unwrap();
        public
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .unwrap();
        // Without a nonce or token, neither claim appears.
        let bare = part(&key.proof("GET", "https://a.example/", None, None), 1);
        assert!(bare.get("nonce").is_none() && bare.get("ath").is_none());
    }

    #[test]
    fn stored_keys_come_back_the_same() {
        let key = DpopKey::generate();
        let again = DpopKey::from_stored(&key.to_stored()).unwrap();
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert!(DpopKey::from_stored("not base64!").is_err());
        assert!(DpopKey::from_stored("AAAA").is_err());
    }
}
