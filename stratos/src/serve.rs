//! `stratos up` (everything in one process on the embedded defaults),
//! `stratos command-service` (the write side alone, following projectors elsewhere) and
//! `stratos query-service` (the read side alone, over projections kept elsewhere).

use anyhow::{Context, Result};
use clap::Args;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use stratos_command::http::serve;
use stratos_command::{CommandConfig, Commands, Outcomes, ServiceIdentity};
use stratos_log::CommitLog;
use stratos_projector::publisher::start_publisher;
use stratos_projector::service::{ProjectorOptions, Projectors, start};
use stratos_query::subscribe::SubscribeLimits;
use stratos_query::{Changes, Queries, QueryConfig};
use stratos_store::{MasterKey, Store, Views};
use warp::Filter;

use crate::options::{LogOptions, StoreOptions, connect_store, connect_views};
use crate::projections::shutdown_signal;
use crate::service_options::ServiceOptions;

/// Arguments of `stratos up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    service: ServiceOptions,
    #[command(flatten)]
    log: LogOptions,
    #[command(flatten)]
    store: StoreOptions,
}

/// Arguments of `stratos command-service`.
#[derive(Debug, Args)]
pub struct CommandServiceArgs {
    #[command(flatten)]
    service: ServiceOptions,
    #[command(flatten)]
    log: LogOptions,
    #[command(flatten)]
    store: StoreOptions,
}

/// Arguments of `stratos query-service`.
#[derive(Debug, Args)]
pub struct QueryServiceArgs {
    #[command(flatten)]
    service: ServiceOptions,
    #[command(flatten)]
    store: StoreOptions,
}

impl UpArgs {
    /// The checks made before starting (the master key may come from `data/master.key`).
    pub fn validate(&self) -> Result<()> {
        self.service.validate()?;
        self.log.validate()?;
        self.store.validate(false)
    }
}

impl CommandServiceArgs {
    /// The checks made before starting.
    pub fn validate(&self) -> Result<()> {
        self.service.validate()?;
        self.log.validate()?;
        self.store.validate(true)
    }
}

impl QueryServiceArgs {
    /// The checks made before starting.
    pub fn validate(&self) -> Result<()> {
        self.service.validate()?;
        self.store.validate(true)
    }
}

