//! One suite for both backends: a real PostgreSQL server and a SQLite file.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use futures::StreamExt;
use stratos_schema::blocks::BlockSource;
use stratos_schema::events::seal::DataKey;
use stratos_store::testing::TestDatabase;
use stratos_store::{
    Enrollment, EnrollmentRow, KeyKind, MasterKey, PostRow, ProjectionBatch, RecordRow, Store,
    StoreError, Views,
};

type Fixture = TestDatabase;

async fn migrations_are_idempotent(fixture: &Fixture) {
    let master = MasterKey::generate();
    Store::connect(&fixture.url, master.clone()).await.unwrap();
    let again = Store::connect(&fixture.url, master).await.unwrap();
    assert_eq!(
        format!("{:?}", again.backend()).to_lowercase(),
        fixture.kind
    );
}

async fn keys_round_trip_and_purge(fixture: &Fixture) {
    let master = MasterKey::generate();
    let store = Store::connect(&fixture.url, master.clone()).await.unwrap();
    let data_key = DataKey::generate();
    store
        .put_data_key("did:plc:alice", &data_key)
        .await
        .unwrap();
    store
        .put_key("did:plc:alice", KeyKind::Signing, &[9; 32])
        .await
        .unwrap();
    assert_eq!(
        store
            .data_key("did:plc:alice")
            .await
            .unwrap()
            .unwrap()
            .as_bytes(),
        data_key.as_bytes()
    );
    assert_eq!(
        store
            .key("did:plc:alice", KeyKind::Signing)
            .await
            .unwrap()
            .unwrap()
            .as_slice(),
        &[9; 32]
    );
    assert!(store.data_key("did:plc:bob").await.unwrap().is_none());

    // Another master key cannot read them.
    let stranger = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    assert!(matches!(
        stranger.data_key("did:plc:alice").await,
        Err(StoreError::Key(_))
    ));

    // Purge destroys both.
    assert_eq!(store.destroy_keys("did:plc:alice").await.unwrap(), 2);
    assert!(store.data_key("did:plc:alice").await.unwrap().is_none());
    assert!(
        store
            .key("did:plc:alice", KeyKind::Signing)
            .await
            .unwrap()
            .is_none()
    );
}

/// A key read, changed elsewhere, then written back from the old read: the newer key stays
/// (an OAuth session refreshed by the PDS publisher while the user signed in again).
async fn a_key_is_updated_only_from_its_current_version(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let (did, kind) = ("did:plc:alice", KeyKind::OAuthSession);
    store.put_key(did, kind, b"first").await.unwrap();
    let read = store.versioned_key(did, kind).await.unwrap().unwrap();
    assert_eq!(read.key.as_slice(), b"first");
    assert!(
        store
            .update_key(did, kind, &read, b"refreshed")
            .await
            .unwrap()
    );
    // The read is stale now: its version was replaced.
    assert!(!store.update_key(did, kind, &read, b"stale").await.unwrap());
    let current = store.versioned_key(did, kind).await.unwrap().unwrap();
    assert_eq!(current.key.as_slice(), b"refreshed");
    store.put_key(did, kind, b"signed in again").await.unwrap();
    assert!(
        !store
            .update_key(did, kind, &current, b"stale")
            .await
            .unwrap()
    );
    assert_eq!(
        store.key(did, kind).await.unwrap().unwrap().as_slice(),
        b"signed in again"
    );
    // A destroyed key stays destroyed.
    let last = store.versioned_key(did, kind).await.unwrap().unwrap();
    assert!(store.destroy_key(did, kind).await.unwrap());
    assert!(!store.update_key(did, kind, &last, b"stale").await.unwrap());
    assert!(store.key(did, kind).await.unwrap().is_none());
}

/// Writers creating one key: the first one's stays, and every writer gets it back.
async fn a_key_is_created_once(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let (did, kind) = ("did:plc:alice", KeyKind::Signing);
    let created = |key: &'static [u8]| {
        let store = store.clone();
        async move { store.create_key(did, kind, key).await.unwrap().unwrap() }
    };
    assert_eq!(created(b"first").await.as_slice(), b"first");
    assert_eq!(created(b"second").await.as_slice(), b"first");
    // At the same moment, on another actor: both get one and the same key.
    let racing = |key: &'static [u8]| {
        let store = store.clone();
        async move {
            let key = store.create_key("did:plc:bob", kind, key).await.unwrap();
            key.unwrap().to_vec()
        }
    };
    let (one, two) = tokio::join!(racing(b"one"), racing(b"two"));
    assert_eq!(one, two);
    assert_eq!(
        store.key(did, kind).await.unwrap().unwrap().as_slice(),
        b"first"
    );
    // Once destroyed (a purge), a new one may be created.
    assert!(store.destroy_key(did, kind).await.unwrap());
    assert_eq!(created(b"after a purge").await.as_slice(), b"after a purge");
}

