//! The repo and AppView projectors on real parts: the embedded log and a Kafka-API broker, a
//! real PostgreSQL server and SQLite files.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::sync::Arc;
use std::time::Duration;

use stratos_log::testing::Broker;
use stratos_log::{
    CommitLog, EmbeddedConfig, EmbeddedLog, KafkaConfig, KafkaLog, LogRecord, ReadPace,
};
use stratos_projector::repo::{DUPLICATE_REQUEST, Progress, RepoProjector};
use stratos_projector::service::{ProjectorOptions, start};
use stratos_schema::blocks::BlockSource;
use stratos_schema::events::{BoundariesEvent, Event, RequestRef, SequencedCommit, UnenrollEvent};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use stratos_store::testing::TestDatabase;
use stratos_store::{MasterKey, Store, Views};
use support::{BOUNDARY, Writer};
use tokio::sync::broadcast;

const PARTITIONS: u32 = 4;

/// A log, a store and views under test, and what keeps them alive.
struct Setup {
    log: Arc<dyn CommitLog>,
    store: Store,
    views: Views,
    database: TestDatabase,
    _dir: tempfile::TempDir,
    _broker: Option<Broker>,
}

impl Setup {
    async fn new(log_kind: &str, database: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = (log_kind == "kafka").then(Broker::start);
        let log: Arc<dyn CommitLog> = match &broker {
            None => {
                let mut config = EmbeddedConfig::new(dir.path().join("log.sqlite"));
                config.partitions = PARTITIONS;
                Arc::new(EmbeddedLog::open(config).await.unwrap())
            }
            Some(broker) => {
                let mut config = KafkaConfig::new(broker.bootstrap());
                config.partitions = PARTITIONS;
                config.replication_factor = 1;
                Arc::new(KafkaLog::connect(config).await.unwrap())
            }
        };
        let database = TestDatabase::create(database).await.unwrap();
        let store = Store::connect(&database.url, MasterKey::generate())
            .await
            .unwrap();
        let views = Views::connect(&database.url).await.unwrap();
        Setup {
            log,
            store,
            views,
            database,
            _dir: dir,
            _broker: broker,
        }
    }

    /// An enrolled writer whose data key is in the key store.
    async fn enroll(&self, did: &str) -> Writer {
        let mut writer = Writer::for_did(did);
        self.store
            .put_data_key(did, &writer.data_key)
            .await
            .unwrap();
        let event = writer.enrollment(&Keypair::generate(KeyAlgorithm::Secp256k1));
        self.append(Event::Enrollment(event)).await;
        writer
    }

    /// Alice and Bob enrolled, with a post each (`3l2aaaaaaaa22`, `3l2bbbbbbbb22`).
    async fn alice_and_bob_with_a_post_each(&self) -> (Writer, Writer) {
        let mut alice = self.enroll("did:plc:alice").await;
        let mut bob = self.enroll("did:plc:bob").await;
        self.append(Event::Commit(
            alice.next(&[("3l2aaaaaaaa22", Some("alice"))]),
        ))
        .await;
        self.append(Event::Commit(bob.next(&[("3l2bbbbbbbb22", Some("bob"))])))
            .await;
        (alice, bob)
    }

    /// Neither `did`'s posts nor its enrollment are in the views.
    async fn assert_gone_from_the_views(&self, did: &str) {
        assert!(self.views.post_uris_by(did).await.unwrap().is_empty());
        assert!(self.views.enrollment(did).await.unwrap().is_none());
    }

    /// Appends `writer`'s unenrollment.
    async fn unenroll(&self, writer: &Writer, purge: bool) {
        self.append(Event::Unenroll(UnenrollEvent {
            did: writer.did.clone(),
            time: "2026-11-23T12:30:00.000Z".parse().unwrap(),
            purge,
        }))
        .await;
    }

    /// `count` enrolled writers, `did:plc:actor0`….
    async fn enroll_actors(&self, count: usize) -> Vec<Writer> {
        let mut writers = Vec::with_capacity(count);
        for index in 0..count {
            writers.push(self.enroll(&format!("did:plc:actor{index}")).await);
        }
        writers
    }

    async fn append(&self, event: Event) {
        self.log.append_event(&event).await.unwrap();
    }

