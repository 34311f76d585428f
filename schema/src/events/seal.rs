//! Sealing private record blocks for the log: XChaCha20-Poly1305 under a per-actor data key.
//!
//! Sealed form: `version (1 byte) ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`. The
//! associated data binds the ciphertext to the actor's DID and the block's CID, so a sealed block
//! cannot be replayed under another actor or CID; opening also checks the plaintext against the
//! CID. Destroying an actor's data key makes every copy of its sealed blocks unreadable.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cid::Cid;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::data::verify_cid;
use crate::syntax::Did;

/// The version byte of the sealed format.
pub const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_CONTEXT: &[u8] = b"stratos/seal/v1";

/// Why a sealed block could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Too short, or an unknown version byte.
    #[error("sealed block is malformed")]
    Malformed,
    /// Wrong key, wrong actor or CID, or tampered bytes.
    #[error("sealed block does not open with this key")]
    Unauthentic,
    /// The plaintext does not hash to the CID it was sealed under.
    #[error("opened block does not match its CID")]
    CidMismatch,
    /// A data key of the wrong length.
    #[error("a data key is 32 bytes")]
    BadKey,
}

/// A per-actor symmetric key. Lives only in the key store, wrapped by the master key; never in
/// the log.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// The raw bytes, for wrapping by the key store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

fn associated_data(did: &Did, cid: &Cid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + did.as_str().len() + 40);
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(did.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(&cid.to_bytes());
    aad
}

/// Encrypts a block of `did` stored under `cid`.
pub fn seal(key: &DataKey, did: &Did, cid: &Cid, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = associated_data(did, cid);
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any length that fits in memory");
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(SEAL_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Decrypts a sealed block and checks it against its CID.
pub fn open(key: &DataKey, did: &Did, cid: &Cid, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_VERSION {
        return Err(SealError::Malformed);
    }
    let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Malformed)?;
    let aad = associated_data(did, cid);
    let plaintext = key
        .cipher()
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Unauthentic)?;
    verify_cid(cid, &plaintext).map_err(|_| SealError::CidMismatch)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cid_for_dag_cbor;

    fn did(text: &str) -> Did {
        text.parse().unwrap()
    }

    #[test]
    fn sealed_blocks_open_only_with_the_right_key_actor_and_cid() {
        let key = DataKey::generate();
        let alice = did("did:plc:alice0000000000000000000");
        let block = b"\xa1dtexteprivate";
        let cid = cid_for_dag_cbor(block);
        let sealed = seal(&key, &alice, &cid, block);
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(open(&key, &alice, &cid, &sealed).unwrap(), block);

        let other_key = DataKey::generate();
        assert_eq!(
            open(&other_key, &alice, &cid, &sealed),
            Err(SealError::Unauthentic)
        );
        let bob = did("did:plc:bob00000000000000000000");
        assert_eq!(open(&key, &bob, &cid, &sealed), Err(SealError::Unauthentic));
        let other_cid = cid_for_dag_cbor(b"\xa0");
        assert_eq!(
            open(&key, &alice, &other_cid, &sealed),
            Err(SealError::Unauthentic)
        );

        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            open(&key, &alice, &cid, &tampered),
            Err(SealError::Unauthentic)
        );
        assert_eq!(
            open(&key, &alice, &cid, &sealed[..20]),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn a_block_sealed_under_the_wrong_cid_is_caught_on_open() {
        let key = DataKey::generate();
        let alice = did("did:plc:alice0000000000000000000");
        let claimed = cid_for_dag_cbor(b"\xa0");
        let sealed = seal(&key, &alice, &claimed, b"\x80");
        assert_eq!(
            open(&key, &alice, &claimed, &sealed),
            Err(SealError::CidMismatch)
        );
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let key = DataKey::generate();
        let alice = did("did:plc:alice0000000000000000000");
        let cid = cid_for_dag_cbor(b"\xa0");
        assert_ne!(
            seal(&key, &alice, &cid, b"\xa0"),
            seal(&key, &alice, &cid, b"\xa0")
        );
        assert!(DataKey::from_bytes(&[0; 31]).is_err());
        assert_eq!(format!("{key:?}"), "DataKey(..)");
    }
}