async fn positions_commit_with_their_transaction(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    assert_eq!(store.position("repo", 3).await.unwrap(), None);

    let mut tx = store.begin().await.unwrap();
    tx.set_position("repo", 3, 41).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.position("repo", 3).await.unwrap(), Some(41));

    let mut rolled_back = store.begin().await.unwrap();
    rolled_back.set_position("repo", 3, 99).await.unwrap();
    rolled_back.rollback().await.unwrap();
    let mut dropped = store.begin().await.unwrap();
    dropped.set_position("repo", 3, 77).await.unwrap();
    drop(dropped);
    assert_eq!(store.position("repo", 3).await.unwrap(), Some(41));

    let mut tx = store.begin().await.unwrap();
    tx.set_position("repo", 3, 42).await.unwrap();
    tx.set_position("appview", 3, 10).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.position("repo", 3).await.unwrap(), Some(42));
    assert_eq!(store.position("appview", 3).await.unwrap(), Some(10));
}

async fn repo_projection_round_trip(fixture: &Fixture) {
    use stratos_schema::blocks::BlockMap;
    use stratos_schema::data::cid_for_dag_cbor;
    use stratos_store::{Head, RecordRow};
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let did = "did:plc:alice";
    assert_eq!(store.head(did).await.unwrap(), None);

    let mut blocks = BlockMap::new();
    let node = blocks.insert_dag_cbor(vec![0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6]);
    let commit = blocks.insert_dag_cbor(vec![0xa0]);
    let head = Head {
        commit,
        rev: "3l2aaaaaaaa22".parse().unwrap(),
        data: node,
    };
    let post = RecordRow {
        collection: "zone.stratos.feed.post".into(),
        rkey: "3l2aaaaaaaa22".into(),
        cid: cid_for_dag_cbor(b"post"),
        boundaries: vec![
            "did:web:s.example/general".into(),
            "did:web:s.example/writers".into(),
        ],
        block: Some(b"post".to_vec()),
    };
    let purged = RecordRow {
        rkey: "3l2bbbbbbbb22".into(),
        block: None,
        boundaries: vec![],
        ..post.clone()
    };

    let mut batch = ProjectionBatch::new();
    batch.set_head(did, head.clone());
    for (cid, bytes) in blocks.iter() {
        batch.put_block(did, *cid, bytes.to_vec());
    }
    batch.put_record(did, post.clone(), "3l2rev7777722");

    // A rolled-back transaction leaves nothing behind.
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.head(did).await.unwrap(), None);
    assert!(store.blocks(did).await.unwrap().is_empty());
    assert!(store.records(did).await.unwrap().is_empty());

    batch.put_record(did, purged.clone(), "3l2rev7777722");
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.set_position("repo", 0, 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.head(did).await.unwrap(), Some(head.clone()));
    assert_eq!(store.blocks(did).await.unwrap(), blocks);
    assert_eq!(
        store.records(did).await.unwrap(),
        vec![post.clone(), purged.clone()]
    );

    // Writing the same batch again changes nothing (blocks are kept, rows replaced).
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.blocks(did).await.unwrap(), blocks);

    // Net effect: a record put then deleted in one batch is deleted; a block deleted then put
    // again is kept; a purge empties what was written before it.
    let mut batch = ProjectionBatch::new();
    batch.put_record(
        did,
        RecordRow {
            rkey: "3l2cccccccc22".into(),
            ..post.clone()
        },
        "3l2rev7777722",
    );
    batch.delete_record(did, &post.collection, "3l2cccccccc22");
    batch.delete_record(did, &post.collection, &post.rkey);
    batch.delete_block(did, commit);
    batch.delete_block(did, node);
    batch.put_block(did, node, blocks.get_block(&node).unwrap().to_vec());
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.records(did).await.unwrap(), vec![purged]);
    assert_eq!(store.blocks(did).await.unwrap().len(), 1);
    assert!(store.blocks(did).await.unwrap().get_block(&node).is_some());

    let mut batch = ProjectionBatch::new();
    batch.put_record(
        did,
        RecordRow {
            rkey: "3l2dddddddd22".into(),
            ..post.clone()
        },
        "3l2rev7777722",
    );
    batch.purge_content(did);
    batch.put_record(
        did,
        RecordRow {
            rkey: "3l2eeeeeeee22".into(),
            ..post.clone()
        },
        "3l2rev7777722",
    );
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();
    let contents: Vec<(String, bool)> = store
        .records(did)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.rkey, r.block.is_some()))
        .collect();
    assert_eq!(
        contents,
        [
            ("3l2bbbbbbbb22".to_string(), false),
            ("3l2dddddddd22".to_string(), false),
            ("3l2eeeeeeee22".to_string(), true),
        ]
    );
    assert!(store.records("did:plc:bob").await.unwrap().is_empty());
}

