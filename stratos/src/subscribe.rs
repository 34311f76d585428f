//! `stratos debug subscribe`: follow `zone.stratos.sync.subscribeRecords` and print each frame as
//! one JSON line, `{"header": …, "body": …}`.

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;
use stratos_query::subscribe::decode_frame;
use stratos_schema::data::ipld_to_json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Arguments of `stratos debug subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The service (`http(s)://` or `ws(s)://`).
    #[arg(long, env = "STRATOS_URL", default_value = "http://127.0.0.1:3100")]
    url: String,
    /// The actor whose stream to follow (without it: the service stream of enrollments).
    #[arg(long)]
    did: Option<String>,
    /// Start after this sequence number (default: the whole history).
    #[arg(long)]
    cursor: Option<u64>,
    /// Only events with an op in this boundary.
    #[arg(long)]
    domain: Option<String>,
    /// The `Authorization` header's token: a service-auth JWT, or with development
    /// authentication the caller's DID.
    #[arg(long, env = "STRATOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Stop after this many frames.
    #[arg(long)]
    limit: Option<usize>,
    /// Stop when no frame came for this many seconds (default: follow until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    idle: Option<u64>,
}

/// Runs `stratos debug subscribe`.
pub fn run(args: SubscribeArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(subscribe(args))
}

async fn subscribe(args: SubscribeArgs) -> Result<ExitCode> {
    stratos_xrpc::auth::install_tls_provider();
    let base = args.url.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}"),
        Some(("https", rest)) => format!("wss://{rest}"),
        Some(("ws" | "wss", _)) => base.to_string(),
        _ => bail!("--url {base:?} is not an http(s):// or ws(s):// URL"),
    };
    let mut query = Vec::new();
    if let Some(did) = &args.did {
        query.push(format!("did={did}"));
    }
    if let Some(cursor) = args.cursor {
        query.push(format!("cursor={cursor}"));
    }
    if let Some(domain) = &args.domain {
        query.push(format!("domain={domain}"));
    }
    let url = format!(
        "{base}/xrpc/zone.stratos.sync.subscribeRecords?{}",
        query.join("&")
    );
    let mut request = url.as_str().into_client_request()?;
    if let Some(token) = &args.token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let idle = args.idle.map(Duration::from_secs);
    let mut frames = 0;
    while args.limit.is_none_or(|limit| frames < limit) {
        let next = match idle {
            Some(idle) => match tokio::time::timeout(idle, socket.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => socket.next().await,
        };
        let Some(message) = next else { break };
        let Message::Binary(bytes) = message.context("reading the stream")? else {
            continue;
        };
        let (header, body) = decode_frame(&bytes).context("a frame that is not DAG-CBOR")?;
        let line = json!({"header": ipld_to_json(&header), "body": ipld_to_json(&body)});
        println!("{line}");
        frames += 1;
        if line["header"]["op"] == -1 {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
