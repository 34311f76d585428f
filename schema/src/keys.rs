//! P-256 and secp256k1 keys: generation, raw private bytes, `did:key`, and low-S ECDSA signatures.
//!
//! atproto signs with ECDSA over the SHA-256 digest of the message and transmits the signature
//! as 64 bytes of compact `r‖s`. Every signature made here has `s` in the lower half of the curve
//! order ("low-S"), and [`PublicKey::verify`] refuses high-S, DER-encoded and wrongly sized
//! signatures, as the atproto cryptography spec requires.
//!
//! User repository keys are P-256 (`did:key:zDn…`); the service key is secp256k1
//! (`did:key:zQ3s…`). P-256 signing and verification run on `ring`, which is an order of
//! magnitude faster than the pure-Rust curve; the `p256` and `k256` crates parse and (de)compress
//! points and sign secp256k1.

use std::fmt;
use std::str::FromStr;

use ecdsa::signature::{Signer as _, Verifier as _};
use p256::elliptic_curve::scalar::IsHigh as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use ring::signature::{self as ring_sig, KeyPair as _};
use zeroize::{Zeroize as _, Zeroizing};

/// The prefix of every `did:key` identifier.
pub const DID_KEY_PREFIX: &str = "did:key:";
/// Length of a raw private key (a big-endian scalar), in bytes.
pub const PRIVATE_KEY_LEN: usize = 32;
/// Length of a compact `r‖s` signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a compressed SEC1 public key, in bytes.
pub const COMPRESSED_KEY_LEN: usize = 33;

/// The longest multibase text accepted when parsing a public key. A multicodec-prefixed
/// compressed key is 35 bytes, under 50 base58 characters; the cap keeps the quadratic base58
/// decoder away from hostile megabyte strings.
const MAX_MULTIBASE_LEN: usize = 128;
/// Unsigned-varint encoding of the `p256-pub` multicodec (0x1200).
const P256_MULTICODEC_PREFIX: [u8; 2] = [0x80, 0x24];
/// Unsigned-varint encoding of the `secp256k1-pub` multicodec (0xe7).
const SECP256K1_MULTICODEC_PREFIX: [u8; 2] = [0xe7, 0x01];

/// A signature algorithm atproto accepts for repository and service keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlgorithm {
    /// NIST P-256 (secp256r1), JWT name `ES256`; per-user repository signing keys.
    P256,
    /// secp256k1, JWT name `ES256K`; the service key.
    Secp256k1,
}

impl KeyAlgorithm {
    /// The multicodec code that tags this algorithm's public keys in `did:key`
    /// (`p256-pub` 0x1200, `secp256k1-pub` 0xe7).
    pub const fn multicodec(self) -> u64 {
        match self {
            Self::P256 => 0x1200,
            Self::Secp256k1 => 0xe7,
        }
    }

    /// The JOSE algorithm name: `ES256` or `ES256K`.
    pub const fn jwt_alg(self) -> &'static str {
        match self {
            Self::P256 => "ES256",
            Self::Secp256k1 => "ES256K",
        }
    }

    const fn multicodec_prefix(self) -> [u8; 2] {
        match self {
            Self::P256 => P256_MULTICODEC_PREFIX,
            Self::Secp256k1 => SECP256K1_MULTICODEC_PREFIX,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::Secp256k1 => "secp256k1",
        })
    }
}

/// Why a private or public key could not be built or parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The private key is not 32 bytes, or not a scalar in `[1, n − 1]`.
    #[error("invalid {0} private key: expected a 32-byte scalar in [1, n-1]")]
    InvalidPrivateKey(KeyAlgorithm),
    /// The text does not start with `did:key:`.
    #[error("not a did:key identifier")]
    NotDidKey,
    /// The text is not base58btc multibase (`z…`) of a sensible length.
    #[error("invalid multibase public key: {0}")]
    Multibase(String),
    /// The multicodec prefix names neither `p256-pub` nor `secp256k1-pub`.
    #[error("unsupported key type: the multicodec prefix is neither p256-pub nor secp256k1-pub")]
    UnsupportedKeyType,
    /// The bytes are not a valid point of the curve in the expected SEC1 encoding.
    #[error("invalid {0} public key")]
    InvalidPublicKey(KeyAlgorithm),
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature is not 64 bytes of compact `r‖s` (DER signatures land here).
    #[error("signature must be 64 bytes of compact r||s, got {0} bytes")]
    Length(usize),
    /// `r` or `s` is zero or not below the curve order.
    #[error("signature scalars are out of range")]
    Malformed,
    /// `s` is in the upper half of the curve order; atproto accepts only low-S signatures.
    #[error("signature is not low-S normalised")]
    HighS,
    /// The signature does not match this key and message.
    #[error("signature does not match the key and message")]
    Mismatch,
}

