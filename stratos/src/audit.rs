//! `stratos audit <did>`: an actor's verified history, read from the commit log.

use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use std::process::ExitCode;
use stratos_log::{ReadPace, partition_for};
use stratos_projector::audit::{AuditEntry, Auditor, Check};
use stratos_schema::syntax::Did;

use crate::options::LogOptions;

/// Arguments of `stratos audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The actor whose history to check.
    did: Did,
    #[command(flatten)]
    log: LogOptions,
    /// Print one JSON object per event instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `stratos audit`; exits non-zero when any event fails a check.
pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(audit(args))
}

async fn audit(args: AuditArgs) -> Result<ExitCode> {
    let log = args.log.open(true).await?;
    let partition = partition_for(args.did.as_str(), args.log.partitions);
    let end = log
        .partitions()
        .await?
        .into_iter()
        .find(|p| p.partition == partition)
        .map_or(0, |p| p.end);
    let mut auditor = Auditor::new(args.did.clone());
    let mut records = log
        .consume(partition, 0, ReadPace::Prompt)
        .take(end as usize);
    let mut failed = false;
    let mut count = 0;
    while let Some(record) = records.next().await {
        let record = record?;
        if record.key != args.did.as_str() {
            continue;
        }
        let Some(entry) = auditor.observe(record.position.offset, &record.payload) else {
            continue;
        };
        count += 1;
        failed |=
            matches!(entry.signature, Check::Failed(_)) || matches!(entry.chain, Check::Failed(_));
        print_entry(&entry, args.json)?;
    }
    if !args.json {
        println!(
            "{count} events of {} in partition {partition}; {}",
            args.did,
            if failed {
                "SOME CHECKS FAILED"
            } else {
                "every check passed"
            }
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_entry(entry: &AuditEntry, as_json: bool) -> Result<()> {
    let check = |c: &Check| match c {
        Check::Ok => json!("ok"),
        Check::Failed(reason) => json!({"failed": reason}),
        Check::NotApplicable => json!(null),
    };
    if as_json {
        let line = json!({
            "offset": entry.offset,
            "type": entry.event_type,
            "time": entry.time,
            "rev": entry.rev,
            "ops": entry.ops,
            "signature": check(&entry.signature),
            "chain": check(&entry.chain),
        });
        println!("{}", serde_json::to_string(&line)?);
    } else {
        println!(
            "#{:<6} {:<12} {:<24} rev={:<13} signature={} chain={}",
            entry.offset,
            entry.event_type,
            entry.time,
            entry.rev.as_deref().unwrap_or("-"),
            entry.signature.describe(),
            entry.chain.describe()
        );
        for op in &entry.ops {
            println!("         {op}");
        }
    }
    Ok(())
}
