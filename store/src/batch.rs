//! Changes to the repo projection gathered over a batch of events and reduced to their net
//! effect: a block created by one commit and removed by the next is never written, an actor's
//! head is written once per batch. On Postgres the batch goes out as one call of
//! `stratos_write_repo_batch` (migration `0010`), one array per column (a batch too large for
//! one call, as a few calls in one transaction); on SQLite as a few multi-row statements.

use std::collections::BTreeMap;

use sqlx::query_builder::Separated;
use sqlx::{PgConnection, QueryBuilder, Sqlite, Transaction};
use stratos_schema::Cid;
use stratos_schema::data::blob_refs_in_block;

use crate::lease::Fence;
use crate::notify::OUTCOME_CHANNEL;
use crate::requests::StoredRequest;
use crate::store::{
    Enrollment, Head, Pool, ROWS_PER_STATEMENT, RecordRow, Store, StoreError, StoreTx, column,
};

/// A record's key: actor, collection, record key.
type RecordKey = (String, String, String);

/// One numbered actor event.
#[derive(Debug, Clone)]
struct EventRow {
    did: String,
    seq: u64,
    event_type: String,
    rev: Option<String>,
    body: Vec<u8>,
}

/// A rejected event: partition, offset, actor, reason.
type Rejection = (u32, u64, String, String);

/// A table keyed by record (actor, collection, record key).
#[derive(Debug, Clone, Copy)]
enum KeyedTable {
    /// `record`.
    Record,
    /// `record_blob`.
    RecordBlob,
}