    /// The first `count` records of `partition`.
    async fn records(&self, partition: u32, count: usize) -> Vec<LogRecord> {
        use futures::StreamExt;
        self.log
            .consume(partition, 0, ReadPace::Prompt)
            .take(count)
            .map(Result::unwrap)
            .collect()
            .await
    }

    /// Runs both projectors to the current end of the log.
    async fn project(&self) {
        project(&self.log, &self.store, &self.views).await;
    }

    async fn finish(self) {
        self.store.close().await;
        drop(self.views);
        self.database.drop_database().await.unwrap();
    }
}

async fn project(log: &Arc<dyn CommitLog>, store: &Store, views: &Views) {
    let options = ProjectorOptions {
        stop_at_end: true,
        ..ProjectorOptions::default()
    };
    let projectors = start(
        log.clone(),
        store.clone(),
        Some(views.clone()),
        options,
        |_| {},
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(120), projectors.finished())
        .await
        .unwrap();
}

fn post_uri(writer: &Writer, rkey: &str) -> String {
    format!("at://{}/zone.stratos.feed.post/{rkey}", writer.did)
}

async fn updates_and_deletes_reach_both_projections(setup: Setup) {
    let mut alice = setup.enroll("did:plc:alice").await;
    let first = alice.next(&[
        ("3l2aaaaaaaa22", Some("hello")),
        ("3l2bbbbbbbb22", Some("bye")),
    ]);
    setup.append(Event::Commit(first)).await;
    let second = alice.next(&[("3l2aaaaaaaa22", Some("edited")), ("3l2bbbbbbbb22", None)]);
    setup.append(Event::Commit(second.clone())).await;
    setup.project().await;

    // The repo projection: head, records, sequence.
    let head = setup.store.head("did:plc:alice").await.unwrap().unwrap();
    assert_eq!(Some(&head), alice.head.as_ref());
    let records = setup.store.records("did:plc:alice").await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].rkey, "3l2aaaaaaaa22");
    let text = stratos_schema::data::decode_ipld(records[0].block.as_deref().unwrap()).unwrap();
    assert!(format!("{text:?}").contains("edited"));
    let events = setup
        .store
        .actor_events("did:plc:alice", 0, 10)
        .await
        .unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let body = SequencedCommit::decode(&events[1].body).unwrap();
    assert_eq!(body.commit, second.slice.commit);
    assert_eq!(body.ops, second.ops);

    // Block garbage collection keeps exactly the head commit and the head tree's nodes.
    let blocks = setup.store.blocks("did:plc:alice").await.unwrap();
    let tree = Mst::load(&blocks, head.data).unwrap();
    let mut reachable = tree.node_blocks(&blocks).unwrap();
    reachable.insert(
        head.commit,
        blocks.get_block(&head.commit).unwrap().to_vec(),
    );
    assert_eq!(blocks, reachable);

    // The AppView views: the update and the delete arrived.
    let post = setup
        .views
        .post(&post_uri(&alice, "3l2aaaaaaaa22"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(post.text, "edited");
    assert_eq!(
        setup.views.post_boundaries(&post.uri).await.unwrap(),
        [BOUNDARY]
    );
    assert!(
        setup
            .views
            .post(&post_uri(&alice, "3l2bbbbbbbb22"))
            .await
            .unwrap()
            .is_none()
    );
    let enrollment = setup
        .views
        .enrollment("did:plc:alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enrollment.boundaries, [BOUNDARY]);
    setup.finish().await;
}

async fn forks_and_bad_events_are_rejected_with_reasons(setup: Setup) {
    let mut alice = setup.enroll("did:plc:alice").await;
    let mut fork = alice.clone();
    let winner = alice.next(&[("3l2aaaaaaaa22", Some("one"))]);
    let loser = fork.next(&[("3l2bbbbbbbb22", Some("two"))]);
    setup.append(Event::Commit(winner.clone())).await;
    setup.append(Event::Commit(loser)).await;

    // Signed with a stranger's key.
    let mut forger = alice.clone();
    forger.key = Keypair::generate(KeyAlgorithm::P256);
    setup
        .append(Event::Commit(
            forger.next(&[("3l2cccccccc22", Some("forged"))]),
        ))
        .await;
    // Never enrolled.
    let mut stranger = Writer::for_did("did:plc:stranger");
    stranger.enrollment(&Keypair::generate(KeyAlgorithm::Secp256k1));
    setup
        .append(Event::Commit(
            stranger.next(&[("3l2dddddddd22", Some("who"))]),
        ))
        .await;
    // Unenrolled.
    let mut bob = setup.enroll("did:plc:bob").await;
    setup
        .append(Event::Unenroll(UnenrollEvent {
            did: bob.did.clone(),
            time: "2026-11-23T12:30:00.000Z".parse().unwrap(),
            purge: false,
        }))
        .await;
    setup
        .append(Event::Commit(bob.next(&[("3l2eeeeeeee22", Some("late"))])))
        .await;
    setup.project().await;

    let reasons: Vec<String> = setup
        .store
        .rejections("did:plc:alice")
        .await
        .unwrap()
        .into_iter()
        .map(|(_, _, reason)| reason)
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("commit builds on"), "{reasons:?}");
    assert!(reasons[1].contains("signature"), "{reasons:?}");
    assert_eq!(
        setup
            .store
            .head("did:plc:alice")
            .await
            .unwrap()
            .unwrap()
            .commit,
        winner.slice.commit
    );
    assert_eq!(setup.store.records("did:plc:alice").await.unwrap().len(), 1);
    assert_eq!(
        setup.store.rejections("did:plc:stranger").await.unwrap()[0].2,
        "unknown actor"
    );
    assert_eq!(
        setup.store.rejections("did:plc:bob").await.unwrap()[0].2,
        "actor is not enrolled"
    );
    assert!(setup.store.records("did:plc:bob").await.unwrap().is_empty());
    // The rejected posts never reach the views.
    assert!(
        setup
            .views
            .post(&post_uri(&alice, "3l2bbbbbbbb22"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        setup
            .views
            .post(&post_uri(&alice, "3l2aaaaaaaa22"))
            .await
            .unwrap()
            .is_some()
    );
    setup.finish().await;
}

async fn unenroll_and_purge_remove_content(setup: Setup) {
    let (alice, bob) = setup.alice_and_bob_with_a_post_each().await;
    setup
        .append(Event::Boundaries(BoundariesEvent {
            did: bob.did.clone(),
            time: "2026-11-23T12:10:00.000Z".parse().unwrap(),
            boundaries: vec!["did:web:stratos.example.com/other".into()],
            attestation: stratos_schema::attestation::sign_attestation(
                &Keypair::generate(KeyAlgorithm::Secp256k1),
                bob.did.as_str(),
                &["did:web:stratos.example.com/other"],
                &bob.key.did_key(),
            ),
        }))
        .await;
    setup.unenroll(&alice, true).await;
    setup.project().await;

    // Alice is gone from every view, and her projected content is gone.
    setup.assert_gone_from_the_views("did:plc:alice").await;
    let records = setup.store.records("did:plc:alice").await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].block, None);
    let enrollment = setup
        .store
        .enrollment("did:plc:alice")
        .await
        .unwrap()
        .unwrap();
    assert!(!enrollment.active);
    // Bob keeps his post; his boundaries changed.
    assert_eq!(
        setup.views.post_uris_by("did:plc:bob").await.unwrap().len(),
        1
    );
    assert_eq!(
        setup
            .views
            .enrollment("did:plc:bob")
            .await
            .unwrap()
            .unwrap()
            .boundaries,
        ["did:web:stratos.example.com/other"]
    );
    assert_eq!(
        setup
            .store
            .enrollment("did:plc:bob")
            .await
            .unwrap()
            .unwrap()
            .boundaries,
        ["did:web:stratos.example.com/other"]
    );

    // After the key is destroyed, a replay has no content for Alice at all.
    setup.store.destroy_keys("did:plc:alice").await.unwrap();
    let again = TestDatabase::create(setup.database.kind).await.unwrap();
    let replayed = Store::connect(&again.url, MasterKey::generate())
        .await
        .unwrap();
    replayed
        .put_data_key("did:plc:bob", &bob.data_key)
        .await
        .unwrap();
    let replayed_views = Views::connect(&again.url).await.unwrap();
    project(&setup.log, &replayed, &replayed_views).await;
    let records = replayed.records("did:plc:alice").await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].block, None);
    assert!(
        replayed.records("did:plc:bob").await.unwrap()[0]
            .block
            .is_some()
    );
    replayed.close().await;
    again.drop_database().await.unwrap();
    setup.finish().await;
}