/// A batch too large for one call's arrays (a big import, say) is written in statements of
/// bounded size, in one transaction with its positions, like any other.
async fn an_oversized_batch_is_written_whole(fixture: &Fixture) {
    use stratos_schema::data::cid_for_dag_cbor;
    use stratos_store::{BatchProgress, Head, RecordRow};
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let did = "did:plc:alice";
    let mut batch = ProjectionBatch::new();
    const LETTERS: [char; 26] = [
        'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r',
        's', 't', 'u', 'v', 'w', 'x', 'y', 'z',
    ];
    // 65 records of 1 MiB: over the 64 MiB a single call carries.
    for index in 0..65usize {
        let mut block = vec![index as u8; 1024 * 1024];
        block[0] = 0xa0;
        batch.create_record(
            did,
            RecordRow {
                collection: "zone.stratos.feed.post".into(),
                rkey: format!("3l2{}{}aaaaaa22", LETTERS[index / 26], LETTERS[index % 26]),
                cid: cid_for_dag_cbor(&block),
                boundaries: vec!["did:web:s.example/general".into()],
                block: Some(block),
            },
            "3l2rev7777722",
        );
    }
    // Blocks and events over a call's worth too, and the small rows beside them.
    let mut block_cids = Vec::new();
    for index in 0..3u8 {
        let mut block = vec![index; 30 * 1024 * 1024];
        block[0] = 0xa0;
        let cid = cid_for_dag_cbor(&block);
        block_cids.push(cid);
        batch.put_block(did, cid, block);
    }
    for seq in 1..=3u64 {
        batch.add_actor_event(
            did,
            seq,
            "commit",
            Some("3l2rev7777722"),
            vec![seq as u8; 30 << 20],
        );
    }
    let head = Head {
        commit: block_cids[0],
        rev: "3l2rev7777722".parse().unwrap(),
        data: block_cids[1],
    };
    batch.set_head(did, head.clone());
    batch.reject(0, 5, did, "stale head");
    let progress = BatchProgress {
        consumer: "repo",
        positions: &[(0, 7)],
        payloads: &["0:7"],
        fence: None,
    };
    store.write_batch(&batch, progress).await.unwrap();
    let records = store.records(did).await.unwrap();
    assert_eq!(records.len(), 65);
    assert!(
        records
            .iter()
            .all(|r| r.block.as_ref().unwrap().len() == 1024 * 1024)
    );
    for cid in &block_cids {
        assert_eq!(
            store.block(did, cid).await.unwrap().map(|b| b.len()),
            Some(30 << 20)
        );
    }
    let events = store.actor_events(did, 0, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(store.head(did).await.unwrap(), Some(head));
    assert_eq!(
        store.rejections(did).await.unwrap(),
        [(0, 5, "stale head".to_string())]
    );
    assert_eq!(store.position("repo", 0).await.unwrap(), Some(7));
}

/// An export reads every record with content once, in key order, in pages sized to the
/// records: 256 first, then about 2 MiB of blocks a page.
async fn exports_page_through_every_record(fixture: &Fixture) {
    use stratos_schema::data::cid_for_dag_cbor;
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let did = "did:plc:alice";
    let record = |collection: &str, index: usize, size: usize| {
        let mut block = format!("{collection} {index}").into_bytes();
        block.resize(size, b'.');
        RecordRow {
            collection: collection.into(),
            rkey: format!("3l2{index:010}"),
            cid: cid_for_dag_cbor(&block),
            boundaries: vec!["s/general".into()],
            block: Some(block),
        }
    };
    let mut written = Vec::new();
    let mut batch = ProjectionBatch::new();
    for index in 0..1_100 {
        written.push(record("zone.stratos.feed.post", index, 4_096));
    }
    for index in 0..3 {
        written.push(record("zone.stratos.graph.follow", index, 100));
    }
    let mut emptied = record("zone.stratos.graph.follow", 9, 100);
    emptied.block = None;
    for row in written.iter().chain([&emptied]) {
        batch.put_record(did, row.clone(), "3l2rev0000001");
    }
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();

    let mut pages = store.record_blocks(did);
    let (mut sizes, mut read) = (Vec::new(), Vec::new());
    while let Some(page) = pages.next().await.unwrap() {
        sizes.push(page.len());
        read.extend(
            page.into_iter()
                .map(|r| (r.collection, r.rkey, r.cid, r.block)),
        );
    }
    let expected: Vec<_> = written
        .into_iter()
        .map(|r| (r.collection, r.rkey, r.cid, r.block.unwrap()))
        .collect();
    assert_eq!(read, expected);
    assert_eq!(sizes, [256, 512, 332, 3]);
}

async fn sequences_and_rejections(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let mut batch = ProjectionBatch::new();
    batch.add_actor_event(
        "did:plc:a",
        1,
        "#commit",
        Some("3l2aaaaaaaa22"),
        b"one".to_vec(),
    );
    batch.add_actor_event(
        "did:plc:a",
        2,
        "#commit",
        Some("3l2aaaaaaaa23"),
        b"two".to_vec(),
    );
    batch.add_actor_event("did:plc:b", 1, "#enrollment", None, b"b".to_vec());
    batch.reject(2, 17, "did:plc:a", "not on the head");
    batch.reject(2, 17, "did:plc:a", "not on the head");
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();

    let events = store.actor_events("did:plc:a", 0, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(events[1].body, b"two");
    assert_eq!(events[0].rev.as_deref(), Some("3l2aaaaaaaa22"));
    assert_eq!(
        store.actor_events("did:plc:a", 1, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.actor_events("did:plc:a", 0, 1).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.actor_events("did:plc:b", 0, 10).await.unwrap()[0].rev,
        None
    );
    assert_eq!(
        store.rejections("did:plc:a").await.unwrap(),
        vec![(2, 17, "not on the head".to_string())]
    );
    assert!(store.rejections("did:plc:b").await.unwrap().is_empty());
    assert_eq!(
        store.rejection(2, 17).await.unwrap().as_deref(),
        Some("not on the head")
    );
    assert_eq!(store.rejection(2, 18).await.unwrap(), None);
    assert_eq!(
        store.rejected_offsets(2, 0, 17).await.unwrap(),
        [] as [u64; 0]
    );
    assert_eq!(store.rejected_offsets(2, 17, 18).await.unwrap(), [17]);
    assert_eq!(store.last_seq("did:plc:a").await.unwrap(), 2);
    assert_eq!(store.last_seq("did:plc:z").await.unwrap(), 0);

    // A number is given once per actor.
    let mut again = ProjectionBatch::new();
    again.add_actor_event("did:plc:b", 1, "#commit", None, b"again".to_vec());
    let mut tx = store.begin().await.unwrap();
    assert!(tx.write(&again).await.is_err());
    tx.rollback().await.unwrap();
    assert_eq!(
        store.actor_events("did:plc:b", 0, 10).await.unwrap().len(),
        1
    );
}

fn enrollment(did: &str, active: bool, boundaries: &[&str]) -> Enrollment {
    Enrollment {
        did: did.into(),
        signing_key: "did:key:zDnaeTiq1PdzvZXUaMdezchcMJQpBdH2VN4pgrrEhMCCbmwSb".into(),
        boundaries: boundaries.iter().map(|b| b.to_string()).collect(),
        service_endpoint: "https://stratos.example.com".into(),
        enrolled_at: "2026-11-23T12:00:00.000Z".into(),
        updated_at: "2026-11-23T12:00:00.000Z".into(),
        active,
    }
}

async fn enrollments_and_purge(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let mut batch = ProjectionBatch::new();
    for did in ["did:plc:c", "did:plc:a", "did:plc:b"] {
        batch.put_enrollment(enrollment(did, did != "did:plc:b", &["x/1", "x/2"]));
    }
    batch.put_record(
        "did:plc:a",
        RecordRow {
            collection: "zone.stratos.feed.post".into(),
            rkey: "3l2aaaaaaaa22".into(),
            cid: stratos_schema::data::cid_for_dag_cbor(b"\xa0"),
            boundaries: vec!["x/1".into()],
            block: Some(b"\xa0".to_vec()),
        },
        "3l2rev7777722",
    );
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.enrollment("did:plc:a").await.unwrap(),
        Some(enrollment("did:plc:a", true, &["x/1", "x/2"]))
    );
    assert!(store.enrollment("did:plc:z").await.unwrap().is_none());
    // Keyset pages of active enrollments, in DID order.
    let first: Vec<String> = store
        .active_enrollments("", 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.did)
        .collect();
    assert_eq!(first, ["did:plc:a"]);
    let rest: Vec<String> = store
        .active_enrollments("did:plc:a", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.did)
        .collect();
    assert_eq!(rest, ["did:plc:c"]);

    let mut batch = ProjectionBatch::new();
    batch.purge_content("did:plc:a");
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();
    let records = store.records("did:plc:a").await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].block, None);
}