/// Runs a statement over `rows` on SQLite, at most [`ROWS_PER_STATEMENT`] rows at a time:
/// `head`, the rows as a `VALUES` list (each bound by `bind`), then `tail` (an insert's
/// `ON CONFLICT` clause, or the end of a join on the rows).
async fn sqlite_values<'a, T>(
    tx: &mut Transaction<'static, Sqlite>,
    head: &'static str,
    rows: &'a [T],
    mut bind: impl FnMut(Separated<'_, Sqlite, &'static str>, &'a T),
    tail: &'static str,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::new(head);
        query.push_values(chunk, &mut bind);
        query.push(tail);
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The most bytes of blocks one array statement carries (Postgres refuses a message over 1 GiB).
const ARRAY_STATEMENT_BYTES: usize = 64 * 1024 * 1024;

/// `rows` cut into runs of at most [`ARRAY_STATEMENT_BYTES`] (by `size`), a row per run at least.
fn byte_chunks<T>(rows: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, row) in rows.iter().enumerate() {
        let row_bytes = size(row);
        if index > start && bytes + row_bytes > ARRAY_STATEMENT_BYTES {
            chunks.push(&rows[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += row_bytes;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// The end of SQLite's delete-by-join over a list of record keys.
const SQLITE_KEY_JOIN_END: &str =
    ") AS k ON r.did = k.column1 AND r.collection = k.column2 AND r.rkey = k.column3)";

/// The net changes of a batch of events, in the order they must be written.
#[derive(Debug, Default)]
pub struct ProjectionBatch {
    enrollments: BTreeMap<String, Enrollment>,
    purges: Vec<String>,
    blocks: BTreeMap<(String, Cid), Option<Vec<u8>>>,
    records: BTreeMap<RecordKey, Option<RecordRow>>,
    /// For every record written or deleted: the revision and the blobs it now refers to.
    blob_refs: BTreeMap<RecordKey, (String, Vec<String>)>,
    /// Records whose first change in the batch created them: they have no stored blob
    /// references to replace.
    fresh: std::collections::BTreeSet<RecordKey>,
    heads: BTreeMap<String, Head>,
    events: Vec<EventRow>,
    rejections: Vec<Rejection>,
    requests: Vec<StoredRequest>,
}

impl ProjectionBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes (or replaces) an actor's enrollment.
    pub fn put_enrollment(&mut self, enrollment: Enrollment) {
        self.enrollments.insert(enrollment.did.clone(), enrollment);
    }

    /// Removes the content of every record of `did` written before this call.
    pub fn purge_content(&mut self, did: &str) {
        self.purges.push(did.to_string());
        for ((owner, _, _), row) in self.records.iter_mut() {
            if owner == did
                && let Some(row) = row
            {
                row.block = None;
            }
        }
        for ((owner, _, _), (_, cids)) in self.blob_refs.iter_mut() {
            if owner == did {
                cids.clear();
            }
        }
    }

    /// Stores a commit or MST node block of `did`.
    pub fn put_block(&mut self, did: &str, cid: Cid, bytes: Vec<u8>) {
        self.blocks.insert((did.to_string(), cid), Some(bytes));
    }

    /// Removes a block of `did`.
    pub fn delete_block(&mut self, did: &str, cid: Cid) {
        self.blocks.insert((did.to_string(), cid), None);
    }

    /// Writes (or replaces) a record row of `did`, written at revision `rev`, with the blobs
    /// its block refers to.
    pub fn put_record(&mut self, did: &str, row: RecordRow, rev: &str) {
        self.write_record(did, row, rev, false);
    }

    /// Writes a record row of `did` that did not exist before (its key was not in the tree).
    pub fn create_record(&mut self, did: &str, row: RecordRow, rev: &str) {
        self.write_record(did, row, rev, true);
    }

    fn write_record(&mut self, did: &str, row: RecordRow, rev: &str, created: bool) {
        let key = (did.to_string(), row.collection.clone(), row.rkey.clone());
        if created && !self.blob_refs.contains_key(&key) {
            self.fresh.insert(key.clone());
        }
        let blobs = row
            .block
            .as_deref()
            .map(blob_refs_in_block)
            .unwrap_or_default();
        self.blob_refs.insert(
            key.clone(),
            (rev.to_string(), blobs.iter().map(Cid::to_string).collect()),
        );
        self.records.insert(key, Some(row));
    }

    /// Removes a record row of `did`.
    pub fn delete_record(&mut self, did: &str, collection: &str, rkey: &str) {
        let key = (did.to_string(), collection.to_string(), rkey.to_string());
        self.blob_refs
            .insert(key.clone(), (String::new(), Vec::new()));
        self.records.insert(key, None);
    }

    /// Sets an actor's head.
    pub fn set_head(&mut self, did: &str, head: Head) {
        self.heads.insert(did.to_string(), head);
    }

    /// Stores event number `seq` of `did` (numbers are given once per actor).
    pub fn add_actor_event(
        &mut self,
        did: &str,
        seq: u64,
        event_type: &str,
        rev: Option<&str>,
        body: Vec<u8>,
    ) {
        self.events.push(EventRow {
            did: did.to_string(),
            seq,
            event_type: event_type.to_string(),
            rev: rev.map(str::to_string),
            body,
        });
    }

    /// Stores the answer to an idempotent request.
    pub fn put_request(&mut self, request: StoredRequest) {
        self.requests.push(request);
    }

    /// The requests this batch answers, as `(did, key)`.
    pub fn requests(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.requests.iter().map(|r| (r.did.clone(), r.key.clone()))
    }

    /// Whether this batch already answers `(did, key)`.
    pub fn has_request(&self, did: &str, key: &str) -> bool {
        self.requests.iter().any(|r| r.did == did && r.key == key)
    }

    /// Records that the event at a log position was refused, and why.
    pub fn reject(&mut self, partition: u32, offset: u64, did: &str, reason: &str) {
        self.rejections
            .push((partition, offset, did.to_string(), reason.to_string()));
    }
}

/// Where a batch's consumer will next read, and what to announce once it is written.
#[derive(Debug, Clone, Copy)]
pub struct BatchProgress<'a> {
    /// The consumer whose positions move.
    pub consumer: &'a str,
    /// Its new `(partition, next_offset)` positions.
    pub positions: &'a [(u32, u64)],
    /// Payloads for [`crate::OUTCOME_CHANNEL`] (Postgres only; SQLite has no other process).
    pub payloads: &'a [&'a str],
    /// The consumer's lease: the batch commits only while this process holds it.
    pub fence: Option<&'a Fence>,
}

impl BatchProgress<'static> {
    /// No positions to move and nothing to announce.
    const NONE: Self = Self {
        consumer: "",
        positions: &[],
        payloads: &[],
        fence: None,
    };
}

impl ProjectionBatch {
    /// Whether the batch changes enrollments or purges content: changes the one-call write
    /// (`stratos_write_repo_batch`) leaves to statements of their own.
    fn has_actor_changes(&self) -> bool {
        !self.enrollments.is_empty() || !self.purges.is_empty()
    }

    /// Whether the batch's blocks fit one call's arrays (Postgres refuses a message over 1
    /// GiB; larger batches, such as big imports, take several calls in one transaction).
    fn fits_one_call(&self) -> bool {
        let blocks: usize = self.blocks.values().flatten().map(Vec::len).sum();
        let records: usize = self
            .records
            .values()
            .flatten()
            .filter_map(|row| row.block.as_ref().map(Vec::len))
            .sum();
        let events: usize = self.events.iter().map(|event| event.body.len()).sum();
        blocks + records + events <= ARRAY_STATEMENT_BYTES
    }
}

impl Store {
    /// Writes a batch's net changes, `progress`'s positions and its announcements atomically. On
    /// Postgres a batch without enrollment changes that fits one call is one statement (one
    /// round trip); otherwise one transaction.
    pub async fn write_batch(
        &self,
        batch: &ProjectionBatch,
        progress: BatchProgress<'_>,
    ) -> Result<(), StoreError> {
        if let Pool::Postgres(db) = &self.pool
            && !batch.has_actor_changes()
            && batch.fits_one_call()
        {
            let mut connection = db.acquire().await?;
            return write_in_calls(&mut connection, batch, Some(progress)).await;
        }
        let mut tx = self.begin().await?;
        if let Some(fence) = progress.fence {
            tx.check_fence(fence).await?;
        }
        tx.write(batch).await?;
        tx.set_positions(progress.consumer, progress.positions)
            .await?;
        tx.notify_all(progress.payloads).await?;
        tx.commit().await
    }
}

/// Calls `stratos_write_repo_batch` with the batch's changes (enrollment changes excepted) and,
/// when given, the consumer's positions and announcements: once, or, for a batch whose blocks,
/// records and events exceed [`ARRAY_STATEMENT_BYTES`], once per run of them (within the
/// caller's transaction). Deletions, small rows, and blob references (whose replacement deletes
/// first) go with the first call, positions and announcements with the last.
async fn write_in_calls(
    db: &mut PgConnection,
    batch: &ProjectionBatch,
    progress: Option<BatchProgress<'_>>,
) -> Result<(), StoreError> {
    let (puts, deletes) = block_changes(batch);
    let (records, removed) = record_changes(batch);
    let unrefs = replaced_blob_refs(batch);
    let refs = blob_refs(batch);
    let heads = head_rows(batch);
    let progress = progress.unwrap_or(BatchProgress::NONE);
    let fence = match progress.fence {
        Some(fence) => fence.epoch()?,
        None => None,
    };
    let puts = byte_chunks(&puts, |(_, _, bytes)| bytes.len());
    let records = byte_chunks(&records, |(_, row, _, _)| {
        row.block.as_ref().map_or(0, Vec::len)
    });
    let events = byte_chunks(&batch.events, |event| event.body.len());
    let calls = puts.len().max(records.len()).max(events.len()).max(1);
    for call in 0..calls {
        let first = call == 0;
        let last = call + 1 == calls;
        let rows = CallRows {
            deletes: if first { &deletes } else { &[] },
            puts: puts.get(call).copied().unwrap_or_default(),
            removed: if first { &removed } else { &[] },
            records: records.get(call).copied().unwrap_or_default(),
            unrefs: if first { &unrefs } else { &[] },
            refs: if first { &refs } else { &[] },
            heads: if first { &heads } else { &[] },
            events: events.get(call).copied().unwrap_or_default(),
            requests: if first { &batch.requests } else { &[] },
            rejections: if first { &batch.rejections } else { &[] },
            progress: if last { progress } else { BatchProgress::NONE },
            fence: if first { fence } else { None },
        };
        call_write_function(&mut *db, rows).await?;
    }
    Ok(())
}

/// The rows of one `stratos_write_repo_batch` call.
struct CallRows<'a> {
    deletes: &'a [(&'a str, String)],
    puts: &'a [BlockPut<'a>],
    removed: &'a [&'a RecordKey],
    records: &'a [RecordPut<'a>],
    unrefs: &'a [&'a RecordKey],
    refs: &'a [(&'a RecordKey, &'a str, &'a str)],
    heads: &'a [HeadRow<'a>],
    events: &'a [EventRow],
    requests: &'a [StoredRequest],
    rejections: &'a [Rejection],
    progress: BatchProgress<'a>,
    /// The consumer and epoch of the lease the call commits under (see [`Fence`]).
    fence: Option<(&'a str, i64)>,
}

