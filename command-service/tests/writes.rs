//! The write path on real parts: the embedded log or Kafka (a local Kafka-API broker), the
//! projectors, SQLite files and a real PostgreSQL server; every rule runs on each. Every write
//! is answered only once the repo projector applied it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::json;
use stratos_command::{CommandError, WriteOp};
use stratos_schema::Ipld;
use stratos_schema::data::json_to_ipld;
use stratos_schema::syntax::{Did, Nsid, RecordKey};
use support::{GENERAL, Stack};

type Setup = Stack;

fn did(name: &str) -> Did {
    format!("did:plc:{name}").parse().unwrap()
}

fn post(text: &str, boundary: &str) -> Ipld {
    json_to_ipld(&json!({
        "$type": "zone.stratos.feed.post",
        "text": text,
        "boundary": {"$type": "zone.stratos.boundary.defs#Domains", "values": [{"value": boundary}]},
        "createdAt": "2026-11-28T12:00:00.000Z",
    }))
    .unwrap()
}

fn posts() -> Nsid {
    "zone.stratos.feed.post".parse().unwrap()
}

fn create(text: &str) -> WriteOp {
    WriteOp::Create {
        collection: posts(),
        rkey: None,
        record: post(text, GENERAL),
    }
}

fn rkey_of(uri: &str) -> RecordKey {
    uri.rsplit('/').next().unwrap().parse().unwrap()
}

async fn writes_are_applied_before_they_are_answered(setup: Setup) {
    let commands = setup.commands().await;
    let alice = did("alice");
    commands.enroll(&alice, &["general".into()]).await.unwrap();

    let created = commands
        .write(&alice, vec![create("hello")], None)
        .await
        .unwrap();
    let head = setup.store.head(alice.as_str()).await.unwrap().unwrap();
    assert_eq!(head.commit, created.commit.cid);
    let rkey = rkey_of(&created.results[0].uri);
    let row = setup
        .store
        .record(alice.as_str(), "zone.stratos.feed.post", rkey.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(row.cid), created.results[0].cid);
    assert_eq!(row.boundaries, [GENERAL]);

    // putRecord replaces, swapRecord guards it.
    let stale = created.results[0].cid;
    let put = WriteOp::Put {
        collection: posts(),
        rkey: rkey.clone(),
        record: post("edited", GENERAL),
        swap_record: Some(stale),
        must_exist: true,
    };
    let updated = commands
        .write(&alice, vec![put.clone()], None)
        .await
        .unwrap();
    assert_ne!(updated.results[0].cid, stale);
    assert!(matches!(
        commands.write(&alice, vec![put], None).await,
        Err(CommandError::InvalidSwap(_))
    ));
    // swapCommit must name the current commit.
    assert!(matches!(
        commands
            .write(&alice, vec![create("x")], Some(created.commit.cid))
            .await,
        Err(CommandError::InvalidSwap(_))
    ));

    // Delete; deleting again succeeds with an unchanged tree (deleteRecord), or fails when the
    // record must exist (applyWrites).
    let delete = |must_exist| WriteOp::Delete {
        collection: posts(),
        rkey: rkey.clone(),
        swap_record: None,
        must_exist,
    };
    commands
        .write(&alice, vec![delete(false)], None)
        .await
        .unwrap();
    assert!(
        setup
            .store
            .record(alice.as_str(), "zone.stratos.feed.post", rkey.as_str())
            .await
            .unwrap()
            .is_none()
    );
    commands
        .write(&alice, vec![delete(false)], None)
        .await
        .unwrap();
    assert!(matches!(
        commands.write(&alice, vec![delete(true)], None).await,
        Err(CommandError::RecordNotFound(_))
    ));
    // Every commit is in the actor's sequence, deletes with the boundaries the record had.
    let events = setup
        .store
        .actor_events(alice.as_str(), 0, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    let deleted = stratos_schema::events::SequencedCommit::decode(&events[2].body).unwrap();
    assert_eq!(deleted.ops[0].boundaries, [GENERAL]);
    setup.finish().await;
}

async fn invalid_writes_change_nothing(setup: Setup) {
    let commands = setup.commands().await;
    let alice = did("alice");
    commands.enroll(&alice, &["general".into()]).await.unwrap();
    let first = commands
        .write(&alice, vec![create("first")], None)
        .await
        .unwrap();
    let head = setup.store.head(alice.as_str()).await.unwrap();

    let cases: Vec<(Vec<WriteOp>, &str)> = vec![
        // One invalid op in a batch: nothing of the batch is written.
        (
            vec![
                create("fine"),
                WriteOp::Create {
                    collection: posts(),
                    rkey: None,
                    record: post(&"x".repeat(3001), GENERAL),
                },
            ],
            "InvalidRecord",
        ),
        (
            vec![WriteOp::Create {
                collection: "app.bsky.feed.post".parse().unwrap(),
                rkey: None,
                record: post("wrong place", GENERAL),
            }],
            "InvalidCollection",
        ),
        (
            vec![WriteOp::Create {
                collection: posts(),
                rkey: None,
                record: post("not mine", "did:web:stratos.example.com/writers"),
            }],
            "ForbiddenBoundary",
        ),
        (
            vec![WriteOp::Create {
                collection: posts(),
                rkey: None,
                record: post("elsewhere", "did:web:other.example.com/general"),
            }],
            // The service's allowed-domain rule runs before the author check (spec §3).
            "InvalidRecord",
        ),
        (
            vec![WriteOp::Create {
                collection: posts(),
                rkey: Some("not-a-tid".parse().unwrap()),
                record: post("bad key", GENERAL),
            }],
            "InvalidRequest",
        ),
        (
            vec![WriteOp::Create {
                collection: posts(),
                rkey: Some(rkey_of(&first.results[0].uri)),
                record: post("exists", GENERAL),
            }],
            "InvalidRequest",
        ),
        (
            vec![WriteOp::Put {
                collection: posts(),
                rkey: "3l2aaaaaaaa22".parse().unwrap(),
                record: post("missing", GENERAL),
                swap_record: None,
                must_exist: true,
            }],
            "RecordNotFound",
        ),
        ((0..201).map(|_| create("many")).collect(), "InvalidRequest"),
        // No write at all: no commit either.
        (Vec::new(), "InvalidRequest"),
    ];
    for (ops, expected) in cases {
        let error = commands.write(&alice, ops, None).await.unwrap_err();
        assert_eq!(error.name(), expected, "{error}");
        assert_eq!(error.status(), 400);
    }
    assert_eq!(setup.store.head(alice.as_str()).await.unwrap(), head);
    assert_eq!(setup.store.records(alice.as_str()).await.unwrap().len(), 1);

    // Not enrolled, or no longer.
    let error = commands
        .write(&did("nobody"), vec![create("hi")], None)
        .await
        .unwrap_err();
    assert_eq!(error.name(), "NotEnrolled");
    setup.finish().await;
}

async fn concurrent_writers_make_one_linear_chain(setup: Setup) {
    let first = setup.commands().await;
    let second = setup.commands().await;
    let alice = did("alice");
    first.enroll(&alice, &["general".into()]).await.unwrap();

    // 64 concurrent writes through one instance and 16 through another, on one actor.
    let mut tasks = Vec::new();
    for index in 0..80 {
        let commands = if index % 5 == 0 {
            second.clone()
        } else {
            first.clone()
        };
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            commands
                .write(&alice, vec![create(&format!("post {index}"))], None)
                .await
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.push(task.await.unwrap().unwrap());
    }

    // Every acknowledged write is there, in one chain numbered 1..=80.
    let records = setup.store.records(alice.as_str()).await.unwrap();
    assert_eq!(records.len(), 80);
    for written in &acknowledged {
        let rkey = rkey_of(&written.results[0].uri);
        assert!(records.iter().any(|r| r.rkey == rkey.as_str()));
    }
    let events = setup
        .store
        .actor_events(alice.as_str(), 0, 1_000)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<u64>>()
    );
    let mut previous = None;
    for event in &events {
        let commit = stratos_schema::events::SequencedCommit::decode(&event.body).unwrap();
        if let Some(previous) = previous {
            assert!(commit.rev > previous, "revisions move forward");
        }
        previous = Some(commit.rev);
    }
    setup.finish().await;
}

