//! Connections, migrations and transactions for both backends.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Row, Sqlite, Transaction};
use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use stratos_schema::events::seal::DataKey;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::keys::{KeyKind, KeyStoreError, MasterKey};
use stratos_schema::Cid;
use stratos_schema::blocks::BlockMap;
use stratos_schema::syntax::{SyntaxError, Tid};

/// Rows per multi-row statement: well under both backends' bind-parameter limits.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// One field of every row, as an array parameter: on Postgres a batch's rows go in as one
/// array per column, so a statement's text (and its prepared form) is the same whatever the
/// number of rows.
pub(crate) fn column<'a, T, V>(rows: &'a [T], field: impl Fn(&'a T) -> V) -> Vec<V> {
    rows.iter().map(field).collect()
}

/// An actor's current commit, as the repo projection stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The commit's CID.
    pub commit: Cid,
    /// Its revision.
    pub rev: Tid,
    /// Its MST root.
    pub data: Cid,
}

/// One numbered event of an actor, as `subscribeRecords` replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorEvent {
    /// The actor's sequence number (1, 2, …).
    pub seq: u64,
    /// The event type, e.g. `#commit`.
    pub event_type: String,
    /// The commit revision, for commits.
    pub rev: Option<String>,
    /// The frame body to send.
    pub body: Vec<u8>,
}

/// One record row of the repo projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// The collection NSID.
    pub collection: String,
    /// The record key.
    pub rkey: String,
    /// The record CID.
    pub cid: Cid,
    /// Its qualified boundaries.
    pub boundaries: Vec<String>,
    /// The record block; `None` once the actor's content was purged.
    pub block: Option<Vec<u8>>,
}

/// A key as stored at one moment: its value, and the wrapped bytes that tell that version
/// apart (see [`Store::update_key`]).
pub struct VersionedKey {
    /// The unwrapped key.
    pub key: Zeroizing<Vec<u8>>,
    wrapped: Vec<u8>,
}

/// An actor's enrollment as the repo projector last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The actor.
    pub did: String,
    /// The actor's repository key, as a `did:key`.
    pub signing_key: String,
    /// Its qualified boundaries.
    pub boundaries: Vec<String>,
    /// The public URL of the Stratos service holding the repository.
    pub service_endpoint: String,
    /// When the actor (last) enrolled.
    pub enrolled_at: String,
    /// When the row last changed.
    pub updated_at: String,
    /// `false` once the actor unenrolled.
    pub active: bool,
}

/// An enrollment row as the database returns it.
pub(crate) type StoredEnrollment = (String, String, String, String, String, String, bool);

impl Enrollment {
    pub(crate) fn from_stored(row: StoredEnrollment) -> Self {
        let (did, signing_key, boundaries, service_endpoint, enrolled_at, updated_at, active) = row;
        Self {
            did,
            signing_key,
            boundaries: split_lines(&boundaries),
            service_endpoint,
            enrolled_at,
            updated_at,
            active,
        }
    }
}

/// Boundaries are stored newline-separated (boundary values never contain a newline).
pub(crate) fn split_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect()
}

/// A record row as the database returns it: collection, rkey, CID, boundaries, block.
pub(crate) type StoredRecord = (String, String, String, String, Option<Vec<u8>>);

impl RecordRow {
    pub(crate) fn from_stored(row: StoredRecord) -> Result<Self, StoreError> {
        let (collection, rkey, cid, boundaries, block) = row;
        Ok(Self {
            collection,
            rkey,
            cid: parse_cid(&cid)?,
            boundaries: split_lines(&boundaries),
            block,
        })
    }
}

