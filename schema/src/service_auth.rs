//! ATProto inter-service authentication tokens: compact JWS, `ES256` (P-256) or `ES256K`
//! (secp256k1), signed by the issuer DID's `#atproto` key, bound to one audience service and one
//! XRPC method (`lxm`), short-lived, with a unique `jti`.
//!
//! This module parses and checks tokens; resolving the issuer's key is the caller's business.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyAlgorithm, Keypair, PublicKey};

/// Allowed difference between our clock and the issuer's, in seconds.
pub const CLOCK_SKEW_SECONDS: i64 = 30;

/// The longest lifetime accepted (`exp` − now), in seconds.
pub const MAX_LIFETIME_SECONDS: i64 = 30 * 60;

/// The longest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused. Each maps to an XRPC error name answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("Invalid JWT format: {0}")]
    Malformed(String),
    /// An algorithm other than ES256 and ES256K.
    #[error("Unsupported JWT algorithm {0}")]
    Algorithm(String),
    /// `iss` is missing or not a DID.
    #[error("Missing or invalid iss claim")]
    Issuer,
    /// `aud` is not this service.
    #[error("Invalid aud claim: the token is for {0}")]
    Audience(String),
    /// `lxm` is missing or names another method.
    #[error("Invalid lxm claim: the token is for {0}")]
    Method(String),
    /// `exp` has passed (beyond the allowed skew).
    #[error("Token expired")]
    Expired,
    /// `exp` is missing or too far in the future.
    #[error("Token lifetime must be at most {MAX_LIFETIME_SECONDS} seconds")]
    Lifetime,
    /// `jti` is missing.
    #[error("Missing jti claim")]
    Nonce,
    /// The token was already used.
    #[error("Token already used")]
    Replayed,
    /// The signature does not verify with any of the issuer's keys (or is high-S).
    #[error("Invalid signature: {0}")]
    Signature(String),
}

impl JwtError {
    /// The XRPC error name, as ATProto services answer.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Algorithm(_) | Self::Issuer | Self::Nonce => "BadJwt",
            Self::Audience(_) => "BadJwtAudience",
            Self::Method(_) => "BadJwtLexiconMethod",
            Self::Expired | Self::Lifetime => "JwtExpired",
            Self::Replayed => "BadJwt",
            Self::Signature(_) => "BadJwtSignature",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// The claims of a service token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer DID (the user, or a service).
    pub iss: String,
    /// The audience: the service DID, possibly with a `#fragment`.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued-at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The XRPC method the token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxm: Option<String>,
    /// A unique token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A parsed, not yet trusted token.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    algorithm: KeyAlgorithm,
    /// Its claims.
    pub claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

impl ServiceToken {
    /// Parses a compact JWS.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("too long".into()));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("expected three parts".into()));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed(format!("{what} is not base64url")))
        };
        let parsed: Header = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
        let algorithm = match parsed.alg.as_str() {
            "ES256" => KeyAlgorithm::P256,
            "ES256K" => KeyAlgorithm::Secp256k1,
            other => return Err(JwtError::Algorithm(other.to_string())),
        };
        let claims: Claims = serde_json::from_slice(&decode(payload, "payload")?)
            .map_err(|e| JwtError::Malformed(format!("payload: {e}")))?;
        if !claims.iss.starts_with("did:") {
            return Err(JwtError::Issuer);
        }
        Ok(Self {
            algorithm,
            claims,
            signing_input: format!("{header}.{payload}"),
            signature: decode(signature, "signature")?,
        })
    }

    /// The issuer DID without a `#fragment` (a service may sign as `did#service`).
    pub fn issuer_did(&self) -> &str {
        self.claims
            .iss
            .split_once('#')
            .map_or(self.claims.iss.as_str(), |(did, _)| did)
    }

    /// Checks audience (`service_did`, with or without a fragment), method, expiry and lifetime
    /// at `now` (seconds since the epoch), and that a `jti` is present.
    pub fn check_claims(&self, service_did: &str, method: &str, now: i64) -> Result<(), JwtError> {
        let audience = self
            .claims
            .aud
            .split_once('#')
            .map_or(self.claims.aud.as_str(), |(did, _)| did);
        if audience != service_did {
            return Err(JwtError::Audience(self.claims.aud.clone()));
        }
        match &self.claims.lxm {
            Some(lxm) if lxm == method => {}
            Some(lxm) => return Err(JwtError::Method(lxm.clone())),
            None => return Err(JwtError::Method("(none)".into())),
        }
        if now > self.claims.exp + CLOCK_SKEW_SECONDS {
            return Err(JwtError::Expired);
        }
        if self.claims.exp - now > MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS {
            return Err(JwtError::Lifetime);
        }
        if self.claims.jti.as_deref().is_none_or(str::is_empty) {
            return Err(JwtError::Nonce);
        }
        Ok(())
    }

    /// Checks the signature against the issuer's keys (only keys of the token's algorithm are
    /// tried; high-S signatures are refused).
    pub fn verify(&self, keys: &[PublicKey]) -> Result<(), JwtError> {
        let mut last = "no key of the token's algorithm".to_string();
        for key in keys.iter().filter(|k| k.algorithm() == self.algorithm) {
            match key.verify(self.signing_input.as_bytes(), &self.signature) {
                Ok(()) => return Ok(()),
                Err(error) => last = error.to_string(),
            }
        }
        Err(JwtError::Signature(last))
    }
}

/// Signs a service token (for service-to-service calls and tests).
pub fn sign_token(key: &Keypair, claims: &Claims) -> String {
    let alg = match key.algorithm() {
        KeyAlgorithm::P256 => "ES256",
        KeyAlgorithm::Secp256k1 => "ES256K",
    };
    let header = Header {
        alg: alg.into(),
        typ: Some("JWT".into()),
    };
    let encode = |value: &[u8]| URL_SAFE_NO_PAD.encode(value);
    let signing_input = format!(
        "{}.{}",
        encode(&serde_json::to_vec(&header).expect("a header always encodes")),
        encode(&serde_json::to_vec(claims).expect("claims always encode"))
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", encode(&signature))
}
