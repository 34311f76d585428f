//! The embedded adapter: one SQLite file in WAL mode. A single writer task drains every pending
//! append into one transaction (group commit), so many concurrent appends share one fsync.

use async_trait::async_trait;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::recent::RecentRecords;
use crate::{
    Acknowledgement, AppendRecord, CommitLog, LogError, LogRecord, PartitionEnd, Position,
    ReadPace, now_ms, partition_for,
};

/// How the embedded log is set up.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The SQLite file (created if missing).
    pub path: PathBuf,
    /// Partitions of a new log; an existing log keeps its own count and must match.
    pub partitions: u32,
    /// The most appends committed in one transaction.
    pub max_batch: usize,
}

impl EmbeddedConfig {
    /// The defaults (12 partitions, batches of up to 2,048) for a file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            partitions: 12,
            max_batch: 2048,
        }
    }
}

/// How long a consumer at the end of a partition waits before looking again when no in-process
/// append woke it (appends from another process are seen this way).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Records fetched per query by a consumer.
const FETCH_ROWS: i64 = 512;
/// About how many bytes of each partition's newest records the writer keeps in memory for
/// readers in this process.
const RECENT_BYTES_PER_PARTITION: usize = 1024 * 1024;
/// Rows per INSERT statement (7 parameters each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

struct Pending {
    record: AppendRecord,
    done: oneshot::Sender<Result<Position, LogError>>,
}

/// The commit log on a local SQLite file.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    readers: SqlitePool,
    writer: mpsc::Sender<Pending>,
    /// This process's partition ends, sent after every group commit.
    appended: watch::Receiver<Vec<u64>>,
    /// The newest records, for readers that keep up.
    recent: Arc<RecentRecords>,
    partitions: u32,
}

fn db_error(error: sqlx::Error) -> LogError {
    LogError::Embedded(error.to_string())
}

impl EmbeddedLog {
    /// Opens (or creates) the log file.
    pub async fn open(config: EmbeddedConfig) -> Result<Self, LogError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LogError::Embedded(e.to_string()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&config.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            // A multi-row append's statement journal stays in memory instead of spilling into
            // a temporary file.
            .pragma("temp_store", "MEMORY");
        let mut writer = options.clone().connect().await.map_err(db_error)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS log_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS log_events (
                 partition_id INTEGER NOT NULL,
                 log_offset INTEGER NOT NULL,
                 key TEXT NOT NULL,
                 event_type TEXT,
                 schema_version INTEGER,
                 payload BLOB NOT NULL,
                 timestamp_ms INTEGER NOT NULL,
                 PRIMARY KEY (partition_id, log_offset)
             );",
        )
        .execute(&mut writer)
        .await
        .map_err(db_error)?;
        // Checkpoints run beside the writer (see `checkpoint`), never inside an append.
        sqlx::raw_sql("PRAGMA wal_autocheckpoint = 0;")
            .execute(&mut writer)
            .await
            .map_err(db_error)?;
        let partitions = Self::partition_count(&mut writer, config.partitions).await?;
        let next = partition_ends(&mut writer, partitions)
            .await
            .map_err(db_error)?;

        // A local file does not hang up: checking a reader before each use is only a round
        // trip to its worker thread.
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(db_error)?;
        let (sender, receiver) = mpsc::channel(config.max_batch * 4);
        let (appended_tx, appended_rx) = watch::channel(next.clone());
        let recent = Arc::new(RecentRecords::new(partitions, RECENT_BYTES_PER_PARTITION));
        let group = GroupCommit {
            connection: writer,
            next,
            partitions,
            max_batch: config.max_batch.max(1),
            appended: appended_tx,
            recent: recent.clone(),
            finished: Instant::now(),
        };
        tokio::spawn(group.run(receiver));
        let checkpointer = options.clone().connect().await.map_err(db_error)?;
        tokio::spawn(checkpoint(checkpointer, appended_rx.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                readers,
                writer: sender,
                appended: appended_rx,
                recent,
                partitions,
            }),
        })
    }

    async fn partition_count(
        connection: &mut SqliteConnection,
        configured: u32,
    ) -> Result<u32, LogError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT value FROM log_meta WHERE name = 'partitions'")
                .fetch_optional(&mut *connection)
                .await
                .map_err(db_error)?;
        match stored {
            Some(value) => {
                let stored: u32 = value
                    .parse()
                    .map_err(|_| LogError::Mismatch(format!("stored partition count {value:?}")))?;
                if stored != configured {
                    return Err(LogError::Mismatch(format!(
                        "the log has {stored} partitions, the configuration says {configured}"
                    )));
                }
                Ok(stored)
            }
            None => {
                if configured == 0 {
                    return Err(LogError::Mismatch(
                        "a log needs at least one partition".into(),
                    ));
                }
                sqlx::query("INSERT INTO log_meta (name, value) VALUES ('partitions', ?)")
                    .bind(configured.to_string())
                    .execute(&mut *connection)
                    .await
                    .map_err(db_error)?;
                Ok(configured)
            }
        }
    }
}

