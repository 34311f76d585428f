//! `stratos projector`, `stratos replay` and `stratos verify-projections`: running the
//! projectors, rebuilding the projections from the log, and checking live ones against a
//! rebuild.

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use stratos_log::CommitLog;
use stratos_projector::repo::CONSUMER;
use stratos_projector::service::{DEFAULT_BATCH_SIZE, ProjectorOptions, start};
use stratos_store::{RebuildTarget, Store, Views};

use crate::options::{LogOptions, StoreOptions, connect_store, connect_views};

/// Arguments of `stratos projector`.
#[derive(Debug, Args)]
pub struct ProjectorArgs {
    #[command(flatten)]
    log: LogOptions,
    #[command(flatten)]
    store: StoreOptions,
    /// At most this many events per transaction.
    #[arg(long, env = "STRATOS_PROJECTOR_BATCH", default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
}

/// Arguments of `stratos replay` and `stratos verify-projections`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    log: LogOptions,
    #[command(flatten)]
    store: StoreOptions,
    /// At most this many events per transaction.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

impl ProjectorArgs {
    /// The checks made before starting.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        self.log.validate()?;
        self.store.validate(true)
    }
}

/// Runs the repo and AppView projectors until SIGINT or SIGTERM.
pub fn run_projector(args: ProjectorArgs) -> Result<ExitCode> {
    args.validate()?;
    runtime()?.block_on(async {
        let log = args.log.open(false).await?;
        let (store, views) = args.store.connect().await?;
        let options = ProjectorOptions {
            batch_size: args.batch_size,
            stop_at_end: false,
        };
        let projectors = start(log, store, Some(views), options, |_| {}).await?;
        tracing::info!(batch_size = args.batch_size, "projectors running");
        shutdown_signal().await?;
        tracing::info!("stopping after the current batches");
        projectors.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Rebuilds the projections from the start of the log into fresh tables, then switches over.
pub fn run_replay(args: RebuildArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let log = args.log.open(true).await?;
        let (targets, rebuilt) = rebuild_beside_live(&log, &args, "rebuild").await?;
        let report = rebuilt.report;
        rebuilt.store.close().await;
        rebuilt.views.close().await;
        let previous = targets.switch_over().await?;
        if args.json {
            println!(
                "{}",
                json!({"report": report.to_json(), "previous": previous})
            );
        } else {
            println!("{}", report.describe());
            println!("switched over; the previous projections are kept as {previous}");
            println!("restart running services so they reconnect to the rebuilt projections");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Rebuilds the projections into scratch tables and compares digests with the live ones.
pub fn run_verify(args: RebuildArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let log = args.log.open(true).await?;
        let (live_store, live_views) = args.store.connect().await?;
        let ends = log.partitions().await?;
        let behind = lag(&live_store, &ends).await?;
        anyhow::ensure!(
            behind == 0,
            "the live projections are {behind} events behind the log; let the projector catch up \
             (and pause writes) before verifying"
        );
        let (targets, rebuilt) = rebuild_beside_live(&log, &args, "verify").await?;
        let rebuilt_digests = (rebuilt.store.digest().await?, rebuilt.views.digest().await?);
        let live_digests = (live_store.digest().await?, live_views.digest().await?);
        let moved = lag(&live_store, &log.partitions().await?).await? != 0;
        rebuilt.store.close().await;
        rebuilt.views.close().await;
        targets.discard().await?;
        let matches = live_digests == rebuilt_digests;
        if args.json {
            println!(
                "{}",
                json!({
                    "match": matches,
                    "live": {"repo": live_digests.0, "views": live_digests.1},
                    "rebuild": {"repo": rebuilt_digests.0, "views": rebuilt_digests.1},
                    "report": rebuilt.report.to_json(),
                })
            );
        } else {
            println!("{}", rebuilt.report.describe());
            println!("live    repo {} views {}", live_digests.0, live_digests.1);
            println!(
                "rebuild repo {} views {}",
                rebuilt_digests.0, rebuilt_digests.1
            );
            println!(
                "{}",
                if matches {
                    "match: the live projections equal a rebuild from the log"
                } else if moved {
                    "MISMATCH, but the log moved during verification; pause writes and run again"
                } else {
                    "MISMATCH: the live projections differ from a rebuild from the log"
                }
            );
        }
        Ok(if matches {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// How many events of the log the repo projector has not decided yet.
async fn lag(store: &Store, ends: &[stratos_log::PartitionEnd]) -> Result<u64> {
    let positions = store.positions(CONSUMER).await?;
    Ok(ends
        .iter()
        .map(|end| {
            let at = positions
                .iter()
                .find(|(p, _)| *p == end.partition)
                .map_or(0, |(_, next)| *next);
            end.end.saturating_sub(at)
        })
        .sum())
}

/// The fresh targets of a rebuild: one for the projections, one for the views if they live
/// elsewhere.
struct Targets {
    store: RebuildTarget,
    views: Option<RebuildTarget>,
}

impl Targets {
    async fn switch_over(self) -> Result<String> {
        let mut previous = self.store.switch_over(true).await?;
        if let Some(views) = self.views {
            previous = format!("{previous} and {}", views.switch_over(false).await?);
        }
        Ok(previous)
    }

    async fn discard(self) -> Result<()> {
        self.store.discard().await?;
        if let Some(views) = self.views {
            views.discard().await?;
        }
        Ok(())
    }
}

/// A finished rebuild.
struct Rebuilt {
    store: Store,
    views: Views,
    report: Report,
}

/// What a rebuild did.
pub struct Report {
    /// Events in the log.
    pub events: u64,
    /// Events the repo projector rejected.
    pub rejected: u64,
    /// How long the rebuild took.
    pub seconds: f64,
}

impl Report {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    fn describe(&self) -> String {
        format!(
            "rebuilt from {} events ({} rejected) in {:.2} s: {:.0} events/s",
            self.events,
            self.rejected,
            self.seconds,
            self.per_second()
        )
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "events": self.events,
            "rejected": self.rejected,
            "seconds": self.seconds,
            "eventsPerSecond": self.per_second(),
        })
    }
}

/// Rebuilds the projections of `args` from the whole log into fresh targets beside them.
async fn rebuild_beside_live(
    log: &Arc<dyn CommitLog>,
    args: &RebuildArgs,
    label: &str,
) -> Result<(Targets, Rebuilt)> {
    let master = args.store.master_key()?;
    let live = connect_store(args.store.database_url(), master.clone()).await?;
    let keys = live.wrapped_keys().await?;
    live.close().await;
    let separate_views = args.store.views_url() != args.store.database_url();
    let targets = Targets {
        store: RebuildTarget::prepare(args.store.database_url(), label).await?,
        views: match separate_views {
            true => Some(RebuildTarget::prepare(&args.store.views_url(), label).await?),
            false => None,
        },
    };
    let store = connect_store(targets.store.url(), master).await?;
    // The rebuild opens sealed records with the same keys as the live projection.
    store.replace_wrapped_keys(&keys).await?;
    let views_url = targets.views.as_ref().unwrap_or(&targets.store).url();
    let views = connect_views(views_url).await?;
    let report = rebuild(log, &store, &views, args.batch_size)
        .await
        .context("rebuilding the projections")?;
    Ok((
        targets,
        Rebuilt {
            store,
            views,
            report,
        },
    ))
}

/// Applies the whole log (as it is now) to empty projections, with a progress bar.
pub async fn rebuild(
    log: &Arc<dyn CommitLog>,
    store: &Store,
    views: &Views,
    batch_size: usize,
) -> Result<Report> {
    let events: u64 = log.partitions().await?.iter().map(|p| p.end).sum();
    let bar = crate::progress::bar(events, "replaying events")?;
    let started = Instant::now();
    let counter = bar.clone();
    let options = ProjectorOptions {
        batch_size,
        stop_at_end: true,
    };
    let projectors = start(
        log.clone(),
        store.clone(),
        Some(views.clone()),
        options,
        move |count| counter.inc(count as u64),
    )
    .await?;
    projectors.finished().await;
    bar.finish_and_clear();
    Ok(Report {
        events,
        rejected: store.rejection_count().await?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the runtime")
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