/// An actor who leaves without a purge leaves the views; its posts come back with it, and a
/// replay reaches the same views at either point.
async fn a_returning_actor_gets_its_posts_back(setup: Setup) {
    let (alice, bob) = setup.alice_and_bob_with_a_post_each().await;
    setup.unenroll(&alice, false).await;
    setup.project().await;
    let alice_post = post_uri(&alice, "3l2aaaaaaaa22");
    setup.assert_gone_from_the_views("did:plc:alice").await;
    assert!(
        setup
            .views
            .post_boundaries(&alice_post)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        setup.views.post_uris_by("did:plc:bob").await.unwrap(),
        [post_uri(&bob, "3l2bbbbbbbb22")]
    );
    assert_a_replay_matches(&setup, &[alice.clone(), bob.clone()]).await;

    // Alice enrolls again: her repository is kept, and so are her posts.
    let mut returning = alice
        .clone()
        .enrollment(&Keypair::generate(KeyAlgorithm::Secp256k1));
    returning.genesis = None;
    setup.append(Event::Enrollment(returning)).await;
    setup.project().await;
    assert_eq!(
        setup.views.post_uris_by("did:plc:alice").await.unwrap(),
        std::slice::from_ref(&alice_post)
    );
    assert_eq!(
        setup.views.post_boundaries(&alice_post).await.unwrap(),
        [BOUNDARY]
    );
    assert!(
        setup
            .views
            .enrollment("did:plc:alice")
            .await
            .unwrap()
            .is_some()
    );
    assert_a_replay_matches(&setup, &[alice, bob]).await;
    setup.finish().await;
}

