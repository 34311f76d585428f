//! Repository export over HTTP: `sync.getRecord` proof CARs (presence for viewers who may see
//! the record; absence only for the owner), `getRepo` CARs for the owner or an allow-listed
//! service, checked with the repository core's own CAR reader and proof verifier, and
//! `listBlobs` in pages.

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

/// `listBlobs` pages by CID: a full page carries the cursor of the next, the last none.
async fn blobs_listed_in_pages(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let mut images = Vec::new();
    for i in 0..3 {
        let uploaded: serde_json::Value = system
            .client
            .post(format!("{}/xrpc/com.atproto.repo.uploadBlob", system.base))
            .bearer_auth(&alice)
            .header("content-type", "image/png")
            .body(format!("\u{89}PNG picture {i}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        images.push(serde_json::json!({"image": uploaded["blob"], "alt": format!("picture {i}")}));
    }
    let mut expected: Vec<String> = images
        .iter()
        .map(|image| image["image"]["ref"]["$link"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let (status, body) = system
        .call_post(
            Some(&alice),
            "com.atproto.repo.createRecord",
            &serde_json::json!({"repo": alice, "collection": POST, "record": {
                "$type": POST, "text": "three pictures",
                "boundary": {"values": [{"value": GENERAL}]},
                "embed": {"$type": "app.bsky.embed.images", "images": images},
                "createdAt": "2026-11-28T12:00:00.000Z",
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    const LIST: &str = "com.atproto.sync.listBlobs";
    let (status, first) = system
        .call(Some(&alice), LIST, &[("did", &alice), ("limit", "2")])
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cids"], serde_json::json!(expected[..2]));
    assert_eq!(first["cursor"], serde_json::json!(expected[1]));
    let cursor = first["cursor"].as_str().unwrap();
    let (status, rest) = system
        .call(
            Some(APPVIEW),
            LIST,
            &[("did", &alice), ("limit", "2"), ("cursor", cursor)],
        )
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(
        rest,
        serde_json::json!({"cids": [expected[2]]}),
        "no cursor after the last"
    );

    let (status, body) = system.call(Some(&bob), LIST, &[("did", &alice)]).await;
    assert_eq!((status, error_name(&body)), (401, "AuthRequired"));
    let (status, body) = system
        .call(Some(&alice), LIST, &[("did", &alice), ("limit", "many")])
        .await;
    assert_eq!((status, error_name(&body)), (400, "InvalidRequest"));
    system.finish().await;
}

on_both_backends!(proofs_of_records, exporting_a_repo, blobs_listed_in_pages);
