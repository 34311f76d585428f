//! The reads of the query service: record pages, batches of records, single repository blocks,
//! an actor's collections and sequence range.

use sqlx::{QueryBuilder, Row};
use stratos_schema::Cid;
use stratos_schema::blocks::BlockMap;
use tokio::sync::mpsc;

use crate::store::{
    Pool, RecordRow, Store, StoreError, StoredRecord, column, on, split_lines, sql,
};

/// A record row with its actor, as the database returns it.
type ActorRecord = (String, String, String, String, String, Option<Vec<u8>>);

/// How many records the first page of [`Store::record_blocks`] holds; later pages hold about
/// [`EXPORT_PAGE_BYTES`] of record blocks, between these bounds.
const EXPORT_PAGE_ROWS: (usize, usize) = (256, 4_096);

/// About how many bytes of record blocks a page of [`Store::record_blocks`] holds once the
/// size of the actor's records is known: few queries for small records, bounded memory for
/// large ones.
const EXPORT_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// A record's path and content, as an export reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBlock {
    /// The collection.
    pub collection: String,
    /// The record key.
    pub rkey: String,
    /// The record CID.
    pub cid: Cid,
    /// The record block.
    pub block: Vec<u8>,
}

/// The pages of [`Store::record_blocks`], in order.
pub struct RecordBlocks {
    /// Pages, then `None` once the read is complete.
    receiver: mpsc::Receiver<Result<Option<Vec<RecordBlock>>, StoreError>>,
}

impl RecordBlocks {
    /// The next page; `None` after the last. A read that stopped before the end (its task
    /// died) is an error, never a silently short export.
    pub async fn next(&mut self) -> Result<Option<Vec<RecordBlock>>, StoreError> {
        self.receiver.recv().await.unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "the repository read stopped early".into(),
            ))
        })
    }
}

/// Which way a record page runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// Record keys ascending.
    Ascending,
    /// Record keys descending.
    Descending,
}

impl Store {
    /// Up to `limit` records of one collection after the record key `cursor` in `order`.
    pub async fn record_page(
        &self,
        did: &str,
        collection: &str,
        cursor: Option<&str>,
        order: KeyOrder,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let query = match (order, cursor.is_some()) {
            (KeyOrder::Ascending, false) => {
                "SELECT collection, rkey, cid, boundaries, block FROM record WHERE did = ? \
                 AND collection = ? ORDER BY rkey LIMIT ?"
            }
            (KeyOrder::Ascending, true) => {
                "SELECT collection, rkey, cid, boundaries, block FROM record WHERE did = ? \
                 AND collection = ? AND rkey > ? ORDER BY rkey LIMIT ?"
            }
            (KeyOrder::Descending, false) => {
                "SELECT collection, rkey, cid, boundaries, block FROM record WHERE did = ? \
                 AND collection = ? ORDER BY rkey DESC LIMIT ?"
            }
            (KeyOrder::Descending, true) => {
                "SELECT collection, rkey, cid, boundaries, block FROM record WHERE did = ? \
                 AND collection = ? AND rkey < ? ORDER BY rkey DESC LIMIT ?"
            }
        };
        let query = sql(self.backend(), query);
        let rows: Vec<StoredRecord> = on!(&self.pool, db => {
            let mut q = sqlx::query_as(query).bind(did).bind(collection);
            if let Some(cursor) = cursor {
                q = q.bind(cursor);
            }
            q.bind(i64::from(limit)).fetch_all(db).await?
        });
        rows.into_iter().map(RecordRow::from_stored).collect()
    }