fn post(did: &str, rkey: &str, text: &str, created_at: &str) -> PostRow {
    PostRow {
        uri: format!("at://{did}/zone.stratos.feed.post/{rkey}"),
        cid: "bafyreib2rxk3rybk3aobmv5cjuql3bm2twh4jo5uxgf5ekqnvoxgbv2rye".into(),
        rkey: rkey.into(),
        creator: did.into(),
        text: text.into(),
        reply_root: None,
        reply_root_cid: None,
        reply_parent: Some("at://did:plc:x/zone.stratos.feed.post/3l2".into()),
        reply_parent_cid: Some("bafyparent".into()),
        embed: None,
        facets: Some("[]".into()),
        labels: None,
        langs: Some("en,de".into()),
        tags: None,
        created_at: created_at.into(),
        indexed_at: "2026-11-23T12:00:00.000Z".into(),
    }
}

async fn views_round_trip(fixture: &Fixture) {
    let views = Views::connect(&fixture.url).await.unwrap();
    Views::connect(&fixture.url).await.unwrap(); // migrations are idempotent
    let first = post("did:plc:a", "3l2a", "hello", "2026-11-23T11:00:00.000Z");
    let second = post("did:plc:a", "3l2b", "later", "2026-11-23T11:30:00.000Z");
    let other = post("did:plc:b", "3l2c", "other", "2026-11-23T11:10:00.000Z");
    let mut tx = views.begin().await.unwrap();
    tx.upsert_post(&first, &["x/1".into(), "x/2".into()])
        .await
        .unwrap();
    tx.upsert_post(&second, &["x/1".into()]).await.unwrap();
    tx.upsert_post(&other, &["x/1".into()]).await.unwrap();
    tx.upsert_enrollment(&EnrollmentRow {
        did: "did:plc:a".into(),
        service_url: Some("https://stratos.example.com".into()),
        enrolled_at: Some("2026-11-23T10:00:00.000Z".into()),
        boundaries: vec!["x/1".into()],
    })
    .await
    .unwrap();
    tx.set_position(3, 42).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(views.position(3).await.unwrap(), Some(42));
    assert_eq!(views.post(&first.uri).await.unwrap(), Some(first.clone()));
    assert_eq!(
        views.post_uris_by("did:plc:a").await.unwrap(),
        [second.uri.clone(), first.uri.clone()]
    );

    // An update replaces the boundary rows; a boundary change keeps URL and enrollment time.
    let mut edited = first.clone();
    edited.text = "edited".into();
    let mut tx = views.begin().await.unwrap();
    tx.upsert_post(&edited, &["x/3".into()]).await.unwrap();
    tx.upsert_enrollment(&EnrollmentRow {
        did: "did:plc:a".into(),
        service_url: None,
        enrolled_at: None,
        boundaries: vec!["x/1".into(), "x/3".into()],
    })
    .await
    .unwrap();
    tx.delete_post(&second.uri).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        views.post(&first.uri).await.unwrap().unwrap().text,
        "edited"
    );
    assert_eq!(views.post_boundaries(&first.uri).await.unwrap(), ["x/3"]);
    assert!(views.post(&second.uri).await.unwrap().is_none());
    assert!(views.post_boundaries(&second.uri).await.unwrap().is_empty());
    let enrolled = views.enrollment("did:plc:a").await.unwrap().unwrap();
    assert_eq!(
        enrolled.service_url.as_deref(),
        Some("https://stratos.example.com")
    );
    assert_eq!(enrolled.boundaries, ["x/1", "x/3"]);

    // Unenroll removes the actor from every view, and only that actor.
    let mut tx = views.begin().await.unwrap();
    tx.remove_actor("did:plc:a").await.unwrap();
    tx.commit().await.unwrap();
    assert!(views.post_uris_by("did:plc:a").await.unwrap().is_empty());
    assert!(views.post_boundaries(&first.uri).await.unwrap().is_empty());
    assert!(views.enrollment("did:plc:a").await.unwrap().is_none());
    assert_eq!(views.post_uris_by("did:plc:b").await.unwrap(), [other.uri]);
}

