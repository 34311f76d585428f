//! `zone.stratos.repo.importRepo` over HTTP: a CAR file becomes the actor's repository,
//! re-signed with the actor's key; bad CAR files and non-empty repositories are refused.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::{Value, json};
use stratos_command::http::HttpConfig;
use stratos_schema::blocks::BlockMap;
use stratos_schema::car::write_car;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::{cid_for_dag_cbor, to_dag_cbor};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use stratos_schema::syntax::Tid;
use support::{GENERAL, Stack, serve_http};

const ALICE: &str = "did:plc:alice";

/// A repository of `did` with one post per text, signed by some other key, as a CAR file.
fn repository(did: &str, texts: &[&str], boundary: &str) -> Vec<u8> {
    let mut blocks = BlockMap::new();
    let mut tree = Mst::new();
    for (index, text) in texts.iter().enumerate() {
        let record = to_dag_cbor(&json!({
            "$type": "zone.stratos.feed.post",
            "text": text,
            "boundary": {"values": [{"value": boundary}]},
            "createdAt": "2026-11-28T12:00:00.000Z",
        }))
        .unwrap();
        let cid = cid_for_dag_cbor(&record);
        blocks.insert(cid, record);
        let rkey = Tid::from_parts(1_764_000_000_000_000 + index as u64, 0);
        tree = tree
            .insert(&blocks, &format!("zone.stratos.feed.post/{rkey}"), cid)
            .unwrap();
    }
    blocks.extend(tree.new_nodes());
    let commit = UnsignedCommit::new(
        did.parse().unwrap(),
        tree.root_cid(),
        Tid::from_parts(1_764_000_100_000_000, 0),
    )
    .sign(&Keypair::generate(KeyAlgorithm::P256));
    let (commit_cid, commit_bytes) = commit.to_block();
    blocks.insert(commit_cid, commit_bytes);
    write_car(&[commit_cid], blocks.iter())
}

async fn import(base: &str, car: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/xrpc/zone.stratos.repo.importRepo"))
        .bearer_auth(ALICE)
        .header("content-type", "application/vnd.ipld.car")
        .body(car)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_car_file_becomes_the_repository() {
    let stack = Stack::new("sqlite").await;
    let commands = stack.commands().await;
    commands
        .enroll(&ALICE.parse().unwrap(), &["general".into()])
        .await
        .unwrap();
    let config = HttpConfig {
        dev_auth: true,
        max_import: 64 * 1024,
        ..HttpConfig::default()
    };
    let (base, _stop) = serve_http(&stack, config).await;

    // Refused before anything is written.
    let refused = [
        (b"not a car".to_vec(), "InvalidCar"),
        (Vec::new(), "InvalidCar"),
        (repository("did:plc:bob", &["x"], GENERAL), "InvalidCar"),
        (
            repository(
                ALICE,
                &["fine", "elsewhere"],
                "did:web:other.example.com/general",
            ),
            "InvalidRecord",
        ),
    ];
    for (car, expected) in refused {
        let (status, body) = import(&base, car).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, expected),
            "{body}"
        );
    }
    // A CAR over the limit is refused as an invalid CAR (spec §2.4.11), naming the limit.
    let (status, body) = import(&base, vec![0; 70 * 1024]).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "InvalidCar")
    );
    assert!(
        body["message"].as_str().unwrap().contains("65536 bytes"),
        "{body}"
    );
    assert!(stack.store.records(ALICE).await.unwrap().is_empty());

    // An enrolled actor's empty repository takes the import, re-signed with the actor's key.
    let (status, body) = import(&base, repository(ALICE, &["one", "two", "three"], GENERAL)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"], 3);
    let records = stack.store.records(ALICE).await.unwrap();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.block.is_some() && r.boundaries == [GENERAL])
    );
    let head = stack.store.head(ALICE).await.unwrap().unwrap();
    assert_eq!(body["commit"]["cid"], head.commit.to_string());
    let audit_events = stack.store.actor_events(ALICE, 0, 10).await.unwrap();
    assert_eq!(audit_events.len(), 1);

    // Writes continue on the imported repository; a second import is refused.
    let written = commands
        .write(
            &ALICE.parse().unwrap(),
            vec![stratos_command::WriteOp::Create {
                collection: "zone.stratos.feed.post".parse().unwrap(),
                rkey: None,
                record: stratos_schema::data::json_to_ipld(&json!({
                    "$type": "zone.stratos.feed.post", "text": "after",
                    "boundary": {"values": [{"value": GENERAL}]},
                    "createdAt": "2026-11-28T12:00:00.000Z",
                }))
                .unwrap(),
            }],
            None,
        )
        .await;
    assert!(written.is_ok(), "{written:?}");
    let (status, body) = import(&base, repository(ALICE, &["again"], GENERAL)).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "RepoAlreadyExists")
    );
    assert_eq!(stack.store.records(ALICE).await.unwrap().len(), 4);
    stack.finish().await;
}
