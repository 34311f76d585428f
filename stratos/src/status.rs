//! `stratos status`: how far each consumer of the log is behind, what was refused, who is
//! enrolled, and what is still owed to users' PDSes.

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::collections::HashMap;
use std::process::ExitCode;
use stratos_projector::{publisher, repo, views as appview};

use crate::options::{LogOptions, StoreOptions};

/// Arguments of `stratos status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    log: LogOptions,
    #[command(flatten)]
    store: StoreOptions,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `stratos status`.
pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(status(args))
}

async fn status(args: StatusArgs) -> Result<ExitCode> {
    let log = args.log.open(true).await?;
    let (store, views) = args.store.connect().await?;
    let ends = log.partitions().await?;
    let events: u64 = ends.iter().map(|end| end.end).sum();
    // How many events each consumer has yet to read.
    let lag = |positions: &HashMap<u32, u64>| -> u64 {
        ends.iter()
            .map(|end| {
                end.end
                    .saturating_sub(positions.get(&end.partition).copied().unwrap_or(0))
            })
            .sum()
    };
    let mut views_positions = HashMap::new();
    for end in &ends {
        views_positions.insert(
            end.partition,
            views.position(end.partition).await?.unwrap_or(0),
        );
    }
    // Each consumer: how far behind it is, and who took its lease last (Postgres keeps the
    // record).
    let consumers = [
        (
            repo::CONSUMER,
            lag(&store.positions(repo::CONSUMER).await?.into_iter().collect()),
            store.lease_holder(repo::CONSUMER).await?,
        ),
        (
            appview::CONSUMER,
            lag(&views_positions),
            views.lease_holder(appview::CONSUMER).await?,
        ),
        (
            publisher::CONSUMER,
            lag(&store
                .positions(publisher::CONSUMER)
                .await?
                .into_iter()
                .collect()),
            store.lease_holder(publisher::CONSUMER).await?,
        ),
    ];
    let counts = store.counts().await?;
    if args.json {
        let lags: serde_json::Map<String, serde_json::Value> = consumers
            .iter()
            .map(|(name, lag, holder)| {
                let lease = holder
                    .as_ref()
                    .map(|(holder, since)| json!({"holder": holder, "since": since}));
                (name.to_string(), json!({"lag": lag, "lease": lease}))
            })
            .collect();
        println!(
            "{}",
            json!({
                "log": {"partitions": ends.len(), "events": events},
                "consumers": lags,
                "actors": {"enrolled": counts.enrolled, "unenrolled": counts.unenrolled},
                "rejectedEvents": counts.rejected_events,
                "pdsOutbox": {"backlog": counts.pds_backlog, "failing": counts.pds_failing},
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "log              {events} events in {} partitions",
        ends.len()
    );
    for (name, lag, holder) in &consumers {
        match holder {
            Some((holder, since)) => {
                println!("{name:<16} {lag} events behind, lease taken by {holder} at {since}")
            }
            None => println!("{name:<16} {lag} events behind"),
        }
    }
    println!(
        "actors           {} enrolled, {} unenrolled",
        counts.enrolled, counts.unenrolled
    );
    println!("rejected events  {}", counts.rejected_events);
    println!(
        "PDS outbox       {} writes owed, {} of them failing",
        counts.pds_backlog, counts.pds_failing
    );
    Ok(ExitCode::SUCCESS)
}
