//! One conformance suite, run against both adapters: the embedded SQLite log and the Kafka
//! adapter on a real Kafka-API broker.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use stratos_log::testing::Broker;
use stratos_log::{
    AppendRecord, CommitLog, EmbeddedConfig, EmbeddedLog, KafkaConfig, KafkaLog, LogError,
    LogRecord, Position, ReadPace, partition_for,
};

const PARTITIONS: u32 = 4;
const WAIT: Duration = Duration::from_secs(30);

/// A log under test and what keeps it alive.
struct Fixture {
    log: Arc<dyn CommitLog>,
    target: Target,
    _dir: tempfile::TempDir,
    _broker: Option<Broker>,
}

/// How to reach the same log again (from this process or a child).
#[derive(Clone)]
enum Target {
    Embedded(std::path::PathBuf),
    Kafka {
        bootstrap: String,
        topic: String,
        /// Whether readers take this handle's acknowledged appends from memory.
        shared: bool,
    },
}

impl Target {
    fn encode(&self) -> String {
        match self {
            Target::Embedded(path) => format!("embedded|{}", path.display()),
            Target::Kafka {
                bootstrap,
                topic,
                shared,
            } => format!("kafka|{bootstrap}|{topic}|{shared}"),
        }
    }

    fn decode(text: &str) -> Self {
        let parts: Vec<_> = text.split('|').collect();
        match parts.as_slice() {
            ["embedded", path] => Target::Embedded(path.into()),
            ["kafka", bootstrap, topic, shared] => Target::Kafka {
                bootstrap: bootstrap.to_string(),
                topic: topic.to_string(),
                shared: *shared == "true",
            },
            _ => panic!("bad target {text}"),
        }
    }

    async fn open(&self) -> Result<Arc<dyn CommitLog>, LogError> {
        Ok(match self {
            Target::Embedded(path) => {
                let mut config = EmbeddedConfig::new(path);
                config.partitions = PARTITIONS;
                Arc::new(EmbeddedLog::open(config).await?)
            }
            Target::Kafka {
                bootstrap,
                topic,
                shared,
            } => {
                let mut config = KafkaConfig::new(bootstrap.clone());
                config.topic = topic.clone();
                config.share_appends = *shared;
                config.partitions = PARTITIONS;
                config.replication_factor = 1;
                config.delivery_timeout = Duration::from_secs(60);
                Arc::new(KafkaLog::connect(config).await?)
            }
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Embedded,
    Kafka,
    /// Kafka, with readers taking the handle's own acknowledged appends from memory.
    KafkaShared,
}

async fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (target, broker) = match kind {
        Kind::Embedded => (Target::Embedded(dir.path().join("log.sqlite")), None),
        Kind::Kafka | Kind::KafkaShared => {
            let broker = Broker::start();
            let target = Target::Kafka {
                bootstrap: broker.bootstrap(),
                topic: "stratos.test.events".into(),
                shared: matches!(kind, Kind::KafkaShared),
            };
            (target, Some(broker))
        }
    };
    let log = target.open().await.unwrap();
    Fixture {
        log,
        target,
        _dir: dir,
        _broker: broker,
    }
}

fn record(key: &str, payload: Vec<u8>) -> AppendRecord {
    AppendRecord {
        key: key.to_string(),
        event_type: "#commit".into(),
        schema_version: 1,
        payload,
    }
}

/// Reads `count` records of a partition from `from`, failing if they do not arrive in time.
async fn read(log: &dyn CommitLog, partition: u32, from: u64, count: usize) -> Vec<LogRecord> {
    let stream = log.consume(partition, from, ReadPace::Prompt).take(count);
    let records: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("records arrive in time");
    records.into_iter().map(Result::unwrap).collect()
}

/// Reads every record up to the current end of every partition.
async fn read_all(log: &dyn CommitLog) -> Vec<LogRecord> {
    let mut all = Vec::new();
    for end in log.partitions().await.unwrap() {
        all.extend(read(log, end.partition, 0, end.end as usize).await);
    }
    all
}

async fn per_key_order_under_64_concurrent_producers(kind: Kind) {
    let fixture = fixture(kind).await;
    const PRODUCERS: usize = 64;
    const EACH: u32 = 40;
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let log = fixture.log.clone();
            tokio::spawn(async move {
                let key = format!("did:plc:producer{producer:016}");
                let mut positions = Vec::new();
                for seq in 0..EACH {
                    let payload = format!("{key}#{seq}").into_bytes();
                    positions.push(log.append(record(&key, payload)).await.unwrap());
                }
                (key, positions)
            })
        })
        .collect();
    let mut appended: BTreeMap<String, Vec<Position>> = BTreeMap::new();
    for task in tasks {
        let (key, positions) = task.await.unwrap();
        appended.insert(key, positions);
    }

