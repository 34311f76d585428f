//! The parts every command-service test runs on: a log (embedded, or Kafka on a local
//! Kafka-API broker), a store, the projectors, and command sides over them.

#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use stratos_command::blobs::BlobStore;
use stratos_command::{CommandConfig, Commands, Outcomes, ServiceIdentity};
use stratos_log::testing::Broker;
use stratos_log::{CommitLog, EmbeddedConfig, EmbeddedLog, KafkaConfig, KafkaLog};
use stratos_projector::service::{ProjectorOptions, Projectors, start};
use stratos_store::testing::TestDatabase;
use stratos_store::{MasterKey, Store};

pub const SERVICE: &str = "did:web:stratos.example.com";
pub const GENERAL: &str = "did:web:stratos.example.com/general";

/// A log, a store and running projectors.
pub struct Stack {
    pub log: Arc<dyn CommitLog>,
    pub store: Store,
    pub projectors: Projectors,
    pub database: TestDatabase,
    _broker: Option<Broker>,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// A stack on a fresh database of `kind`: `"sqlite"` or `"postgres"` with the embedded log,
    /// or `"postgres+kafka"` with the log on a local Kafka-API broker.
    pub async fn new(kind: &'static str) -> Self {
        stratos_command::auth::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (database_kind, broker) = match kind {
            "postgres+kafka" => ("postgres", Some(Broker::start())),
            other => (other, None),
        };
        let log: Arc<dyn CommitLog> = match &broker {
            Some(broker) => {
                let mut config = KafkaConfig::new(broker.bootstrap());
                config.partitions = 4;
                config.replication_factor = 1;
                Arc::new(KafkaLog::connect(config).await.unwrap())
            }
            None => {
                let mut config = EmbeddedConfig::new(dir.path().join("log.sqlite"));
                config.partitions = 4;
                Arc::new(EmbeddedLog::open(config).await.unwrap())
            }
        };
        let database = TestDatabase::create(database_kind).await.unwrap();
        let store = Store::connect(&database.url, MasterKey::generate())
            .await
            .unwrap();
        let projectors = start(
            log.clone(),
            store.clone(),
            None,
            ProjectorOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        Stack {
            log,
            store,
            projectors,
            database,
            _broker: broker,
            _dir: dir,
        }
    }

    /// A command side in this process (a second one models another instance).
    pub async fn commands(&self) -> Commands {
        self.commands_storing_blobs_in(BlobStore::Local(self.blob_dir()))
            .await
    }

    /// A command side in this process keeping blobs in `blob_store`.
    pub async fn commands_storing_blobs_in(&self, blob_store: BlobStore) -> Commands {
        let outcomes = Outcomes::new(self.store.clone());
        outcomes.follow_channel(self.projectors.subscribe());
        let service =
            ServiceIdentity::load_or_create(&self.store, SERVICE, "https://stratos.example.com")
                .await
                .unwrap();
        Commands::new(
            self.store.clone(),
            self.log.clone(),
            outcomes,
            CommandConfig {
                service,
                allowed_domains: vec!["general".into(), "writers".into()],
                max_attempts: 16,
                blob_store,
            },
        )
    }

    /// Where the command sides of this stack keep blobs.
    pub fn blob_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("blobs")
    }

    /// Stops the projectors and drops the database.
    pub async fn finish(self) {
        self.projectors.stop().await;
        self.store.close().await;
        self.database.drop_database().await.unwrap();
    }
}

/// Serves a command side of `stack` over HTTP on a loopback port; stops when the sender drops.
pub async fn serve_http(
    stack: &Stack,
    config: stratos_command::http::HttpConfig,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    serve_commands(stack.commands().await, config).await
}

/// Serves `commands` over HTTP on a free port.
pub async fn serve_commands(
    commands: Commands,
    config: stratos_command::http::HttpConfig,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(stratos_command::http::serve(
        listener,
        commands,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    (base, stop)
}