async fn a_replay_reaches_the_same_state(setup: Setup) {
    let mut writers = setup.enroll_actors(6).await;
    for round in 0..5 {
        for writer in &mut writers {
            let rkey = format!("3l2aaaaaaa{round}22");
            let text = format!("{} {round}", writer.did);
            let mut writes = vec![(rkey.as_str(), Some(text.as_str()))];
            let previous = format!("3l2aaaaaaa{}22", round.max(1) - 1);
            if round == 3 {
                writes.push((previous.as_str(), None));
            }
            let event = writer.next(&writes);
            setup.append(Event::Commit(event)).await;
        }
    }
    setup.project().await;
    assert_a_replay_matches(&setup, &writers).await;
    setup.finish().await;
}

/// A projector that starts on a projection holds none of the actors' trees: it reads the nodes
/// a commit reaches from the store, anywhere in a deep tree.
async fn a_fresh_projector_applies_commits_deep_in_a_tree(setup: Setup) {
    let mut alice = setup.enroll("did:plc:alice").await;
    let rkeys: Vec<String> = (0..400).map(|i| format!("3l2{i:07}aa22")).collect();
    let texts: Vec<String> = (0..400).map(|i| format!("post {i}")).collect();
    for chunk in rkeys.chunks(100).zip(texts.chunks(100)) {
        let writes: Vec<(&str, Option<&str>)> = chunk
            .0
            .iter()
            .zip(chunk.1)
            .map(|(rkey, text)| (rkey.as_str(), Some(text.as_str())))
            .collect();
        setup.append(Event::Commit(alice.next(&writes))).await;
    }
    setup.project().await;

    // A new projector (its cache empty) edits, deletes and creates in the middle of the tree.
    let edit = alice.next(&[
        (rkeys[137].as_str(), Some("edited")),
        (rkeys[251].as_str(), None),
        ("3l20000200ab22", Some("new")),
    ]);
    setup.append(Event::Commit(edit)).await;
    setup.project().await;
    let head = setup.store.head("did:plc:alice").await.unwrap();
    assert_eq!(head.as_ref(), alice.head.as_ref());
    assert_eq!(
        setup.store.records("did:plc:alice").await.unwrap().len(),
        400
    );
    let edited = setup
        .store
        .record("did:plc:alice", "zone.stratos.feed.post", &rkeys[137])
        .await
        .unwrap()
        .unwrap();
    let text = stratos_schema::data::decode_ipld(edited.block.as_deref().unwrap()).unwrap();
    assert!(format!("{text:?}").contains("edited"));
    // The store holds the head's whole tree and commit, nothing more.
    let head = head.unwrap();
    let blocks = setup.store.blocks("did:plc:alice").await.unwrap();
    let tree = Mst::load(&blocks, head.data).unwrap();
    assert_eq!(tree.entries(&blocks).unwrap().len(), 400);
    let mut reachable = tree.node_blocks(&blocks).unwrap();
    assert!(
        reachable.len() > 10,
        "a deep tree: {} nodes",
        reachable.len()
    );
    reachable.insert(
        head.commit,
        blocks.get_block(&head.commit).unwrap().to_vec(),
    );
    assert_eq!(blocks, reachable);
    setup.finish().await;
}