/// One past the last offset of every partition (0 for an empty one).
async fn partition_ends<'e, E>(executor: E, partitions: u32) -> Result<Vec<u64>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let mut ends = vec![0u64; partitions as usize];
    let rows = sqlx::query(
        "SELECT partition_id, MAX(log_offset) + 1 AS next FROM log_events GROUP BY partition_id",
    )
    .fetch_all(executor)
    .await?;
    for row in rows {
        let partition: i64 = row.get("partition_id");
        let end: i64 = row.get("next");
        if let Some(slot) = ends.get_mut(partition as usize) {
            *slot = end as u64;
        }
    }
    Ok(ends)
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies the WAL into the database in the background (`PASSIVE`: never waits for, nor blocks,
/// the writer or readers), so appends never pay for a checkpoint. Ends with the writer.
async fn checkpoint(mut connection: SqliteConnection, mut appended: watch::Receiver<Vec<u64>>) {
    loop {
        if appended.changed().await.is_err() {
            return;
        }
        if let Err(error) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE);")
            .execute(&mut connection)
            .await
        {
            tracing::warn!(%error, "embedded log: checkpoint failed");
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

/// The single writer: batches pending appends into one transaction each.
struct GroupCommit {
    connection: SqliteConnection,
    next: Vec<u64>,
    partitions: u32,
    max_batch: usize,
    /// The partition ends, published after every commit.
    appended: watch::Sender<Vec<u64>>,
    /// Takes every committed record before its end is published.
    recent: Arc<RecentRecords>,
    /// When the writer last copied the log's tail back itself.
    finished: Instant,
}

/// How often the writer copies back what the background checkpoints have not yet.
const FINISH_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl GroupCommit {
    /// Now and then, between batches, copies back the frames the background checkpoints have
    /// not reached (they run beside the writer and never catch up under steady appends), so
    /// that the next batch starts the write-ahead log over instead of growing it.
    async fn finish_checkpoint(&mut self) {
        if self.finished.elapsed() < FINISH_CHECKPOINT_EVERY {
            return;
        }
        self.finished = Instant::now();
        if let Err(error) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE);")
            .execute(&mut self.connection)
            .await
        {
            tracing::warn!(%error, "embedded log: checkpoint failed");
        }
    }

    async fn run(mut self, mut receiver: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while receiver.recv_many(&mut batch, self.max_batch).await > 0 {
            let mut outcome = self.commit(&batch, false).await;
            if outcome.as_ref().is_err_and(is_unique_violation) {
                // Another process on the same file appended to a partition of this batch:
                // read the ends again under the write lock and append after its records.
                outcome = self.commit(&batch, true).await;
            }
            match outcome {
                Ok((positions, timestamp_ms)) => {
                    let mut committed = Vec::with_capacity(batch.len());
                    for (pending, position) in batch.drain(..).zip(positions) {
                        let _ = pending.done.send(Ok(position));
                        committed.push(LogRecord {
                            position,
                            key: pending.record.key,
                            event_type: Some(pending.record.event_type),
                            schema_version: Some(pending.record.schema_version),
                            payload: pending.record.payload,
                            timestamp_ms,
                        });
                    }
                    self.recent.push(committed);
                    self.appended
                        .send_modify(|ends| ends.clone_from(&self.next));
                    self.finish_checkpoint().await;
                }
                Err(error) => {
                    tracing::error!(%error, "embedded log: group commit failed");
                    for pending in batch.drain(..) {
                        let _ = pending
                            .done
                            .send(Err(LogError::Embedded(error.to_string())));
                    }
                }
            }
        }
    }

    /// Writes `batch` in one transaction at the next offsets of its partitions (read from the
    /// file first when `reread_ends`); returns the records' positions and timestamp. On failure
    /// nothing was written and the offsets are given back.
    async fn commit(
        &mut self,
        batch: &[Pending],
        reread_ends: bool,
    ) -> Result<(Vec<Position>, i64), sqlx::Error> {
        let before = self.next.clone();
        let written = self.write(batch, reread_ends).await;
        if written.is_err() {
            self.next = before;
        }
        written
    }

    async fn write(
        &mut self,
        batch: &[Pending],
        reread_ends: bool,
    ) -> Result<(Vec<Position>, i64), sqlx::Error> {
        let timestamp = now_ms();
        let mut transaction = match reread_ends {
            true => self.connection.begin_with("BEGIN IMMEDIATE").await?,
            false => self.connection.begin().await?,
        };
        if reread_ends {
            self.next = partition_ends(&mut *transaction, self.partitions).await?;
        }
        let positions: Vec<Position> = batch
            .iter()
            .map(|pending| {
                let partition = partition_for(&pending.record.key, self.partitions);
                let offset = self.next[partition as usize];
                self.next[partition as usize] += 1;
                Position { partition, offset }
            })
            .collect();
        let rows: Vec<_> = batch.iter().zip(&positions).collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO log_events \
                 (partition_id, log_offset, key, event_type, schema_version, payload, timestamp_ms) ",
            );
            insert.push_values(chunk, |mut row, (pending, position)| {
                row.push_bind(i64::from(position.partition))
                    .push_bind(position.offset as i64)
                    .push_bind(&pending.record.key)
                    .push_bind(&pending.record.event_type)
                    .push_bind(pending.record.schema_version as i64)
                    .push_bind(&pending.record.payload)
                    .push_bind(timestamp);
            });
            insert.build().execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok((positions, timestamp))
    }
}

/// Whether an append failed because another writer took one of its offsets.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation())
}

