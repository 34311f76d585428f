//! Options shared by the subcommands: where the commit log is, where the projections are, and
//! the master key of the key store. Every option can also come from the environment.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use stratos_log::{CommitLog, EmbeddedConfig, EmbeddedLog, KafkaConfig, KafkaLog};
use stratos_store::{MasterKey, Store, Views};
use stratos_xrpc::auth::Secret;

/// An on/off setting as the environment or a file gives it: `true`, `1`, `yes`, `on` or
/// `false`, `0`, `no`, `off`, empty (any case). Anything else is an error, never "on".
pub fn switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!(
            "{other:?} is neither true/1/yes/on nor false/0/no/off"
        )),
    }
}

/// Where the commit log is: the embedded log file, or a Kafka cluster.
#[derive(Debug, Clone, Args)]
pub struct LogOptions {
    /// The embedded log file.
    #[arg(
        long,
        value_name = "PATH",
        env = "STRATOS_LOG_FILE",
        default_value = "data/log.sqlite",
        conflicts_with = "kafka_bootstrap"
    )]
    pub log_file: PathBuf,
    /// Kafka `bootstrap.servers`, to use Kafka instead of the embedded log.
    #[arg(long, env = "STRATOS_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// The Kafka topic.
    #[arg(
        long,
        env = "STRATOS_KAFKA_TOPIC",
        default_value = "stratos.repo.events"
    )]
    pub topic: String,
    /// The log's partition count (fixed when the log is created).
    #[arg(long, env = "STRATOS_PARTITIONS", default_value_t = 12)]
    pub partitions: u32,
    /// Extra librdkafka properties, `name=value`, repeatable.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    pub kafka_properties: Vec<String>,
}

impl LogOptions {
    /// Checks the partition count and the Kafka properties.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.partitions > 0, "--partitions must be at least 1");
        anyhow::ensure!(!self.topic.is_empty(), "--topic is empty");
        for property in &self.kafka_properties {
            anyhow::ensure!(
                property
                    .split_once('=')
                    .is_some_and(|(name, _)| !name.is_empty()),
                "--kafka-property {property:?} is not NAME=VALUE"
            );
        }
        Ok(())
    }

    /// Opens the log; the embedded one is created if missing unless `must_exist`.
    pub async fn open(&self, must_exist: bool) -> Result<Arc<dyn CommitLog>> {
        self.open_with(must_exist, false).await
    }

    /// Opens the log for a process whose readers wait for its own appends (`stratos up`):
    /// they take what it appended from memory once the log acknowledged it.
    pub async fn open_shared(&self) -> Result<Arc<dyn CommitLog>> {
        self.open_with(false, true).await
    }

    async fn open_with(&self, must_exist: bool, share_appends: bool) -> Result<Arc<dyn CommitLog>> {
        if let Some(bootstrap) = &self.kafka_bootstrap {
            let mut config = KafkaConfig::new(bootstrap.clone());
            config.topic = self.topic.clone();
            config.partitions = self.partitions;
            config.share_appends = share_appends;
            for property in &self.kafka_properties {
                let (name, value) = property
                    .split_once('=')
                    .with_context(|| format!("--kafka-property {property:?} is not NAME=VALUE"))?;
                config.extra.insert(name.into(), value.into());
            }
            return Ok(Arc::new(KafkaLog::connect(config).await?));
        }
        let path = &self.log_file;
        if must_exist {
            anyhow::ensure!(path.exists(), "no log at {}", path.display());
        } else if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut config = EmbeddedConfig::new(path);
        config.partitions = self.partitions;
        Ok(Arc::new(EmbeddedLog::open(config).await?))
    }
}

/// Where the projections and the AppView views are.
#[derive(Debug, Clone, Args)]
pub struct DatabaseOptions {
    /// The projections' database: `postgres://…` or `sqlite://path`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/stratos.sqlite"
    )]
    pub database_url: String,
    /// The AppView views' database (default: the projections' database on Postgres, a file
    /// beside it on SQLite: `data/stratos.sqlite` → `data/stratos-views.sqlite`).
    #[arg(long, env = "STRATOS_VIEWS_URL")]
    pub views_url: Option<String>,
}

impl DatabaseOptions {
    /// Checks that both URLs name a supported database.
    pub fn validate(&self) -> Result<()> {
        for url in [self.database_url.clone(), self.views_url()] {
            anyhow::ensure!(
                ["postgres://", "postgresql://", "sqlite:"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme)),
                "database URL {:?} is neither postgres:// nor sqlite://",
                redact(&url)
            );
        }
        Ok(())
    }

    /// The views' database URL.
    pub fn views_url(&self) -> String {
        match &self.views_url {
            Some(url) => url.clone(),
            None => stratos_store::default_views_url(&self.database_url),
        }
    }
}

/// Where the projections are, and the key store's master key.
#[derive(Debug, Clone, Args)]
pub struct StoreOptions {
    #[command(flatten)]
    pub databases: DatabaseOptions,
    /// The key store's master key, 64 hex characters.
    #[arg(long, env = "STRATOS_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// A file holding the master key (instead of `--master-key`).
    #[arg(long, env = "STRATOS_MASTER_KEY_FILE", conflicts_with = "master_key")]
    pub master_key_file: Option<PathBuf>,
}

impl StoreOptions {
    /// Checks the database URLs and, when one is given (or `required`), the master key.
    pub fn validate(&self, required: bool) -> Result<()> {
        self.databases.validate()?;
        if required || self.master_key.is_some() || self.master_key_file.is_some() {
            self.master_key()?;
        }
        Ok(())
    }

    /// The projections' database URL.
    pub fn database_url(&self) -> &str {
        &self.databases.database_url
    }

    /// The views' database URL.
    pub fn views_url(&self) -> String {
        self.databases.views_url()
    }

    /// The master key from the option or its file.
    pub fn master_key(&self) -> Result<MasterKey> {
        let text = match (&self.master_key, &self.master_key_file) {
            (Some(text), _) => text.expose().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the master key from {}", path.display()))?,
            (None, None) => anyhow::bail!(
                "no master key: set STRATOS_MASTER_KEY (64 hex characters) or \
                 STRATOS_MASTER_KEY_FILE"
            ),
        };
        Ok(MasterKey::from_hex(&text)?)
    }

    /// Connects to the projections and the views (running their migrations).
    pub async fn connect(&self) -> Result<(Store, Views)> {
        let master = self.master_key()?;
        let store = connect_store(self.database_url(), master).await?;
        let views = connect_views(&self.views_url()).await?;
        Ok((store, views))
    }
}

/// Connects a store, creating the directory of a SQLite file first.
pub async fn connect_store(url: &str, master: MasterKey) -> Result<Store> {
    create_sqlite_dir(url)?;
    Store::connect(url, master)
        .await
        .with_context(|| format!("connecting to the projections at {}", redact(url)))
}

/// Connects the views, creating the directory of a SQLite file first.
pub async fn connect_views(url: &str) -> Result<Views> {
    create_sqlite_dir(url)?;
    Views::connect(url)
        .await
        .with_context(|| format!("connecting to the views at {}", redact(url)))
}

/// Creates the directory of a `sqlite://` database file.
pub fn create_sqlite_dir(url: &str) -> Result<()> {
    if let Some(path) = url.strip_prefix("sqlite://")
        && let Some(parent) = std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