async fn redelivery_is_a_no_op_and_waiters_hear_outcomes(setup: Setup) {
    let mut alice = setup.enroll("did:plc:alice").await;
    let good = alice.next(&[("3l2aaaaaaaa22", Some("one"))]);
    let mut stale = good.clone();
    stale.slice.rev = "3l2zzzzzzzz22".parse().unwrap();
    setup.append(Event::Commit(good)).await;
    setup.append(Event::Commit(stale)).await;
    let partition = stratos_log::partition_for("did:plc:alice", PARTITIONS);
    let records: Vec<LogRecord> = {
        use futures::StreamExt;
        setup
            .log
            .consume(partition, 0, ReadPace::Prompt)
            .take(3)
            .map(Result::unwrap)
            .collect()
            .await
    };

    let (sender, mut heard) = broadcast::channel(16);
    let mut worker = RepoProjector::new(setup.store.clone(), sender.clone());
    let progress = single(worker.apply_batch(&records).await.unwrap());
    assert_eq!((progress.partition, progress.from), (partition, 0));
    assert_eq!(progress.next_offset, 3);
    assert_eq!(progress.rejected.len(), 1);
    assert_eq!(progress.rejected[0].0, 2);
    assert_eq!(heard.recv().await.unwrap(), progress);
    let digest = setup.store.digest().await.unwrap();

    // The same records again, to a fresh worker (as after a restart): nothing changes.
    let mut restarted = RepoProjector::new(setup.store.clone(), sender);
    let again = restarted.apply_batch(&records).await.unwrap();
    assert!(again.is_empty(), "nothing new: {again:?}");
    assert_eq!(setup.store.digest().await.unwrap(), digest);
    assert_eq!(setup.store.last_seq("did:plc:alice").await.unwrap(), 1);

    // Postgres listeners in other processes hear the same progress.
    if let Some(mut listener) = setup.store.listen().await.unwrap() {
        use futures::StreamExt;
        let event = alice.next(&[("3l2bbbbbbbb22", Some("two"))]);
        setup.append(Event::Commit(event)).await;
        let more = {
            setup
                .log
                .consume(partition, 3, ReadPace::Prompt)
                .take(1)
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .await
        };
        let progress = single(restarted.apply_batch(&more).await.unwrap());
        let payload = tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(Progress::from_payload(&payload), Some(progress));
    }
    setup.finish().await;
}

/// Records of several partitions go into one transaction, with a position and an announcement
/// for each; a rejection is announced in its own partition.
async fn one_batch_spans_partitions(setup: Setup) {
    use futures::StreamExt;
    let mut alice = setup.enroll("did:plc:alice").await;
    let alice_partition = stratos_log::partition_for("did:plc:alice", PARTITIONS);
    let other = (0..)
        .map(|n| format!("did:plc:other{n}"))
        .find(|did| stratos_log::partition_for(did, PARTITIONS) != alice_partition)
        .unwrap();
    let other_partition = stratos_log::partition_for(&other, PARTITIONS);
    let mut bob = setup.enroll(&other).await;
    let first = bob.next(&[("3l2aaaaaaaa22", Some("one"))]);
    let mut forked = first.clone();
    forked.slice.rev = "3l2zzzzzzzz22".parse().unwrap();
    setup.append(Event::Commit(first)).await;
    setup.append(Event::Commit(forked)).await;
    setup
        .append(Event::Commit(alice.next(&[("3l2aaaaaaaa22", Some("a"))])))
        .await;
    let mut records = Vec::new();
    for (partition, count) in [(alice_partition, 2), (other_partition, 3)] {
        let read: Vec<LogRecord> = setup
            .log
            .consume(partition, 0, ReadPace::Prompt)
            .take(count)
            .map(Result::unwrap)
            .collect()
            .await;
        records.extend(read);
    }

    let (sender, _) = broadcast::channel(16);
    let mut projector = RepoProjector::new(setup.store.clone(), sender);
    let mut progress = projector.apply_batch(&records).await.unwrap();
    progress.sort_by_key(|p| p.partition);
    let mut expected = vec![
        (alice_partition, 0, 2, Vec::new()),
        (other_partition, 0, 3, vec![2]),
    ];
    expected.sort();
    let announced: Vec<(u32, u64, u64, Vec<u64>)> = progress
        .iter()
        .map(|p| {
            let rejected = p.rejected.iter().map(|(offset, _)| *offset).collect();
            (p.partition, p.from, p.next_offset, rejected)
        })
        .collect();
    assert_eq!(announced, expected);
    for (partition, _, next, _) in &expected {
        assert_eq!(
            setup.store.position("repo", *partition).await.unwrap(),
            Some(*next)
        );
    }
    // One commit applied for each (the fork rejected).
    assert_eq!(setup.store.last_seq("did:plc:alice").await.unwrap(), 1);
    assert_eq!(setup.store.last_seq(&other).await.unwrap(), 1);
    setup.finish().await;
}

