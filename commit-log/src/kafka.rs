//! The Kafka adapter: an idempotent producer with `acks=all`, topic creation, and partition
//! streams that start at the position the caller keeps (no consumer groups, no committed
//! offsets; the streams of one log share a few consumers). librdkafka reconnects and retries on
//! its own after a broker restart; with
//! idempotence on, retries neither duplicate nor reorder a key's events.
//!
//! Appends are batched (at most [`DEFAULT_BATCH_RECORDS`] records per produce batch unless
//! `batch.num.messages` says otherwise). Some Kafka-API brokers (tansu 0.6) only serve batches
//! whose *base* offset is at or after the fetch offset and report the last batch's base plus
//! one as the end of a partition, so a consumer starts up to one batch early and drops what
//! precedes its position (and any batch served twice), and partition ends are read from one
//! batch before the reported one. On such a broker every producer's `batch.num.messages` must
//! be at most the consumers'.
//!
//! With [`KafkaConfig::share_appends`], the records this process appends are kept in memory once
//! acknowledged, and its partition streams take them from there in offset order; the cluster
//! fills in what other processes appended, and is only asked while memory may lack records.

use async_trait::async_trait;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::recent::{RecentRecords, Tail};
use crate::{
    Acknowledgement, AppendRecord, CommitLog, LogError, LogRecord, PartitionEnd, Position,
    ReadPace, now_ms,
};
use stratos_schema::events::{TYPE_HEADER, VERSION_HEADER};

/// The most records one produce batch holds unless `batch.num.messages` is set: large enough
/// for throughput, small enough that a consumer starting one batch early reads little.
pub const DEFAULT_BATCH_RECORDS: u64 = 500;

/// How long the producer waits to fill a batch (`linger.ms`). Under load, fewer and larger
/// batches cost the broker less per record; a lone writer may wait up to this much longer for
/// its acknowledgement (librdkafka's and Kafka 4's default is 5 ms).
const LINGER_MS: u64 = 3;

/// How long an append waits before it tries again when librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// `fetch.wait.max.ms` of [`ReadPace::Prompt`] streams.
const PROMPT_FETCH_WAIT_MS: u64 = 5;

/// `fetch.wait.max.ms` of [`ReadPace::Relaxed`] streams.
const RELAXED_FETCH_WAIT_MS: u64 = 100;

/// `fetch.wait.max.ms` of the streams of a log that shares its appends: they take this process's
/// records from memory, and the cluster only fills in what other processes appended, so a
/// partition they fetch is asked for at most about twice a second. (A fetch also returns, and
/// the broker reads, records memory may already have given; on tansu 0.6, whose in-memory
/// storage lists a partition's batches on every fetch, fetching ten times a second cost a fifth
/// of the write rate over a minute of load.)
const FILL_IN_FETCH_WAIT_MS: u64 = 500;

/// `fetch.min.bytes` of those streams: a broker that answers as soon as there is anything
/// (Kafka) waits for this much, or [`FILL_IN_FETCH_WAIT_MS`].
const FILL_IN_FETCH_MIN_BYTES: u64 = 1024 * 1024;

/// How long after this process's last acknowledged append to a partition a shared reader that
/// has read up to it trusts memory to be the whole log, and does not fetch from the cluster. A
/// record another process appends in that time shows as a gap once this process appends again,
/// or is fetched when the time is up.
const APPENDS_COVER: Duration = Duration::from_millis(FILL_IN_FETCH_WAIT_MS);

/// How long a shared reader waits for a missing record to reach memory (this process's
/// acknowledgements may be taken in out of order) before fetching it from the cluster.
const GAP_GRACE: Duration = Duration::from_millis(20);

/// How often a pool's consumers ask the broker for records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchPace {
    /// [`ReadPace::Prompt`].
    Prompt,
    /// [`ReadPace::Relaxed`].
    Relaxed,
    /// Filling in the records of other processes, for a log that shares its appends.
    FillIn,
}

/// About how many bytes of each partition's newest acknowledged records a log that shares its
/// appends keeps in memory.
const RECENT_BYTES_PER_PARTITION: usize = 1024 * 1024;

/// The most records a shared reader takes from memory, or holds from the cluster, at a time.
const FETCH_AT_HAND: usize = 512;

