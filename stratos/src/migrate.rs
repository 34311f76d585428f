//! `stratos migrate`: create or upgrade the projections' and the views' tables, then exit, so
//! that a deployment can migrate once before it starts (or restarts) its services.

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use stratos_store::{Schema, migrate};

use crate::options::{DatabaseOptions, create_sqlite_dir, redact};

/// Arguments of `stratos migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    databases: DatabaseOptions,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `stratos migrate`.
pub fn run(args: MigrateArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let databases = &args.databases;
        databases.validate()?;
        let mut report = Vec::new();
        for (schema, name, url) in [
            (
                Schema::Projections,
                "projections",
                databases.database_url.as_str(),
            ),
            (Schema::Views, "views", &databases.views_url()),
        ] {
            create_sqlite_dir(url)?;
            let migrated = migrate(url, schema)
                .await
                .with_context(|| format!("migrating the {name} at {}", redact(url)))?;
            report.push((name, redact(url), migrated));
        }
        if args.json {
            let report: serde_json::Map<_, _> = report
                .iter()
                .map(|(name, url, migrated)| {
                    let entry = json!({
                        "database": url,
                        "applied": migrated.applied,
                        "version": migrated.latest,
                    });
                    (name.to_string(), entry)
                })
                .collect();
            println!("{}", serde_json::Value::Object(report));
        } else {
            for (name, url, migrated) in &report {
                println!(
                    "{name:12} {url}: at version {}, {} migration(s) applied now",
                    migrated.latest,
                    migrated.applied.len()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