/// A public key of either algorithm, as found in `did:key` identifiers and DID documents.
///
/// Equality and hashing compare the algorithm and the compressed point. `Display` and `Debug`
/// show the `did:key`.
#[derive(Clone)]
pub struct PublicKey {
    compressed: [u8; COMPRESSED_KEY_LEN],
    verifier: Verifier,
}

#[derive(Clone)]
enum Verifier {
    /// Uncompressed SEC1 point, the form `ring` verifies against.
    P256 {
        uncompressed: [u8; 65],
    },
    Secp256k1(k256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Builds a key from a SEC1-encoded point, compressed (33 bytes) or uncompressed (65 bytes).
    pub fn from_sec1_bytes(algorithm: KeyAlgorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = || KeyError::InvalidPublicKey(algorithm);
        match algorithm {
            KeyAlgorithm::P256 => {
                let point = p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| invalid())?;
                Ok(Self::from_p256(&point))
            }
            KeyAlgorithm::Secp256k1 => {
                let key =
                    k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(|_| invalid())?;
                Ok(Self::from_k256(key))
            }
        }
    }

    fn from_p256(point: &p256::PublicKey) -> Self {
        let mut compressed = [0u8; COMPRESSED_KEY_LEN];
        compressed.copy_from_slice(point.to_encoded_point(true).as_bytes());
        let mut uncompressed = [0u8; 65];
        uncompressed.copy_from_slice(point.to_encoded_point(false).as_bytes());
        Self {
            compressed,
            verifier: Verifier::P256 { uncompressed },
        }
    }

    fn from_k256(key: k256::ecdsa::VerifyingKey) -> Self {
        let mut compressed = [0u8; COMPRESSED_KEY_LEN];
        compressed.copy_from_slice(key.to_encoded_point(true).as_bytes());
        Self {
            compressed,
            verifier: Verifier::Secp256k1(key),
        }
    }

    /// Parses a `did:key:z…` identifier holding a compressed P-256 or secp256k1 key.
    pub fn from_did_key(did_key: &str) -> Result<Self, KeyError> {
        let multibase = did_key
            .strip_prefix(DID_KEY_PREFIX)
            .ok_or(KeyError::NotDidKey)?;
        Self::from_multibase(multibase)
    }

    /// Parses the multicodec-prefixed multibase form (`z…`), as in a `Multikey`
    /// `publicKeyMultibase` of a DID document and after `did:key:`. The point must be compressed.
    pub fn from_multibase(multibase: &str) -> Result<Self, KeyError> {
        let bytes = decode_base58btc(multibase)?;
        let (algorithm, point) = if let Some(point) = bytes.strip_prefix(&P256_MULTICODEC_PREFIX) {
            (KeyAlgorithm::P256, point)
        } else if let Some(point) = bytes.strip_prefix(&SECP256K1_MULTICODEC_PREFIX) {
            (KeyAlgorithm::Secp256k1, point)
        } else {
            return Err(KeyError::UnsupportedKeyType);
        };
        if point.len() != COMPRESSED_KEY_LEN {
            return Err(KeyError::InvalidPublicKey(algorithm));
        }
        Self::from_sec1_bytes(algorithm, point)
    }

    /// Parses the legacy `publicKeyMultibase` of the `EcdsaSecp256r1VerificationKey2019` and
    /// `EcdsaSecp256k1VerificationKey2019` suites: base58btc of a bare SEC1 point (compressed or
    /// uncompressed) with no multicodec prefix, the algorithm coming from the suite name.
    pub fn from_legacy_multibase(
        algorithm: KeyAlgorithm,
        multibase: &str,
    ) -> Result<Self, KeyError> {
        let bytes = decode_base58btc(multibase)?;
        Self::from_sec1_bytes(algorithm, &bytes)
    }

    /// The multicodec-prefixed base58btc form (`z…`), as used after `did:key:` and in a
    /// `Multikey` `publicKeyMultibase`.
    pub fn to_multibase(&self) -> String {
        let mut bytes = Vec::with_capacity(2 + COMPRESSED_KEY_LEN);
        bytes.extend_from_slice(&self.algorithm().multicodec_prefix());
        bytes.extend_from_slice(&self.compressed);
        multibase::encode(multibase::Base::Base58Btc, bytes)
    }

    /// The `did:key` identifier: `did:key:` followed by [`to_multibase`](Self::to_multibase).
    pub fn to_did_key(&self) -> String {
        format!("{DID_KEY_PREFIX}{}", self.to_multibase())
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.verifier {
            Verifier::P256 { .. } => KeyAlgorithm::P256,
            Verifier::Secp256k1(_) => KeyAlgorithm::Secp256k1,
        }
    }