/// The call of `stratos_write_repo_batch` with every column of a batch.
macro_rules! write_function_call {
    () => {
        "SELECT stratos_write_repo_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, \
         $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45)"
    };
}

/// The same call under a lease: it runs only if the lease's row still has this process's
/// epoch, and holds the row `FOR SHARE` until the batch commits, so a process taking the
/// lease over waits for it (the CTE is materialized: the row is locked before the call runs).
const FENCED_WRITE_FUNCTION_CALL: &str = concat!(
    "WITH lease AS MATERIALIZED (SELECT 1 FROM consumer_lease WHERE consumer = $46 \
     AND epoch = $47 FOR SHARE) ",
    write_function_call!(),
    " FROM lease"
);

/// Calls `stratos_write_repo_batch` once.
async fn call_write_function(db: &mut PgConnection, rows: CallRows<'_>) -> Result<(), StoreError> {
    let CallRows {
        deletes,
        puts,
        removed,
        records,
        unrefs,
        refs,
        heads,
        events,
        requests,
        rejections,
        progress,
        fence,
    } = rows;
    let call = match fence {
        Some(_) => FENCED_WRITE_FUNCTION_CALL,
        None => write_function_call!(),
    };
    let query = sqlx::query(call)
        .bind(column(deletes, |(did, _)| *did))
        .bind(column(deletes, |(_, cid)| cid.as_str()))
        .bind(column(puts, |(did, _, _)| *did))
        .bind(column(puts, |(_, cid, _)| cid.as_str()))
        .bind(column(puts, |(_, _, bytes)| *bytes))
        .bind(column(removed, |(did, _, _)| did.as_str()))
        .bind(column(removed, |(_, collection, _)| collection.as_str()))
        .bind(column(removed, |(_, _, rkey)| rkey.as_str()))
        .bind(column(records, |(did, _, _, _)| *did))
        .bind(column(records, |(_, row, _, _)| row.collection.as_str()))
        .bind(column(records, |(_, row, _, _)| row.rkey.as_str()))
        .bind(column(records, |(_, _, cid, _)| cid.as_str()))
        .bind(column(records, |(_, _, _, boundaries)| boundaries.as_str()))
        .bind(column(records, |(_, row, _, _)| row.block.as_deref()))
        .bind(column(unrefs, |(did, _, _)| did.as_str()))
        .bind(column(unrefs, |(_, collection, _)| collection.as_str()))
        .bind(column(unrefs, |(_, _, rkey)| rkey.as_str()))
        .bind(column(refs, |((did, _, _), _, _)| did.as_str()))
        .bind(column(refs, |((_, collection, _), _, _)| {
            collection.as_str()
        }))
        .bind(column(refs, |((_, _, rkey), _, _)| rkey.as_str()))
        .bind(column(refs, |(_, _, cid)| *cid))
        .bind(column(refs, |(_, rev, _)| *rev))
        .bind(column(heads, |(did, _, _, _)| *did))
        .bind(column(heads, |(_, commit, _, _)| commit.as_str()))
        .bind(column(heads, |(_, _, rev, _)| *rev))
        .bind(column(heads, |(_, _, _, data)| data.as_str()))
        .bind(column(events, |event| event.did.as_str()))
        .bind(column(events, |event| event.seq as i64))
        .bind(column(events, |event| event.event_type.as_str()))
        .bind(column(events, |event| event.rev.as_deref()))
        .bind(column(events, |event| event.body.as_slice()))
        .bind(column(requests, |request| request.did.as_str()))
        .bind(column(requests, |request| request.key.as_str()))
        .bind(column(requests, |request| request.commit_cid.as_str()))
        .bind(column(requests, |request| request.rev.as_str()))
        .bind(column(requests, |request| request.results.as_str()))
        .bind(column(rejections, |(partition, _, _, _)| *partition as i32))
        .bind(column(rejections, |(_, offset, _, _)| *offset as i64))
        .bind(column(rejections, |(_, _, did, _)| did.as_str()))
        .bind(column(rejections, |(_, _, _, reason)| reason.as_str()))
        .bind(progress.consumer)
        .bind(column(progress.positions, |(partition, _)| {
            *partition as i32
        }))
        .bind(column(progress.positions, |(_, offset)| *offset as i64))
        .bind(OUTCOME_CHANNEL)
        .bind(progress.payloads);
    let Some((consumer, epoch)) = fence else {
        query.execute(db).await?;
        return Ok(());
    };
    let called = query.bind(consumer).bind(epoch).fetch_optional(db).await?;
    if called.is_none() {
        return Err(StoreError::LeaseLost(consumer.to_string()));
    }
    Ok(())
}

