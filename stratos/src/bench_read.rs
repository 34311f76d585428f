//! `stratos bench read`: the query service under load over HTTP and WebSocket — `getRecord` at a
//! given concurrency, `hydrateRecords` with 100 URIs, `getRepo` export speed, `getTimeline`, and
//! `subscribeRecords` backfill on one connection. It seeds its own data through the write path
//! (development authentication), in a service it starts here or in a running `--url` one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};
use stratos_command::auth::install_tls_provider;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::bench_service::read_target;

/// Arguments of `stratos bench read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// A running service to drive (started with `--dev-auth` and a write rate limit above the
    /// seeding); by default one is started here.
    #[arg(long)]
    url: Option<String>,
    /// For the service started here: `postgres://…` (a scratch schema is created and dropped)
    /// instead of SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Records in the repository that is read and exported (written 200 per commit).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Single-record commits of the actor whose stream is replayed.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// Requests in flight at once for `getRecord`.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to drive `getRecord`, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

const READER: &str = "did:plc:benchreader";
const STREAMER: &str = "did:plc:benchstreamer";

/// Runs the bench.
pub async fn bench_read(args: ReadArgs) -> Result<()> {
    install_tls_provider();
    let (local, url, boundary) =
        read_target(args.url.as_deref(), args.database_url.as_deref(), "read").await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()?;
    let bench = Bench {
        client,
        url,
        boundary,
    };

    let uris = bench.seed_repo(args.records).await?;
    bench.seed_stream(args.events, args.concurrency).await?;
    let uris = Arc::new(uris);

    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>10}",
        "query", "throughput", "p50", "p99", "max"
    );
    let (rate, latencies) = bench
        .get_records(&uris, args.concurrency, args.seconds)
        .await?;
    row(
        &format!("getRecord (c={})", args.concurrency),
        &format!("{rate:.0} req/s"),
        latencies,
    );
    let latencies = bench.hydrate(&uris, 300).await?;
    let rate = latencies.len() as f64 * 100.0 / latencies.iter().sum::<Duration>().as_secs_f64();
    row(
        "hydrateRecords (100 URIs, c=1)",
        &format!("{rate:.0} rec/s"),
        latencies,
    );
    let latencies = bench.timeline(300).await?;
    let rate = latencies.len() as f64 / latencies.iter().sum::<Duration>().as_secs_f64();
    row(
        "getTimeline (limit 50, c=1)",
        &format!("{rate:.0} req/s"),
        latencies,
    );
    let (bytes, latencies) = bench.export(5).await?;
    let best = latencies.iter().min().copied().unwrap_or_default();
    row(
        &format!(
            "getRepo ({} records, {:.1} MB)",
            args.records,
            bytes as f64 / 1e6
        ),
        &format!("{:.0} MB/s", bytes as f64 / 1e6 / best.as_secs_f64()),
        latencies,
    );
    let (events, elapsed) = bench.backfill().await?;
    println!(
        "{:<34} {:>12}   ({events} events in {elapsed:.2?} on one connection)",
        "subscribeRecords backfill",
        format!("{:.0} ev/s", events as f64 / elapsed.as_secs_f64()),
    );
    if let Some(local) = local {
        local.stop().await?;
    }
    Ok(())
}

fn row(name: &str, throughput: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let quantile = |q: f64| crate::bench_service::quantile(&latencies, q);
    println!(
        "{name:<34} {throughput:>12} {:>10.2?} {:>10.2?} {:>10.2?}",
        quantile(0.50),
        quantile(0.99),
        latencies.last().copied().unwrap_or_default()
    );
}

#[derive(Clone)]
struct Bench {
    client: reqwest::Client,
    url: String,
    boundary: String,
}

impl Bench {
    fn post(&self, text: String) -> Value {
        json!({
            "$type": "zone.stratos.feed.post",
            "text": text,
            "boundary": {"values": [{"value": self.boundary}]},
            "createdAt": stratos_schema::syntax::Datetime::now().as_str(),
        })
    }

    async fn procedure(&self, caller: &str, nsid: &str, body: &Value) -> Result<Value> {
        let response = self
            .client
            .post(format!("{}/xrpc/{nsid}", self.url))
            .bearer_auth(caller)
            .json(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{nsid}: {}: {}", response.status(), response.text().await?);
        }
        Ok(response.json().await?)
    }