pub(crate) fn parse_cid(text: &str) -> Result<Cid, StoreError> {
    stratos_schema::data::parse_cid(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored key did not unwrap.
    #[error(transparent)]
    Key(#[from] KeyStoreError),
    /// A stored value that does not parse.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?} (expected postgres://… or sqlite://…)")]
    UnsupportedUrl(String),
    /// A lease could not be kept (its lock file, for one).
    #[error("lease: {0}")]
    Lease(String),
    /// Another process took over this consumer's lease: this process may not move its
    /// positions any more.
    #[error("the {0} lease is held by another process now")]
    LeaseLost(String),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (distributed mode).
    Postgres,
    /// SQLite (embedded mode).
    Sqlite,
}

#[derive(Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool, SqliteFile),
}

/// What a SQLite pool's clones share besides the pool.
#[derive(Clone)]
pub(crate) struct SqliteFile {
    /// The file (`None` for an in-memory database).
    pub(crate) path: Option<std::path::PathBuf>,
    /// The file's write lock.
    lock: WriteLock,
    /// The one connection this pool's transactions write through. SQLite drops a
    /// connection's page cache whenever another connection has written the file, so writes
    /// spread over the readers' connections read their pages back from the write-ahead log on
    /// every transaction; a single writer keeps its cache.
    writer: SqlitePool,
    /// Ends the pool's checkpoint task (see `checkpoint_sqlite`) when the last clone is dropped.
    _checkpointing: Arc<oneshot::Sender<()>>,
}

/// One writer at a time per SQLite file, queued in process: SQLite allows a single writer, and
/// waiting here is fairer and faster than its busy-retry loop.
pub(crate) type WriteLock = Arc<tokio::sync::Mutex<()>>;

/// The write lock of a SQLite file, shared by every pool on it in this process.
fn write_lock(url: &str) -> WriteLock {
    static LOCKS: OnceLock<std::sync::Mutex<HashMap<String, WriteLock>>> = OnceLock::new();
    let key = url.split('?').next().unwrap_or(url).to_string();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}

/// The projections' database and the key store.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) master: MasterKey,
}

/// A transaction: everything written through it becomes visible together on [`StoreTx::commit`],
/// or not at all.
pub enum StoreTx {
    /// On Postgres.
    Postgres(Transaction<'static, Postgres>),
    /// On SQLite, holding the file's write lock.
    Sqlite(
        Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
}

/// Runs the same code on whichever pool or transaction is behind a value.
macro_rules! on {
    ($value:expr, $db:ident => $body:expr) => {
        match $value {
            $crate::store::Pool::Postgres($db) => $body,
            $crate::store::Pool::Sqlite($db, ..) => $body,
        }
    };
}

macro_rules! on_tx {
    ($value:expr, $db:ident => $body:expr) => {
        match $value {
            $crate::store::StoreTx::Postgres($db) => $body,
            $crate::store::StoreTx::Sqlite($db, _) => $body,
        }
    };
}
pub(crate) use {on, on_tx};

/// SQL written with `?` placeholders, numbered for Postgres. Only ever built from the constant
/// statements of this module, so it is safe to execute.
pub(crate) fn sql(backend: Backend, text: &'static str) -> AssertSqlSafe<String> {
    AssertSqlSafe(numbered(backend, text).into_owned())
}

fn numbered(backend: Backend, text: &'static str) -> Cow<'static, str> {
    match backend {
        Backend::Sqlite => Cow::Borrowed(text),
        Backend::Postgres => {
            let mut out = String::with_capacity(text.len() + 8);
            let mut index = 0;
            for ch in text.chars() {
                if ch == '?' {
                    index += 1;
                    out.push_str(&format!("${index}"));
                } else {
                    out.push(ch);
                }
            }
            Cow::Owned(out)
        }
    }
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://path` (created if missing) and runs the
    /// migrations of that backend. A Postgres schema is chosen with the URL's `options`
    /// parameter (`?options=-c%20search_path%3Dstratos`).
    pub async fn connect(url: &str, master: MasterKey) -> Result<Self, StoreError> {
        let pool = open_pool(url).await?;
        crate::migrations::run(&pool, crate::Schema::Projections).await?;
        if let Pool::Postgres(db) = &pool {
            let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(db).await?;
            if autovacuum != "on" {
                tracing::warn!(
                    "PostgreSQL's autovacuum is off: rows the projectors replace or delete are \
                     never reclaimed, and the tables grow until someone runs VACUUM ANALYZE"
                );
            }
        }
        Ok(Self { pool, master })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// Checks the database answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on!(&self.pool, db => {
            sqlx::query("SELECT 1").execute(db).await?;
        });
        Ok(())
    }

    /// Closes every connection (waiting for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores (or replaces) a key of `did`, wrapped by the master key.
    pub async fn put_key(&self, did: &str, kind: KeyKind, key: &[u8]) -> Result<(), StoreError> {
        let wrapped = self.master.wrap(did, kind, key);
        let query = sql(
            self.backend(),
            "INSERT INTO actor_key (did, kind, wrapped) VALUES (?, ?, ?) \
             ON CONFLICT (did, kind) DO UPDATE SET wrapped = excluded.wrapped",
        );
        on!(&self.pool, db => {
            sqlx::query(query).bind(did).bind(kind.as_str()).bind(&wrapped).execute(db).await?;
        });
        Ok(())
    }

    /// Stores `key` as `did`'s key of `kind` unless it has one; returns the key stored now —
    /// `key`, or the one another writer (another instance) stored first — or `None` if it was
    /// destroyed meanwhile. Keys that must be created once (signing and data keys) are created
    /// this way, so that two instances creating one never end up using different keys.
    pub async fn create_key(
        &self,
        did: &str,
        kind: KeyKind,
        key: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let wrapped = self.master.wrap(did, kind, key);
        let query = sql(
            self.backend(),
            "INSERT INTO actor_key (did, kind, wrapped) VALUES (?, ?, ?) \
             ON CONFLICT (did, kind) DO NOTHING",
        );
        on!(&self.pool, db => {
            sqlx::query(query).bind(did).bind(kind.as_str()).bind(&wrapped).execute(db).await?;
        });
        self.key(did, kind).await
    }

    /// `did`'s key of `kind`, created with `new` (once, whoever creates it: see
    /// [`Store::create_key`]) if it has none; `None` if it was destroyed meanwhile.
    pub async fn key_or_create(
        &self,
        did: &str,
        kind: KeyKind,
        new: impl FnOnce() -> Zeroizing<Vec<u8>>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        match self.key(did, kind).await? {
            Some(key) => Ok(Some(key)),
            None => self.create_key(did, kind, &new()).await,
        }
    }

    /// A key of `did`, unwrapped; `None` if there is none (never stored, or destroyed).
    pub async fn key(
        &self,
        did: &str,
        kind: KeyKind,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self.versioned_key(did, kind).await?.map(|read| read.key))
    }

