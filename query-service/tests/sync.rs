//! Repository export over HTTP: `sync.getRecord` proof CARs (presence for viewers who may see
//! the record; absence only for the owner) and `getRepo` CARs for the owner or an allow-listed
//! service, checked with the repository core's own CAR reader and proof verifier.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod support;

use stratos_schema::blocks::BlockSource;
use stratos_schema::car::{CarLimits, read_car};
use stratos_schema::commit::Commit;
use stratos_schema::data::parse_cid;
use stratos_schema::mst::{Mst, verify_proof};
use support::{APPVIEW, GENERAL, System, WRITERS, error_name};

const SYNC_RECORD: &str = "com.atproto.sync.getRecord";
const GET_REPO: &str = "zone.stratos.sync.getRepo";
const POST: &str = "zone.stratos.feed.post";

async fn proofs_of_records(system: System) {
    let alice = system.enroll("alice", &["general", "writers"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let (open, open_cid) = system.post(&alice, "general", &[GENERAL]).await;
    let (closed, _) = system.post(&alice, "writers", &[WRITERS]).await;
    let rkey = |uri: &str| uri.rsplit('/').next().unwrap().to_string();
    let head = system.store.head(&alice).await.unwrap().unwrap();

    let open_rkey = rkey(&open);
    let query = [
        ("did", alice.as_str()),
        ("collection", POST),
        ("rkey", open_rkey.as_str()),
    ];
    let (status, car) = system.call_bytes(Some(&bob), SYNC_RECORD, &query).await;
    assert_eq!(status, 200);
    let (roots, blocks) = read_car(&car, CarLimits::default()).unwrap();
    assert_eq!(roots, [head.commit]);
    let commit = Commit::from_block(blocks.get_block(&head.commit).unwrap()).unwrap();
    let key = format!("{POST}/{open_rkey}");
    let proven = verify_proof(&blocks, commit.data, &key).unwrap();
    assert_eq!(proven, Some(parse_cid(&open_cid).unwrap()));
    assert!(
        blocks.contains(&proven.unwrap()),
        "the record block comes along"
    );

    // Bob may not see the writers post: same answer as a missing record.
    let closed_rkey = rkey(&closed);
    let query = [
        ("did", alice.as_str()),
        ("collection", POST),
        ("rkey", closed_rkey.as_str()),
    ];
    let (status, _) = system.call_bytes(Some(&bob), SYNC_RECORD, &query).await;
    assert_eq!(status, 400);

    // The owner gets a proof of absence.
    let query = [
        ("did", alice.as_str()),
        ("collection", POST),
        ("rkey", "3zzzzzzzzzzzz"),
    ];
    let (status, car) = system.call_bytes(Some(&alice), SYNC_RECORD, &query).await;
    assert_eq!(status, 200);
    let (_, blocks) = read_car(&car, CarLimits::default()).unwrap();
    assert_eq!(
        verify_proof(&blocks, commit.data, &format!("{POST}/3zzzzzzzzzzzz")).unwrap(),
        None
    );
    let (status, _) = system.call_bytes(Some(&bob), SYNC_RECORD, &query).await;
    assert_eq!(status, 400);
    let query = [
        ("did", "did:plc:nobody"),
        ("collection", POST),
        ("rkey", "3zzzzzzzzzzzz"),
    ];
    let (status, body) = system.call(Some(&bob), SYNC_RECORD, &query).await;
    assert_eq!((status, error_name(&body)), (400, "RepoNotFound"));
    system.finish().await;
}

async fn exporting_a_repo(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let mut cids = Vec::new();
    for i in 0..30 {
        let (_, cid) = system.post(&alice, &format!("post {i}"), &[GENERAL]).await;
        cids.push(parse_cid(&cid).unwrap());
    }
    let head = system.store.head(&alice).await.unwrap().unwrap();
    for caller in [alice.as_str(), support::APPVIEW] {
        let (status, car) = system
            .call_bytes(Some(caller), GET_REPO, &[("did", &alice)])
            .await;
        assert_eq!(status, 200, "{caller}");
        let (roots, blocks) = read_car(&car, CarLimits::default()).unwrap();
        assert_eq!(roots, [head.commit]);
        let commit = Commit::from_block(blocks.get_block(&head.commit).unwrap()).unwrap();
        let tree = Mst::load(&blocks, commit.data).unwrap();
        let entries = tree.entries(&blocks).unwrap();
        assert_eq!(entries.len(), 30);
        for (_, cid) in &entries {
            assert!(blocks.contains(cid), "every record block is in the export");
        }
    }
    // `since` a revision: the whole tree, and only the records written after it.
    let middle = {
        let events = system.store.actor_events(&alice, 0, 100).await.unwrap();
        events[20].rev.clone().unwrap()
    };
    let (status, car) = system
        .call_bytes(
            Some(&alice),
            GET_REPO,
            &[("did", &alice), ("since", &middle)],
        )
        .await;
    assert_eq!(status, 200);
    let (_, blocks) = read_car(&car, CarLimits::default()).unwrap();
    let present = cids.iter().filter(|cid| blocks.contains(cid)).count();
    assert!(present > 0 && present < 30, "{present} of 30 records");
    assert!(!blocks.contains(&cids[0]));
    assert!(blocks.contains(&cids[29]));

    for caller in [Some(bob.as_str()), None] {
        let (status, body) = system.call(caller, GET_REPO, &[("did", &alice)]).await;
        assert_eq!(
            (status, error_name(&body)),
            (401, "AuthRequired"),
            "{caller:?}"
        );
    }
    let (status, body) = system
        .call(
            Some(APPVIEW),
            GET_REPO,
            &[("did", &alice), ("since", "yesterday")],
        )
        .await;
    assert_eq!((status, error_name(&body)), (400, "InvalidRequest"));
    system.finish().await;
}

on_both_backends!(proofs_of_records, exporting_a_repo);