    async fn query(&self, caller: &str, nsid: &str, query: &[(&str, &str)]) -> Result<Vec<u8>> {
        let response = self
            .client
            .get(format!("{}/xrpc/{nsid}", self.url))
            .query(query)
            .bearer_auth(caller)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{nsid}: {}: {}", response.status(), response.text().await?);
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// Writes `records` posts of the reader, 200 per commit; returns their URIs.
    async fn seed_repo(&self, records: usize) -> Result<Vec<String>> {
        let bar = crate::progress::bar(records as u64, "seeding the repository")?;
        let mut uris = Vec::with_capacity(records);
        while uris.len() < records {
            let batch = (records - uris.len()).min(200);
            let writes: Vec<Value> = (0..batch)
                .map(|i| {
                    json!({
                        "$type": "com.atproto.repo.applyWrites#create",
                        "collection": "zone.stratos.feed.post",
                        "value": self.post(format!("post {} of the read bench", uris.len() + i)),
                    })
                })
                .collect();
            let answer = self
                .procedure(
                    READER,
                    "com.atproto.repo.applyWrites",
                    &json!({"repo": READER, "writes": writes}),
                )
                .await?;
            for result in answer["results"].as_array().context("no results")? {
                uris.push(result["uri"].as_str().context("no uri")?.to_string());
            }
            bar.inc(batch as u64);
        }
        bar.finish_and_clear();
        Ok(uris)
    }

    /// Writes `events` single-record commits of the streamer.
    async fn seed_stream(&self, events: usize, concurrency: usize) -> Result<()> {
        let bar = crate::progress::bar(events as u64, "seeding the stream")?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = (0..concurrency.max(1)).map(|_| {
            let (bench, next, bar) = (self.clone(), next.clone(), bar.clone());
            async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < events {
                    bench
                        .procedure(
                            STREAMER,
                            "com.atproto.repo.createRecord",
                            &json!({
                                "repo": STREAMER,
                                "collection": "zone.stratos.feed.post",
                                "record": bench.post("an event of the stream".into()),
                            }),
                        )
                        .await?;
                    bar.inc(1);
                }
                Ok::<_, anyhow::Error>(())
            }
        });
        futures::future::try_join_all(workers).await?;
        bar.finish_and_clear();
        Ok(())
    }

    async fn get_records(
        &self,
        uris: &Arc<Vec<String>>,
        concurrency: usize,
        seconds: u64,
    ) -> Result<(f64, Vec<Duration>)> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let workers = (0..concurrency.max(1)).map(|worker| {
            let (bench, uris) = (self.clone(), uris.clone());
            async move {
                let mut latencies = Vec::new();
                let mut index = worker * 7919;
                while Instant::now() < deadline {
                    index = (index + 104_729) % uris.len();
                    let rkey = uris[index].rsplit('/').next().unwrap_or_default();
                    let sent = Instant::now();
                    bench
                        .query(
                            READER,
                            "com.atproto.repo.getRecord",
                            &[
                                ("repo", READER),
                                ("collection", "zone.stratos.feed.post"),
                                ("rkey", rkey),
                            ],
                        )
                        .await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            }
        });
        let latencies: Vec<Duration> = futures::future::try_join_all(workers)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
        Ok((rate, latencies))
    }

    async fn hydrate(&self, uris: &[String], calls: usize) -> Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(calls);
        for call in 0..calls {
            let start = (call * 100) % uris.len().saturating_sub(100).max(1);
            let batch = &uris[start..(start + 100).min(uris.len())];
            let sent = Instant::now();
            let answer = self
                .procedure(
                    READER,
                    "zone.stratos.repo.hydrateRecords",
                    &json!({"uris": batch}),
                )
                .await?;
            latencies.push(sent.elapsed());
            let found = answer["records"].as_array().map_or(0, Vec::len);
            if found != batch.len() {
                bail!("hydrateRecords found {found} of {}", batch.len());
            }
        }
        Ok(latencies)
    }

    async fn timeline(&self, calls: usize) -> Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(calls);
        for _ in 0..calls {
            let sent = Instant::now();
            self.query(READER, "zone.stratos.feed.getTimeline", &[("limit", "50")])
                .await?;
            latencies.push(sent.elapsed());
        }
        Ok(latencies)
    }

    async fn export(&self, times: usize) -> Result<(usize, Vec<Duration>)> {
        let mut latencies = Vec::with_capacity(times);
        let mut bytes = 0;
        for _ in 0..times {
            let sent = Instant::now();
            bytes = self
                .query(READER, "zone.stratos.sync.getRepo", &[("did", READER)])
                .await?
                .len();
            latencies.push(sent.elapsed());
        }
        Ok((bytes, latencies))
    }

    /// Replays the streamer's whole history on one connection.
    async fn backfill(&self) -> Result<(usize, Duration)> {
        let url = format!(
            "{}/xrpc/zone.stratos.sync.subscribeRecords?did={STREAMER}",
            self.url.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {STREAMER}").parse()?);
        let started = Instant::now();
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let mut events = 0;
        // The stream goes live after the backfill: stop at the first quiet moment.
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(500), socket.next()).await
        {
            if message?.is_binary() {
                events += 1;
            }
        }
        let elapsed = started.elapsed().saturating_sub(Duration::from_millis(500));
        Ok((events, elapsed))
    }
}