/// How the Kafka adapter connects and what topic it uses.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `broker-1:9092,broker-2:9092`.
    pub bootstrap_servers: String,
    /// The topic (default `stratos.repo.events`).
    pub topic: String,
    /// Partitions of the topic when it is created.
    pub partitions: u32,
    /// Replication factor of the topic when it is created.
    pub replication_factor: i32,
    /// The largest event in bytes (producer `message.max.bytes`, topic `max.message.bytes`).
    pub max_message_bytes: usize,
    /// How long an append may wait for the cluster before it fails.
    pub delivery_timeout: Duration,
    /// Extra librdkafka properties passed through unchanged: `security.protocol`, `ssl.*`,
    /// `sasl.*`, `client.id`, … They override the adapter's own settings.
    pub extra: BTreeMap<String, String>,
    /// Whether readers of this log in this process take the records this process appended
    /// from memory once the cluster acknowledged them, instead of waiting for a fetch to bring
    /// them back. The cluster then only fills in what other processes appended: at a gap in
    /// this process's offsets, or after half a second without an append of its own to the
    /// partition (a record another process appended may reach this process's readers that much
    /// later), so turn it on where the writers and the readers that wait for them share a
    /// process (`stratos up`). It has no effect unless `acks` is `all`.
    pub share_appends: bool,
}

impl KafkaConfig {
    /// Defaults for a cluster: topic `stratos.repo.events`, 12 partitions, replication 3,
    /// 8 MiB events, 2-minute delivery timeout.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic: "stratos.repo.events".into(),
            partitions: 12,
            replication_factor: 3,
            max_message_bytes: 8 * 1024 * 1024,
            delivery_timeout: Duration::from_secs(120),
            extra: BTreeMap::new(),
            share_appends: false,
        }
    }

    /// Whether an acknowledged record is in every in-sync replica (the default `acks=all`),
    /// so that readers may take it as the log's before they read it back.
    fn acknowledges_all(&self) -> bool {
        self.extra
            .get("acks")
            .is_none_or(|acks| acks == "all" || acks == "-1")
    }

    /// The largest frame a client sends or fetches: an event plus room for headers and batch
    /// overhead.
    fn frame_limit(&self) -> String {
        (self.max_message_bytes + 64 * 1024).to_string()
    }

    /// Settings shared by every client, then the role's own, then the operator's passthrough
    /// properties, which win over both.
    fn client_config(&self, role: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "stratos")
            .set("message.max.bytes", self.frame_limit());
        for (key, value) in role {
            config.set(*key, value);
        }
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    fn admin_config(&self) -> ClientConfig {
        self.client_config(&[])
    }

    /// The most records one produce batch holds (`batch.num.messages`).
    fn batch_records(&self) -> u64 {
        self.extra
            .get("batch.num.messages")
            .and_then(|value| value.parse().ok())
            .unwrap_or(DEFAULT_BATCH_RECORDS)
            .max(1)
    }

    fn producer_config(&self) -> ClientConfig {
        self.client_config(&[
            ("batch.num.messages", DEFAULT_BATCH_RECORDS.to_string()),
            ("enable.idempotence", "true".into()),
            ("acks", "all".into()),
            ("partitioner", "murmur2_random".into()),
            ("linger.ms", LINGER_MS.to_string()),
            (
                "delivery.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            ),
        ])
    }

    /// A consumer's settings; `pace` sets how long the broker may hold a fetch that finds
    /// nothing new (some brokers, tansu 0.6 among them, hold every fetch that long).
    fn consumer_config(&self, pace: FetchPace) -> ClientConfig {
        let (fetch_wait, min_bytes) = match pace {
            FetchPace::Prompt => (PROMPT_FETCH_WAIT_MS, 1),
            FetchPace::Relaxed => (RELAXED_FETCH_WAIT_MS, 1),
            FetchPace::FillIn => (FILL_IN_FETCH_WAIT_MS, FILL_IN_FETCH_MIN_BYTES),
        };
        self.client_config(&[
            ("group.id", "stratos-unmanaged".into()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("fetch.wait.max.ms", fetch_wait.to_string()),
            ("fetch.min.bytes", min_bytes.to_string()),
            ("fetch.message.max.bytes", self.frame_limit()),
        ])
    }
}

fn kafka_error(error: impl std::fmt::Display) -> LogError {
    LogError::Kafka(error.to_string())
}

/// The commit log on a Kafka topic.
#[derive(Clone)]
pub struct KafkaLog {
    config: Arc<KafkaConfig>,
    producer: FutureProducer,
    metadata: Arc<BaseConsumer>,
    /// Consumers of [`ReadPace::Prompt`] streams.
    prompt: Arc<ConsumerPool>,
    /// Consumers of [`ReadPace::Relaxed`] streams, or of every stream when the log shares its
    /// appends (at the [`FetchPace::FillIn`] pace then).
    relaxed: Arc<ConsumerPool>,
    partitions: u32,
    /// The acknowledged records this process appended, when shared with its readers.
    recent: Option<Arc<RecentRecords>>,
}

impl KafkaLog {
    /// Connects, creates the topic if it does not exist (an existing topic must have the
    /// configured partition count), and starts the producer.
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        create_topic(&config).await?;
        let producer: FutureProducer = config.producer_config().create().map_err(kafka_error)?;
        let metadata: BaseConsumer = config
            .consumer_config(FetchPace::Prompt)
            .create()
            .map_err(kafka_error)?;
        let metadata = Arc::new(metadata);
        let partitions = {
            let metadata = metadata.clone();
            let topic = config.topic.clone();
            tokio::task::spawn_blocking(move || topic_partitions(&metadata, &topic))
                .await
                .map_err(kafka_error)??
        };
        if partitions != config.partitions {
            return Err(LogError::Mismatch(format!(
                "topic {} has {partitions} partitions, the configuration says {}",
                config.topic, config.partitions
            )));
        }
        let recent = (config.share_appends && config.acknowledges_all())
            .then(|| Arc::new(RecentRecords::new(partitions, RECENT_BYTES_PER_PARTITION)));
        let fill_in = match recent {
            Some(_) => FetchPace::FillIn,
            None => FetchPace::Relaxed,
        };
        let config = Arc::new(config);
        Ok(Self {
            recent,
            prompt: ConsumerPool::new(config.clone(), FetchPace::Prompt),
            relaxed: ConsumerPool::new(config.clone(), fill_in),
            config,
            producer,
            metadata,
            partitions,
        })
    }

    /// Waits until every appended record is acknowledged (for shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        self.producer.flush(timeout).map_err(kafka_error)
    }
}