async fn digest_follows_content(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let views = Views::connect(&fixture.url).await.unwrap();
    let empty = (store.digest().await.unwrap(), views.digest().await.unwrap());
    let mut batch = ProjectionBatch::new();
    batch.put_enrollment(enrollment("did:plc:a", true, &["x/1"]));
    let mut tx = store.begin().await.unwrap();
    tx.write(&batch).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = views.begin().await.unwrap();
    tx.upsert_post(
        &post("did:plc:a", "3l2a", "hi", "2026-11-23T11:00:00.000Z"),
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let filled = (store.digest().await.unwrap(), views.digest().await.unwrap());
    assert_ne!(empty.0, filled.0);
    assert_ne!(empty.1, filled.1);
    // Positions are not content.
    let mut tx = store.begin().await.unwrap();
    tx.set_position("repo", 0, 99).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.digest().await.unwrap(), filled.0);
}

async fn views_share_a_database_with_the_store(fixture: &Fixture) {
    // Either may migrate first, and both again, with one migration table.
    let views = Views::connect(&fixture.url).await.unwrap();
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    Views::connect(&fixture.url).await.unwrap();
    Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    assert!(views.position(0).await.unwrap().is_none());
    assert!(store.position("repo", 0).await.unwrap().is_none());

    // Notifications reach listeners only on Postgres, and only once committed.
    if let Some(mut listener) = store.listen().await.unwrap() {
        let mut tx = store.begin().await.unwrap();
        tx.notify("dropped").await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.notify("kept").await.unwrap();
        tx.commit().await.unwrap();
        let heard = tokio::time::timeout(std::time::Duration::from_secs(10), listener.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(heard, "kept");
    }
}

async fn pds_outbox_delivers_in_order_per_actor(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    for (did, body) in [
        ("did:plc:a", "a1"),
        ("did:plc:b", "b1"),
        ("did:plc:a", "a2"),
    ] {
        tx.enqueue_pds(did, "com.atproto.repo.putRecord", body)
            .await
            .unwrap();
    }
    // Entries become visible with the transaction only.
    assert_eq!(store.pds_backlog().await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(store.pds_backlog().await.unwrap(), 3);

    // One entry per actor at a time, oldest first.
    let claimed = store.claim_pds(100, 220, 10).await.unwrap();
    let bodies: Vec<&str> = claimed.iter().map(|e| e.body.as_str()).collect();
    assert_eq!(bodies, ["a1", "b1"]);
    // Claimed entries are leased: nothing else is due for those actors.
    assert!(store.claim_pds(101, 221, 10).await.unwrap().is_empty());

    // a1 fails and is due again at 150; b1 is delivered.
    store.retry_pds(claimed[0].id, 150, "503").await.unwrap();
    store.finish_pds(claimed[1].id).await.unwrap();
    assert!(store.claim_pds(149, 269, 10).await.unwrap().is_empty());
    let again = store.claim_pds(150, 270, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].body.as_str(), again[0].attempts), ("a1", 1));
    store.finish_pds(again[0].id).await.unwrap();
    // Only now does a2 come up; an expired lease hands an entry out again.
    let next = store.claim_pds(150, 270, 10).await.unwrap();
    assert_eq!(next[0].body, "a2");
    let relet = store.claim_pds(270, 390, 10).await.unwrap();
    assert_eq!(relet[0].id, next[0].id);
    assert_eq!(store.pds_backlog().await.unwrap(), 1);
    store.retry_pds(relet[0].id, 400, "timeout").await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.pds_backlog,
            counts.pds_failing,
            counts.enrolled,
            counts.rejected_events
        ),
        (1, 1, 0, 0)
    );
}