    /// A key of `did` as read for a later [`Store::update_key`]; `None` if there is none.
    pub async fn versioned_key(
        &self,
        did: &str,
        kind: KeyKind,
    ) -> Result<Option<VersionedKey>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT wrapped FROM actor_key WHERE did = ? AND kind = ?",
        );
        let wrapped: Option<Vec<u8>> = on!(&self.pool, db => {
            sqlx::query(query)
                .bind(did)
                .bind(kind.as_str())
                .fetch_optional(db)
                .await?
                .map(|row| row.get::<Vec<u8>, _>(0))
        });
        Ok(match wrapped {
            Some(wrapped) => Some(VersionedKey {
                key: self.master.unwrap(did, kind, &wrapped)?,
                wrapped,
            }),
            None => None,
        })
    }

    /// Stores an actor's data key.
    pub async fn put_data_key(&self, did: &str, key: &DataKey) -> Result<(), StoreError> {
        self.put_key(did, KeyKind::Data, key.as_bytes()).await
    }

    /// An actor's data key, if it has not been destroyed.
    pub async fn data_key(&self, did: &str) -> Result<Option<DataKey>, StoreError> {
        match self.key(did, KeyKind::Data).await? {
            Some(bytes) => Ok(Some(
                DataKey::from_bytes(&bytes).map_err(|_| KeyStoreError::Malformed)?,
            )),
            None => Ok(None),
        }
    }

    /// Replaces a key of `did` only if it is still the version `read` (a key destroyed or
    /// replaced meanwhile stays as it is); `true` if it was replaced. Every wrapping has a
    /// fresh nonce, so equal wrapped bytes mean the same write.
    pub async fn update_key(
        &self,
        did: &str,
        kind: KeyKind,
        read: &VersionedKey,
        key: &[u8],
    ) -> Result<bool, StoreError> {
        let wrapped = self.master.wrap(did, kind, key);
        let query = sql(
            self.backend(),
            "UPDATE actor_key SET wrapped = ? WHERE did = ? AND kind = ? AND wrapped = ?",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query(query)
                .bind(&wrapped)
                .bind(did)
                .bind(kind.as_str())
                .bind(&read.wrapped)
                .execute(db)
                .await?
                .rows_affected()
        }) > 0)
    }

    /// Destroys one key of `did`; `true` if there was one.
    pub async fn destroy_key(&self, did: &str, kind: KeyKind) -> Result<bool, StoreError> {
        let query = sql(
            self.backend(),
            "DELETE FROM actor_key WHERE did = ? AND kind = ?",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query(query).bind(did).bind(kind.as_str()).execute(db).await?.rows_affected()
        }) > 0)
    }

    /// Destroys every key of `did` (purge). Returns how many were deleted.
    pub async fn destroy_keys(&self, did: &str) -> Result<u64, StoreError> {
        let query = sql(self.backend(), "DELETE FROM actor_key WHERE did = ?");
        Ok(on!(&self.pool, db => {
            sqlx::query(query).bind(did).execute(db).await?.rows_affected()
        }))
    }

    /// Every stored key, still wrapped: (DID, kind, wrapped bytes). For copying the key store
    /// into a rebuilt projection.
    pub async fn wrapped_keys(&self) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, kind, wrapped FROM actor_key ORDER BY did, kind",
        );
        Ok(on!(&self.pool, db => sqlx::query_as(query).fetch_all(db).await?))
    }

    /// Replaces the whole key store with `keys` as [`Store::wrapped_keys`] returned them (wrapped
    /// by the same master key), in one transaction.
    pub async fn replace_wrapped_keys(
        &self,
        keys: &[(String, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let clear = sql(self.backend(), "DELETE FROM actor_key");
        let backend = self.backend();
        on_tx!(&mut tx, db => {
            sqlx::query(clear).execute(&mut **db).await?;
            for (did, kind, wrapped) in keys {
                sqlx::query(sql(backend, "INSERT INTO actor_key (did, kind, wrapped) VALUES (?, ?, ?)"))
                    .bind(did)
                    .bind(kind)
                    .bind(wrapped)
                    .execute(&mut **db)
                    .await?;
            }
        });
        tx.commit().await
    }

    /// The next offset `consumer` will read in `partition`, if it stored one.
    pub async fn position(
        &self,
        consumer: &str,
        partition: u32,
    ) -> Result<Option<u64>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT next_offset FROM consumer_position WHERE consumer = ? AND partition_id = ?",
        );
        let offset: Option<i64> = on!(&self.pool, db => {
            sqlx::query(query)
                .bind(consumer)
                .bind(i64::from(partition) as i32)
                .fetch_optional(db)
                .await?
                .map(|row| row.get::<i64, _>(0))
        });
        Ok(offset.map(|o| o as u64))
    }

    /// An actor's head, if it has one.
    pub async fn head(&self, did: &str) -> Result<Option<Head>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT commit_cid, rev, data_cid FROM actor_head WHERE did = ?",
        );
        let row: Option<(String, String, String)> = on!(&self.pool, db => {
            sqlx::query(query).bind(did).fetch_optional(db).await?.map(|row| (row.get(0), row.get(1), row.get(2)))
        });
        row.map(|(commit, rev, data)| {
            Ok(Head {
                commit: parse_cid(&commit)?,
                rev: rev
                    .parse()
                    .map_err(|e: SyntaxError| StoreError::Corrupt(e.to_string()))?,
                data: parse_cid(&data)?,
            })
        })
        .transpose()
    }

    /// Every stored commit and MST node block of an actor.
    pub async fn blocks(&self, did: &str) -> Result<BlockMap, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT cid, bytes FROM repo_block WHERE did = ?",
        );
        let rows: Vec<(String, Vec<u8>)> = on!(&self.pool, db => {
            sqlx::query(query).bind(did).fetch_all(db).await?.into_iter().map(|row| (row.get(0), row.get(1))).collect()
        });
        rows.into_iter()
            .map(|(cid, bytes)| Ok((parse_cid(&cid)?, bytes)))
            .collect()
    }

    /// An actor's record rows, in collection and key order.
    pub async fn records(&self, did: &str) -> Result<Vec<RecordRow>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT collection, rkey, cid, boundaries, block FROM record WHERE did = ? \
             ORDER BY collection, rkey",
        );
        let rows: Vec<StoredRecord> = on!(&self.pool, db => {
            sqlx::query(query)
                .bind(did)
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
                .collect()
        });
        rows.into_iter().map(RecordRow::from_stored).collect()
    }

    /// One record row of an actor.
    pub async fn record(
        &self,
        did: &str,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<RecordRow>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT collection, rkey, cid, boundaries, block FROM record WHERE did = ? \
             AND collection = ? AND rkey = ?",
        );
        let row: Option<StoredRecord> = on!(&self.pool, db => {
            sqlx::query_as(query).bind(did).bind(collection).bind(rkey).fetch_optional(db).await?
        });
        row.map(RecordRow::from_stored).transpose()
    }

    /// Up to `limit` events of `did` numbered after `after`, in order.
    pub async fn actor_events(
        &self,
        did: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ActorEvent>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT seq, event_type, rev, body FROM actor_event WHERE did = ? AND seq > ? \
             ORDER BY seq LIMIT ?",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query(query)
                .bind(did)
                .bind(after as i64)
                .bind(i64::from(limit))
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|row| ActorEvent {
                    seq: row.get::<i64, _>(0) as u64,
                    event_type: row.get(1),
                    rev: row.get(2),
                    body: row.get(3),
                })
                .collect()
        }))
    }

    /// The refused events of `did`, in log order: (partition, offset, reason).
    pub async fn rejections(&self, did: &str) -> Result<Vec<(u32, u64, String)>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT partition_id, log_offset, reason FROM rejected_event WHERE did = ? \
             ORDER BY partition_id, log_offset",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query(query)
                .bind(did)
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|row| (row.get::<i32, _>(0) as u32, row.get::<i64, _>(1) as u64, row.get(2)))
                .collect()
        }))
    }

    /// The highest sequence number of `did`'s events (0 when it has none).
    pub async fn last_seq(&self, did: &str) -> Result<u64, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT COALESCE(MAX(seq), 0) FROM actor_event WHERE did = ?",
        );
        let seq: i64 = on!(&self.pool, db => {
            sqlx::query(query).bind(did).fetch_one(db).await?.get(0)
        });
        Ok(seq as u64)
    }

    /// Every partition's next offset for `consumer`, in partition order.
    pub async fn positions(&self, consumer: &str) -> Result<Vec<(u32, u64)>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT partition_id, next_offset FROM consumer_position WHERE consumer = ? \
             ORDER BY partition_id",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query(query)
                .bind(consumer)
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|row| (row.get::<i32, _>(0) as u32, row.get::<i64, _>(1) as u64))
                .collect()
        }))
    }

    /// How many events were refused, in all.
    pub async fn rejection_count(&self) -> Result<u64, StoreError> {
        let query = sql(self.backend(), "SELECT COUNT(*) FROM rejected_event");
        let count: i64 = on!(&self.pool, db => sqlx::query_scalar(query).fetch_one(db).await?);
        Ok(count as u64)
    }

    /// Why the event at a log position was refused, if it was.
    pub async fn rejection(
        &self,
        partition: u32,
        offset: u64,
    ) -> Result<Option<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT reason FROM rejected_event WHERE partition_id = ? AND log_offset = ?",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query_scalar(query)
                .bind(partition as i32)
                .bind(offset as i64)
                .fetch_optional(db)
                .await?
        }))
    }

    /// The refused offsets of `partition` in `from..to`, in order.
    pub async fn rejected_offsets(
        &self,
        partition: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT log_offset FROM rejected_event WHERE partition_id = ? AND log_offset >= ? \
             AND log_offset < ? ORDER BY log_offset",
        );
        let offsets: Vec<i64> = on!(&self.pool, db => {
            sqlx::query_scalar(query)
                .bind(partition as i32)
                .bind(from as i64)
                .bind(to as i64)
                .fetch_all(db)
                .await?
        });
        Ok(offsets.into_iter().map(|o| o as u64).collect())
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        begin_on(&self.pool).await
    }
}

