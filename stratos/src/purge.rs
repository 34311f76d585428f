//! `stratos purge <did>`: an operator unenrolls an actor and destroys its private content,
//! through the running service's admin procedure.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::process::ExitCode;
use stratos_schema::syntax::Did;

use stratos_xrpc::auth::Secret;

/// Arguments of `stratos purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The actor to unenroll and purge.
    did: Did,
    /// The running service.
    #[arg(long, env = "STRATOS_URL", default_value = "http://127.0.0.1:3100")]
    url: String,
    /// The service's admin password.
    #[arg(long, env = "STRATOS_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Secret,
    /// Print the service's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `stratos purge`.
pub fn run(args: PurgeArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(purge(args))
}

async fn purge(args: PurgeArgs) -> Result<ExitCode> {
    stratos_xrpc::auth::install_tls_provider();
    let url = format!(
        "{}/xrpc/zone.stratos.admin.unenroll",
        args.url.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(args.admin_password.expose())
        .json(&json!({"did": args.did.as_str(), "purge": true}))
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status}: {} {}",
            body["error"].as_str().unwrap_or(""),
            body["message"].as_str().unwrap_or("")
        );
    }
    match args.json {
        true => println!("{body}"),
        false => println!("{} unenrolled; its private content is destroyed", args.did),
    }
    Ok(ExitCode::SUCCESS)
}