async fn oauth_pending_authorizations_are_used_once(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    store
        .put_oauth_pending("state-1", b"pending", 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .take_oauth_pending("state-1")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"pending"[..])
    );
    assert!(store.take_oauth_pending("state-1").await.unwrap().is_none());
    // Old ones are forgotten when new ones arrive.
    store.put_oauth_pending("old", b"x", 1_000).await.unwrap();
    store
        .put_oauth_pending("new", b"y", 1_000 + 601)
        .await
        .unwrap();
    assert!(store.take_oauth_pending("old").await.unwrap().is_none());
    assert!(store.take_oauth_pending("new").await.unwrap().is_some());
}

/// A token is spent once; expired ones are forgotten, and only they.
async fn tokens_are_spent_once(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    assert!(store.spend_token("did:plc:a|1", 1_000).await.unwrap());
    assert!(!store.spend_token("did:plc:a|1", 1_000).await.unwrap());
    assert!(store.spend_token("did:plc:a|2", 2_000).await.unwrap());
    store.forget_spent_tokens(1_500).await.unwrap();
    assert!(store.spend_token("did:plc:a|1", 1_000).await.unwrap());
    assert!(!store.spend_token("did:plc:a|2", 2_000).await.unwrap());
}

/// The blobs a record refers to follow the record: written with it, replaced when it changes,
/// gone when it is deleted or its content purged.
async fn blob_references_follow_their_records(fixture: &Fixture) {
    use stratos_schema::data::{cid_for_dag_cbor, cid_for_raw, json_to_ipld, to_dag_cbor};
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let did = "did:plc:a";
    let (one, two) = (
        cid_for_raw(b"one").to_string(),
        cid_for_raw(b"two").to_string(),
    );
    let post = |rkey: &str, blobs: &[&str], boundary: &str| {
        let images: Vec<serde_json::Value> = blobs
            .iter()
            .map(|cid| {
                serde_json::json!({"$type": "blob", "ref": {"$link": cid}, "mimeType": "image/png", "size": 3})
            })
            .collect();
        let block = to_dag_cbor(
            &json_to_ipld(
                &serde_json::json!({"$type": "zone.stratos.feed.post", "images": images}),
            )
            .unwrap(),
        )
        .unwrap();
        RecordRow {
            collection: "zone.stratos.feed.post".into(),
            rkey: rkey.into(),
            cid: cid_for_dag_cbor(&block),
            boundaries: vec![boundary.into()],
            block: Some(block),
        }
    };
    let write = async |batch: ProjectionBatch| {
        let mut tx = store.begin().await.unwrap();
        tx.write(&batch).await.unwrap();
        tx.commit().await.unwrap();
    };
    let listed = async || store.list_blobs(did, None, None, 10).await.unwrap();
    let mut batch = ProjectionBatch::new();
    batch.put_record(
        did,
        post("3l2aaaaaaaa22", &[&one], "s/friends"),
        "3l2rev0000001",
    );
    batch.put_record(
        did,
        post("3l2bbbbbbbb22", &[&one, &two], "s/family"),
        "3l2rev0000002",
    );
    batch.put_record(did, post("3l2cccccccc22", &[], "s/family"), "3l2rev0000002");
    write(batch).await;
    let mut referrers = store.blob_referrers(did, &one).await.unwrap();
    referrers.sort();
    assert_eq!(
        referrers,
        [vec!["s/family".to_string()], vec!["s/friends".to_string()]]
    );
    assert_eq!(
        store.blob_referrers("did:plc:b", &one).await.unwrap(),
        Vec::<Vec<String>>::new()
    );
    let mut all = vec![one.clone(), two.clone()];
    all.sort();
    assert_eq!(listed().await, all);
    assert_eq!(
        store.list_blobs(did, None, None, 1).await.unwrap(),
        all[..1]
    );
    assert_eq!(
        store
            .list_blobs(did, None, Some(&all[0]), 10)
            .await
            .unwrap(),
        all[1..]
    );
    assert_eq!(
        store
            .list_blobs(did, Some("3l2rev0000001"), None, 10)
            .await
            .unwrap(),
        all,
        "the second revision refers to both"
    );
    assert!(
        store
            .list_blobs(did, Some("3l2rev0000002"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The family post drops its images; the friends post is deleted.
    let mut batch = ProjectionBatch::new();
    batch.put_record(did, post("3l2bbbbbbbb22", &[], "s/family"), "3l2rev0000003");
    batch.delete_record(did, "zone.stratos.feed.post", "3l2aaaaaaaa22");
    write(batch).await;
    assert!(store.blob_referrers(did, &one).await.unwrap().is_empty());
    assert!(listed().await.is_empty());

    // A purge forgets them too.
    let mut batch = ProjectionBatch::new();
    batch.put_record(
        did,
        post("3l2dddddddd22", &[&two], "s/family"),
        "3l2rev0000004",
    );
    write(batch).await;
    assert_eq!(listed().await, [two.as_str()]);
    let mut batch = ProjectionBatch::new();
    batch.purge_content(did);
    write(batch).await;
    assert!(listed().await.is_empty());
    assert!(store.blob_referrers(did, &two).await.unwrap().is_empty());

    // Created records: a key created, deleted and created again in one batch keeps only the
    // last record's references; a key deleted and created again replaces the stored ones.
    let referrers = async |cid: &str| store.blob_referrers(did, cid).await.unwrap();
    let mut batch = ProjectionBatch::new();
    batch.create_record(
        did,
        post("3l2eeeeeeee22", &[&one], "s/work"),
        "3l2rev0000005",
    );
    write(batch).await;
    assert_eq!(referrers(&one).await, [vec!["s/work".to_string()]]);
    let mut batch = ProjectionBatch::new();
    batch.delete_record(did, "zone.stratos.feed.post", "3l2eeeeeeee22");
    batch.create_record(
        did,
        post("3l2eeeeeeee22", &[&two], "s/work"),
        "3l2rev0000006",
    );
    batch.create_record(
        did,
        post("3l2ffffffff22", &[&one], "s/home"),
        "3l2rev0000006",
    );
    batch.delete_record(did, "zone.stratos.feed.post", "3l2ffffffff22");
    batch.create_record(
        did,
        post("3l2ffffffff22", &[&two], "s/home"),
        "3l2rev0000006",
    );
    write(batch).await;
    assert!(referrers(&one).await.is_empty());
    let mut holders = referrers(&two).await;
    holders.sort();
    assert_eq!(
        holders,
        [vec!["s/home".to_string()], vec!["s/work".to_string()]]
    );
}

/// A rebuild replaces what the log derives, and keeps what it does not: keys, blob metadata,
/// pending authorizations, the PDS outbox and the publisher's position.
async fn a_switch_over_keeps_what_the_log_does_not_hold(fixture: &Fixture) {
    let master = MasterKey::generate();
    let live = Store::connect(&fixture.url, master.clone()).await.unwrap();
    live.put_key("did:plc:a", KeyKind::Signing, &[7; 32])
        .await
        .unwrap();
    live.put_blob(&stratos_store::BlobMeta {
        did: "did:plc:a".into(),
        cid: "bafkreiblob".into(),
        mime_type: "image/png".into(),
        size: 3,
        created_at: "2026-11-29T12:00:00.000Z".into(),
    })
    .await
    .unwrap();
    live.put_oauth_pending("state-1", b"pending", 1_000)
        .await
        .unwrap();
    let mut tx = live.begin().await.unwrap();
    tx.enqueue_pds("did:plc:a", "com.atproto.repo.putRecord", "owed")
        .await
        .unwrap();
    tx.set_position("pds-publisher", 0, 7).await.unwrap();
    tx.set_position("repo", 0, 3).await.unwrap();
    tx.commit().await.unwrap();
    live.close().await;

    let target = stratos_store::RebuildTarget::prepare(&fixture.url, "rebuild")
        .await
        .unwrap();
    let rebuilt = Store::connect(target.url(), master.clone()).await.unwrap();
    let mut tx = rebuilt.begin().await.unwrap();
    tx.set_position("repo", 0, 9).await.unwrap();
    tx.commit().await.unwrap();
    rebuilt.close().await;
    target.switch_over(true).await.unwrap();

    let now = Store::connect(&fixture.url, master).await.unwrap();
    assert!(
        now.key("did:plc:a", KeyKind::Signing)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        now.blob("did:plc:a", "bafkreiblob")
            .await
            .unwrap()
            .is_some()
    );
    assert!(now.take_oauth_pending("state-1").await.unwrap().is_some());
    assert_eq!(now.position("pds-publisher", 0).await.unwrap(), Some(7));
    assert_eq!(
        now.position("repo", 0).await.unwrap(),
        Some(9),
        "the rebuild's own"
    );
    // The outbox goes on after the carried entry.
    let mut tx = now.begin().await.unwrap();
    tx.enqueue_pds("did:plc:a", "com.atproto.repo.putRecord", "next")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let bodies: Vec<String> = now
        .claim_pds(i64::MAX / 2, i64::MAX / 2 + 1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.body)
        .collect();
    assert_eq!(
        bodies,
        ["owed"],
        "one entry per actor at a time, the oldest"
    );
    assert_eq!(now.pds_backlog().await.unwrap(), 2);
    now.close().await;
}

/// A timeline page holds each post once however many of the viewer's boundaries it is in, in
/// order, and the cursor walks every post exactly once; a batch's later upsert of a URI wins.
async fn timeline_pages_hold_each_post_once(fixture: &Fixture) {
    let views = Views::connect(&fixture.url).await.unwrap();
    let held: Vec<String> = (0..4).map(|b| format!("x/{b}")).collect();
    let posts: Vec<PostRow> = (0..30)
        .map(|i| {
            let at = format!("2026-11-23T11:{i:02}:00.000Z");
            post("did:plc:a", &format!("3l{i:02}"), "p", &at)
        })
        .collect();
    // Every post in all four boundaries: up to four rows a post before the page is cut.
    let mut rows: Vec<(&PostRow, &[String])> = posts.iter().map(|p| (p, held.as_slice())).collect();
    let mut replaced = posts[0].clone();
    replaced.text = "replaced".into();
    rows.push((&replaced, &held[..1]));
    let mut tx = views.begin().await.unwrap();
    tx.upsert_posts(&rows).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        views.post(&posts[0].uri).await.unwrap(),
        Some(replaced.clone())
    );
    assert_eq!(views.post_boundaries(&posts[0].uri).await.unwrap(), ["x/0"]);

    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = views
            .timeline_page(Some("did:plc:a"), &held, cursor.as_ref(), 7)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() == 7 || walked.len() + page.len() == posts.len());
        cursor = Some(last.cursor());
        walked.extend(page.into_iter().map(|item| item.uri));
    }
    let newest_first: Vec<String> = posts.iter().rev().map(|p| p.uri.clone()).collect();
    assert_eq!(walked, newest_first);
    views.close().await;
}

