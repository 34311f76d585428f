//! The service's attestation of an enrollment: a signature binding a user DID, the user's
//! boundary set (at signing time) and the user's signing key.
//!
//! The signed payload is the canonical DAG-CBOR map `{did, boundaries, signingKey}` with the
//! boundaries sorted (by UTF-16 code units) on a copy; the signature is the service key's
//! compact low-S ECDSA signature over its SHA-256 digest. An attestation does not prove current
//! membership, only what the service signed.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::data::to_dag_cbor;
use crate::keys::{KeyError, Keypair, PublicKey, SignatureError};

/// The attestation published in a `zone.stratos.actor.enrollment` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The 64-byte compact `r‖s` low-S signature over [`attestation_payload`].
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
    /// The service's public key as a `did:key` (secp256k1, `did:key:zQ3s…`).
    pub signing_key: String,
}

/// Why an attestation did not verify.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    /// The attestation's `signingKey` is not a supported `did:key`.
    #[error("attestation signing key: {0}")]
    SigningKey(#[from] KeyError),
    /// The signature is malformed, not low-S, or does not match the rebuilt payload.
    #[error("attestation signature: {0}")]
    Signature(#[from] SignatureError),
}

/// The exact field order of the payload is the canonical DAG-CBOR order (shorter keys first).
#[derive(Serialize)]
struct Payload<'a> {
    did: &'a str,
    boundaries: Vec<&'a str>,
    #[serde(rename = "signingKey")]
    signing_key: &'a str,
}

/// Orders strings by their UTF-16 code units, as the reference implementation sorts. This is
/// byte order for ASCII and differs from it only between U+E000–U+FFFF and supplementary
/// characters.
fn utf16_order(a: &&str, b: &&str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The bytes the service signs: the canonical DAG-CBOR map `did`, `boundaries` (sorted copy),
/// `signingKey`. The caller's list is left untouched.
pub fn attestation_payload<S: AsRef<str>>(
    did: &str,
    boundaries: &[S],
    signing_key: &str,
) -> Vec<u8> {
    let mut sorted: Vec<&str> = boundaries.iter().map(AsRef::as_ref).collect();
    sorted.sort_by(utf16_order);
    to_dag_cbor(&Payload {
        did,
        boundaries: sorted,
        signing_key,
    })
    .expect("a map of text strings and a list of text strings always encodes as DAG-CBOR")
}

/// Signs an enrollment with the service key. `user_signing_key` is the user's P-256 `did:key`.
pub fn sign_attestation<S: AsRef<str>>(
    service_key: &Keypair,
    did: &str,
    boundaries: &[S],
    user_signing_key: &str,
) -> Attestation {
    let payload = attestation_payload(did, boundaries, user_signing_key);
    Attestation {
        sig: service_key.sign(&payload).to_vec(),
        signing_key: service_key.did_key(),
    }
}

/// Rebuilds the payload from the enrollment (record owner's DID, `boundaries[].value`, user
/// `signingKey`) and checks the attestation's signature against its own `signingKey`.
///
/// This proves only that the holder of `attestation.signing_key` signed these values; callers
/// must still check that key is the service's (from its DID document).
pub fn verify_attestation<S: AsRef<str>>(
    attestation: &Attestation,
    did: &str,
    boundaries: &[S],
    user_signing_key: &str,
) -> Result<(), AttestationError> {
    let service_key = PublicKey::from_did_key(&attestation.signing_key)?;
    let payload = attestation_payload(did, boundaries, user_signing_key);
    service_key.verify(&payload, &attestation.sig)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_order_differs_from_byte_order_above_the_bmp() {
        // U+FF21 (one UTF-16 unit 0xFF21) sorts after U+1F600 (surrogates 0xD83D…) in UTF-16,
        // but before it in UTF-8 byte order.
        let (bmp, astral) = ("\u{ff21}", "\u{1f600}");
        assert!(bmp.as_bytes() < astral.as_bytes());
        assert_eq!(utf16_order(&bmp, &astral), Ordering::Greater);
        let payload = attestation_payload("did:plc:a", &[bmp, astral], "k");
        let reversed = attestation_payload("did:plc:a", &[astral, bmp], "k");
        assert_eq!(payload, reversed);
        let astral_at = payload
            .windows(4)
            .position(|w| w == astral.as_bytes())
            .expect("astral boundary present");
        let bmp_at = payload
            .windows(3)
            .position(|w| w == bmp.as_bytes())
            .expect("bmp boundary present");
        assert!(astral_at < bmp_at);
    }
}