async fn create_topic(config: &KafkaConfig) -> Result<(), LogError> {
    let admin: AdminClient<DefaultClientContext> =
        config.admin_config().create().map_err(kafka_error)?;
    let max_bytes = config.frame_limit();
    let topic = NewTopic::new(
        &config.topic,
        config.partitions as i32,
        TopicReplication::Fixed(config.replication_factor),
    )
    .set("max.message.bytes", &max_bytes)
    // The log is the system of record: replay and audit read it from offset 0, so nothing in
    // it may age out. (The cleanup policy stays the broker's default, `delete`: tansu 0.6.0
    // reads an explicit `delete` with `retention.ms=-1` as "delete everything".)
    .set("retention.ms", "-1")
    .set("retention.bytes", "-1");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(kafka_error)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(LogError::Kafka(format!("creating topic {name}: {code}")));
            }
        }
    }
    Ok(())
}

/// The partition count of a topic, waiting briefly for a new topic's metadata to appear.
fn topic_partitions(consumer: &BaseConsumer, topic: &str) -> Result<u32, LogError> {
    let mut last = String::from("no metadata");
    for _ in 0..50 {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                if let Some(found) = metadata.topics().iter().find(|t| t.name() == topic)
                    && found.error().is_none()
                    && !found.partitions().is_empty()
                {
                    return Ok(found.partitions().len() as u32);
                }
                last = format!("topic {topic} has no partitions yet");
            }
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(LogError::Kafka(last))
}

/// How long the end probe waits for records past the reported high watermark.
const END_PROBE_IDLE: Duration = Duration::from_millis(500);

