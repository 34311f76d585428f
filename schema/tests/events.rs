//! The commit-log event schema: round trips, self-verification, sealing and refusals.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use serde_bytes::ByteBuf;
use stratos_schema::Ipld;
use stratos_schema::attestation::sign_attestation;
use stratos_schema::blocks::BlockMap;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::{decode_ipld, to_dag_cbor};
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{
    BoundariesEvent, CommitEvent, CommitSlice, EnrollmentEvent, Event, EventError, EventType,
    ImportEvent, OpAction, RepoOp, SCHEMA_VERSION, SealedRecord, UnenrollEvent,
};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::{Mst, diff};
use stratos_schema::syntax::{Datetime, Did, Tid};

fn did() -> Did {
    "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap()
}

fn time() -> Datetime {
    "2026-11-23T12:00:00.000Z".parse().unwrap()
}

const BOUNDARY: &str = "did:web:stratos.example.com/general";

/// A one-record commit on an empty repo, as the command service builds it.
fn commit_event(actor_key: &Keypair, data_key: &DataKey) -> CommitEvent {
    let record = to_dag_cbor(&serde_json::json!({
        "$type": "zone.stratos.feed.post", "text": "a private thought",
        "boundary": {"values": [{"value": BOUNDARY}]}, "createdAt": "2026-11-23T12:00:00.000Z"
    }))
    .unwrap();
    let mut records = BlockMap::new();
    let record_cid = records.insert_dag_cbor(record.clone());
    let before = Mst::new();
    let after = before
        .insert(&(), "zone.stratos.feed.post/3l2ij3k4k5s22", record_cid)
        .unwrap();
    let changes = diff(&(), &before, &after).unwrap();
    let commit = UnsignedCommit::new(
        did(),
        after.root_cid(),
        Tid::from_parts(1_732_000_000_000_001, 1),
    )
    .sign(actor_key);
    CommitEvent {
        did: did(),
        time: time(),
        slice: CommitSlice::new(&commit, &changes.created_nodes),
        prev_commit: None,
        since: Some(Tid::from_parts(1_732_000_000_000_000, 1)),
        ops: vec![RepoOp {
            action: OpAction::Create,
            path: "zone.stratos.feed.post/3l2ij3k4k5s22".into(),
            cid: Some(record_cid),
            prev: None,
            boundaries: vec![BOUNDARY.into()],
            prev_boundaries: Vec::new(),
        }],
        records: vec![SealedRecord::seal(data_key, &did(), record_cid, &record)],
        request: None,
    }
}

fn all_events() -> Vec<Event> {
    let actor_key = Keypair::generate(KeyAlgorithm::P256);
    let service_key = Keypair::generate(KeyAlgorithm::Secp256k1);
    let data_key = DataKey::generate();
    let attestation = sign_attestation(
        &service_key,
        did().as_str(),
        &[BOUNDARY],
        &actor_key.did_key(),
    );
    let genesis = UnsignedCommit::new(
        did(),
        Mst::new().root_cid(),
        Tid::from_parts(1_732_000_000_000_000, 1),
    )
    .sign(&actor_key);
    let commit = commit_event(&actor_key, &data_key);
    vec![
        Event::Enrollment(EnrollmentEvent {
            did: did(),
            time: time(),
            signing_key: actor_key.did_key(),
            boundaries: vec![BOUNDARY.into()],
            attestation: attestation.clone(),
            service_endpoint: "https://stratos.example.com".into(),
            genesis: Some(CommitSlice::new(
                &genesis,
                &Mst::new().node_blocks(&()).unwrap(),
            )),
        }),
        Event::Commit(commit.clone()),
        Event::Boundaries(BoundariesEvent {
            did: did(),
            time: time(),
            boundaries: vec![],
            attestation,
        }),
        Event::Import(ImportEvent {
            did: did(),
            time: time(),
            slice: commit.slice.clone(),
            prev_commit: Some(genesis.to_block().0),
            entries: commit.ops.clone(),
            records: commit.records.clone(),
        }),
        Event::Unenroll(UnenrollEvent {
            did: did(),
            time: time(),
            purge: true,
        }),
    ]
}

#[test]
fn every_event_type_round_trips_with_its_envelope() {
    for event in all_events() {
        let bytes = event.encode();
        assert_eq!(Event::decode(&bytes).unwrap(), event);
        let Ipld::Map(map) = decode_ipld(&bytes).unwrap() else {
            panic!("events are maps")
        };
        assert_eq!(map["v"], Ipld::Integer(SCHEMA_VERSION.into()));
        assert_eq!(map["t"], Ipld::String(event.event_type().as_str().into()));
        assert_eq!(map["did"], Ipld::String(did().to_string()));
        assert_eq!(
            EventType::parse(event.event_type().as_str()),
            Some(event.event_type())
        );
    }
}

