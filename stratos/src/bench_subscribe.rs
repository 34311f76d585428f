//! `stratos bench subscribe`: live fan-out of `subscribeRecords`. Many WebSocket subscribers
//! follow one actor's stream while that actor writes at a steady rate; the bench reports how
//! long each event took from its `createRecord` call to each subscriber, how many frames left
//! the service per second, and whether every subscriber got every event.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use stratos_command::auth::install_tls_provider;
use stratos_schema::Ipld;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::bench_service::{quantile, read_target};

/// Arguments of `stratos bench subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// A running service to drive (started with `--dev-auth`); by default one is started here.
    #[arg(long)]
    url: Option<String>,
    /// For the service started here: `postgres://…` (a scratch schema is created and dropped)
    /// instead of SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// WebSocket subscribers following the stream (two file descriptors each when the service
    /// runs in this process: raise `ulimit -n` above twice this).
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Events written while they follow.
    #[arg(long, default_value_t = 1_000)]
    events: usize,
    /// Events written per second (one `createRecord` at a time).
    #[arg(long, default_value_t = 100)]
    rate: u32,
}

/// How long a subscriber waits for its next event before it gives up.
const QUIET: Duration = Duration::from_secs(15);

/// Subscribers connecting at once while the bench sets up.
const CONNECTING: usize = 50;

/// Runs the bench.
pub async fn bench_subscribe(args: SubscribeArgs) -> Result<()> {
    install_tls_provider();
    let (local, url, boundary) = read_target(
        args.url.as_deref(),
        args.database_url.as_deref(),
        "subscribe",
    )
    .await?;
    let outcome = run(&args, &url, boundary).await;
    if let Some(local) = local {
        local.stop().await?;
    }
    outcome
}