/// The end of every partition. The reported high watermark (`ListOffsets`) is only a starting
/// point, because some Kafka-API brokers report the base offset of the last batch plus one: a
/// probe reads from one batch before it to the end. On a broker that reports the true end the
/// probe reads at most one batch a partition.
fn partition_ends(
    metadata: &BaseConsumer,
    config: &KafkaConfig,
    count: u32,
) -> Result<Vec<PartitionEnd>, LogError> {
    let mut ends = Vec::with_capacity(count as usize);
    let mut probe_from = TopicPartitionList::new();
    for partition in 0..count {
        let (_, high) = metadata
            .fetch_watermarks(&config.topic, partition as i32, Duration::from_secs(10))
            .map_err(kafka_error)?;
        let end = high.max(0) as u64;
        ends.push(PartitionEnd { partition, end });
        let from = end.saturating_sub(config.batch_records());
        probe_from
            .add_partition_offset(&config.topic, partition as i32, Offset::Offset(from as i64))
            .map_err(kafka_error)?;
    }
    let probe: BaseConsumer = config
        .consumer_config(FetchPace::Prompt)
        .create()
        .map_err(kafka_error)?;
    probe.assign(&probe_from).map_err(kafka_error)?;
    while let Some(message) = probe.poll(END_PROBE_IDLE) {
        let message = message.map_err(kafka_error)?;
        if let Some(slot) = ends.get_mut(message.partition() as usize) {
            slot.end = slot.end.max(message.offset() as u64 + 1);
        }
    }
    Ok(ends)
}

#[async_trait]
impl CommitLog for KafkaLog {
    /// librdkafka's queue keeps the order records are handed over in, and the idempotent
    /// producer keeps it through retries.
    async fn enqueue(&self, record: AppendRecord) -> Result<Acknowledgement, LogError> {
        let version = record.schema_version.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: TYPE_HEADER,
                value: Some(record.event_type.as_str()),
            })
            .insert(Header {
                key: VERSION_HEADER,
                value: Some(version.as_str()),
            });
        let created_ms = now_ms();
        let mut message = FutureRecord::to(&self.config.topic)
            .key(record.key.as_str())
            .payload(record.payload.as_slice())
            .timestamp(created_ms)
            .headers(headers);
        let deadline = Instant::now() + self.config.delivery_timeout;
        let delivery = loop {
            match self.producer.send_result(message) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if Instant::now() < deadline =>
                {
                    message = returned;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((error, _)) => return Err(kafka_error(error)),
            }
        };
        let recent = self.recent.clone();
        Ok(async move {
            let delivery = match delivery.await {
                Ok(Ok(delivery)) => delivery,
                Ok(Err((error, _))) => return Err(kafka_error(error)),
                Err(_) => return Err(LogError::Closed),
            };
            let position = Position {
                partition: delivery.partition as u32,
                offset: delivery.offset as u64,
            };
            if let Some(recent) = recent {
                recent.push([LogRecord {
                    position,
                    key: record.key,
                    event_type: Some(record.event_type),
                    schema_version: Some(record.schema_version),
                    payload: record.payload,
                    // The broker's append time on a topic that keeps that instead.
                    timestamp_ms: delivery.timestamp.to_millis().unwrap_or(created_ms),
                }]);
            }
            Ok(position)
        }
        .boxed())
    }

    async fn partitions(&self) -> Result<Vec<PartitionEnd>, LogError> {
        let metadata = self.metadata.clone();
        let config = self.config.clone();
        let count = self.partitions;
        tokio::task::spawn_blocking(move || partition_ends(&metadata, &config, count))
            .await
            .map_err(kafka_error)?
    }

    fn consume(
        &self,
        partition: u32,
        from: u64,
        pace: ReadPace,
    ) -> BoxStream<'static, Result<LogRecord, LogError>> {
        if partition >= self.partitions {
            let error = LogError::NoSuchPartition {
                partition,
                count: self.partitions,
            };
            return stream::once(async move { Err(error) }).boxed();
        }
        if let Some(recent) = &self.recent
            && let Some(pushed) = recent.subscribe(partition)
        {
            // With this process's appends at hand, the cluster only fills in the others'.
            let reader = SharedReader {
                partition,
                next: from,
                pool: self.relaxed.clone(),
                lease: None,
                filled_in_at: None,
                gap_since: None,
                pushed,
                recent: recent.clone(),
                fetched: VecDeque::new(),
                at_hand: VecDeque::new(),
            };
            return stream::unfold(reader, |mut reader| async move {
                let item = reader.next().await;
                Some((item, reader))
            })
            .boxed();
        }
        let pool = match pace {
            ReadPace::Prompt => &self.prompt,
            ReadPace::Relaxed => &self.relaxed,
        };
        let lease = match pool.lease(partition, from) {
            Ok(lease) => lease,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        stream::unfold((lease, from), move |(lease, next)| async move {
            let received = loop {
                match lease.queue.recv().await {
                    // Before the position, or served twice: already delivered or not asked for.
                    Ok(message) if (message.offset() as u64) < next => continue,
                    other => break other,
                }
            };
            let next = match &received {
                Ok(message) => {
                    let offset = message.offset() as u64;
                    if offset > next && next == from {
                        // Offsets may have gaps; on a broker that skips a batch a fetch
                        // starts inside, this is where records went missing.
                        tracing::warn!(
                            partition,
                            from,
                            offset,
                            "the first record read is past the position asked for: is a \
                             producer's batch.num.messages above this consumer's?"
                        );
                    }
                    offset + 1
                }
                Err(_) => next,
            };
            let item = received
                .map_err(kafka_error)
                .map(|message| log_record(&message));
            Some((item, (lease, next)))
        })
        .boxed()
    }
}