    /// The compressed SEC1 encoding of the point (33 bytes, `02`/`03` then `x`).
    pub fn compressed_bytes(&self) -> &[u8; COMPRESSED_KEY_LEN] {
        &self.compressed
    }

    /// Checks an atproto signature: 64-byte compact `r‖s`, low-S, ECDSA over SHA-256 of
    /// `message`. DER signatures, high-S signatures and any other length are refused.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        if signature.len() != SIGNATURE_LEN {
            return Err(SignatureError::Length(signature.len()));
        }
        match &self.verifier {
            Verifier::P256 { uncompressed } => {
                let parsed = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Malformed)?;
                if bool::from(parsed.s().is_high()) {
                    return Err(SignatureError::HighS);
                }
                ring_sig::UnparsedPublicKey::new(&ring_sig::ECDSA_P256_SHA256_FIXED, uncompressed)
                    .verify(message, signature)
                    .map_err(|_| SignatureError::Mismatch)
            }
            Verifier::Secp256k1(key) => {
                let parsed = k256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Malformed)?;
                if bool::from(parsed.s().is_high()) {
                    return Err(SignatureError::HighS);
                }
                key.verify(message, &parsed)
                    .map_err(|_| SignatureError::Mismatch)
            }
        }
    }
}

fn decode_base58btc(multibase: &str) -> Result<Vec<u8>, KeyError> {
    if multibase.len() > MAX_MULTIBASE_LEN {
        return Err(KeyError::Multibase("too long for a public key".into()));
    }
    let encoded = multibase
        .strip_prefix('z')
        .ok_or_else(|| KeyError::Multibase("expected base58btc (prefix `z`)".into()))?;
    multibase::Base::Base58Btc
        .decode(encoded)
        .map_err(|e| KeyError::Multibase(e.to_string()))
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm() == other.algorithm() && self.compressed == other.compressed
    }
}

impl Eq for PublicKey {}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.algorithm().hash(state);
        self.compressed.hash(state);
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_did_key())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey")
            .field(&self.to_did_key())
            .finish()
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    /// Parses a `did:key` identifier.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_did_key(s)
    }
}

/// A private key with its public half, able to make atproto signatures.
///
/// `Debug` shows only the algorithm and `did:key`. The `p256`/`k256` copies of the private
/// scalar are wiped when the keypair is dropped; `ring`'s internal copy of a P-256 key (held in
/// Montgomery form) is not, as `ring` does not zeroize its key material.
pub struct Keypair {
    secret: Secret,
    public: PublicKey,
}

enum Secret {
    /// `ring` signs; the `p256` key is kept for export and as a signer of last resort.
    P256 {
        key: p256::SecretKey,
        fast: ring_sig::EcdsaKeyPair,
    },
    Secp256k1(k256::ecdsa::SigningKey),
}

