//! `stratos bench`: load generators that measure the system's parts on this machine.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratos_log::{
    AppendRecord, CommitLog, EmbeddedConfig, EmbeddedLog, KafkaConfig, KafkaLog, ReadPace,
};

/// Load generators.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append throughput and append→consume latency of the commit log.
    Log(LogArgs),
    /// Fill a log with synthetic enrolled actors and one-post commits (keys into the key store).
    Fill(crate::bench_projection::FillArgs),
    /// Apply throughput of the projectors from a pre-filled log, and full replay time.
    Project(crate::bench_projection::ProjectArgs),
    /// createRecord throughput and latency over HTTP at a given concurrency.
    Write(crate::bench_write::WriteArgs),
    /// Reads over HTTP and WebSocket: getRecord, hydrateRecords, getTimeline, getRepo,
    /// subscribeRecords backfill.
    Read(crate::bench_read::ReadArgs),
    /// Timeline page latency over large synthetic AppView views.
    Timeline(crate::bench_timeline::TimelineArgs),
    /// Live fan-out of subscribeRecords: many subscribers following one actor's writes.
    Subscribe(crate::bench_subscribe::SubscribeArgs),
}

/// Which commit-log adapters to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Adapter {
    /// The embedded SQLite log.
    Embedded,
    /// The Kafka adapter (needs `--bootstrap`).
    Kafka,
    /// Both.
    Both,
}

/// Arguments of `stratos bench log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Which adapters to measure.
    #[arg(long, value_enum, default_value = "embedded")]
    adapter: Adapter,
    /// Events appended in the throughput run.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Appends in flight at once in the throughput run.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Distinct keys (actors) the events are spread over.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Events per second in the latency run.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Length of the latency run in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Kafka `bootstrap.servers` for the Kafka adapter.
    #[arg(long, env = "STRATOS_KAFKA_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// Extra librdkafka properties, `name=value`, repeatable.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    kafka_properties: Vec<String>,
    /// Directory for the embedded log file (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// Runs a bench subcommand.
pub fn run(command: BenchCommand) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    match command {
        BenchCommand::Log(args) => runtime.block_on(bench_log(args)),
        BenchCommand::Fill(args) => runtime.block_on(crate::bench_projection::bench_fill(args)),
        BenchCommand::Project(args) => {
            runtime.block_on(crate::bench_projection::bench_project(args))
        }
        BenchCommand::Write(args) => runtime.block_on(crate::bench_write::bench_write(args)),
        BenchCommand::Read(args) => runtime.block_on(crate::bench_read::bench_read(args)),
        BenchCommand::Timeline(args) => {
            runtime.block_on(crate::bench_timeline::bench_timeline(args))
        }
        BenchCommand::Subscribe(args) => {
            runtime.block_on(crate::bench_subscribe::bench_subscribe(args))
        }
    }
}