/// A block written by the batch: actor, CID, bytes.
type BlockPut<'a> = (&'a str, String, &'a [u8]);
/// A record row written by the batch: actor, row, CID and boundaries as stored.
type RecordPut<'a> = (&'a str, &'a RecordRow, String, String);
/// A head set by the batch: actor, commit, revision, MST root.
type HeadRow<'a> = (&'a str, String, &'a str, String);

/// The blocks the batch writes and those it removes.
fn block_changes(batch: &ProjectionBatch) -> (Vec<BlockPut<'_>>, Vec<(&str, String)>) {
    let (puts, deletes): (Vec<_>, Vec<_>) =
        batch.blocks.iter().partition(|(_, bytes)| bytes.is_some());
    let puts = puts
        .into_iter()
        .filter_map(|((did, cid), bytes)| Some((did.as_str(), cid.to_string(), bytes.as_deref()?)))
        .collect();
    let deletes = deletes
        .into_iter()
        .map(|((did, cid), _)| (did.as_str(), cid.to_string()))
        .collect();
    (puts, deletes)
}

/// The record rows the batch writes and the keys of those it removes.
fn record_changes(batch: &ProjectionBatch) -> (Vec<RecordPut<'_>>, Vec<&RecordKey>) {
    let (puts, deletes): (Vec<_>, Vec<_>) =
        batch.records.iter().partition(|(_, row)| row.is_some());
    let puts = puts
        .into_iter()
        .filter_map(|((did, _, _), row)| {
            let row = row.as_ref()?;
            Some((
                did.as_str(),
                row,
                row.cid.to_string(),
                row.boundaries.join("\n"),
            ))
        })
        .collect();
    let deletes = deletes.into_iter().map(|(key, _)| key).collect();
    (puts, deletes)
}