impl Keypair {
    /// Generates a fresh key from the operating system's random source.
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        let mut rng = rand::rngs::OsRng;
        match algorithm {
            KeyAlgorithm::P256 => {
                let key = p256::SecretKey::random(&mut rng);
                Self::from_p256(key)
                    .expect("ring accepts every valid P-256 scalar with its own public point")
            }
            KeyAlgorithm::Secp256k1 => Self::from_k256(k256::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    /// Rebuilds a keypair from its raw private key: a 32-byte big-endian scalar in `[1, n − 1]`.
    pub fn from_private_bytes(algorithm: KeyAlgorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = || KeyError::InvalidPrivateKey(algorithm);
        if bytes.len() != PRIVATE_KEY_LEN {
            return Err(invalid());
        }
        match algorithm {
            KeyAlgorithm::P256 => {
                let key = p256::SecretKey::from_slice(bytes).map_err(|_| invalid())?;
                Self::from_p256(key)
            }
            KeyAlgorithm::Secp256k1 => {
                let key = k256::ecdsa::SigningKey::from_slice(bytes).map_err(|_| invalid())?;
                Ok(Self::from_k256(key))
            }
        }
    }

    /// Rebuilds a keypair from its raw private key written as 64 hex characters (surrounding
    /// whitespace ignored), as operators configure keys.
    pub fn from_private_hex(algorithm: KeyAlgorithm, text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            (0..text.len())
                .step_by(2)
                .map(|i| {
                    text.get(i..i + 2)
                        .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or(KeyError::InvalidPrivateKey(algorithm))?,
        );
        Self::from_private_bytes(algorithm, &bytes)
    }

    fn from_p256(key: p256::SecretKey) -> Result<Self, KeyError> {
        let point = key.public_key();
        let public = PublicKey::from_p256(&point);
        let uncompressed = point.to_encoded_point(false);
        let scalar = Zeroizing::new(p256_scalar_bytes(&key));
        let fast = ring_sig::EcdsaKeyPair::from_private_key_and_public_key(
            &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar.as_slice(),
            uncompressed.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|_| KeyError::InvalidPrivateKey(KeyAlgorithm::P256))?;
        debug_assert_eq!(fast.public_key().as_ref(), uncompressed.as_bytes());
        Ok(Self {
            secret: Secret::P256 { key, fast },
            public,
        })
    }

    fn from_k256(key: k256::ecdsa::SigningKey) -> Self {
        let public = PublicKey::from_k256(*key.verifying_key());
        Self {
            secret: Secret::Secp256k1(key),
            public,
        }
    }

    /// The raw private key (32-byte big-endian scalar), wiped from memory when dropped. This is
    /// the form stored in `signing_key` files and tables.
    pub fn private_bytes(&self) -> Zeroizing<[u8; PRIVATE_KEY_LEN]> {
        Zeroizing::new(match &self.secret {
            Secret::P256 { key, .. } => p256_scalar_bytes(key),
            Secret::Secp256k1(key) => {
                let mut field = key.to_bytes();
                let mut out = [0u8; PRIVATE_KEY_LEN];
                out.copy_from_slice(&field);
                field[..].zeroize();
                out
            }
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// The public key as a `did:key` identifier.
    pub fn did_key(&self) -> String {
        self.public.to_did_key()
    }

    /// Signs `message` (ECDSA over its SHA-256 digest) and returns the 64-byte compact `r‖s`
    /// signature, always low-S.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        match &self.secret {
            Secret::P256 { key, fast } => {
                let rng = ring::rand::SystemRandom::new();
                let signature = fast
                    .sign(&rng, message)
                    .ok()
                    .and_then(|sig| p256::ecdsa::Signature::from_slice(sig.as_ref()).ok())
                    // ring fails only if the system random source does; the deterministic
                    // RFC 6979 signer needs no randomness.
                    .unwrap_or_else(|| p256::ecdsa::SigningKey::from(key).sign(message));
                compact(&signature.normalize_s().unwrap_or(signature).to_bytes())
            }
            Secret::Secp256k1(key) => {
                let signature: k256::ecdsa::Signature = key.sign(message);
                compact(&signature.normalize_s().unwrap_or(signature).to_bytes())
            }
        }
    }
}

fn p256_scalar_bytes(key: &p256::SecretKey) -> [u8; PRIVATE_KEY_LEN] {
    let mut field = key.to_bytes();
    let mut out = [0u8; PRIVATE_KEY_LEN];
    out.copy_from_slice(&field);
    field[..].zeroize();
    out
}

fn compact(bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut out = [0u8; SIGNATURE_LEN];
    out.copy_from_slice(bytes);
    out
}

impl Clone for Keypair {
    fn clone(&self) -> Self {
        Self::from_private_bytes(self.algorithm(), self.private_bytes().as_slice())
            .expect("a keypair's own private key is valid")
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("algorithm", &self.algorithm())
            .field("did_key", &self.did_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicodec_prefixes_are_the_varints_of_the_codes() {
        for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::Secp256k1] {
            let mut code = algorithm.multicodec();
            let mut varint = Vec::new();
            loop {
                let byte = (code & 0x7f) as u8;
                code >>= 7;
                if code == 0 {
                    varint.push(byte);
                    break;
                }
                varint.push(byte | 0x80);
            }
            assert_eq!(varint, algorithm.multicodec_prefix(), "{algorithm}");
        }
    }

    #[test]
    fn did_key_prefixes_match_the_atproto_conventions() {
        assert!(
            Keypair::generate(KeyAlgorithm::P256)
                .did_key()
                .starts_with("did:key:zDn")
        );
        assert!(
            Keypair::generate(KeyAlgorithm::Secp256k1)
                .did_key()
                .starts_with("did:key:zQ3s")
        );
    }

    #[test]
    fn debug_does_not_leak_the_private_key() {
        let keypair = Keypair::generate(KeyAlgorithm::P256);
        let debug = format!("{keypair:?}");
        let private = keypair.private_bytes();
        let hex: String = private.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!debug.contains(&hex));
        assert!(!debug.contains(&format!("{:?}", &private[..])));
        assert!(debug.contains(&keypair.did_key()));
    }

    #[test]
    fn keys_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Keypair>();
        assert_send_sync::<PublicKey>();
    }

    #[test]
    fn clone_keeps_the_same_key() {
        let keypair = Keypair::generate(KeyAlgorithm::P256);
        let copy = keypair.clone();
        assert_eq!(copy.public_key(), keypair.public_key());
        let sig = copy.sign(b"m");
        assert_eq!(keypair.public_key().verify(b"m", &sig), Ok(()));
    }
}