struct Figures {
    adapter: &'static str,
    events_per_second: f64,
    megabytes_per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn bench_log(args: LogArgs) -> Result<()> {
    let mut results = Vec::new();
    let temp = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    if matches!(args.adapter, Adapter::Embedded | Adapter::Both) {
        let log: Arc<dyn CommitLog> = Arc::new(
            EmbeddedLog::open(EmbeddedConfig::new(dir.join("bench-log.sqlite")))
                .await
                .context("opening the embedded log")?,
        );
        results.push(measure("embedded", log, &args).await?);
    }
    if matches!(args.adapter, Adapter::Kafka | Adapter::Both) {
        let Some(bootstrap) = &args.bootstrap else {
            bail!("--bootstrap is required for the Kafka adapter");
        };
        let mut config = KafkaConfig::new(bootstrap.clone());
        config.topic = format!("stratos.bench.{}", std::process::id());
        config.replication_factor = 1;
        for property in &args.kafka_properties {
            let (name, value) = property
                .split_once('=')
                .with_context(|| format!("--kafka-property {property}: expected NAME=VALUE"))?;
            config.extra.insert(name.into(), value.into());
        }
        let log: Arc<dyn CommitLog> = Arc::new(
            KafkaLog::connect(config)
                .await
                .context("connecting to Kafka")?,
        );
        results.push(measure("kafka", log, &args).await?);
    }
    println!(
        "{:<10} {:>12} {:>10} {:>12} {:>12}",
        "adapter", "events/s", "MB/s", "p50", "p99"
    );
    for r in results {
        println!(
            "{:<10} {:>12.0} {:>10.1} {:>12?} {:>12?}",
            r.adapter, r.events_per_second, r.megabytes_per_second, r.p50, r.p99
        );
    }
    println!(
        "({} events of {} bytes, {} in flight, {} keys; latency at {} events/s for {} s)",
        args.events, args.size, args.concurrency, args.keys, args.rate, args.seconds
    );
    Ok(())
}

async fn measure(
    adapter: &'static str,
    log: Arc<dyn CommitLog>,
    args: &LogArgs,
) -> Result<Figures> {
    let (events_per_second, megabytes_per_second) = throughput(&log, args).await?;
    let (p50, p99) = latency(&log, args).await?;
    Ok(Figures {
        adapter,
        events_per_second,
        megabytes_per_second,
        p50,
        p99,
    })
}

/// Appends `events` payloads with `concurrency` appends in flight; durable acknowledgement each.
async fn throughput(log: &Arc<dyn CommitLog>, args: &LogArgs) -> Result<(f64, f64)> {
    let payload = vec![0x5a; args.size];
    let started = Instant::now();
    let workers = args.concurrency.max(1);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let log = log.clone();
            let payload = payload.clone();
            let (events, keys) = (args.events, args.keys.max(1));
            tokio::spawn(async move {
                let mut index = worker;
                while index < events {
                    let record = AppendRecord {
                        key: crate::workload::bench_did(index % keys),
                        event_type: "#commit".into(),
                        schema_version: 1,
                        payload: payload.clone(),
                    };
                    log.append(record).await?;
                    index += workers;
                }
                Ok::<_, stratos_log::LogError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = args.events as f64;
    Ok((events / seconds, events * args.size as f64 / seconds / 1e6))
}

/// Appends at a fixed rate while consumers follow every partition; measures append→consume.
async fn latency(log: &Arc<dyn CommitLog>, args: &LogArgs) -> Result<(Duration, Duration)> {
    let total = (args.rate * args.seconds) as usize;
    let origin = Instant::now();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut consumers = Vec::new();
    for end in log.partitions().await? {
        let mut stream = log.consume(end.partition, end.end, ReadPace::Prompt);
        let sender = sender.clone();
        consumers.push(tokio::spawn(async move {
            while let Some(Ok(record)) = stream.next().await {
                let sent = u64::from_le_bytes(record.payload[..8].try_into().unwrap_or_default());
                let received = origin.elapsed();
                if sender
                    .send(received.saturating_sub(Duration::from_nanos(sent)))
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    drop(sender);
    // Let consumers reach the end before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut appends = Vec::with_capacity(total);
    for index in 0..total {
        ticker.tick().await;
        let mut payload = vec![0u8; args.size.max(8)];
        payload[..8].copy_from_slice(&(origin.elapsed().as_nanos() as u64).to_le_bytes());
        let log = log.clone();
        let record = AppendRecord {
            key: crate::workload::bench_did(index % args.keys.max(1)),
            event_type: "#commit".into(),
            schema_version: 1,
            payload,
        };
        appends.push(tokio::spawn(async move { log.append(record).await }));
    }
    for append in appends {
        append.await??;
    }
    let mut samples = Vec::with_capacity(total);
    while samples.len() < total {
        match tokio::time::timeout(Duration::from_secs(30), receiver.recv()).await {
            Ok(Some(sample)) => samples.push(sample),
            _ => bail!("only {} of {total} events were consumed", samples.len()),
        }
    }
    for consumer in consumers {
        consumer.abort();
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Ok((at(0.50), at(0.99)))
}
