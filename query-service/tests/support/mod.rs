//! A whole Stratos in the test process, served over real HTTP on a loopback port: an embedded
//! log, a store and the AppView views on one database, both projectors, the command side and
//! the query side behind one router (as `stratos up` runs them), with development
//! authentication (`Bearer <did>`).

#![allow(dead_code, unused_macros)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use serde_json::{Value, json};
use stratos_command::auth::ResolverConfig;
use stratos_command::blobs::BlobStore;
use stratos_command::http::HttpConfig;
use stratos_command::{CommandConfig, Commands, Outcomes, ServiceIdentity};
use stratos_log::{CommitLog, EmbeddedConfig, EmbeddedLog};
use stratos_projector::service::{ProjectorOptions, Projectors, start};
use stratos_query::subscribe::SubscribeLimits;
use stratos_query::{Changes, Queries, QueryConfig};
use stratos_schema::syntax::Did;
use stratos_store::testing::TestDatabase;
use stratos_store::{MasterKey, Store, Views};
use warp::Filter;

pub const SERVICE: &str = "did:web:stratos.example.com";
pub const GENERAL: &str = "did:web:stratos.example.com/general";
pub const WRITERS: &str = "did:web:stratos.example.com/writers";
/// An allow-listed AppView.
pub const APPVIEW: &str = "did:web:appview.example.com";