/// The records whose stored blob references the batch replaces (those it created have none).
fn replaced_blob_refs(batch: &ProjectionBatch) -> Vec<&RecordKey> {
    batch
        .blob_refs
        .keys()
        .filter(|key| !batch.fresh.contains(*key))
        .collect()
}

/// The blob references the batch writes: record, revision, blob CID.
fn blob_refs(batch: &ProjectionBatch) -> Vec<(&RecordKey, &str, &str)> {
    batch
        .blob_refs
        .iter()
        .flat_map(|(key, (rev, cids))| {
            cids.iter()
                .map(move |cid| (key, rev.as_str(), cid.as_str()))
        })
        .collect()
}

/// The heads the batch sets: actor, commit, revision, MST root.
fn head_rows(batch: &ProjectionBatch) -> Vec<HeadRow<'_>> {
    batch
        .heads
        .iter()
        .map(|(did, head)| {
            (
                did.as_str(),
                head.commit.to_string(),
                head.rev.as_str(),
                head.data.to_string(),
            )
        })
        .collect()
}

impl StoreTx {
    /// Writes a batch's net changes.
    pub async fn write(&mut self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        for enrollment in batch.enrollments.values() {
            self.put_enrollment(enrollment).await?;
        }
        for did in &batch.purges {
            self.purge_content(did).await?;
        }
        match self {
            StoreTx::Postgres(tx) => return write_in_calls(tx, batch, None).await,
            StoreTx::Sqlite(tx, _) => write_statements(tx, batch).await?,
        }
        for request in &batch.requests {
            self.put_request(request).await?;
        }
        for (partition, offset, did, reason) in &batch.rejections {
            self.record_rejection(*partition, *offset, did, reason)
                .await?;
        }
        Ok(())
    }
}