/// Writes all over a large tree keep only part of it in memory: once the projection has caught
/// up, a write whose actor holds too many nodes starts over from the root.
async fn an_actor_keeps_a_bounded_part_of_its_tree(setup: Setup) {
    let commands = setup.commands().await;
    let alice = did("alice");
    commands.enroll(&alice, &["general".into()]).await.unwrap();
    let mut uris = Vec::new();
    for batch in 0..25 {
        let ops = (0..200)
            .map(|index| create(&format!("post {batch}/{index}")))
            .collect();
        let written = commands.write(&alice, ops, None).await.unwrap();
        uris.extend(written.results.into_iter().map(|r| r.uri));
    }
    let tree_nodes = setup.store.blocks(alice.as_str()).await.unwrap().len() - 1;
    let mut most = 0;
    for chunk in uris.chunks(200) {
        let ops = chunk
            .iter()
            .map(|uri| WriteOp::Put {
                collection: posts(),
                rkey: rkey_of(uri),
                record: post("edited", GENERAL),
                swap_record: None,
                must_exist: true,
            })
            .collect();
        commands.write(&alice, ops, None).await.unwrap();
        most = most.max(commands.cached_nodes(&alice).await);
    }
    assert!(
        most < tree_nodes / 2,
        "{most} of the tree's {tree_nodes} nodes held after editing every record"
    );
    let last = commands
        .write(&alice, vec![create("one more")], None)
        .await
        .unwrap();
    let head = setup.store.head(alice.as_str()).await.unwrap().unwrap();
    assert_eq!(head.commit, last.commit.cid);
    assert_eq!(
        setup.store.records(alice.as_str()).await.unwrap().len(),
        5_001
    );
    setup.finish().await;
}