/// A batch is decided on the state the batch before it leaves, before that one is written: the
/// tree, the head and the answered requests come from the unwritten batch (a retried request
/// is refused although its answer is not stored yet). Written in order, the two reach the
/// state one batch would.
async fn a_batch_is_decided_before_the_one_before_is_written(setup: Setup) {
    let mut alice = setup.enroll("did:plc:alice").await;
    let request = RequestRef {
        key: "retried".into(),
        results: Vec::new(),
    };
    let mut first = alice.next(&[("3l2aaaaaaaa22", Some("one"))]);
    first.request = Some(request.clone());
    let second = alice.next(&[("3l2bbbbbbbb22", Some("two"))]);
    let mut retry = alice.next(&[("3l2cccccccc22", Some("three"))]);
    retry.request = Some(request);
    let head_rev = second.slice.rev.to_string();
    for event in [first, second, retry] {
        setup.append(Event::Commit(event)).await;
    }
    let partition = stratos_log::partition_for("did:plc:alice", PARTITIONS);
    let records = setup.records(partition, 4).await;

    let (sender, _) = broadcast::channel(16);
    let mut projector = RepoProjector::new(setup.store.clone(), sender);
    projector.decide(&records[..2]).await.unwrap();
    let earlier = projector.take_write();
    projector.decide(&records[2..]).await.unwrap();
    let later = projector.take_write();
    assert_eq!(setup.store.last_seq("did:plc:alice").await.unwrap(), 0);
    assert_eq!(setup.store.position("repo", partition).await.unwrap(), None);

    let progress = single(earlier.run().await.unwrap());
    assert_eq!((progress.from, progress.next_offset), (0, 2));
    assert!(progress.rejected.is_empty(), "{progress:?}");
    let progress = single(later.run().await.unwrap());
    assert_eq!((progress.from, progress.next_offset), (2, 4));
    let rejected: Vec<u64> = progress
        .rejected
        .iter()
        .map(|(offset, _)| *offset)
        .collect();
    assert_eq!(rejected, [3]);
    assert!(progress.rejected[0].1.starts_with(DUPLICATE_REQUEST));
    assert_eq!(setup.store.last_seq("did:plc:alice").await.unwrap(), 2);
    let head = setup.store.head("did:plc:alice").await.unwrap().unwrap();
    assert_eq!(head.rev.to_string(), head_rev);
    assert_eq!(
        setup.store.position("repo", partition).await.unwrap(),
        Some(4)
    );
    setup.finish().await;
}