/// Runs the command service, the query service and the projectors in one process until
/// SIGINT or SIGTERM.
pub fn run_up(args: UpArgs) -> Result<ExitCode> {
    args.validate()?;
    runtime()?.block_on(async {
        stratos_command::metrics::handle();
        let master = master_key(&args.store)?;
        let log = args.log.open_shared().await?;
        let store = connect_store(args.store.database_url(), master).await?;
        let views = connect_views(&args.store.views_url()).await?;
        let (projectors, outcomes) = start_projectors(&log, &store, views.clone()).await?;
        caught_up(&log, &store).await?;
        let publisher = start_publisher(
            log.clone(),
            store.clone(),
            args.service.publisher_config()?,
            projectors.subscribe(),
        )
        .await?;
        let changes = Changes::new();
        changes.follow_channel(projectors.subscribe());
        // On Postgres another process's projectors may hold the leases (this one stands by):
        // their batches are heard as they commit too.
        if let Some(notifications) = store.listen().await? {
            changes.follow_notifications(notifications);
        }
        let queries = queries(&args.service, store.clone(), Some(views), changes);
        let commands = commands(&args.service, store, log, outcomes)
            .await?
            .with_signed_here(projectors.signed_here());
        let listener = bind(&args.service).await?;
        announce(&args.service, &commands, true);
        if args.service.dev_auth {
            stratos_command::auth::warn_dev_auth();
        }
        let routes = stratos_query::http::routes(queries)
            .or(stratos_command::http::routes(
                commands,
                args.service.http_config()?,
            ))
            .unify();
        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = shutdown_signal().await;
            })
            .run()
            .await;
        tracing::info!("stopping the projectors after their current batches");
        publisher.stop().await;
        projectors.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs the command service alone; the repo projector runs elsewhere.
pub fn run_command_service(args: CommandServiceArgs) -> Result<ExitCode> {
    args.validate()?;
    runtime()?.block_on(async {
        let master = args.store.master_key()?;
        let log = args.log.open(false).await?;
        let store = connect_store(args.store.database_url(), master).await?;
        let outcomes = Outcomes::new(store.clone());
        match store.listen().await? {
            Some(notifications) => outcomes.follow_notifications(notifications),
            None => tracing::warn!(
                "the projections are on SQLite: no notifications from projectors in other \
                 processes, so writes are confirmed by polling (use Postgres, or `stratos up`)"
            ),
        }
        // Enrollment records and stubs go out from here; leases keep instances from
        // delivering the same write twice at once.
        let (no_projector, _) = tokio::sync::broadcast::channel(1);
        let publisher = start_publisher(
            log.clone(),
            store.clone(),
            args.service.publisher_config()?,
            no_projector.subscribe(),
        )
        .await?;
        let commands = commands(&args.service, store, log, outcomes).await?;
        let listener = bind(&args.service).await?;
        announce(&args.service, &commands, false);
        serve(listener, commands, args.service.http_config()?, async {
            let _ = shutdown_signal().await;
        })
        .await;
        publisher.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs the query service alone, reading projections that projectors elsewhere keep.
pub fn run_query_service(args: QueryServiceArgs) -> Result<ExitCode> {
    args.validate()?;
    runtime()?.block_on(async {
        let master = args.store.master_key()?;
        let store = connect_store(args.store.database_url(), master).await?;
        let views = connect_views(&args.store.views_url()).await?;
        let changes = Changes::new();
        match store.listen().await? {
            Some(notifications) => changes.follow_notifications(notifications),
            None => tracing::warn!(
                "the projections are on SQLite: no notifications from projectors in other \
                 processes, so subscribers follow by polling (use Postgres, or `stratos up`)"
            ),
        }
        let queries = queries(&args.service, store, Some(views), changes);
        let listener = bind(&args.service).await?;
        println!(
            "stratos query service listening on http://{}",
            args.service.listen
        );
        stratos_query::http::serve(listener, queries, async {
            let _ = shutdown_signal().await;
        })
        .await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The query side over `store` and `views`.
fn queries(
    options: &ServiceOptions,
    store: Store,
    views: Option<Views>,
    changes: Changes,
) -> Queries {
    Queries::new(
        store,
        views,
        changes,
        QueryConfig {
            service_did: options.service_did(),
            trusted_services: options.allowed_appviews(),
            dev_auth: options.dev_auth,
            resolver: options.resolver(),
            sync_token: options.sync_token.as_ref().map(|t| t.expose().to_string()),
            subscribe: SubscribeLimits::default(),
        },
    )
}

/// Waits until the repo projector has applied everything the log held when it started, so that
/// the first requests see every write acknowledged before a restart (and an idempotent retry
/// finds the request it repeats).
async fn caught_up(log: &Arc<dyn CommitLog>, store: &Store) -> Result<()> {
    let ends = log.partitions().await?;
    loop {
        let positions: std::collections::HashMap<u32, u64> = store
            .positions(stratos_projector::repo::CONSUMER)
            .await?
            .into_iter()
            .collect();
        let behind = ends
            .iter()
            .any(|end| positions.get(&end.partition).copied().unwrap_or(0) < end.end);
        if !behind {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts both projectors in this process, and the outcomes a command side waits on.
pub async fn start_projectors(
    log: &Arc<dyn CommitLog>,
    store: &Store,
    views: Views,
) -> Result<(Projectors, Outcomes)> {
    let projectors = start(
        log.clone(),
        store.clone(),
        Some(views),
        ProjectorOptions::default(),
        |_| {},
    )
    .await?;
    let outcomes = Outcomes::new(store.clone());
    outcomes.follow_channel(projectors.subscribe());
    // The repo projector may stand by while another process's holds the lease.
    if let Some(notifications) = store.listen().await? {
        outcomes.follow_notifications(notifications);
    }
    Ok((projectors, outcomes))
}

async fn commands(
    options: &ServiceOptions,
    store: Store,
    log: Arc<dyn CommitLog>,
    outcomes: Outcomes,
) -> Result<Commands> {
    let (did, url) = (options.service_did(), &options.public_url);
    let service = match options.service_key()? {
        Some(key) => ServiceIdentity::with_key(&store, &did, url, key).await,
        None => ServiceIdentity::load_or_create(&store, &did, url).await,
    }
    .context("loading the service key")?;
    Ok(Commands::new(
        store,
        log,
        outcomes,
        CommandConfig {
            service,
            allowed_domains: options.allowed_domains(),
            max_attempts: 16,
            blob_store: options.blob_storage.store()?,
        },
    ))
}

async fn bind(options: &ServiceOptions) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))
}

fn announce(options: &ServiceOptions, commands: &Commands, everything: bool) {
    let what = if everything {
        "command service, query service and projectors"
    } else {
        "command service"
    };
    println!("stratos {what} listening on http://{}", options.listen);
    println!("  public URL   {}", options.public_url);
    println!("  service DID  {}", commands.service().did);
    println!(
        "  boundaries   {}",
        commands.allowed_boundaries().join(", ")
    );
    if options.dev_auth {
        println!(
            "  development authentication is ON: write as any DID (enrolled on first use), e.g.\n\
             \n    curl -s {}/xrpc/com.atproto.repo.createRecord \\\n\
             \x20     -H 'Authorization: Bearer did:plc:alice' -H 'Content-Type: application/json' \\\n\
             \x20     -d '{{\"repo\":\"did:plc:alice\",\"collection\":\"zone.stratos.feed.post\",\
             \"record\":{{\"$type\":\"zone.stratos.feed.post\",\"text\":\"hello\",\
             \"boundary\":{{\"values\":[{{\"value\":\"{}\"}}]}},\
             \"createdAt\":\"2026-01-01T00:00:00.000Z\"}}}}'\n",
            options.public_url,
            commands
                .allowed_boundaries()
                .first()
                .cloned()
                .unwrap_or_default()
        );
    } else {
        println!(
            "  users enroll at {}/oauth/authorize?handle=<their handle>",
            options.public_url.trim_end_matches('/')
        );
    }
}

/// The master key from the options, or for the embedded defaults one kept in `data/master.key`
/// (created on first run, readable by the owner only).
fn master_key(options: &StoreOptions) -> Result<MasterKey> {
    if options.master_key.is_some() || options.master_key_file.is_some() {
        return options.master_key();
    }
    let path = Path::new("data/master.key");
    if !path.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all("data").context("creating data/")?;
        let key = MasterKey::generate().to_hex();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .context("creating data/master.key")?;
        writeln!(file, "{}", key.as_str())?;
        tracing::warn!("created a new master key in data/master.key; back it up");
    }
    let text = std::fs::read_to_string(path).context("reading data/master.key")?;
    Ok(MasterKey::from_hex(&text)?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the runtime")
}
