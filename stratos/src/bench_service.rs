//! The service the load generators start in their own process when no `--url` is given: the
//! embedded log (or Kafka) and SQLite in a temporary directory (or a scratch Postgres schema),
//! both projectors, and the command and query sides behind one router as in `stratos up`, with
//! development authentication and no write rate limit.

use anyhow::{Context, Result};
use stratos_command::blobs::BlobStore;
use stratos_command::http::HttpConfig;
use stratos_command::rate_limit::RateLimitConfig;
use stratos_command::{CommandConfig, Commands, ServiceIdentity};
use stratos_query::subscribe::SubscribeLimits;
use stratos_query::{Changes, Queries, QueryConfig};
use stratos_store::{MasterKey, RebuildTarget, Store};
use tokio::sync::oneshot;
use warp::Filter;

use crate::options::{LogOptions, connect_store, connect_views};

/// Where the bench's own service keeps its log and projections.
pub struct LocalOptions {
    /// Kafka `bootstrap.servers` instead of an embedded log.
    pub kafka_bootstrap: Option<String>,
    /// Extra librdkafka properties, `name=value`.
    pub kafka_properties: Vec<String>,
    /// `postgres://…` (a scratch schema is created and dropped) instead of SQLite.
    pub database_url: Option<String>,
    /// The log's partition count.
    pub partitions: u32,
    /// Names the topic and the scratch schema.
    pub label: &'static str,
}

/// A service started by a bench, and how to stop it.
pub struct Local {
    /// Its base URL.
    pub url: String,
    /// Its `general` boundary.
    pub boundary: String,
    /// Its projections.
    pub store: Store,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    projectors: stratos_projector::service::Projectors,
    scratch: Option<RebuildTarget>,
    _dir: tempfile::TempDir,
}

impl Local {
    /// Starts a service on a loopback port.
    pub async fn start(options: &LocalOptions) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = LogOptions {
            log_file: dir.path().join("log.sqlite"),
            kafka_bootstrap: options.kafka_bootstrap.clone(),
            topic: format!("stratos.bench.{}.{}", options.label, std::process::id()),
            partitions: options.partitions,
            kafka_properties: options.kafka_properties.clone(),
        }
        .open_shared()
        .await?;
        let (url, scratch) = match &options.database_url {
            Some(url) => {
                let scratch =
                    RebuildTarget::prepare(url, &format!("bench_{}", options.label)).await?;
                (scratch.url().to_string(), Some(scratch))
            }
            None => (
                format!("sqlite://{}", dir.path().join("stratos.sqlite").display()),
                None,
            ),
        };
        let store = connect_store(&url, MasterKey::generate()).await?;
        let views = connect_views(&stratos_store::default_views_url(&url)).await?;
        let (projectors, outcomes) =
            crate::serve::start_projectors(&log, &store, views.clone()).await?;
        let changes = Changes::new();
        changes.follow_channel(projectors.subscribe());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let service_did = format!("did:web:127.0.0.1%3A{}", address.port());
        let service =
            ServiceIdentity::load_or_create(&store, &service_did, &format!("http://{address}"))
                .await?;
        let commands = Commands::new(
            store.clone(),
            log,
            outcomes,
            CommandConfig {
                service,
                allowed_domains: vec!["general".into()],
                max_attempts: 8,
                blob_store: BlobStore::Local(dir.path().join("blobs")),
            },
        )
        .with_signed_here(projectors.signed_here());
        let queries = Queries::new(
            store.clone(),
            Some(views),
            changes,
            QueryConfig {
                service_did: service_did.clone(),
                trusted_services: Vec::new(),
                dev_auth: true,
                resolver: Default::default(),
                sync_token: None,
                subscribe: SubscribeLimits::default(),
            },
        );
        // The benches measure the service, not the per-DID rate limit.
        let config = HttpConfig {
            dev_auth: true,
            rate_limit: RateLimitConfig {
                max_writes: u32::MAX,
                ..RateLimitConfig::default()
            },
            ..HttpConfig::default()
        };
        let routes = stratos_query::http::routes(queries)
            .or(stratos_command::http::routes(commands, config))
            .unify();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        Ok(Local {
            url: format!("http://{address}"),
            boundary: format!("{service_did}/general"),
            store,
            stop,
            server,
            projectors,
            scratch,
            _dir: dir,
        })
    }

    /// Stops the service and removes what it kept.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.projectors.stop().await;
        self.store.close().await;
        if let Some(scratch) = self.scratch {
            scratch.discard().await?;
        }
        Ok(())
    }
}

/// The service a read bench drives: the running one at `url` (`--url`), or one started here
/// with the embedded log over SQLite or, with `database_url`, a scratch Postgres schema. Gives
/// the started service (to stop afterwards), the base URL and the `general` boundary.
pub async fn read_target(
    url: Option<&str>,
    database_url: Option<&str>,
    label: &'static str,
) -> Result<(Option<Local>, String, String)> {
    if let Some(url) = url {
        let boundary = format!("{}/general", service_did(url).await?);
        return Ok((None, url.to_string(), boundary));
    }
    let local = Local::start(&LocalOptions {
        kafka_bootstrap: None,
        kafka_properties: Vec::new(),
        database_url: database_url.map(str::to_string),
        partitions: 12,
        label,
    })
    .await?;
    let (url, boundary) = (local.url.clone(), local.boundary.clone());
    Ok((Some(local), url, boundary))
}

/// The DID a running service announces in its DID document.
pub async fn service_did(url: &str) -> Result<String> {
    let document: serde_json::Value = reqwest::get(format!("{url}/.well-known/did.json"))
        .await?
        .json()
        .await?;
    document["id"]
        .as_str()
        .map(str::to_string)
        .context("the service's DID document has no id")
}

/// This process's resident set size in KiB (0 where `/proc` is missing).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU time this process has used, user and system, in seconds (0 where `/proc` is
/// missing).
pub fn cpu_seconds() -> f64 {
    // `/proc` counts in USER_HZ, which Linux fixes at 100 a second.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the parenthesised command name; utime and stime are the 14th and 15th
    // of the line, so the 12th and 13th here.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    ticks as f64 / TICKS_PER_SECOND
}

/// The `q` quantile of sorted latencies (zero when there are none).
pub fn quantile(sorted: &[std::time::Duration], q: f64) -> std::time::Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_count_this_process_work() {
        let before = cpu_seconds();
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let used = cpu_seconds() - before;
        // 300 ms of spinning shows as CPU time (less when other processes share the cores,
        // never more than the wall time on each of a few cores).
        assert!((0.02..=2.0).contains(&used), "{used} s of CPU counted");
    }
}