/// Writes a batch's blocks, records, blob references, heads and events on SQLite, in
/// multi-row statements.
async fn write_statements(
    tx: &mut Transaction<'static, Sqlite>,
    batch: &ProjectionBatch,
) -> Result<(), StoreError> {
    let (puts, deletes) = block_changes(batch);
    // SQLite scans the whole table for a row-value `IN`, so deletions delete the rows an
    // indexed join finds instead.
    sqlite_values(
        tx,
        "DELETE FROM repo_block WHERE rowid IN (SELECT b.rowid FROM repo_block b JOIN (",
        &deletes,
        |mut row, (did, cid)| {
            row.push_bind(*did).push_bind(cid);
        },
        ") AS k ON b.did = k.column1 AND b.cid = k.column2)",
    )
    .await?;
    sqlite_values(
        tx,
        "INSERT INTO repo_block (did, cid, bytes) ",
        &puts,
        |mut row, (did, cid, bytes)| {
            row.push_bind(*did).push_bind(cid).push_bind(*bytes);
        },
        " ON CONFLICT (did, cid) DO NOTHING",
    )
    .await?;
    let (records, removed) = record_changes(batch);
    delete_by_record_key(tx, KeyedTable::Record, &removed).await?;
    sqlite_values(
        tx,
        "INSERT INTO record (did, collection, rkey, cid, boundaries, block) ",
        &records,
        |mut row, (did, record, cid, boundaries)| {
            row.push_bind(*did)
                .push_bind(&record.collection)
                .push_bind(&record.rkey)
                .push_bind(cid)
                .push_bind(boundaries)
                .push_bind(record.block.as_deref());
        },
        " ON CONFLICT (did, collection, rkey) DO UPDATE SET cid = excluded.cid, \
         boundaries = excluded.boundaries, block = excluded.block",
    )
    .await?;
    // The blob references of every record the batch wrote or deleted are replaced.
    delete_by_record_key(tx, KeyedTable::RecordBlob, &replaced_blob_refs(batch)).await?;
    sqlite_values(
        tx,
        "INSERT INTO record_blob (did, collection, rkey, cid, rev) ",
        &blob_refs(batch),
        |mut row, ((did, collection, rkey), rev, cid)| {
            row.push_bind(did)
                .push_bind(collection)
                .push_bind(rkey)
                .push_bind(*cid)
                .push_bind(*rev);
        },
        // A reference already there (a created record's, left by a repaired or older
        // projection) is brought up to date rather than stopping the projector.
        " ON CONFLICT (did, collection, rkey, cid) DO UPDATE SET rev = excluded.rev",
    )
    .await?;
    sqlite_values(
        tx,
        "INSERT INTO actor_head (did, commit_cid, rev, data_cid) ",
        &head_rows(batch),
        |mut row, (did, commit, rev, data)| {
            row.push_bind(*did)
                .push_bind(commit)
                .push_bind(*rev)
                .push_bind(data);
        },
        " ON CONFLICT (did) DO UPDATE SET commit_cid = excluded.commit_cid, \
         rev = excluded.rev, data_cid = excluded.data_cid",
    )
    .await?;
    sqlite_values(
        tx,
        "INSERT INTO actor_event (did, seq, event_type, rev, body) ",
        &batch.events,
        |mut row, event| {
            row.push_bind(&event.did)
                .push_bind(event.seq as i64)
                .push_bind(&event.event_type)
                .push_bind(&event.rev)
                .push_bind(&event.body);
        },
        "",
    )
    .await?;
    Ok(())
}

/// Deletes the rows of `table` at these record keys on SQLite (by an indexed join: SQLite
/// scans the whole table for a row-value `IN`).
async fn delete_by_record_key(
    tx: &mut Transaction<'static, Sqlite>,
    table: KeyedTable,
    keys: &[&RecordKey],
) -> Result<(), StoreError> {
    let start = match table {
        KeyedTable::Record => {
            "DELETE FROM record WHERE rowid IN (SELECT r.rowid FROM record r JOIN ("
        }
        KeyedTable::RecordBlob => {
            "DELETE FROM record_blob WHERE rowid IN (SELECT r.rowid FROM record_blob r JOIN ("
        }
    };
    sqlite_values(
        tx,
        start,
        keys,
        |mut row, (did, collection, rkey)| {
            row.push_bind(did).push_bind(collection).push_bind(rkey);
        },
        SQLITE_KEY_JOIN_END,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_statements_are_cut_by_bytes() {
        let half = ARRAY_STATEMENT_BYTES / 2;
        // Two halves fit one statement, a third starts another; an oversized row goes alone.
        let rows = [half, half, half, ARRAY_STATEMENT_BYTES * 2, 1, 1];
        let chunks = byte_chunks(&rows, |size| *size);
        let lengths: Vec<usize> = chunks.iter().map(|chunk| chunk.len()).collect();
        assert_eq!(lengths, [2, 1, 1, 2]);
        assert!(byte_chunks(&[] as &[usize], |size| *size).is_empty());
    }
}