/// A running system and an HTTP client for it.
pub struct System {
    pub base: String,
    pub client: reqwest::Client,
    pub commands: Commands,
    pub store: Store,
    views: Views,
    projectors: Projectors,
    database: TestDatabase,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl System {
    /// A system on a fresh database of `kind` (`"sqlite"` or `"postgres"`).
    pub async fn start(kind: &'static str) -> Self {
        Self::start_with(kind, SubscribeLimits::default()).await
    }

    /// [`System::start`] with other `subscribeRecords` limits.
    pub async fn start_with(kind: &'static str, limits: SubscribeLimits) -> Self {
        stratos_command::auth::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let mut config = EmbeddedConfig::new(dir.path().join("log.sqlite"));
        config.partitions = 4;
        let log: Arc<dyn CommitLog> = Arc::new(EmbeddedLog::open(config).await.unwrap());
        let database = TestDatabase::create(kind).await.unwrap();
        let store = Store::connect(&database.url, MasterKey::generate())
            .await
            .unwrap();
        let views = Views::connect(&database.url).await.unwrap();
        let projectors = start(
            log.clone(),
            store.clone(),
            Some(views.clone()),
            ProjectorOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        let outcomes = Outcomes::new(store.clone());
        outcomes.follow_channel(projectors.subscribe());
        let changes = Changes::new();
        changes.follow_channel(projectors.subscribe());
        let service =
            ServiceIdentity::load_or_create(&store, SERVICE, "https://stratos.example.com")
                .await
                .unwrap();
        let commands = Commands::new(
            store.clone(),
            log,
            outcomes,
            CommandConfig {
                service,
                allowed_domains: vec!["general".into(), "writers".into()],
                max_attempts: 16,
                blob_store: BlobStore::Local(dir.path().join("blobs")),
            },
        );
        let queries = Queries::new(
            store.clone(),
            Some(views.clone()),
            changes,
            QueryConfig {
                service_did: SERVICE.into(),
                trusted_services: vec![APPVIEW.into()],
                dev_auth: true,
                // Nothing answers there: DID documents are absent, quickly.
                resolver: ResolverConfig {
                    plc_url: "http://127.0.0.1:9".into(),
                    allow_private: true,
                    ..ResolverConfig::default()
                },
                sync_token: Some("shared-sync-secret".into()),
                subscribe: limits,
            },
        );
        let routes = stratos_query::http::routes(queries)
            .or(stratos_command::http::routes(
                commands.clone(),
                HttpConfig {
                    dev_auth: true,
                    ..HttpConfig::default()
                },
            ))
            .unify();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        System {
            base,
            client: reqwest::Client::new(),
            commands,
            store,
            views,
            projectors,
            database,
            _stop: stop,
            _dir: dir,
        }
    }

    /// Waits until the AppView projector has caught up with the repo projector (writes are
    /// answered once the repo projection has them; the views follow a moment later).
    pub async fn views_caught_up(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let repo = self
                .store
                .positions(stratos_projector::repo::CONSUMER)
                .await
                .unwrap();
            let mut behind = false;
            for (partition, next) in &repo {
                if self.views.position(*partition).await.unwrap() < Some(*next) {
                    behind = true;
                }
            }
            if !behind {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the views did not catch up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Enrolls `did:plc:<name>` in these boundary names; returns the DID.
    pub async fn enroll(&self, name: &str, boundaries: &[&str]) -> String {
        let did: Did = format!("did:plc:{name}").parse().unwrap();
        let boundaries: Vec<String> = boundaries.iter().map(|b| b.to_string()).collect();
        self.commands.enroll(&did, &boundaries).await.unwrap();
        did.to_string()
    }

    /// Writes a post of `author` in `boundaries` (qualified) through HTTP; returns (uri, cid).
    pub async fn post(&self, author: &str, text: &str, boundaries: &[&str]) -> (String, String) {
        let values: Vec<Value> = boundaries.iter().map(|b| json!({"value": b})).collect();
        let (status, body) = self
            .call_post(
                Some(author),
                "com.atproto.repo.createRecord",
                &json!({
                    "repo": author,
                    "collection": "zone.stratos.feed.post",
                    "record": {
                        "$type": "zone.stratos.feed.post",
                        "text": text,
                        "boundary": {"values": values},
                        "createdAt": stratos_schema::syntax::Datetime::now().as_str(),
                    },
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["uri"].as_str().unwrap().to_string(),
            body["cid"].as_str().unwrap().to_string(),
        )
    }

    /// A request to `/xrpc/<nsid>` as `caller` (anonymous with `None`).
    fn request(
        &self,
        method: reqwest::Method,
        caller: Option<&str>,
        nsid: &str,
    ) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}/xrpc/{nsid}", self.base));
        match caller {
            Some(caller) => request.bearer_auth(caller),
            None => request,
        }
    }

    /// A GET of `/xrpc/<nsid>` as `caller`, answered with JSON.
    pub async fn call(
        &self,
        caller: Option<&str>,
        nsid: &str,
        query: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, bytes) = self.call_bytes(caller, nsid, query).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A GET answering bytes (CAR files).
    pub async fn call_bytes(
        &self,
        caller: Option<&str>,
        nsid: &str,
        query: &[(&str, &str)],
    ) -> (u16, Vec<u8>) {
        let request = self
            .request(reqwest::Method::GET, caller, nsid)
            .query(query);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    /// A POST of JSON to `/xrpc/<nsid>` as `caller`.
    pub async fn call_post(&self, caller: Option<&str>, nsid: &str, body: &Value) -> (u16, Value) {
        let request = self.request(reqwest::Method::POST, caller, nsid).json(body);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The WebSocket URL of `subscribeRecords` with these parameters.
    pub fn subscribe_url(&self, query: &str) -> String {
        format!(
            "{}/xrpc/zone.stratos.sync.subscribeRecords?{query}",
            self.base.replacen("http://", "ws://", 1)
        )
    }

    /// Stops the projectors and drops the database.
    pub async fn finish(self) {
        self.projectors.stop().await;
        self.store.close().await;
        self.database.drop_database().await.unwrap();
    }
}

/// The error name of an XRPC answer.
pub fn error_name(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Runs test bodies (`async fn(System)`) on SQLite and on Postgres; with `limits = <expr>;`
/// first, on systems with those `subscribeRecords` limits (in modules of their own).
macro_rules! on_both_backends {
    (limits = $limits:expr; $($name:ident),* $(,)?) => {
        mod limited {
            use super::*;
            on_both_backends!(@systems (|kind| super::support::System::start_with(kind, $limits)); $($name),*);
        }
    };
    ($($name:ident),* $(,)?) => {
        on_both_backends!(@systems (super::support::System::start); $($name),*);
    };
    (@systems ($start:expr); $($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    #[allow(unused_imports)]
                    use super::*;
                    super::$name(($start)("sqlite").await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    #[allow(unused_imports)]
                    use super::*;
                    super::$name(($start)("postgres").await).await;
                }
            )*
        }
    };
}