    /// The record at `did/collection/rkey` if `did`'s enrollment is active (the records of an
    /// actor who left are served to nobody), with the boundaries of `reader`'s active
    /// enrollment (none without one): what a single-record read needs, in one statement.
    pub async fn readable_record(
        &self,
        did: &str,
        collection: &str,
        rkey: &str,
        reader: Option<&str>,
    ) -> Result<Option<(RecordRow, Vec<String>)>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT r.collection, r.rkey, r.cid, r.boundaries, r.block, v.boundaries FROM record r \
             JOIN enrollment e ON e.did = r.did AND e.active \
             LEFT JOIN enrollment v ON v.did = ? AND v.active \
             WHERE r.did = ? AND r.collection = ? AND r.rkey = ?",
        );
        type Row = (
            String,
            String,
            String,
            String,
            Option<Vec<u8>>,
            Option<String>,
        );
        let row: Option<Row> = on!(&self.pool, db => {
            sqlx::query_as(query)
                .bind(reader)
                .bind(did)
                .bind(collection)
                .bind(rkey)
                .fetch_optional(db)
                .await?
        });
        row.map(|(collection, rkey, cid, boundaries, block, held)| {
            let record = RecordRow::from_stored((collection, rkey, cid, boundaries, block))?;
            Ok((record, held.as_deref().map(split_lines).unwrap_or_default()))
        })
        .transpose()
    }

    /// Every record of `did` that still has its content, in key order, read in keyset pages by
    /// a task of its own: the caller encodes one page while the next is read, memory stays
    /// flat however large the repository, and no connection is held while a slow client
    /// downloads.
    pub fn record_blocks(&self, did: &str) -> RecordBlocks {
        let (sender, receiver) = mpsc::channel(2);
        let store = self.clone();
        let did = did.to_string();
        tokio::spawn(async move {
            let read = async {
                let (smallest, largest) = EXPORT_PAGE_ROWS;
                let mut rows = smallest;
                for collection in store.collections(&did).await? {
                    let mut after: Option<String> = None;
                    loop {
                        let page = store
                            .record_block_page(&did, &collection, after.as_deref(), rows)
                            .await?;
                        let last_page = page.len() < rows;
                        after = page.last().map(|record| record.rkey.clone());
                        let bytes: usize = page.iter().map(|record| record.block.len()).sum();
                        if let Some(average) = bytes.checked_div(page.len()) {
                            rows = (EXPORT_PAGE_BYTES / average.max(1)).clamp(smallest, largest);
                        }
                        if sender.send(Ok(Some(page))).await.is_err() {
                            return Ok(());
                        }
                        if last_page {
                            break;
                        }
                    }
                }
                let _ = sender.send(Ok(None)).await;
                Ok::<_, StoreError>(())
            };
            if let Err(error) = read.await {
                let _ = sender.send(Err(error)).await;
            }
        });
        RecordBlocks { receiver }
    }

    /// Up to `rows` records of `did` in `collection` with content, after the record key
    /// `after`.
    async fn record_block_page(
        &self,
        did: &str,
        collection: &str,
        after: Option<&str>,
        rows: usize,
    ) -> Result<Vec<RecordBlock>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT collection, rkey, cid, block FROM record WHERE did = ? AND collection = ? \
             AND rkey > ? AND block IS NOT NULL ORDER BY rkey LIMIT ?",
        );
        let rows: Vec<(String, String, String, Vec<u8>)> = on!(&self.pool, db => {
            sqlx::query_as(query)
                .bind(did)
                .bind(collection)
                .bind(after.unwrap_or(""))
                .bind(rows as i64)
                .fetch_all(db)
                .await?
        });
        rows.into_iter()
            .map(|(collection, rkey, cid, block)| {
                Ok(RecordBlock {
                    collection,
                    rkey,
                    cid: crate::store::parse_cid(&cid)?,
                    block,
                })
            })
            .collect()
    }

    /// The records at these `(did, collection, rkey)` keys that exist, with their actor, in no
    /// set order: one query for any mix of actors.
    pub async fn records_at(
        &self,
        keys: &[(&str, &str, &str)],
    ) -> Result<Vec<(String, RecordRow)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows: Vec<ActorRecord> = Vec::with_capacity(keys.len());
        match &self.pool {
            // Arrays keep the statement the same whatever the number of keys, so it is
            // prepared once per connection instead of planned on every call.
            Pool::Postgres(db) => {
                rows = sqlx::query_as(
                    "SELECT r.did, r.collection, r.rkey, r.cid, r.boundaries, r.block \
                     FROM unnest($1::text[], $2::text[], $3::text[]) AS k(did, collection, rkey) \
                     JOIN record r ON r.did = k.did AND r.collection = k.collection \
                     AND r.rkey = k.rkey",
                )
                .bind(column(keys, |key| key.0))
                .bind(column(keys, |key| key.1))
                .bind(column(keys, |key| key.2))
                .fetch_all(db)
                .await?;
            }
            Pool::Sqlite(db, ..) => {
                for chunk in keys.chunks(crate::store::ROWS_PER_STATEMENT) {
                    // A join on the keys, not a row-value `IN`: SQLite scans the table for that.
                    let mut query = QueryBuilder::new(
                        "SELECT r.did, r.collection, r.rkey, r.cid, r.boundaries, r.block FROM (",
                    );
                    query.push_values(chunk, |mut row, (did, collection, rkey)| {
                        row.push_bind(*did).push_bind(*collection).push_bind(*rkey);
                    });
                    query.push(
                        ") AS k JOIN record r ON r.did = k.column1 AND r.collection = k.column2 \
                         AND r.rkey = k.column3",
                    );
                    rows.extend(query.build_query_as().fetch_all(db).await?);
                }
            }
        }
        rows.into_iter()
            .map(|(did, collection, rkey, cid, boundaries, block)| {
                let row = RecordRow::from_stored((collection, rkey, cid, boundaries, block))?;
                Ok((did, row))
            })
            .collect()
    }

    /// One commit or MST node block of an actor.
    pub async fn block(&self, did: &str, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT bytes FROM repo_block WHERE did = ? AND cid = ?",
        );
        let cid = cid.to_string();
        Ok(on!(&self.pool, db => {
            sqlx::query_scalar(query).bind(did).bind(&cid).fetch_optional(db).await?
        }))
    }

    /// Reads block `cid` of `did` into `blocks`, checking that its bytes hash to the CID;
    /// `false` when the projection does not have it.
    pub async fn read_block_into(
        &self,
        did: &str,
        cid: &Cid,
        blocks: &mut BlockMap,
    ) -> Result<bool, StoreError> {
        let Some(bytes) = self.block(did, cid).await? else {
            return Ok(false);
        };
        blocks.insert_verified(*cid, bytes).map_err(|error| {
            StoreError::Corrupt(format!("stored block {cid} of {did}: {error}"))
        })?;
        Ok(true)
    }

    /// The collections an actor has records in, sorted.
    pub async fn collections(&self, did: &str) -> Result<Vec<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT DISTINCT collection FROM record WHERE did = ? ORDER BY collection",
        );
        Ok(on!(&self.pool, db => sqlx::query_scalar(query).bind(did).fetch_all(db).await?))
    }

    /// The record keys of an actor's records in `collection`, sorted (purged records
    /// included: their rows stay without content).
    pub async fn record_keys(
        &self,
        did: &str,
        collection: &str,
    ) -> Result<Vec<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT rkey FROM record WHERE did = ? AND collection = ? ORDER BY rkey",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query_scalar(query)
                .bind(did)
                .bind(collection)
                .fetch_all(db)
                .await?
        }))
    }

    /// The lowest and highest sequence numbers of an actor's events (`None` without events).
    pub async fn seq_range(&self, did: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT MIN(seq), MAX(seq) FROM actor_event WHERE did = ?",
        );
        let (low, high): (Option<i64>, Option<i64>) = on!(&self.pool, db => {
            let row = sqlx::query(query).bind(did).fetch_one(db).await?;
            (row.get(0), row.get(1))
        });
        Ok(low.zip(high).map(|(low, high)| (low as u64, high as u64)))
    }
}
