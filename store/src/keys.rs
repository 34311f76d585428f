//! Wrapping of actor keys with the service master key (XChaCha20-Poly1305).
//!
//! Wrapped form: `version (1) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`; the associated data binds the
//! key to its actor and kind, so a wrapped key cannot be moved to another actor or used as another
//! kind of key. A wrong master key fails loudly instead of yielding garbage.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const CONTEXT: &[u8] = b"stratos/keystore/v1";

/// What a stored key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The actor's data key, sealing its record blocks in the log.
    Data,
    /// The actor's P-256 repository signing key.
    Signing,
    /// The actor's OAuth session with its PDS (tokens and DPoP key).
    OAuthSession,
    /// An OAuth authorization waiting for its callback (stored under its `state`).
    OAuthPending,
    /// The OAuth session of an unenrolled actor, kept until its last PDS writes are made and
    /// it is revoked (a new enrollment gets a new session beside it).
    OAuthRetired,
}

impl KeyKind {
    /// The name stored beside the key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Signing => "signing",
            Self::OAuthSession => "oauth-session",
            Self::OAuthPending => "oauth-pending",
            Self::OAuthRetired => "oauth-retired",
        }
    }
}

/// Why a key could not be unwrapped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyStoreError {
    /// The master key is not 32 bytes of hex.
    #[error("the master key must be 64 hex characters (32 bytes)")]
    BadMasterKey,
    /// The wrapped key does not open with this master key (wrong key, or tampered).
    #[error("a stored key does not open with the configured master key")]
    WrongMasterKey,
    /// The stored bytes are not a wrapped key.
    #[error("a stored key is malformed")]
    Malformed,
}

/// The service master key. Lives only in configuration; `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key from 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyStoreError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyStoreError::BadMasterKey);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16)
                .map_err(|_| KeyStoreError::BadMasterKey)?;
        }
        Ok(Self(key))
    }

    /// The key as 64 hex characters, for writing it to a key file once.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    fn aad(did: &str, kind: KeyKind) -> Vec<u8> {
        [CONTEXT, kind.as_str().as_bytes(), b"\0", did.as_bytes()].concat()
    }

    /// Wraps a key of `did`.
    pub fn wrap(&self, did: &str, kind: KeyKind, key: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(did, kind);
        let ciphertext = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any key-sized input");
        [&[VERSION][..], &nonce, &ciphertext].concat()
    }

    /// Unwraps a key of `did`.
    pub fn unwrap(
        &self,
        did: &str,
        kind: KeyKind,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        if wrapped.len() < 1 + NONCE_LEN + 16 || wrapped[0] != VERSION {
            return Err(KeyStoreError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = wrapped[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| KeyStoreError::Malformed)?;
        let aad = Self::aad(did, kind);
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &wrapped[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyStoreError::WrongMasterKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_open_only_for_their_actor_kind_and_master_key() {
        let master = MasterKey::generate();
        let wrapped = master.wrap("did:plc:a", KeyKind::Data, &[7; 32]);
        assert_eq!(
            master
                .unwrap("did:plc:a", KeyKind::Data, &wrapped)
                .unwrap()
                .as_slice(),
            &[7; 32]
        );
        assert_eq!(
            master.unwrap("did:plc:b", KeyKind::Data, &wrapped),
            Err(KeyStoreError::WrongMasterKey)
        );
        assert_eq!(
            master.unwrap("did:plc:a", KeyKind::Signing, &wrapped),
            Err(KeyStoreError::WrongMasterKey)
        );
        assert_eq!(
            MasterKey::generate().unwrap("did:plc:a", KeyKind::Data, &wrapped),
            Err(KeyStoreError::WrongMasterKey)
        );
        assert_eq!(
            master.unwrap("did:plc:a", KeyKind::Data, &wrapped[..10]),
            Err(KeyStoreError::Malformed)
        );
        assert!(!wrapped.windows(32).any(|w| w == [7; 32]));
    }

    #[test]
    fn master_keys_parse_from_hex_only() {
        assert!(MasterKey::from_hex(&"ab".repeat(32)).is_ok());
        assert_eq!(
            MasterKey::from_hex("abc").err(),
            Some(KeyStoreError::BadMasterKey)
        );
        assert_eq!(
            MasterKey::from_hex(&"zz".repeat(32)).err(),
            Some(KeyStoreError::BadMasterKey)
        );
        assert_eq!(format!("{:?}", MasterKey::generate()), "MasterKey(..)");
    }
}