/// A partition stream that takes the records this process appended from memory and the
/// others from the cluster, in offset order. It fetches only while memory may lack records:
/// at first, at a gap between the offsets memory holds, and when this process has not appended
/// to the partition for a while ([`APPENDS_COVER`]); a reader kept up by this process's own
/// appends costs the brokers nothing.
struct SharedReader {
    partition: u32,
    /// The offset of the next record to deliver.
    next: u64,
    /// Where fetching leases come from.
    pool: Arc<ConsumerPool>,
    /// The partition's assignment while the cluster is read.
    lease: Option<Lease>,
    /// When the cluster last gave a record memory did not have (another process's).
    filled_in_at: Option<Instant>,
    /// Since when the record at `next` has been missing from memory while later ones are there.
    gap_since: Option<(u64, Instant)>,
    recent: Arc<RecentRecords>,
    pushed: watch::Receiver<()>,
    /// Messages the cluster delivered at or after `next`, in order.
    fetched: VecDeque<LogRecord>,
    /// Consecutive records from memory, the first at `next`.
    at_hand: VecDeque<LogRecord>,
}

/// Where a shared reader that found nothing at its position looks for the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Memory, until the given time: this process's appends reach the partition's end, or the
    /// record may still be on its way there.
    Memory {
        /// When to look at the cluster instead.
        until: Instant,
        /// Whether memory holds everything up to the position (no gap): a lease may go.
        caught_up: bool,
    },
    /// The cluster.
    Cluster,
}

/// Where to look for the record at `next`, given what memory knows of the partition's end,
/// since when a gap has stood at `next` (if one does), and the time.
fn source(tail: Option<Tail>, next: u64, gap_since: Instant, now: Instant) -> Source {
    let Some(tail) = tail else {
        return Source::Cluster;
    };
    let (until, caught_up) = if tail.newest < next {
        (tail.pushed_at + APPENDS_COVER, true)
    } else {
        (gap_since + GAP_GRACE, false)
    };
    if now < until {
        Source::Memory { until, caught_up }
    } else {
        Source::Cluster
    }
}