impl Pool {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// Closes every connection (waiting for those in use to be returned).
    pub(crate) async fn close(&self) {
        match self {
            Pool::Postgres(db) => db.close().await,
            Pool::Sqlite(db, file) => {
                file.writer.close().await;
                db.close().await;
            }
        }
    }
}

/// Opens a pool on `postgres://…` or `sqlite://path` (the file is created if missing).
pub(crate) async fn open_pool(url: &str) -> Result<Pool, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .before_acquire(|connection, meta| Box::pin(ping_if_idle(connection, meta)))
            .connect(url)
            .await?;
        Ok(Pool::Postgres(pool))
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Reads take pages from a mapping of the file instead of a `read` call each, and
            // keep more of them cached per connection than SQLite's 2 MiB default.
            .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
            .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
            // Statement journals of large multi-row statements, and sorts, stay in memory
            // instead of spilling into temporary files.
            .pragma("temp_store", "MEMORY")
            // Checkpoints run beside the writers (see `checkpoint_sqlite`), not in a commit.
            .pragma("wal_autocheckpoint", "0")
            // A page of an export or a backfill crosses from SQLite's thread without the
            // thread waiting for the reader every 50 rows.
            .row_buffer_size(SQLITE_ROW_BUFFER);
        let path = sqlite_path(&options);
        // A local file does not hang up: a pooled connection needs no check. What the pooled
        // connections write is what the log does not hold (keys, blobs, pending
        // authorizations), so their commits reach the disk before they return; the writer's
        // projection batches can be rebuilt from the log, and are synced at checkpoints.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        // The writer's connection lives as long as the pool, and so does its page cache.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let lock = write_lock(url);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(checkpoint_sqlite(pool.clone(), lock.clone(), stopped));
        Ok(Pool::Sqlite(
            pool,
            SqliteFile {
                path,
                lock,
                writer,
                _checkpointing: Arc::new(stop),
            },
        ))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// The file behind SQLite `options`, unless the database is in memory.