/// A SQLite store's write-ahead log is copied back into the file without a commit waiting for
/// it, and started over instead of growing with everything written.
#[tokio::test]
async fn a_sqlite_write_ahead_log_is_copied_back_and_started_over() {
    use sqlx::Connection;
    use stratos_schema::data::cid_for_dag_cbor;
    let fixture = TestDatabase::create("sqlite").await.unwrap();
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let mut serial = 0u64;
    let mut write = async |blocks: usize| {
        let mut batch = ProjectionBatch::new();
        for _ in 0..blocks {
            serial += 1;
            let mut bytes = serial.to_be_bytes().to_vec();
            bytes.resize(2048, 0x2a);
            batch.put_block("did:plc:wal", cid_for_dag_cbor(&bytes), bytes);
        }
        let mut tx = store.begin().await.unwrap();
        tx.write(&batch).await.unwrap();
        tx.commit().await.unwrap();
    };
    // 200 transactions of 16 blocks (2 KiB each): thousands of pages through the log.
    for _ in 0..200 {
        write(16).await;
    }
    // The log is copied back in the background; the next writer then starts it over.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    write(1).await;
    // Frames now in the log, from a connection of its own: `(busy, log frames, copied)`.
    let mut connection = sqlx::SqliteConnection::connect(&fixture.url).await.unwrap();
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    assert!(frames < 100, "{frames} frames still in the log");
    store.close().await;
}