impl SharedReader {
    async fn next(&mut self) -> Result<LogRecord, LogError> {
        loop {
            self.take_fetched()?;
            while self
                .fetched
                .front()
                .is_some_and(|record| record.position.offset < self.next)
            {
                self.fetched.pop_front();
            }
            let record = match self.at_hand.pop_front() {
                Some(record) => Some(record),
                None => {
                    // Marked as seen before reading, so a push after the read still wakes us.
                    self.pushed.borrow_and_update();
                    match self.recent.read(self.partition, self.next, FETCH_AT_HAND) {
                        Some(records) => {
                            self.at_hand.extend(records);
                            self.at_hand.pop_front()
                        }
                        // Otherwise the cluster's next message. It delivers in order, so one
                        // past `next` means the log has no record at `next`.
                        None => {
                            let filled_in = self.fetched.pop_front();
                            if filled_in.is_some() {
                                self.filled_in_at = Some(Instant::now());
                            }
                            filled_in
                        }
                    }
                }
            };
            if let Some(record) = record {
                self.next = record.position.offset + 1;
                return Ok(record);
            }
            let now = Instant::now();
            let tail = self.recent.tail(self.partition);
            let gap_since = match self.gap_since {
                Some((offset, since)) if offset == self.next => since,
                _ => now,
            };
            if tail.is_some_and(|tail| tail.newest >= self.next) {
                self.gap_since = Some((self.next, gap_since));
            }
            let until = match source(tail, self.next, gap_since, now) {
                Source::Memory { until, caught_up } => {
                    // Other processes that appended here lately are likely to go on.
                    let others_lately =
                        self.filled_in_at.is_some_and(|at| now < at + APPENDS_COVER);
                    if caught_up && !others_lately {
                        self.lease = None;
                    }
                    Some(until)
                }
                Source::Cluster => {
                    if self.lease.is_none() {
                        self.lease = Some(self.pool.lease(self.partition, self.next)?);
                    }
                    None
                }
            };
            let fetched = async {
                match &self.lease {
                    Some(lease) => lease.queue.recv().await,
                    None => std::future::pending().await,
                }
            };
            let look_again = async {
                match until {
                    Some(until) => tokio::time::sleep_until(until.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = fetched => {
                    if let Some(record) = delivered_from(self.next, received)? {
                        self.fetched.push_back(record);
                    }
                }
                _ = self.pushed.changed() => {}
                () = look_again => {}
            }
        }
    }

    /// Moves the messages the cluster has delivered so far into `fetched`, without waiting.
    fn take_fetched(&mut self) -> Result<(), LogError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        while self.fetched.len() < FETCH_AT_HAND {
            let Some(received) = lease.queue.recv().now_or_never() else {
                break;
            };
            if let Some(record) = delivered_from(self.next, received)? {
                self.fetched.push_back(record);
            }
        }
        Ok(())
    }
}

/// The record of a delivered message, unless it comes before `next` (delivered already, from
/// memory, or from the batch before the position).
fn delivered_from(
    next: u64,
    received: Result<BorrowedMessage<'_>, KafkaError>,
) -> Result<Option<LogRecord>, LogError> {
    let message = received.map_err(kafka_error)?;
    Ok((message.offset() as u64 >= next).then(|| log_record(&message)))
}

/// The log record of a consumed message.
fn log_record(message: &BorrowedMessage<'_>) -> LogRecord {
    let header = |name: &str| {
        message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        })
    };
    LogRecord {
        position: Position {
            partition: message.partition() as u32,
            offset: message.offset() as u64,
        },
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        event_type: header(TYPE_HEADER),
        schema_version: header(VERSION_HEADER).and_then(|v| v.parse().ok()),
        payload: message.payload().unwrap_or_default().to_vec(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
    }
}

/// The consumers of one [`KafkaLog`] for one [`FetchPace`], shared by the partition streams read
/// at that pace. A stream takes the first
/// consumer that does not read its partition yet, so the partition streams of one projector
/// share a consumer (one fetch request per broker for all of them, instead of a consumer with
/// its own threads and fetch loop per partition), and a second reader of a partition gets a
/// second consumer, since one consumer reads a partition from one position.
struct ConsumerPool {
    config: Arc<KafkaConfig>,
    pace: FetchPace,
    consumers: Mutex<Vec<PooledConsumer>>,
    /// Dropped with the pool: ends the tasks that serve the consumers' events.
    closed: watch::Sender<()>,
}

struct PooledConsumer {
    consumer: Arc<StreamConsumer>,
    /// The partitions it is assigned.
    partitions: HashSet<u32>,
}

/// A partition assigned to a pooled consumer, with the queue its messages arrive on. Dropping
/// it unassigns the partition.
struct Lease {
    queue: StreamPartitionQueue<DefaultConsumerContext>,
    consumer: Arc<StreamConsumer>,
    partition: u32,
    pool: Arc<ConsumerPool>,
}

impl ConsumerPool {
    fn new(config: Arc<KafkaConfig>, pace: FetchPace) -> Arc<Self> {
        Arc::new(Self {
            config,
            pace,
            consumers: Mutex::new(Vec::new()),
            closed: watch::channel(()).0,
        })
    }

