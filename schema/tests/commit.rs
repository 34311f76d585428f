//! Signed v3 commits: build, sign, verify, and refuse anything else.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use serde_bytes::ByteBuf;
use stratos_schema::Ipld;
use stratos_schema::commit::{Commit, CommitError, UnsignedCommit};
use stratos_schema::data::{cid_for_dag_cbor, decode_ipld, to_dag_cbor};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use stratos_schema::syntax::{Did, Tid};

fn unsigned() -> UnsignedCommit {
    let did: Did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap();
    UnsignedCommit::new(
        did,
        Mst::new().root_cid(),
        Tid::from_parts(1_732_000_000_000_000, 3),
    )
}

#[test]
fn commits_sign_and_verify_with_both_key_types() {
    for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::Secp256k1] {
        let key = Keypair::generate(algorithm);
        let commit = unsigned().sign(&key);
        assert_eq!(commit.sig.len(), 64);
        commit.verify(&key.public_key()).unwrap();
        let other = Keypair::generate(algorithm);
        assert!(matches!(
            commit.verify(&other.public_key()),
            Err(CommitError::Signature(_))
        ));
    }
}

#[test]
fn the_block_has_exactly_the_v3_fields_in_canonical_order() {
    let key = Keypair::generate(KeyAlgorithm::P256);
    let (cid, bytes) = unsigned().sign(&key).to_block();
    assert_eq!(cid, cid_for_dag_cbor(&bytes));
    let Ipld::Map(map) = decode_ipld(&bytes).unwrap() else {
        panic!("a commit is a map");
    };
    let keys: Vec<_> = map.keys().map(String::as_str).collect();
    assert_eq!(keys, ["data", "did", "prev", "rev", "sig", "version"]);
    assert_eq!(map["prev"], Ipld::Null);
    assert_eq!(map["version"], Ipld::Integer(3));
    // Canonical DAG-CBOR puts shorter keys first: did, rev, sig, data, prev, version.
    let did_at = bytes.windows(3).position(|w| w == b"did").unwrap();
    let version_at = bytes.windows(7).position(|w| w == b"version").unwrap();
    assert!(did_at < version_at);
}

#[test]
fn blocks_round_trip_and_tampering_is_detected() {
    let key = Keypair::generate(KeyAlgorithm::P256);
    let commit = unsigned().sign(&key);
    let (_, bytes) = commit.to_block();
    let decoded = Commit::from_block(&bytes).unwrap();
    assert_eq!(decoded, commit);
    decoded.verify(&key.public_key()).unwrap();

    let mut moved = decoded.clone();
    moved.rev = Tid::from_parts(1_732_000_000_000_001, 3);
    assert!(moved.verify(&key.public_key()).is_err());

    let mut high_s = decoded.clone();
    let mut sig = high_s.sig.to_vec();
    sig[63] ^= 1;
    high_s.sig = ByteBuf::from(sig);
    assert!(high_s.verify(&key.public_key()).is_err());
}

#[test]
fn other_versions_shapes_and_garbage_are_refused() {
    let key = Keypair::generate(KeyAlgorithm::P256);
    let commit = unsigned().sign(&key);
    let (_, bytes) = commit.to_block();
    let Ipld::Map(map) = decode_ipld(&bytes).unwrap() else {
        unreachable!()
    };

    let mut v2 = map.clone();
    v2.insert("version".into(), Ipld::Integer(2));
    let bytes_v2 = to_dag_cbor(&Ipld::Map(v2)).unwrap();
    assert_eq!(
        Commit::from_block(&bytes_v2),
        Err(CommitError::UnsupportedVersion(2))
    );

    let mut no_prev = map.clone();
    no_prev.remove("prev");
    assert!(Commit::from_block(&to_dag_cbor(&Ipld::Map(no_prev)).unwrap()).is_err());

    let mut extra = map.clone();
    extra.insert("extra".into(), Ipld::Bool(true));
    assert!(Commit::from_block(&to_dag_cbor(&Ipld::Map(extra)).unwrap()).is_err());

    let mut bad_did = map.clone();
    bad_did.insert("did".into(), Ipld::String("not a did".into()));
    assert!(Commit::from_block(&to_dag_cbor(&Ipld::Map(bad_did)).unwrap()).is_err());

    for garbage in [&b""[..], b"\xa0", b"\xff\xff", &bytes[..bytes.len() - 1]] {
        assert!(Commit::from_block(garbage).is_err());
    }
}
