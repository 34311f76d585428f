//! `stratos`: one binary for the Stratos services and their operations tooling.

mod audit;
mod bench;
mod bench_projection;
mod bench_read;
mod bench_service;
mod bench_subscribe;
mod bench_timeline;
mod bench_write;
mod config;
mod debug;
mod migrate;
mod options;
mod progress;
mod projections;
mod purge;
mod serve;
mod service_options;
mod status;
mod subscribe;
mod workload;

use clap::{Parser, Subcommand};

/// A faster allocator than the system one for the services' many small, short-lived
/// allocations across threads. With its `override` feature it also serves C's `malloc`, so
/// SQLite's rows, allocated on a connection's thread and freed on a task's, do not contend for
/// the system allocator's arena locks.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// Stratos: a private, permissioned data layer for ATProtocol.
#[derive(Debug, Parser)]
#[command(name = "stratos", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` for log pipelines.
    #[arg(
        long,
        global = true,
        env = "STRATOS_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// A TOML file of settings, keyed by the long option names (flags and the environment
    /// win over it).
    #[arg(long, global = true, env = "STRATOS_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Task,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Structured logs on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the command service, the query service and the projectors in one process on the
    /// embedded defaults.
    Up(serve::UpArgs),
    /// Run the command service alone (the projectors run elsewhere).
    CommandService(serve::CommandServiceArgs),
    /// Run the query service alone (reads, hydration, export, subscribeRecords, feeds).
    QueryService(serve::QueryServiceArgs),
    /// Tools for debugging ATProto interop (MST roots, CAR files).
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Run the repo and AppView projectors until SIGINT or SIGTERM.
    Projector(projections::ProjectorArgs),
    /// Rebuild the projections from the start of the log into fresh tables, then switch over.
    Replay(projections::RebuildArgs),
    /// Compare a digest of the live projections with a rebuild from the log.
    VerifyProjections(projections::RebuildArgs),
    /// Print an actor's history from the commit log, checking every signature and chain link.
    Audit(audit::AuditArgs),
    /// How far each projector is behind the log, rejected events, actors and the PDS outbox.
    Status(status::StatusArgs),
    /// Create or upgrade the databases' tables, then exit.
    Migrate(migrate::MigrateArgs),
    /// Check the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Unenroll an actor and destroy its private content (through the running service).
    Purge(purge::PurgeArgs),
    /// Load generators that measure the system's parts on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = match config::layer(std::env::args_os().collect()) {
        Ok(layered) => Cli::parse_from(layered.argv),
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.log_format);
    let outcome = match cli.command {
        Task::Up(args) => serve::run_up(args),
        Task::CommandService(args) => serve::run_command_service(args),
        Task::QueryService(args) => serve::run_query_service(args),
        Task::Debug(command) => debug::run(command),
        Task::Projector(args) => projections::run_projector(args),
        Task::Replay(args) => projections::run_replay(args),
        Task::VerifyProjections(args) => projections::run_verify(args),
        Task::Audit(args) => audit::run(args),
        Task::Migrate(args) => migrate::run(args),
        Task::Config(config::ConfigCommand::Check(args)) => config::run(args, cli.config),
        Task::Purge(args) => purge::run(args),
        Task::Status(args) => status::run(args),
        Task::Bench(command) => bench::run(command).map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}
