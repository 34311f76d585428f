//! One suite for both backends: a real PostgreSQL server and a SQLite file.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use sqlx::Connection;
use stratos_schema::events::seal::DataKey;
use stratos_store::{KeyKind, MasterKey, Store, StoreError};

/// The server tests create their databases on: `DATABASE_URL`, or the local PostgreSQL.
fn postgres_server() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database of the given kind, and what keeps it alive.
struct Fixture {
    kind: &'static str,
    url: String,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// Drops the test's Postgres database (a failed test leaves it for inspection).
    async fn cleanup(self) {
        if let Some(name) = &self.name {
            let mut admin = sqlx::PgConnection::connect(&postgres_server())
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
        }
    }
}

async fn fixture(kind: &'static str) -> Fixture {
    match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
            Fixture {
                kind,
                url,
                name: None,
                _dir: Some(dir),
            }
        }
        _ => {
            let server = postgres_server();
            let name = format!("stratos_test_{:016x}", rand_suffix());
            let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let base = server
                .rsplit_once('/')
                .map_or(server.as_str(), |(base, _)| base);
            Fixture {
                kind,
                url: format!("{base}/{name}"),
                name: Some(name),
                _dir: None,
            }
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

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

    // A rolled-back transaction leaves nothing behind.
    let mut tx = store.begin().await.unwrap();
    tx.set_head(did, &head).await.unwrap();
    tx.put_blocks(did, &blocks).await.unwrap();
    tx.put_record(did, &post).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.head(did).await.unwrap(), None);
    assert!(store.blocks(did).await.unwrap().is_empty());
    assert!(store.records(did).await.unwrap().is_empty());

    let mut tx = store.begin().await.unwrap();
    tx.set_head(did, &head).await.unwrap();
    tx.put_blocks(did, &blocks).await.unwrap();
    tx.put_blocks(did, &blocks).await.unwrap();
    tx.put_record(did, &post).await.unwrap();
    tx.put_record(did, &purged).await.unwrap();
    tx.set_position("repo", 0, 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.head(did).await.unwrap(), Some(head));
    assert_eq!(store.blocks(did).await.unwrap(), blocks);
    assert_eq!(
        store.records(did).await.unwrap(),
        vec![post.clone(), purged.clone()]
    );

    let mut tx = store.begin().await.unwrap();
    tx.delete_record(did, &post.collection, &post.rkey)
        .await
        .unwrap();
    tx.delete_blocks(did, &[commit]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.records(did).await.unwrap(), vec![purged]);
    assert_eq!(store.blocks(did).await.unwrap().len(), 1);
    assert!(store.records("did:plc:bob").await.unwrap().is_empty());
}

async fn sequences_and_rejections(fixture: &Fixture) {
    let store = Store::connect(&fixture.url, MasterKey::generate())
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.append_actor_event("did:plc:a", "#commit", Some("3l2aaaaaaaa22"), b"one")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tx.append_actor_event("did:plc:a", "#commit", Some("3l2aaaaaaaa23"), b"two")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        tx.append_actor_event("did:plc:b", "#enrollment", None, b"b")
            .await
            .unwrap(),
        1
    );
    tx.record_rejection(2, 17, "did:plc:a", "not on the head")
        .await
        .unwrap();
    tx.record_rejection(2, 17, "did:plc:a", "not on the head")
        .await
        .unwrap();
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
}

macro_rules! suite {
    ($module:ident, $kind:literal, $($test:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    let fixture = super::fixture($kind).await;
                    super::$test(&fixture).await;
                    fixture.cleanup().await;
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
    positions_commit_with_their_transaction,
    repo_projection_round_trip,
    sequences_and_rejections,
);
suite!(
    sqlite,
    "sqlite",
    migrations_are_idempotent,
    keys_round_trip_and_purge,
    positions_commit_with_their_transaction,
    repo_projection_round_trip,
    sequences_and_rejections,
);
