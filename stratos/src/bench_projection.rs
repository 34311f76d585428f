//! `stratos bench fill` and `stratos bench project`: a pre-filled log of synthetic commits, and
//! how fast the projectors apply it.

use anyhow::{Context, Result};
use clap::Args;
use std::time::Instant;
use stratos_projector::service::{DEFAULT_BATCH_SIZE, ProjectorOptions, start};
use stratos_store::{MasterKey, RebuildTarget};

use crate::options::{LogOptions, StoreOptions, connect_store, connect_views};
use crate::projections::rebuild;
use crate::workload::fill;

/// Arguments of `stratos bench fill`.
#[derive(Debug, Args)]
pub struct FillArgs {
    #[command(flatten)]
    log: LogOptions,
    #[command(flatten)]
    store: StoreOptions,
    /// Synthetic actors to enroll.
    #[arg(long, default_value_t = 1_000)]
    actors: usize,
    /// One-post commits to append, round-robin over the actors.
    #[arg(long, default_value_t = 100_000)]
    commits: u64,
}

/// Arguments of `stratos bench project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// The database to measure: `postgres://…` (scratch schemas are created and dropped) or
    /// `sqlite://path` (scratch files beside it). Default: SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Kafka `bootstrap.servers`, to fill and read a Kafka topic instead of an embedded log.
    #[arg(long, env = "STRATOS_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,
    /// Extra librdkafka properties, `name=value`, repeatable.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    kafka_properties: Vec<String>,
    /// Synthetic actors.
    #[arg(long, default_value_t = 1_000)]
    actors: usize,
    /// One-post commits, round-robin over the actors.
    #[arg(long, default_value_t = 100_000)]
    commits: u64,
    /// At most this many events per transaction.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// The log's partition count.
    #[arg(long, default_value_t = 12)]
    partitions: u32,
}

/// Fills a log with synthetic actors and commits, with a progress bar.
pub async fn bench_fill(args: FillArgs) -> Result<()> {
    let log = args.log.open(false).await?;
    let (store, _) = args.store.connect().await?;
    let total = args.actors as u64 + args.commits;
    let bar = crate::progress::bar(total, "appending")?;
    let started = Instant::now();
    let filled = fill(&log, &store, args.actors, args.commits, |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    println!(
        "appended {} events ({} commits by {} actors) in {:.2} s",
        filled.events,
        filled.commits,
        args.actors,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fills a log, then measures the repo projector alone and a full replay (repo + views).
pub async fn bench_project(args: ProjectArgs) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", temp.path().join("bench.sqlite").display()));
    let log = LogOptions {
        log_file: temp.path().join("log.sqlite"),
        kafka_bootstrap: args.kafka_bootstrap.clone(),
        topic: format!("stratos.bench.{}", std::process::id()),
        partitions: args.partitions,
        kafka_properties: args.kafka_properties.clone(),
    }
    .open(false)
    .await?;
    let master = MasterKey::generate();

    // The log, and the keys of its actors.
    let apply_target = RebuildTarget::prepare(&url, "bench_apply").await?;
    let store = connect_store(apply_target.url(), master.clone()).await?;
    let bar = crate::progress::bar(args.actors as u64 + args.commits, "filling the log")?;
    let filled = fill(&log, &store, args.actors, args.commits, |n| bar.inc(n)).await?;
    bar.finish_and_clear();

    // The repo projector alone.
    let bar = crate::progress::bar(filled.events, "applying")?;
    let counter = bar.clone();
    let started = Instant::now();
    let options = ProjectorOptions {
        batch_size: args.batch_size,
        stop_at_end: true,
    };
    start(log.clone(), store.clone(), None, options, move |n| {
        counter.inc(n as u64)
    })
    .await?
    .finished()
    .await;
    let apply_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let keys = store.wrapped_keys().await?;
    store.close().await;
    apply_target.discard().await?;

    // A full replay: repo projection and AppView views.
    let replay_target = RebuildTarget::prepare(&url, "bench_replay").await?;
    let store = connect_store(replay_target.url(), master).await?;
    store.replace_wrapped_keys(&keys).await?;
    let views = connect_views(replay_target.url()).await?;
    let report = rebuild(&log, &store, &views, args.batch_size)
        .await
        .context("replaying")?;
    store.close().await;
    views.close().await;
    replay_target.discard().await?;

    let backend = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let source = if args.kafka_bootstrap.is_some() {
        "kafka"
    } else {
        "embedded"
    };
    println!(
        "{:<10} {:<9} {:>9} {:>8} {:>14} {:>12} {:>14}",
        "store", "log", "commits", "actors", "apply s", "commits/s", "replay s"
    );
    println!(
        "{:<10} {:<9} {:>9} {:>8} {:>14.2} {:>12.0} {:>14.2}",
        backend,
        source,
        filled.commits,
        args.actors,
        apply_seconds,
        filled.commits as f64 / apply_seconds.max(1e-9),
        report.seconds
    );
    println!(
        "(apply: repo projector alone, batches of {}; replay: repo projector and AppView views \
         from offset 0, {} events, {:.0} events/s)",
        args.batch_size,
        report.events,
        report.events as f64 / report.seconds.max(1e-9)
    );
    Ok(())
}