macro_rules! suite {
    ($module:ident, $kind:literal, $($test:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    let fixture = super::TestDatabase::create($kind).await.unwrap();
                    super::$test(&fixture).await;
                    fixture.drop_database().await.unwrap();
                }
            )*
        }
    };
}

suite!(
    postgres,
    "postgres",
    migrations_are_idempotent,
    keys_round_trip_and_purge,
    a_key_is_updated_only_from_its_current_version,
    a_key_is_created_once,
    positions_commit_with_their_transaction,
    repo_projection_round_trip,
    exports_page_through_every_record,
    sequences_and_rejections,
    enrollments_and_purge,
    views_round_trip,
    timeline_pages_hold_each_post_once,
    digest_follows_content,
    views_share_a_database_with_the_store,
    pds_outbox_delivers_in_order_per_actor,
    oauth_pending_authorizations_are_used_once,
    tokens_are_spent_once,
    a_switch_over_keeps_what_the_log_does_not_hold,
    blob_references_follow_their_records,
    an_oversized_batch_is_written_whole,
);
suite!(
    sqlite,
    "sqlite",
    migrations_are_idempotent,
    keys_round_trip_and_purge,
    a_key_is_updated_only_from_its_current_version,
    a_key_is_created_once,
    positions_commit_with_their_transaction,
    repo_projection_round_trip,
    exports_page_through_every_record,
    sequences_and_rejections,
    enrollments_and_purge,
    views_round_trip,
    timeline_pages_hold_each_post_once,
    digest_follows_content,
    views_share_a_database_with_the_store,
    pds_outbox_delivers_in_order_per_actor,
    oauth_pending_authorizations_are_used_once,
    tokens_are_spent_once,
    a_switch_over_keeps_what_the_log_does_not_hold,
    blob_references_follow_their_records,
    an_oversized_batch_is_written_whole,
);