/// Projectors whose database connections are cut again and again, mid-transaction or between
/// transactions, start over from the stored positions each time: in the end every event is
/// applied exactly once, to the state a replay reaches.
async fn projectors_whose_connections_are_cut_lose_nothing(setup: Setup) {
    let mut writers = setup.enroll_actors(6).await;
    for round in 0..8 {
        for writer in &mut writers {
            let rkey = format!("3l2aaaaaaa{round}22");
            let text = format!("{} {round}", writer.did);
            let event = writer.next(&[(rkey.as_str(), Some(text.as_str()))]);
            setup.append(Event::Commit(event)).await;
        }
    }
    let options = ProjectorOptions {
        batch_size: 3,
        ..ProjectorOptions::default()
    };
    let projectors = start(
        setup.log.clone(),
        setup.store.clone(),
        Some(setup.views.clone()),
        options,
        |_| {},
    )
    .await
    .unwrap();
    let mut cuts = 0;
    for _ in 0..4 {
        cuts += setup.database.cut_connections().await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(cuts > 0, "the projectors had connections to cut");
    let applied = async {
        loop {
            let mut seqs = Vec::new();
            for writer in &writers {
                seqs.push(setup.store.last_seq(writer.did.as_str()).await);
            }
            if seqs.iter().all(|seq| matches!(seq, Ok(8))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), applied)
        .await
        .expect("every commit applied");
    projectors.stop().await;
    // The views follow at their own pace: a second run takes them to the end.
    setup.project().await;
    assert_a_replay_matches(&setup, &writers).await;
    setup.finish().await;
}

/// Waits until every writer's last event sequence number is `seq`.
async fn wait_for_seq(setup: &Setup, writers: &[Writer], seq: u64) {
    let applied = async {
        loop {
            let mut seqs = Vec::new();
            for writer in writers {
                seqs.push(setup.store.last_seq(writer.did.as_str()).await.unwrap());
            }
            if seqs.iter().all(|applied| *applied == seq) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), applied)
        .await
        .unwrap_or_else(|_| panic!("every writer reached event {seq}"));
}

/// Appends a commit of one post for each writer.
async fn append_round(setup: &Setup, writers: &mut [Writer], round: usize) {
    for writer in writers {
        let rkey = format!("3l2aaaaaaa{round}22");
        let text = format!("{} {round}", writer.did);
        let event = writer.next(&[(rkey.as_str(), Some(text.as_str()))]);
        setup.append(Event::Commit(event)).await;
    }
}

/// A second set of projectors on the same projections (another process's: each takes its
/// leases on connections or lock files of its own) stands by while the first runs, applying
/// nothing, and takes over from the stored positions once the first stops.
async fn a_second_projector_stands_by_and_takes_over(setup: Setup) {
    let mut writers = setup.enroll_actors(3).await;
    let running = || {
        start(
            setup.log.clone(),
            setup.store.clone(),
            Some(setup.views.clone()),
            ProjectorOptions::default(),
            |_| {},
        )
    };
    let first = running().await.unwrap();
    // Once both its projectors applied the enrollments, the first holds their leases.
    let enrolled = async {
        loop {
            let mut applied = (0, 0);
            for partition in 0..PARTITIONS {
                let repo = setup.store.position("repo", partition).await.unwrap();
                let views = setup.views.position(partition).await.unwrap();
                applied.0 += repo.unwrap_or(0);
                applied.1 += views.unwrap_or(0);
            }
            if applied == (3, 3) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), enrolled)
        .await
        .expect("the first projectors applied the enrollments");
    let standby = running().await.unwrap();
    let mut standby_progress = standby.subscribe();
    for round in 0..3 {
        append_round(&setup, &mut writers, round).await;
    }
    wait_for_seq(&setup, &writers, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(
            standby_progress.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ),
        "the standby applied nothing while the first ran"
    );

    first.stop().await;
    for round in 3..6 {
        append_round(&setup, &mut writers, round).await;
    }
    wait_for_seq(&setup, &writers, 6).await;
    assert!(standby_progress.try_recv().is_ok(), "the standby took over");
    assert_eq!(setup.store.rejection_count().await.unwrap(), 0);
    standby.stop().await;
    setup.project().await;
    assert_a_replay_matches(&setup, &writers).await;
    setup.finish().await;
}

/// A projector whose lease went with its connection, and was then taken by another process,
/// commits nothing more: its batch fails with `LeaseLost` and moves no position. The process
/// holding the lease commits the same batch.
async fn a_projector_that_lost_its_lease_commits_nothing(setup: Setup) {
    let mut alice = setup.enroll("did:plc:alice").await;
    setup
        .append(Event::Commit(alice.next(&[("3l2aaaaaaaa22", Some("one"))])))
        .await;
    let partition = stratos_log::partition_for("did:plc:alice", PARTITIONS);
    let records = setup.records(partition, 2).await;
    let (_stop, mut shutdown) = tokio::sync::watch::channel(false);
    let mut lease = setup.store.lease(stratos_projector::repo::CONSUMER);
    assert!(lease.hold(&mut shutdown).await);
    let (sender, _) = broadcast::channel(16);
    let mut projector =
        RepoProjector::new(setup.store.clone(), sender.clone()).with_fence(lease.fence());
    projector.decide(&records[..1]).await.unwrap();
    projector.take_write().run().await.unwrap();
    projector.decide(&records[1..]).await.unwrap();
    let write = projector.take_write();

    // The lease's session ends (as with a cut connection) and another process takes the lease.
    let ended = setup.database.end_lease_sessions().await.unwrap();
    assert_eq!(ended, 1, "the lease had its own session");
    let mut other = setup.store.lease(stratos_projector::repo::CONSUMER);
    let taken = tokio::time::timeout(Duration::from_secs(10), other.hold(&mut shutdown));
    assert!(taken.await.unwrap());

    let error = write.run().await.unwrap_err();
    assert!(
        matches!(
            error,
            stratos_projector::repo::ProjectorError::Store(stratos_store::StoreError::LeaseLost(_))
        ),
        "{error}"
    );
    assert_eq!(setup.store.last_seq("did:plc:alice").await.unwrap(), 0);
    assert_eq!(
        setup.store.position("repo", partition).await.unwrap(),
        Some(1)
    );
    // The stale holder finds out and stands by; the new holder applies the commit.
    assert!(
        tokio::time::timeout(Duration::from_millis(1_200), lease.hold(&mut shutdown))
            .await
            .is_err(),
        "the lease stays with the other process"
    );
    let mut projector = RepoProjector::new(setup.store.clone(), sender).with_fence(other.fence());
    projector.decide(&records).await.unwrap();
    projector.take_write().run().await.unwrap();
    assert_eq!(setup.store.last_seq("did:plc:alice").await.unwrap(), 1);
    other.release().await;
    setup.finish().await;
}

/// Replays the whole log into a fresh database and checks it reaches the setup's projections.
async fn assert_a_replay_matches(setup: &Setup, writers: &[Writer]) {
    let live = (
        setup.store.digest().await.unwrap(),
        setup.views.digest().await.unwrap(),
    );
    let again = TestDatabase::create(setup.database.kind).await.unwrap();
    let replayed = Store::connect(&again.url, MasterKey::generate())
        .await
        .unwrap();
    for writer in writers {
        replayed
            .put_data_key(writer.did.as_str(), &writer.data_key)
            .await
            .unwrap();
    }
    let replayed_views = Views::connect(&again.url).await.unwrap();
    project(&setup.log, &replayed, &replayed_views).await;
    assert_eq!(
        (
            replayed.digest().await.unwrap(),
            replayed_views.digest().await.unwrap()
        ),
        live
    );
    replayed.close().await;
    again.drop_database().await.unwrap();
}

/// The one announcement of a batch of one partition.
fn single(mut progress: Vec<Progress>) -> Progress {
    assert_eq!(progress.len(), 1, "{progress:?}");
    progress.remove(0)
}

macro_rules! suite {
    ($module:ident, $log:literal, $database:literal, $($test:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Setup::new($log, $database).await).await;
                }
            )*
        }
    };
}