async fn run(args: &SubscribeArgs, url: &str, boundary: String) -> Result<()> {
    // An actor of this run only, so a replay from the start holds only this run's events.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let writer = Writer {
        client: reqwest::Client::new(),
        url: url.to_string(),
        did: format!("did:plc:benchfanout{nonce:x}"),
        boundary,
    };
    // A first event enrolls the actor, so the stream exists before anyone subscribes; the
    // subscribers replay it from the start, which proves each of them is following.
    writer.write().await?;

    let bar = crate::progress::bar(args.subscribers as u64, "connecting subscribers")?;
    let mut sockets = Vec::with_capacity(args.subscribers);
    let stream_url = format!(
        "{}/xrpc/zone.stratos.sync.subscribeRecords?did={}&cursor=0",
        url.replacen("http", "ws", 1),
        writer.did
    );
    let authorization = format!("Bearer {}", writer.did);
    let mut connecting = futures::stream::iter((0..args.subscribers).map(|_| {
        let (stream_url, authorization) = (stream_url.clone(), authorization.clone());
        async move {
            let mut request = stream_url.into_client_request()?;
            request
                .headers_mut()
                .insert("authorization", authorization.parse()?);
            let (socket, _) = tokio_tungstenite::connect_async(request).await?;
            Ok::<_, anyhow::Error>(socket)
        }
    }))
    .buffer_unordered(CONNECTING);
    while let Some(socket) = connecting.next().await {
        sockets.push(socket?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let expected = args.events;
    let headers = Headers::new()?;
    let followers: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(follow(socket, headers.clone(), expected)))
        .collect();

    let bar = crate::progress::bar(args.events as u64, "writing events")?;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut sent = Vec::with_capacity(args.events);
    for index in 0..args.events {
        tokio::time::sleep_until((started + interval * index as u32).into()).await;
        sent.push(Instant::now());
        writer.write().await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let written_in = started.elapsed();

    let mut latencies = Vec::with_capacity(args.subscribers * args.events);
    let (mut complete, mut ended_early) = (0, Vec::new());
    let mut last_arrival = started;
    for follower in followers {
        let followed = follower.await.context("a subscriber failed")?;
        for (at, sent_at) in followed.arrivals.iter().zip(&sent) {
            latencies.push(at.saturating_duration_since(*sent_at));
            last_arrival = last_arrival.max(*at);
        }
        match followed.end {
            None if followed.arrivals.len() == expected => complete += 1,
            end => ended_early.push(end.unwrap_or_else(|| "stream went quiet".into())),
        }
    }
    latencies.sort();
    let delivered = latencies.len();
    let delivery_time = last_arrival.saturating_duration_since(started);
    println!(
        "{:<14} {:>8} {:>10} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "subscribers", "events", "events/s", "frames/s", "p50", "p95", "p99", "max"
    );
    println!(
        "{:<14} {:>8} {:>10.0} {:>14.0} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?}",
        args.subscribers,
        args.events,
        args.events as f64 / written_in.as_secs_f64(),
        delivered as f64 / delivery_time.as_secs_f64(),
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.95),
        quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    println!(
        "({complete} of {} subscribers received all {expected} events; latency from the \
         createRecord call to the frame's arrival)",
        args.subscribers
    );
    if let Some(first) = ended_early.first() {
        println!(
            "{} subscribers ended early, e.g.: {first}",
            ended_early.len()
        );
    }
    Ok(())
}

/// Writes the streamer's posts.
struct Writer {
    client: reqwest::Client,
    url: String,
    /// The streamer.
    did: String,
    boundary: String,
}

impl Writer {
    async fn write(&self) -> Result<()> {
        let record = json!({
            "$type": "zone.stratos.feed.post",
            "text": "an event of the fan-out bench",
            "boundary": {"values": [{"value": self.boundary}]},
            "createdAt": stratos_schema::syntax::Datetime::now().as_str(),
        });
        let response = self
            .client
            .post(format!("{}/xrpc/com.atproto.repo.createRecord", self.url))
            .bearer_auth(&self.did)
            .json(&json!({
                "repo": self.did,
                "collection": "zone.stratos.feed.post",
                "record": record,
            }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "createRecord: {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }
}

/// What one subscriber saw.
struct Followed {
    /// When each event after the cursor arrived, in order.
    arrivals: Vec<Instant>,
    /// Why the stream ended before all events arrived, if it did.
    end: Option<String>,
}

/// The encoded headers of the frames a subscriber tells apart, so that it compares bytes
/// instead of decoding every frame (the client shares the machine with the service).
#[derive(Clone)]
struct Headers {
    commit: Vec<u8>,
    error: Vec<u8>,
}

impl Headers {
    fn new() -> Result<Self> {
        let encode = |op: i128, t: Option<&str>| {
            let mut header =
                std::collections::BTreeMap::from([("op".to_string(), Ipld::Integer(op))]);
            if let Some(t) = t {
                header.insert("t".to_string(), Ipld::String(t.to_string()));
            }
            stratos_schema::data::to_dag_cbor(&Ipld::Map(header))
        };
        Ok(Self {
            commit: encode(1, Some("#commit"))?,
            error: encode(-1, None)?,
        })
    }
}

/// Reads the enrolling event's commit and then `expected` more `#commit` frames.
async fn follow<S>(mut socket: S, headers: Headers, expected: usize) -> Followed
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    let mut arrivals = Vec::with_capacity(expected + 1);
    while arrivals.len() < expected + 1 {
        let message = match tokio::time::timeout(QUIET, socket.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return ended(arrivals, error.to_string()),
            Ok(None) => return ended(arrivals, "closed".into()),
            Err(_) => return ended(arrivals, "stream went quiet".into()),
        };
        let at = Instant::now();
        if !message.is_binary() {
            continue;
        }
        let frame = message.into_data();
        if frame.starts_with(&headers.commit) {
            arrivals.push(at);
        } else if frame.starts_with(&headers.error) {
            return ended(arrivals, "an error frame".into());
        }
    }
    arrivals.remove(0);
    Followed {
        arrivals,
        end: None,
    }
}

fn ended(mut arrivals: Vec<Instant>, why: String) -> Followed {
    if !arrivals.is_empty() {
        arrivals.remove(0);
    }
    Followed {
        arrivals,
        end: Some(why),
    }
}