#[async_trait]
impl CommitLog for EmbeddedLog {
    /// The writer takes records in the order they are handed over.
    async fn enqueue(&self, record: AppendRecord) -> Result<Acknowledgement, LogError> {
        let (done, result) = oneshot::channel();
        self.inner
            .writer
            .send(Pending { record, done })
            .await
            .map_err(|_| LogError::Closed)?;
        Ok(async move { result.await.map_err(|_| LogError::Closed)? }.boxed())
    }

    async fn partitions(&self) -> Result<Vec<PartitionEnd>, LogError> {
        let ends = partition_ends(&self.inner.readers, self.inner.partitions)
            .await
            .map_err(db_error)?;
        Ok((0..)
            .zip(ends)
            .map(|(partition, end)| PartitionEnd { partition, end })
            .collect())
    }

    /// Readers wake on every append, whatever their pace.
    fn consume(
        &self,
        partition: u32,
        from: u64,
        _pace: ReadPace,
    ) -> BoxStream<'static, Result<LogRecord, LogError>> {
        if partition >= self.inner.partitions {
            let error = LogError::NoSuchPartition {
                partition,
                count: self.inner.partitions,
            };
            return stream::once(async move { Err(error) }).boxed();
        }
        let reader = Reader {
            pool: self.inner.readers.clone(),
            appended: self.inner.appended.clone(),
            recent: self.inner.recent.clone(),
            partition,
            next: from,
            buffer: VecDeque::new(),
            last_read: None,
        };
        stream::unfold(reader, |mut reader| async move {
            let item = reader.next().await;
            Some((item, reader))
        })
        .boxed()
    }
}

/// One consumer's cursor over a partition.
struct Reader {
    pool: SqlitePool,
    appended: watch::Receiver<Vec<u64>>,
    recent: Arc<RecentRecords>,
    partition: u32,
    next: u64,
    buffer: VecDeque<LogRecord>,
    /// When this reader last asked the database (`None` before the first time).
    last_read: Option<Instant>,
}

impl Reader {
    async fn next(&mut self) -> Result<LogRecord, LogError> {
        loop {
            if let Some(record) = self.buffer.pop_front() {
                self.next = record.position.offset + 1;
                return Ok(record);
            }
            // Mark the ends as seen before reading, so an append that lands after the query
            // still wakes us. A commit to any partition wakes every reader; only those whose
            // partition grew ask the database at once, the others at least every `IDLE_POLL`
            // (another process may append to the same file).
            let end = self
                .appended
                .borrow_and_update()
                .get(self.partition as usize)
                .copied()
                .unwrap_or(0);
            let poll_due = self
                .last_read
                .is_none_or(|last| last.elapsed() >= IDLE_POLL);
            if end > self.next || poll_due {
                self.last_read = Some(Instant::now());
                self.fetch().await?;
            }
            if self.buffer.is_empty() {
                let woken = tokio::time::timeout(IDLE_POLL, self.appended.changed()).await;
                if let Ok(Err(_)) = woken {
                    // This process's writer is gone; keep polling for other writers.
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }

    /// Takes the next records from the writer's newest ones when they reach back far enough,
    /// from the file otherwise (and when they hold nothing new: another process may append).
    async fn fetch(&mut self) -> Result<(), LogError> {
        if let Some(records) = self
            .recent
            .read(self.partition, self.next, FETCH_ROWS as usize)
        {
            self.buffer.extend(records);
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT log_offset, key, event_type, schema_version, payload, timestamp_ms \
             FROM log_events WHERE partition_id = ? AND log_offset >= ? \
             ORDER BY log_offset LIMIT ?",
        )
        .bind(i64::from(self.partition))
        .bind(self.next as i64)
        .bind(FETCH_ROWS)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for row in rows {
            let offset: i64 = row.get("log_offset");
            let version: Option<i64> = row.get("schema_version");
            self.buffer.push_back(LogRecord {
                position: Position {
                    partition: self.partition,
                    offset: offset as u64,
                },
                key: row.get("key"),
                event_type: row.get("event_type"),
                schema_version: version.map(|v| v as u64),
                payload: row.get("payload"),
                timestamp_ms: row.get("timestamp_ms"),
            });
        }
        Ok(())
    }
}