    let records = read_all(fixture.log.as_ref()).await;
    assert_eq!(records.len(), PRODUCERS * EACH as usize);
    let mut seen: BTreeMap<String, Vec<(u32, Position)>> = BTreeMap::new();
    for record in &records {
        let text = String::from_utf8(record.payload.clone()).unwrap();
        let (key, seq) = text.split_once('#').unwrap();
        assert_eq!(record.key, key);
        assert_eq!(record.event_type.as_deref(), Some("#commit"));
        assert_eq!(record.schema_version, Some(1));
        assert_eq!(record.position.partition, partition_for(key, PARTITIONS));
        seen.entry(key.to_string())
            .or_default()
            .push((seq.parse().unwrap(), record.position));
    }
    for (key, positions) in appended {
        let read_back = &seen[&key];
        let seqs: Vec<u32> = read_back.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (0..EACH).collect::<Vec<_>>(), "order of {key}");
        let read_positions: Vec<Position> = read_back.iter().map(|(_, p)| *p).collect();
        assert_eq!(read_positions, positions, "positions of {key}");
    }
}

async fn resume_from_a_stored_position(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:resumeresumeresumeresu";
    for i in 0..10u8 {
        fixture.log.append(record(key, vec![i])).await.unwrap();
    }
    let partition = partition_for(key, PARTITIONS);
    let first = read(fixture.log.as_ref(), partition, 0, 5).await;
    let stored = first.last().unwrap().position;
    // A new consumer resumes after the stored position: no gap, no duplicate.
    let rest = read(fixture.log.as_ref(), partition, stored.offset + 1, 5).await;
    let payloads: Vec<u8> = first.iter().chain(&rest).map(|r| r.payload[0]).collect();
    assert_eq!(payloads, (0..10).collect::<Vec<_>>());
    // And waits for what comes next.
    let log = fixture.log.clone();
    let waiting =
        tokio::spawn(async move { read(log.as_ref(), partition, stored.offset + 6, 1).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    fixture.log.append(record(key, vec![10])).await.unwrap();
    assert_eq!(waiting.await.unwrap()[0].payload, vec![10]);
}

/// A prompt and a relaxed reader of one partition at once (the repo projector and a follower)
/// each get every record, the stored ones and those appended while they wait.
async fn prompt_and_relaxed_readers_side_by_side(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:paceapaceapaceapaceapace";
    let partition = partition_for(key, PARTITIONS);
    for i in 0..5u8 {
        fixture.log.append(record(key, vec![i])).await.unwrap();
    }
    let readers = [ReadPace::Prompt, ReadPace::Relaxed].map(|pace| {
        let log = fixture.log.clone();
        tokio::spawn(async move {
            let stream = log.consume(partition, 0, pace).take(10);
            let records: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
                .await
                .expect("records arrive in time");
            let payloads: Vec<u8> = records.into_iter().map(|r| r.unwrap().payload[0]).collect();
            (pace, payloads)
        })
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 5..10u8 {
        fixture.log.append(record(key, vec![i])).await.unwrap();
    }
    for reader in readers {
        let (pace, payloads) = reader.await.unwrap();
        assert_eq!(payloads, (0..10).collect::<Vec<_>>(), "{pace:?} reader");
    }
}

/// A reader of one partition gets what a second handle on the same log (another process)
/// appends there, while its own handle keeps appending to another partition.
async fn a_second_writers_appends_reach_a_busy_reader(kind: Kind) {
    let fixture = fixture(kind).await;
    let other = fixture.target.open().await.unwrap();
    let busy = "did:plc:busybusybusybusybusybusy";
    let quiet = (0..)
        .map(|i| format!("did:plc:quiet{i:020}"))
        .find(|key| partition_for(key, PARTITIONS) != partition_for(busy, PARTITIONS))
        .unwrap();
    let partition = partition_for(&quiet, PARTITIONS);
    let log = fixture.log.clone();
    let appending = tokio::spawn(async move {
        for i in 0u32.. {
            log.append(record(busy, i.to_be_bytes().to_vec()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let waiting = {
        let log = fixture.log.clone();
        tokio::spawn(async move { read(log.as_ref(), partition, 0, 1).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    other
        .append(record(&quiet, b"from the other writer".to_vec()))
        .await
        .unwrap();
    let received = waiting.await.unwrap();
    appending.abort();
    assert_eq!(received[0].payload, b"from the other writer".to_vec());
}

/// Two handles on one log (two processes) appending to one partition at once: a reader gets
/// every record once, in offset order, whichever handle appended it.
async fn two_writers_on_one_partition_read_in_order(kind: Kind) {
    let fixture = fixture(kind).await;
    let other = fixture.target.open().await.unwrap();
    let key = "did:plc:sharedsharedsharedshared";
    let partition = partition_for(key, PARTITIONS);
    let reader = {
        let log = fixture.log.clone();
        tokio::spawn(async move { read(log.as_ref(), partition, 0, 400).await })
    };
    let writers: Vec<_> = [fixture.log.clone(), other]
        .into_iter()
        .enumerate()
        .map(|(writer, log)| {
            tokio::spawn(async move {
                for i in 0..200u32 {
                    let payload = format!("{writer}/{i}").into_bytes();
                    log.append(record(key, payload)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let received = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    let offsets: Vec<u64> = received.iter().map(|r| r.position.offset).collect();
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "{offsets:?}"
    );
    let mut payloads: Vec<Vec<u8>> = received.into_iter().map(|r| r.payload).collect();
    payloads.sort();
    let mut expected: Vec<Vec<u8>> = (0..2)
        .flat_map(|writer| (0..200).map(move |i| format!("{writer}/{i}").into_bytes()))
        .collect();
    expected.sort();
    assert_eq!(payloads, expected);
}

/// Appends sent together travel as one produce batch: a consumer starting inside the batch gets
/// exactly the records from its position, and the partition's end counts the whole batch.
async fn resume_inside_a_batch(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:batchbatchbatchbatchbatc";
    let partition = partition_for(key, PARTITIONS);
    let appends = (0..50u8).map(|i| fixture.log.append(record(key, vec![i])));
    let mut offsets: Vec<u64> = futures::future::try_join_all(appends)
        .await
        .unwrap()
        .iter()
        .map(|position| position.offset)
        .collect();
    offsets.sort_unstable();
    let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
    assert_eq!(offsets, (first..=last).collect::<Vec<_>>());
    let ends = fixture.log.partitions().await.unwrap();
    assert_eq!(
        ends[partition as usize].end,
        last + 1,
        "the end of the partition"
    );
    for from in [first + 1, first + 25, last] {
        let count = (last + 1 - from) as usize;
        let read_back = read(fixture.log.as_ref(), partition, from, count).await;
        let read_offsets: Vec<u64> = read_back.iter().map(|r| r.position.offset).collect();
        assert_eq!(
            read_offsets,
            (from..=last).collect::<Vec<_>>(),
            "from {from}"
        );
    }
}

async fn redelivery_when_positions_were_not_stored(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:redeliverredeliverredel";
    for i in 0..6u8 {
        fixture.log.append(record(key, vec![i])).await.unwrap();
    }
    let partition = partition_for(key, PARTITIONS);
    let first = read(fixture.log.as_ref(), partition, 0, 3).await;
    // The consumer "crashed" before storing anything: it starts again from 0 and sees the same.
    let again = read(fixture.log.as_ref(), partition, 0, 3).await;
    assert_eq!(first, again);
}

async fn a_one_mib_event(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:bigbigbigbigbigbigbigbig";
    let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let position = fixture
        .log
        .append(record(key, payload.clone()))
        .await
        .unwrap();
    let read_back = read(fixture.log.as_ref(), position.partition, position.offset, 1).await;
    assert_eq!(read_back[0].payload, payload);
}

/// A reader that follows the appends and one that starts from the beginning after several MiB
/// were appended (more than the embedded log keeps in memory) both see every record, in order.
async fn live_and_late_readers_see_every_record(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:latelatelatelatelatelate";
    let partition = partition_for(key, PARTITIONS);
    const COUNT: usize = 2_000;
    let payload = |i: usize| -> Vec<u8> {
        let mut payload = vec![(i % 251) as u8; 2048];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        payload
    };
    let live = tokio::spawn({
        let log = fixture.log.clone();
        async move { read(log.as_ref(), partition, 0, COUNT).await }
    });
    for chunk in (0..COUNT).collect::<Vec<_>>().chunks(250) {
        let mut acknowledgements = Vec::new();
        for &i in chunk {
            acknowledgements.push(fixture.log.enqueue(record(key, payload(i))).await.unwrap());
        }
        for acknowledgement in acknowledgements {
            acknowledgement.await.unwrap();
        }
    }
    let late = read(fixture.log.as_ref(), partition, 0, COUNT).await;
    for records in [live.await.unwrap(), late] {
        assert_eq!(records.len(), COUNT);
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.position.offset, i as u64);
            assert_eq!(record.payload, payload(i), "record {i}");
        }
    }
}

async fn creation_is_idempotent(kind: Kind) {
    let fixture = fixture(kind).await;
    let key = "did:plc:idempotentidempotentid";
    let position = fixture
        .log
        .append(record(key, b"kept".to_vec()))
        .await
        .unwrap();
    drop(fixture.log);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = fixture.target.open().await.unwrap();
    let ends = again.partitions().await.unwrap();
    assert_eq!(ends.len(), PARTITIONS as usize);
    assert_eq!(ends[position.partition as usize].end, position.offset + 1);
    let kept = read(again.as_ref(), position.partition, position.offset, 1).await;
    assert_eq!(kept[0].payload, b"kept");
    let next = again.append(record(key, b"next".to_vec())).await.unwrap();
    assert_eq!(next.offset, position.offset + 1);
}

async fn partition_count_mismatch_is_refused(kind: Kind) {
    let fixture = fixture(kind).await;
    let result = match &fixture.target {
        Target::Embedded(path) => {
            drop(fixture.log);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut config = EmbeddedConfig::new(path);
            config.partitions = PARTITIONS + 1;
            EmbeddedLog::open(config).await.map(|_| ())
        }
        Target::Kafka {
            bootstrap, topic, ..
        } => {
            let mut config = KafkaConfig::new(bootstrap.clone());
            config.topic = topic.clone();
            config.partitions = PARTITIONS + 1;
            config.replication_factor = 1;
            KafkaLog::connect(config).await.map(|_| ())
        }
    };
    assert!(
        matches!(result, Err(LogError::Mismatch(_))),
        "{:?}",
        result.err()
    );
}

async fn consuming_a_missing_partition_is_an_error(kind: Kind) {
    let fixture = fixture(kind).await;
    let first = fixture
        .log
        .consume(PARTITIONS, 0, ReadPace::Prompt)
        .next()
        .await
        .unwrap();
    assert!(matches!(first, Err(LogError::NoSuchPartition { .. })));
}

/// The child half of the kill -9 test: appends one event, reports its position, then waits to
/// be killed. Run only by `an_acknowledged_append_survives_kill_9`.
#[tokio::test]
#[ignore = "run as a child process by the kill -9 test"]
async fn child_append_then_wait() {
    let target = Target::decode(&std::env::var("STRATOS_LOG_CHILD").unwrap());
    let log = target.open().await.unwrap();
    let position = log
        .append(record(
            "did:plc:survivorsurvivorsurviv",
            b"acknowledged".to_vec(),
        ))
        .await
        .unwrap();
    println!("POSITION {} {}", position.partition, position.offset);
    tokio::time::sleep(Duration::from_secs(120)).await;
}

async fn an_acknowledged_append_survives_kill_9(kind: Kind) {
    let fixture = fixture(kind).await;
    if let Target::Embedded(_) = fixture.target {
        // One writer per file: the child is the writer now.
        drop(fixture.log.clone());
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_append_then_wait",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("STRATOS_LOG_CHILD", fixture.target.encode())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map(Result::unwrap)
            .find(|line| line.starts_with("POSITION "))
    })
    .await
    .unwrap()
    .expect("the child reports the position it was acknowledged at");
    child.kill().unwrap(); // SIGKILL: no destructors, no flushing
    child.wait().unwrap();

    let parts: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    let survivor = read(fixture.log.as_ref(), parts[0] as u32, parts[1], 1).await;
    assert_eq!(survivor[0].payload, b"acknowledged");
}

/// Embedded only: appends that run for seconds on end, past the writer's own checkpoints
/// between batches, are all in the log at the positions they were acknowledged at, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_steady_appends_survive_the_writers_checkpoints() {
    let fixture = fixture(Kind::Embedded).await;
    let until = std::time::Instant::now() + Duration::from_millis(2_500);
    let writers: Vec<_> = (0..32u64)
        .map(|writer| {
            let log = fixture.log.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut serial = 0u64;
                while std::time::Instant::now() < until {
                    serial += 1;
                    let payload = format!("{writer}/{serial}").into_bytes();
                    let key = format!("did:plc:steady{writer:018}");
                    let position = log.append(record(&key, payload.clone())).await.unwrap();
                    acknowledged.push((position, payload));
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = BTreeMap::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let stored: BTreeMap<Position, Vec<u8>> = read_all(fixture.log.as_ref())
        .await
        .into_iter()
        .map(|record| (record.position, record.payload))
        .collect();
    assert!(acknowledged.len() > 100, "{} appends", acknowledged.len());
    assert_eq!(stored, acknowledged);
}

/// Kafka only: the broker is killed and restarted while appends are in flight; every append
/// that was acknowledged is in the log afterwards, at the position it was acknowledged at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_restart_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_durable(dir.path());
    let target = Target::Kafka {
        bootstrap: broker.bootstrap(),
        topic: "stratos.test.restart".into(),
        shared: false,
    };
    let log = target.open().await.unwrap();
    const EVENTS: usize = 300;
    let (progress, mut appended) = tokio::sync::mpsc::unbounded_channel();
    let appender = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..EVENTS {
                let key = format!("did:plc:restart{:017}", i % 10);
                let position = log.append(record(&key, i.to_be_bytes().to_vec())).await;
                if let Ok(position) = position {
                    acknowledged.push((i, position));
                }
                let _ = progress.send(i);
            }
            acknowledged
        })
    };
    // Restart once a third of the events are in.
    while let Some(i) = appended.recv().await {
        if i == EVENTS / 3 {
            tokio::task::block_in_place(|| broker.restart());
            break;
        }
    }
    let acknowledged = tokio::time::timeout(Duration::from_secs(120), appender)
        .await
        .expect("appends finish after the restart")
        .unwrap();
    assert!(
        acknowledged.len() > EVENTS / 3,
        "appends resumed after the restart"
    );

    let mut found: BTreeMap<Position, Vec<u8>> = BTreeMap::new();
    for end in log.partitions().await.unwrap() {
        for record in read(log.as_ref(), end.partition, 0, end.end as usize).await {
            found.insert(record.position, record.payload);
        }
    }
    for (i, position) in acknowledged {
        assert_eq!(
            found.get(&position),
            Some(&i.to_be_bytes().to_vec()),
            "event {i}"
        );
    }
}

macro_rules! conformance {
    ([$($kind:ident),+], $tests:tt) => {
        $(conformance!(@kind $kind, $tests);)+
    };
    (@kind $kind:ident, [$($test:ident),* $(,)?]) => {
        #[allow(non_snake_case)]
        mod $kind {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Kind::$kind).await;
                }
            )*
        }
    };
}

conformance!(
    [Embedded, Kafka, KafkaShared],
    [
        per_key_order_under_64_concurrent_producers,
        resume_from_a_stored_position,
        prompt_and_relaxed_readers_side_by_side,
        a_second_writers_appends_reach_a_busy_reader,
        two_writers_on_one_partition_read_in_order,
        resume_inside_a_batch,
        redelivery_when_positions_were_not_stored,
        a_one_mib_event,
        live_and_late_readers_see_every_record,
        creation_is_idempotent,
        partition_count_mismatch_is_refused,
        consuming_a_missing_partition_is_an_error,
        an_acknowledged_append_survives_kill_9,
    ]
);

/// With shared appends, a reader in the appending process takes the acknowledged records from
/// memory: it gets them even when the broker is gone before it could fetch them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_log_reads_its_acknowledged_appends_from_memory() {
    let mut fixture = fixture(Kind::KafkaShared).await;
    let key = "did:plc:memorymemorymemorymemory";
    let mut positions = Vec::new();
    for i in 0..5u8 {
        positions.push(fixture.log.append(record(key, vec![i])).await.unwrap());
    }
    fixture._broker.as_mut().unwrap().kill();
    let first = positions[0];
    let received = read(fixture.log.as_ref(), first.partition, first.offset, 5).await;
    let got: Vec<(Position, Vec<u8>)> = received
        .into_iter()
        .map(|record| (record.position, record.payload))
        .collect();
    let expected: Vec<(Position, Vec<u8>)> = positions
        .into_iter()
        .zip(0..5u8)
        .map(|(position, i)| (position, vec![i]))
        .collect();
    assert_eq!(got, expected);
}

/// The topic Stratos creates keeps every event: the log is what replay and audit read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_topic_never_ages_events_out() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let fixture = fixture(Kind::Kafka).await;
    let Target::Kafka {
        bootstrap, topic, ..
    } = &fixture.target
    else {
        unreachable!()
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    for name in ["retention.ms", "retention.bytes"] {
        let entry = resource.get(name);
        assert_eq!(
            entry.and_then(|e| e.value.as_deref()),
            Some("-1"),
            "{name}: {entry:?}"
        );
    }
}
