//! The Stratos commit log: the append-only source of truth of the system.
//!
//! One [`CommitLog`] port, two adapters with the same semantics:
//!
//! * [`KafkaLog`] on a Kafka (or Kafka-API) cluster — idempotent producer, `acks=all`, one topic
//!   keyed by actor DID, consumers that seek to the positions they keep themselves;
//! * [`EmbeddedLog`] on one SQLite file in WAL mode with group commit, for single-node use.
//!
//! Both partition by key with Kafka's murmur2 partitioner, so an actor's events sit in one
//! partition, in order, and map to the same partition number in either adapter. Consumers store
//! their own positions (the projections keep them in their own transactions); the log never
//! tracks consumer progress.

mod embedded;
mod kafka;
mod partitioner;
mod recent;
#[cfg(feature = "testing")]
pub mod testing;

pub use self::embedded::{EmbeddedConfig, EmbeddedLog};
pub use self::kafka::{KafkaConfig, KafkaLog};
pub use self::partitioner::{murmur2, partition_for};

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use stratos_schema::events::Event;

/// Milliseconds since the Unix epoch, as records carry their append time.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The embedded log's database reported an error.
    #[error("embedded log: {0}")]
    Embedded(String),
    /// The log exists with settings that do not match the configuration.
    #[error("log configuration mismatch: {0}")]
    Mismatch(String),
    /// A partition number outside the log.
    #[error("partition {partition} does not exist (the log has {count})")]
    NoSuchPartition {
        /// The partition asked for.
        partition: u32,
        /// How many partitions exist.
        count: u32,
    },
    /// The log was shut down.
    #[error("the log is closed")]
    Closed,
}

/// An event to append: its key (the actor DID), its type and schema version (carried as headers
/// so consumers can route without decoding), and its encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRecord {
    /// The actor DID; decides the partition.
    pub key: String,
    /// The event type, e.g. `#commit`.
    pub event_type: String,
    /// The event schema version.
    pub schema_version: u64,
    /// The encoded event.
    pub payload: Vec<u8>,
}

impl AppendRecord {
    /// The record for an event, keyed by its actor.
    pub fn from_event(event: &Event) -> Self {
        Self {
            key: event.did().to_string(),
            event_type: event.event_type().as_str().to_string(),
            schema_version: stratos_schema::events::SCHEMA_VERSION,
            payload: event.encode(),
        }
    }
}

/// Where a record sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The partition.
    pub partition: u32,
    /// The offset within the partition.
    pub offset: u64,
}

/// A record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Where it sits.
    pub position: Position,
    /// The actor DID it was appended under.
    pub key: String,
    /// The event type header, if present.
    pub event_type: Option<String>,
    /// The schema version header, if present.
    pub schema_version: Option<u64>,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// When it was appended, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A partition and the offset the next appended record will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionEnd {
    /// The partition.
    pub partition: u32,
    /// One past the last offset (0 for an empty partition).
    pub end: u64,
}

/// How promptly a partition stream's reader needs new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadPace {
    /// The reader is on a write's path (the repo projector, which writers wait for): new
    /// records are asked for as often as the adapter allows.
    #[default]
    Prompt,
    /// The reader follows at a distance (the AppView projector, the PDS publisher): an
    /// adapter may ask the broker less often, up to about a tenth of a second late, so that
    /// followers cost the broker fewer requests and arrive in larger batches.
    Relaxed,
}

/// An appended record's acknowledgement: its position once it is durable.
pub type Acknowledgement = BoxFuture<'static, Result<Position, LogError>>;

/// The commit-log port.
#[async_trait]
pub trait CommitLog: Send + Sync + 'static {
    /// Hands a record to the log and returns its [`Acknowledgement`]. Records of one key handed
    /// over one after another keep that order, so a writer may hand over the next record
    /// before the previous one is acknowledged. A record whose acknowledgement fails may be
    /// missing while later ones land: consumers must check that each record follows the one
    /// before it (the repo projector checks every commit's predecessor).
    async fn enqueue(&self, record: AppendRecord) -> Result<Acknowledgement, LogError>;

    /// Appends a record and returns its position once it is durable.
    async fn append(&self, record: AppendRecord) -> Result<Position, LogError> {
        self.enqueue(record).await?.await
    }

    /// Every partition with its end offset.
    async fn partitions(&self) -> Result<Vec<PartitionEnd>, LogError>;

    /// The records of one partition from offset `from` on, in order, waiting for new ones at the
    /// end (at `pace`). The stream ends only on error or when the log is closed.
    fn consume(
        &self,
        partition: u32,
        from: u64,
        pace: ReadPace,
    ) -> BoxStream<'static, Result<LogRecord, LogError>>;

    /// Appends an event under its actor.
    async fn append_event(&self, event: &Event) -> Result<Position, LogError> {
        self.append(AppendRecord::from_event(event)).await
    }

    /// Hands an event to the log under its actor (see [`CommitLog::enqueue`]).
    async fn enqueue_event(&self, event: &Event) -> Result<Acknowledgement, LogError> {
        self.enqueue(AppendRecord::from_event(event)).await
    }
}