    /// Assigns `partition` to a consumer that does not read it yet, to read from offset `from`
    /// on (fetching from one batch early: the batch holding `from` may begin before it).
    fn lease(self: &Arc<Self>, partition: u32, from: u64) -> Result<Lease, LogError> {
        let start = from.saturating_sub(self.config.batch_records() - 1);
        let mut consumers = self.consumers.lock().expect("consumer pool lock");
        let index = match consumers
            .iter()
            .position(|pooled| !pooled.partitions.contains(&partition))
        {
            Some(index) => index,
            None => {
                consumers.push(PooledConsumer {
                    consumer: self.start_consumer()?,
                    partitions: HashSet::new(),
                });
                consumers.len() - 1
            }
        };
        let pooled = &mut consumers[index];
        let topic = &self.config.topic;
        let queue = pooled
            .consumer
            .split_partition_queue(topic, partition as i32)
            .ok_or_else(|| LogError::Kafka(format!("no queue for partition {partition}")))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition as i32, Offset::Offset(start as i64))
            .map_err(kafka_error)?;
        pooled
            .consumer
            .incremental_assign(&assignment)
            .map_err(kafka_error)?;
        pooled.partitions.insert(partition);
        Ok(Lease {
            queue,
            consumer: pooled.consumer.clone(),
            partition,
            pool: self.clone(),
        })
    }

    /// A new consumer and the task that serves its events (its messages all go to partition
    /// queues) until the pool is dropped.
    fn start_consumer(&self) -> Result<Arc<StreamConsumer>, LogError> {
        let consumer: StreamConsumer = self
            .config
            .consumer_config(self.pace)
            .create()
            .map_err(kafka_error)?;
        let consumer = Arc::new(consumer);
        let served = consumer.clone();
        let mut closed = self.closed.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = served.recv() => match event {
                        Ok(message) => tracing::warn!(
                            partition = message.partition(),
                            offset = message.offset(),
                            "a message arrived outside its partition queue"
                        ),
                        Err(error) => tracing::warn!(%error, "kafka consumer error"),
                    },
                    _ = closed.changed() => return,
                }
            }
        });
        Ok(consumer)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition(&self.pool.config.topic, self.partition as i32);
        let unassigned = self.consumer.incremental_unassign(&assignment);
        let mut consumers = self.pool.consumers.lock().expect("consumer pool lock");
        match unassigned {
            Ok(()) => {
                if let Some(pooled) = consumers
                    .iter_mut()
                    .find(|pooled| Arc::ptr_eq(&pooled.consumer, &self.consumer))
                {
                    pooled.partitions.remove(&self.partition);
                }
            }
            Err(error) => {
                // Leave the partition marked as read: the consumer is not used for it again.
                tracing::warn!(partition = self.partition, %error, "unassigning a partition");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(newest: u64, pushed_at: Instant) -> Option<Tail> {
        Some(Tail { newest, pushed_at })
    }

    #[test]
    fn a_partition_this_process_never_appended_to_is_fetched() {
        let now = Instant::now();
        assert_eq!(source(None, 0, now, now), Source::Cluster);
    }

    #[test]
    fn memory_covers_the_end_while_this_process_appends() {
        let pushed_at = Instant::now();
        let until = pushed_at + APPENDS_COVER;
        let caught_up = Source::Memory {
            until,
            caught_up: true,
        };
        assert_eq!(
            source(tail(9, pushed_at), 10, pushed_at, pushed_at),
            caught_up
        );
        let later = pushed_at + APPENDS_COVER / 2;
        assert_eq!(source(tail(9, pushed_at), 10, later, later), caught_up);
        assert_eq!(
            source(tail(9, pushed_at), 10, until, until),
            Source::Cluster,
            "no append for a while: others may have appended"
        );
    }

    #[test]
    fn a_gap_is_fetched_unless_memory_fills_it_soon() {
        let pushed_at = Instant::now();
        let since = pushed_at + Duration::from_millis(1);
        let waiting = Source::Memory {
            until: since + GAP_GRACE,
            caught_up: false,
        };
        assert_eq!(source(tail(12, pushed_at), 11, since, since), waiting);
        assert_eq!(
            source(tail(12, pushed_at), 11, since, since + GAP_GRACE / 2),
            waiting
        );
        assert_eq!(
            source(tail(12, pushed_at), 11, since, since + GAP_GRACE),
            Source::Cluster,
            "another process's record, or one memory no longer keeps"
        );
        assert_eq!(
            source(tail(11, pushed_at), 11, since, since + GAP_GRACE),
            Source::Cluster
        );
    }
}
