//! `stratos audit <did>`: an actor's verified history, read from the commit log.

use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use stratos_log::{CommitLog, EmbeddedConfig, EmbeddedLog, KafkaConfig, KafkaLog, partition_for};
use stratos_projector::audit::{AuditEntry, Auditor, Check};
use stratos_schema::syntax::Did;

/// Arguments of `stratos audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The actor whose history to check.
    did: Did,
    /// The embedded log file (`stratos up` keeps it at `./data/log.sqlite`).
    #[arg(long, value_name = "PATH", conflicts_with = "kafka_bootstrap")]
    log_file: Option<PathBuf>,
    /// Kafka `bootstrap.servers`, to read the log from Kafka instead.
    #[arg(long, env = "STRATOS_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,
    /// The Kafka topic.
    #[arg(long, default_value = "stratos.repo.events")]
    topic: String,
    /// The log's partition count.
    #[arg(long, default_value_t = 12)]
    partitions: u32,
    /// Print one JSON object per event instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `stratos audit`; exits non-zero when any event fails a check.
pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(audit(args))
}

async fn open_log(args: &AuditArgs) -> Result<Arc<dyn CommitLog>> {
    if let Some(bootstrap) = &args.kafka_bootstrap {
        let mut config = KafkaConfig::new(bootstrap.clone());
        config.topic = args.topic.clone();
        config.partitions = args.partitions;
        return Ok(Arc::new(KafkaLog::connect(config).await?));
    }
    let path = args
        .log_file
        .clone()
        .unwrap_or_else(|| PathBuf::from("data/log.sqlite"));
    anyhow::ensure!(path.exists(), "no log at {}", path.display());
    let mut config = EmbeddedConfig::new(path);
    config.partitions = args.partitions;
    Ok(Arc::new(EmbeddedLog::open(config).await?))
}

async fn audit(args: AuditArgs) -> Result<ExitCode> {
    let log = open_log(&args).await?;
    let partition = partition_for(args.did.as_str(), args.partitions);
    let end = log
        .partitions()
        .await?
        .into_iter()
        .find(|p| p.partition == partition)
        .map_or(0, |p| p.end);
    let mut auditor = Auditor::new(args.did.clone());
    let mut records = log.consume(partition, 0).take(end as usize);
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