fn sqlite_path(options: &SqliteConnectOptions) -> Option<std::path::PathBuf> {
    let path = options.get_filename();
    let name = path.to_string_lossy();
    let in_memory =
        name.is_empty() || name.starts_with(":memory:") || name.starts_with("file:sqlx-in-memory");
    (!in_memory).then(|| path.to_path_buf())
}

/// How often a SQLite store's write-ahead log is copied back into the database file.
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Every this many checkpoints, one also holds the writers back to start the log over.
const SQLITE_RESTART_EVERY: u32 = 5;

/// Copies a SQLite store's write-ahead log back into the database file until the pool closes
/// or is dropped (`stopped`), beside the writers: a checkpoint inside a commit (SQLite's
/// default) made that commit, often the repo projector's, wait for the whole copy. Now and then
/// the frames committed during a copy are copied again holding the file's write lock, so the
/// next writer finds the log fully copied and starts it over instead of growing it.
async fn checkpoint_sqlite(pool: SqlitePool, lock: WriteLock, mut stopped: oneshot::Receiver<()>) {
    let mut round = 0u32;
    while !pool.is_closed() {
        round = round.wrapping_add(1);
        let mut copied = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await;
        if copied.is_ok() && round.is_multiple_of(SQLITE_RESTART_EVERY) {
            let _writers = lock.lock().await;
            copied = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await;
        }
        if let Err(error) = copied
            && !pool.is_closed()
        {
            tracing::warn!(%error, "store checkpoint failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(SQLITE_CHECKPOINT_EVERY) => {}
            _ = &mut stopped => return,
        }
    }
}

/// How much of a SQLite store file its connections map into memory (mapped pages the process
/// touched count in its resident size, but they are the file's, not the heap's).
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// The page cache of each SQLite store connection, in KiB.
const SQLITE_CACHE_KIB: u64 = 16 * 1024;

/// How many rows a SQLite store connection reads ahead of the task that asked for them.
const SQLITE_ROW_BUFFER: usize = 1_024;

/// How long a pooled connection may sit idle before it is checked with a round trip when it
/// is taken again. Checking every time doubled the round trips of every single-statement read.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(30);

/// Checks a pooled connection that was idle for a while, so that one the server dropped is
/// replaced instead of failing a request.
async fn ping_if_idle(
    connection: &mut sqlx::PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for >= CHECK_IDLE_AFTER {
        sqlx::Connection::ping(connection).await?;
    }
    Ok(true)
}

/// How a transaction of the store or the views starts on Postgres. Its statements find rows by
/// key, so it plans index scans even where the tables have no statistics yet (autovacuum lags
/// behind a fast-growing table, or is off): without statistics the planner takes a delete by a
/// key's prefix, or by a join on a list of keys, for a sequential scan that grows with the
/// table. (A statement that touches every row still gets its sequential scan.)
const BEGIN_KEYED: &str = "BEGIN; SET LOCAL enable_seqscan = off";

/// Starts a transaction on a pool.
pub(crate) async fn begin_on(pool: &Pool) -> Result<StoreTx, StoreError> {
    Ok(match pool {
        Pool::Postgres(db) => StoreTx::Postgres(db.begin_with(BEGIN_KEYED).await?),
        Pool::Sqlite(_, file) => {
            let guard = file.lock.clone().lock_owned().await;
            StoreTx::Sqlite(file.writer.begin_with("BEGIN IMMEDIATE").await?, guard)
        }
    })
}

impl StoreTx {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            StoreTx::Postgres(_) => Backend::Postgres,
            StoreTx::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// Records that `consumer` will next read `next_offset` of `partition`.
    pub async fn set_position(
        &mut self,
        consumer: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), StoreError> {
        self.set_positions(consumer, &[(partition, next_offset)])
            .await
    }

    /// Records where `consumer` will next read in each `(partition, next_offset)`, in one
    /// statement.
    pub async fn set_positions(
        &mut self,
        consumer: &str,
        positions: &[(u32, u64)],
    ) -> Result<(), StoreError> {
        for chunk in positions.chunks(ROWS_PER_STATEMENT) {
            on_tx!(&mut *self, tx => {
                let mut query = sqlx::QueryBuilder::new(
                    "INSERT INTO consumer_position (consumer, partition_id, next_offset) ",
                );
                query.push_values(chunk, |mut row, (partition, next_offset)| {
                    row.push_bind(consumer)
                        .push_bind(*partition as i32)
                        .push_bind(*next_offset as i64);
                });
                query.push(
                    " ON CONFLICT (consumer, partition_id) \
                     DO UPDATE SET next_offset = excluded.next_offset",
                );
                query.build().execute(&mut **tx).await?;
            });
        }
        Ok(())
    }

    /// Records that the event at a log position was refused, and why. Recording the same
    /// position again (redelivery) changes nothing.
    pub(crate) async fn record_rejection(
        &mut self,
        partition: u32,
        offset: u64,
        did: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "INSERT INTO rejected_event (partition_id, log_offset, did, reason) VALUES (?, ?, ?, ?) \
             ON CONFLICT (partition_id, log_offset) DO NOTHING",
        );
        on_tx!(self, tx => {
            sqlx::query(query)
                .bind(i64::from(partition) as i32)
                .bind(offset as i64)
                .bind(did)
                .bind(reason)
                .execute(&mut **tx)
                .await?;
        });
        Ok(())
    }

    /// Makes everything written visible.
    pub async fn commit(self) -> Result<(), StoreError> {
        on_tx!(self, tx => tx.commit().await?);
        Ok(())
    }

    /// Discards everything written (dropping the transaction does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        on_tx!(self, tx => tx.rollback().await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Pool, open_pool};

    /// `PRAGMA synchronous` of a connection of `pool`.
    async fn synchronous(pool: &sqlx::SqlitePool) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// Writes outside projection batches (keys above all) are synced at commit (`FULL`, 2);
    /// the projection writer's are synced at checkpoints (`NORMAL`, 1).
    #[tokio::test]
    async fn what_the_log_does_not_hold_is_synced_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
        let Pool::Sqlite(pool, file) = open_pool(&url).await.unwrap() else {
            unreachable!("a SQLite URL opens a SQLite pool");
        };
        assert_eq!(synchronous(&pool).await, 2);
        assert_eq!(synchronous(&file.writer).await, 1);
        pool.close().await;
        file.writer.close().await;
    }
}