/// An instance that starts with only the root of a deep tree reads the nodes its writes reach,
/// also after another instance moved the head (and the projection dropped the nodes it had).
async fn a_fresh_instance_writes_anywhere_in_a_deep_tree(setup: Setup) {
    let first = setup.commands().await;
    let alice = did("alice");
    first.enroll(&alice, &["general".into()]).await.unwrap();
    let mut uris = Vec::new();
    for batch in 0..3 {
        let ops = (0..100)
            .map(|index| create(&format!("post {batch}/{index}")))
            .collect();
        let written = first.write(&alice, ops, None).await.unwrap();
        uris.extend(written.results.into_iter().map(|r| r.uri));
    }
    let put = |uri: &str, text: &str| WriteOp::Put {
        collection: posts(),
        rkey: rkey_of(uri),
        record: post(text, GENERAL),
        swap_record: None,
        must_exist: true,
    };
    let delete = |uri: &str| WriteOp::Delete {
        collection: posts(),
        rkey: rkey_of(uri),
        swap_record: None,
        must_exist: true,
    };

    let second = setup.commands().await;
    second
        .write(&alice, vec![put(&uris[0], "edited early")], None)
        .await
        .unwrap();
    second
        .write(&alice, vec![delete(&uris[150]), create("late")], None)
        .await
        .unwrap();
    // The first instance's tree is stale now; it writes on, and so does the second, whose
    // cached nodes the projection dropped meanwhile.
    for index in 0..5 {
        first
            .write(
                &alice,
                vec![put(&uris[100 + index], "edited by first")],
                None,
            )
            .await
            .unwrap();
    }
    let last = second
        .write(&alice, vec![put(&uris[299], "edited last")], None)
        .await
        .unwrap();

    let head = setup.store.head(alice.as_str()).await.unwrap().unwrap();
    assert_eq!(head.commit, last.commit.cid);
    let records = setup.store.records(alice.as_str()).await.unwrap();
    assert_eq!(records.len(), 300);
    assert!(
        !records
            .iter()
            .any(|r| r.rkey == rkey_of(&uris[150]).as_str())
    );
    let row = |uri: &str| {
        let rkey = rkey_of(uri);
        records
            .iter()
            .find(|r| r.rkey == rkey.as_str())
            .unwrap()
            .cid
    };
    assert_eq!(Some(row(&uris[299])), last.results[0].cid);
    setup.finish().await;
}

async fn replies_keep_within_their_parents_boundaries(setup: Setup) {
    let commands = setup.commands().await;
    let alice = did("alice");
    commands
        .enroll(&alice, &["general".into(), "writers".into()])
        .await
        .unwrap();
    let parent = commands
        .write(&alice, vec![create("parent")], None)
        .await
        .unwrap();
    let reply = |boundary: &str| {
        let mut record = serde_json::json!({
            "$type": "zone.stratos.feed.post",
            "text": "reply",
            "boundary": {"values": [{"value": boundary}]},
            "createdAt": "2026-11-28T12:00:00.000Z",
        });
        let reference = json!({
            "uri": parent.results[0].uri,
            "cid": parent.results[0].cid.unwrap().to_string(),
        });
        record["reply"] = json!({"root": reference, "parent": reference});
        WriteOp::Create {
            collection: posts(),
            rkey: None,
            record: json_to_ipld(&record).unwrap(),
        }
    };
    // The author has "writers", but the parent does not: no escalation through a reply.
    let error = commands
        .write(
            &alice,
            vec![reply("did:web:stratos.example.com/writers")],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(error.name(), "InvalidRecord");
    assert!(error.to_string().contains("subset"), "{error}");
    commands
        .write(&alice, vec![reply(GENERAL)], None)
        .await
        .unwrap();
    setup.finish().await;
}

macro_rules! suite {
    ($module:ident, $kind:literal, $($test:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Setup::new($kind).await).await;
                }
            )*
        }
    };
}

suite!(
    sqlite,
    "sqlite",
    writes_are_applied_before_they_are_answered,
    invalid_writes_change_nothing,
    concurrent_writers_make_one_linear_chain,
    a_fresh_instance_writes_anywhere_in_a_deep_tree,
    an_actor_keeps_a_bounded_part_of_its_tree,
    replies_keep_within_their_parents_boundaries,
);
suite!(
    postgres,
    "postgres",
    writes_are_applied_before_they_are_answered,
    invalid_writes_change_nothing,
    concurrent_writers_make_one_linear_chain,
    a_fresh_instance_writes_anywhere_in_a_deep_tree,
    replies_keep_within_their_parents_boundaries,
);
suite!(
    kafka,
    "postgres+kafka",
    writes_are_applied_before_they_are_answered,
    invalid_writes_change_nothing,
    concurrent_writers_make_one_linear_chain,
    a_fresh_instance_writes_anywhere_in_a_deep_tree,
    replies_keep_within_their_parents_boundaries,
);