suite!(
    embedded_sqlite,
    "embedded",
    "sqlite",
    updates_and_deletes_reach_both_projections,
    forks_and_bad_events_are_rejected_with_reasons,
    unenroll_and_purge_remove_content,
    a_returning_actor_gets_its_posts_back,
    a_replay_reaches_the_same_state,
    redelivery_is_a_no_op_and_waiters_hear_outcomes,
    one_batch_spans_partitions,
    a_fresh_projector_applies_commits_deep_in_a_tree,
    a_batch_is_decided_before_the_one_before_is_written,
    a_second_projector_stands_by_and_takes_over,
);
suite!(
    embedded_postgres,
    "embedded",
    "postgres",
    updates_and_deletes_reach_both_projections,
    forks_and_bad_events_are_rejected_with_reasons,
    unenroll_and_purge_remove_content,
    a_returning_actor_gets_its_posts_back,
    a_replay_reaches_the_same_state,
    redelivery_is_a_no_op_and_waiters_hear_outcomes,
    one_batch_spans_partitions,
    a_fresh_projector_applies_commits_deep_in_a_tree,
    a_batch_is_decided_before_the_one_before_is_written,
    projectors_whose_connections_are_cut_lose_nothing,
    a_second_projector_stands_by_and_takes_over,
    a_projector_that_lost_its_lease_commits_nothing,
);
suite!(
    kafka_postgres,
    "kafka",
    "postgres",
    updates_and_deletes_reach_both_projections,
    forks_and_bad_events_are_rejected_with_reasons,
    a_replay_reaches_the_same_state,
);
