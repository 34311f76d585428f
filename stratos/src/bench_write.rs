//! `stratos bench write`: drives `createRecord` over HTTP at a given concurrency for a while and
//! reports throughput and latency. By default it starts the service in this process (embedded
//! log and SQLite in a temporary directory, or Kafka and Postgres), with development
//! authentication; `--url` drives a running service instead (started with `--dev-auth`).

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stratos_command::auth::install_tls_provider;

use crate::bench_service::{Local, LocalOptions, cpu_seconds, rss_kib, service_did};

/// Arguments of `stratos bench write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// A running service to drive (started with `--dev-auth` and a write rate limit above the
    /// load); by default one is started here.
    #[arg(long)]
    url: Option<String>,
    /// The boundary to post in, when driving `--url` (default: `<service DID>/general`).
    #[arg(long)]
    boundary: Option<String>,
    /// For the service started here: Kafka `bootstrap.servers` instead of an embedded log.
    #[arg(long, env = "STRATOS_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,
    /// Extra librdkafka properties, `name=value`, repeatable.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    kafka_properties: Vec<String>,
    /// For the service started here: `postgres://…` (a scratch schema is created and dropped)
    /// instead of SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Test actors (enrolled through development authentication before the clock starts).
    #[arg(long, default_value_t = 90)]
    actors: usize,
    /// The number of the first test actor (`did:plc:bench<number>`): load generators driving
    /// one deployment through several services take disjoint ranges.
    #[arg(long, default_value_t = 0)]
    first_actor: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to write, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The log's partition count (service started here).
    #[arg(long, default_value_t = 12)]
    partitions: u32,
}

/// Runs the bench.
pub async fn bench_write(args: WriteArgs) -> Result<()> {
    install_tls_provider();
    let local = match &args.url {
        Some(_) => None,
        None => Some(
            Local::start(&LocalOptions {
                kafka_bootstrap: args.kafka_bootstrap.clone(),
                kafka_properties: args.kafka_properties.clone(),
                database_url: args.database_url.clone(),
                partitions: args.partitions,
                label: "write",
            })
            .await?,
        ),
    };
    let (url, boundary) = match (&args.url, &local) {
        (Some(url), _) => {
            let did = service_did(url).await?;
            let boundary = args
                .boundary
                .clone()
                .unwrap_or_else(|| format!("{did}/general"));
            (url.clone(), boundary)
        }
        (None, Some(local)) => (local.url.clone(), local.boundary.clone()),
        (None, None) => bail!("no service to drive"),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()?;
    let driver = Driver {
        client,
        url,
        boundary,
        first_actor: args.first_actor,
    };

    // Enroll every actor (their first write) before the clock starts.
    let warmup = crate::progress::bar(args.actors as u64, "enrolling")?;
    futures::future::try_join_all((0..args.actors).map(|actor| {
        let (driver, warmup) = (&driver, &warmup);
        async move {
            driver.create(actor).await?;
            warmup.inc(1);
            Ok::<_, anyhow::Error>(())
        }
    }))
    .await?;
    warmup.finish_and_clear();

    let rss_before = rss_kib();
    let cpu_before = cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let bar = crate::progress::bar(args.seconds, "writing (s)")?;
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_position(started.elapsed().as_secs());
            }
        })
    };
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|worker| {
            let driver = driver.clone();
            let errors = errors.clone();
            let (actors, concurrency) = (args.actors.max(1), args.concurrency.max(1));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut turn = 0;
                while Instant::now() < deadline {
                    let actor = (worker + turn * concurrency) % actors;
                    turn += 1;
                    let sent = Instant::now();
                    match driver.create(actor).await {
                        Ok(()) => latencies.push(sent.elapsed()),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = ticker.await;
    bar.finish_and_clear();
    let rss_after = rss_kib();
    let cpu_used = cpu_seconds() - cpu_before;

    latencies.sort();
    let quantile = |q: f64| crate::bench_service::quantile(&latencies, q);
    let mode = match (&args.url, &args.kafka_bootstrap, &args.database_url) {
        (Some(url), _, _) => url.clone(),
        (None, Some(_), Some(_)) => "kafka+postgres".into(),
        (None, Some(_), None) => "kafka+sqlite".into(),
        (None, None, Some(_)) => "embedded+postgres".into(),
        (None, None, None) => "embedded".into(),
    };
    println!(
        "{:<18} {:>7} {:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "service", "actors", "conc.", "records/s", "p50", "p95", "p99", "max", "errors"
    );
    println!(
        "{:<18} {:>7} {:>6} {:>11.0} {:>9.1?} {:>9.1?} {:>9.1?} {:>9.1?} {:>7}",
        mode,
        args.actors,
        args.concurrency,
        latencies.len() as f64 / elapsed,
        quantile(0.50),
        quantile(0.95),
        quantile(0.99),
        latencies.last().copied().unwrap_or_default(),
        errors.load(Ordering::Relaxed)
    );
    if local.is_some() {
        println!(
            "({} records in {elapsed:.1} s; process RSS {} MiB before, {} MiB after; \
             process CPU {:.0} µs per record)",
            latencies.len(),
            rss_before / 1024,
            rss_after / 1024,
            cpu_used * 1e6 / latencies.len().max(1) as f64
        );
    }
    if let Some(local) = local {
        local.stop().await?;
    }
    Ok(())
}

/// Posts one record as an actor.
#[derive(Clone)]
struct Driver {
    client: reqwest::Client,
    url: String,
    boundary: String,
    first_actor: usize,
}

impl Driver {
    async fn create(&self, actor: usize) -> Result<()> {
        let did = crate::workload::bench_did(self.first_actor + actor);
        let response = self
            .client
            .post(format!("{}/xrpc/com.atproto.repo.createRecord", self.url))
            .bearer_auth(&did)
            .json(&json!({
                "repo": did,
                "collection": "zone.stratos.feed.post",
                "record": {
                    "$type": "zone.stratos.feed.post",
                    "text": "a private post written by the load generator",
                    "boundary": {"values": [{"value": self.boundary}]},
                    "createdAt": "2026-11-28T12:00:00.000Z",
                },
            }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{}: {}", response.status(), response.text().await?);
        }
        Ok(())
    }
}