#[test]
fn a_commit_event_verifies_without_any_key_material_but_the_public_key() {
    let actor_key = Keypair::generate(KeyAlgorithm::P256);
    let data_key = DataKey::generate();
    let event = commit_event(&actor_key, &data_key);
    let (commit, blocks) = event.slice.open(&did()).unwrap();
    commit.verify(&actor_key.public_key()).unwrap();
    assert!(blocks.contains(&commit.data));
    // The record is sealed: its text is not in the event, but it opens with the data key.
    let bytes = Event::Commit(event.clone()).encode();
    assert!(!bytes.windows(7).any(|w| w == b"private"));
    let record = event.records[0].open(&data_key, &did()).unwrap();
    assert!(record.windows(7).any(|w| w == b"private"));
    // A destroyed key leaves nothing readable.
    assert!(matches!(
        event.records[0].open(&DataKey::generate(), &did()),
        Err(EventError::Seal { .. })
    ));
}

#[test]
fn a_slice_for_another_actor_or_rev_is_refused() {
    let actor_key = Keypair::generate(KeyAlgorithm::P256);
    let event = commit_event(&actor_key, &DataKey::generate());
    let other: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    assert!(matches!(
        event.slice.open(&other),
        Err(EventError::Commit(_))
    ));
    let mut wrong_rev = event.slice.clone();
    wrong_rev.rev = Tid::from_parts(1, 1);
    assert!(matches!(wrong_rev.open(&did()), Err(EventError::Commit(_))));
    let mut garbage = event.slice.clone();
    garbage.blocks = ByteBuf::from(vec![1, 2, 3]);
    assert!(matches!(garbage.open(&did()), Err(EventError::Car(_))));
}

#[test]
fn unknown_versions_types_and_garbage_are_refused() {
    let bytes = all_events()[4].encode();
    let Ipld::Map(map) = decode_ipld(&bytes).unwrap() else {
        unreachable!()
    };
    let mut v2 = map.clone();
    v2.insert("v".into(), Ipld::Integer(2));
    assert!(matches!(
        Event::decode(&to_dag_cbor(&Ipld::Map(v2)).unwrap()),
        Err(EventError::UnsupportedVersion(2))
    ));
    let mut unknown = map.clone();
    unknown.insert("t".into(), Ipld::String("#tombstone".into()));
    assert!(matches!(
        Event::decode(&to_dag_cbor(&Ipld::Map(unknown)).unwrap()),
        Err(EventError::UnknownType(_))
    ));
    // Unknown fields are ignored, so the schema can grow.
    let mut extended = map.clone();
    extended.insert("reason".into(), Ipld::String("moved away".into()));
    assert!(Event::decode(&to_dag_cbor(&Ipld::Map(extended)).unwrap()).is_ok());
    for garbage in [&b""[..], b"\xa0", b"\x01", &bytes[..bytes.len() / 2]] {
        assert!(Event::decode(garbage).is_err());
    }
}

/// Prints one decoded event of every type in the atproto JSON form, for `docs/events.md`:
/// `cargo test -p stratos-schema --test events -- --ignored --nocapture print_examples`.
#[test]
#[ignore = "documentation helper"]
fn print_examples() {
    for event in all_events() {
        let value = decode_ipld(&event.encode()).unwrap();
        let mut json = stratos_schema::data::ipld_to_json(&value);
        shorten_bytes(&mut json);
        println!("{}\n", serde_json::to_string_pretty(&json).unwrap());
    }
}

/// Writes one encoded event of every type as fuzzing seeds:
/// `cargo test -p stratos-schema --test events -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "fuzzing helper"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/event_decoder");
    std::fs::create_dir_all(&dir).unwrap();
    for event in all_events() {
        let name = event
            .event_type()
            .as_str()
            .trim_start_matches('#')
            .to_string();
        std::fs::write(dir.join(format!("{name}.cbor")), event.encode()).unwrap();
    }
}

fn shorten_bytes(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(text)) = map.get_mut("$bytes")
                && text.len() > 24
            {
                *text = format!("{}…", &text[..24]);
            }
            map.values_mut().for_each(shorten_bytes);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(shorten_bytes),
        _ => {}
    }
}
