//! The distributed mode as separate processes: a Kafka-API broker, PostgreSQL, one
//! `stratos projector`, two `stratos command-service` processes writing the same actor and one
//! `stratos query-service` reading. Every acknowledged write is there, in one chain; each answer
//! came back through Postgres `LISTEN/NOTIFY` from the projector process; a subscriber of the
//! query service sees every event once, in order, and reads see the records. And two `stratos
//! up` processes on one deployment: one projects, the other stands by and serves writes, and
//! takes over when the first is killed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use stratos_log::testing::Broker;
use stratos_store::testing::TestDatabase;
use stratos_store::{MasterKey, Store};
use support::stream::{next_seqs, subscribe};
use support::{create_post, free_port, wait_ready};

const SERVICE: &str = "did:web:stratos.test";
const WRITES: usize = 40;

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `stratos <args>` on the deployment.
fn command(args: &[&str], broker: &Broker, database: &str, master_key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratos"));
    command.args(args);
    // The query service reads projections only; the others use the log.
    if args[0] != "query-service" {
        command
            .args(["--kafka-bootstrap", &broker.bootstrap()])
            .args(["--partitions", "4"]);
    }
    command
        .env("DATABASE_URL", database)
        .env("STRATOS_MASTER_KEY", master_key)
        .env_remove("STRATOS_VIEWS_URL")
        .stdin(Stdio::null());
    command
}

/// `stratos <args>` on the deployment, running in the background with its output discarded.
fn stratos(args: &[&str], broker: &Broker, database: &str, master_key: &str) -> Process {
    Process(
        command(args, broker, database, master_key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `stratos <subcommand>` (`command-service` or `up`) serving HTTP on `listen` in development
/// mode.
fn serving(
    subcommand: &str,
    listen: &str,
    broker: &Broker,
    database: &str,
    master_key: &str,
) -> Process {
    let args = [
        subcommand,
        "--dev-auth",
        "--listen",
        listen,
        "--public-url",
        "https://stratos.test",
        "--service-did",
        SERVICE,
    ];
    stratos(&args, broker, database, master_key)
}

/// Creates post number `index` for alice through the command service at `base`.
async fn post(client: &reqwest::Client, base: &str, index: usize) -> (u16, Value) {
    let boundary = format!("{SERVICE}/general");
    create_post(client, base, &boundary, &format!("post {index}")).await
}

/// A broker, a fresh database with the schema in place (before several processes race to
/// migrate it), a master key and a store on the database.
async fn deployment() -> (Broker, TestDatabase, String, Store) {
    let broker = Broker::start();
    let database = TestDatabase::create("postgres").await.unwrap();
    let master_key = MasterKey::generate().to_hex().to_string();
    let store = Store::connect(&database.url, MasterKey::from_hex(&master_key).unwrap())
        .await
        .unwrap();
    (broker, database, master_key, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_services_a_projector_and_a_query_service() {
    let (broker, database, master_key, store) = deployment().await;

    let _projector = stratos(&["projector"], &broker, &database.url, &master_key);
    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();
    let mut services = Vec::new();
    for port in ports {
        let listen = format!("127.0.0.1:{port}");
        services.push(serving(
            "command-service",
            &listen,
            &broker,
            &database.url,
            &master_key,
        ));
        wait_ready(&client, &format!("http://{listen}")).await;
    }

    // The first write enrolls the actor.
    let (status, body) = post(&client, &bases[0], 0).await;
    assert_eq!(status, 200, "{body}");

    // A query service in its own process, and a subscriber of alice's stream on it.
    let query_port = free_port();
    let query_base = format!("http://127.0.0.1:{query_port}");
    let _query_service = stratos(
        &[
            "query-service",
            "--dev-auth",
            "--listen",
            &format!("127.0.0.1:{query_port}"),
            "--service-did",
            SERVICE,
        ],
        &broker,
        &database.url,
        &master_key,
    );
    wait_ready(&client, &query_base).await;
    let mut subscriber = subscribe(&query_base, "did:plc:alice", None).await;

    let answers = futures::future::join_all(
        (1..=WRITES).map(|index| post(&client, &bases[index % 2], index)),
    )
    .await;
    let mut uris = vec![body["uri"].as_str().unwrap().to_string()];
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        uris.push(body["uri"].as_str().unwrap().to_string());
    }

    // Every acknowledged write is there, in one chain numbered 1..=41.
    let records = store.records("did:plc:alice").await.unwrap();
    assert_eq!(records.len(), WRITES + 1);
    for uri in &uris {
        let rkey = uri.rsplit('/').next().unwrap();
        assert!(records.iter().any(|r| r.rkey == rkey), "{uri} is missing");
    }
    let events = store.actor_events("did:plc:alice", 0, 1_000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=(WRITES as u64 + 1)).collect::<Vec<_>>()
    );

    // The subscriber saw every event once, in order, as the projector applied them.
    let seen = next_seqs(&mut subscriber, WRITES + 1).await;
    assert_eq!(seen, (1..=(WRITES as u64 + 1)).collect::<Vec<_>>());

    // Reads through the query service process.
    let rkey = uris[7].rsplit('/').next().unwrap();
    let response = client
        .get(format!("{query_base}/xrpc/com.atproto.repo.getRecord"))
        .query(&[
            ("repo", "did:plc:alice"),
            ("collection", "zone.stratos.feed.post"),
            ("rkey", rkey),
        ])
        .bearer_auth("did:plc:alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["uri"], json!(uris[7]));

    drop(services);
    store.close().await;
    database.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_up_processes_one_projecting_the_other_standing_by() {
    let (broker, database, master_key, store) = deployment().await;
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let mut processes = Vec::new();
    let mut bases = Vec::new();
    // The first holds the repo projector's lease before the second starts, which stands by.
    for _ in 0..2 {
        let listen = format!("127.0.0.1:{}", free_port());
        let base = format!("http://{listen}");
        processes.push(serving("up", &listen, &broker, &database.url, &master_key));
        wait_ready(&client, &base).await;
        bases.push(base);
        if processes.len() == 1 {
            repo_lease_taken_by(&store, &processes[0]).await;
        }
    }
    let (status, body) = post(&client, &bases[0], 0).await;
    assert_eq!(status, 200, "{body}");
    let answers = futures::future::join_all(
        (1..=WRITES).map(|index| post(&client, &bases[index % 2], index)),
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }

    // The first process dies; the second takes over its leases and goes on answering.
    drop(processes.remove(0));
    let more = futures::future::join_all(
        (WRITES + 1..=WRITES + 10).map(|index| post(&client, &bases[1], index)),
    )
    .await;
    for (status, body) in &more {
        assert_eq!(*status, 200, "{body}");
    }
    repo_lease_taken_by(&store, &processes[0]).await;

    // `stratos status` names the survivor as the holder of every consumer's lease, and the
    // repo projector caught up with every acknowledged write.
    let survivor = format!("pid {}", processes[0].0.id());
    let status = |json: bool| {
        let args: &[&str] = if json {
            &["status", "--json"]
        } else {
            &["status"]
        };
        let output = command(args, &broker, &database.url, &master_key)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let consumers = ["repo", "appview", "pds-publisher"];
    let mut report = Value::Null;
    for _ in 0..300 {
        report = serde_json::from_str(&status(true)).unwrap();
        let held = |consumer: &str| {
            report["consumers"][consumer]["lease"]["holder"]
                .as_str()
                .is_some_and(|holder| holder.ends_with(&survivor))
        };
        if consumers.into_iter().all(held) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for consumer in consumers {
        let holder = report["consumers"][consumer]["lease"]["holder"].as_str();
        assert!(
            holder.is_some_and(|holder| holder.ends_with(&survivor)),
            "{consumer}: {report}"
        );
        assert!(
            report["consumers"][consumer]["lease"]["since"]
                .as_str()
                .unwrap()
                .ends_with('Z'),
            "{report}"
        );
    }
    assert_eq!(report["consumers"]["repo"]["lag"], 0, "{report}");
    let text = status(false);
    let repo_line = text.lines().find(|l| l.starts_with("repo ")).unwrap();
    assert!(
        repo_line.contains("0 events behind, lease taken by") && repo_line.contains(&survivor),
        "{text}"
    );

    let total = WRITES as u64 + 11;
    let events = store.actor_events("did:plc:alice", 0, 1_000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(
        store.records("did:plc:alice").await.unwrap().len() as u64,
        total
    );
    drop(processes);
    store.close().await;
    database.drop_database().await.unwrap();
}

/// Waits until `process` has taken the repo projector's lease.
async fn repo_lease_taken_by(store: &Store, process: &Process) {
    let pid = format!("pid {}", process.0.id());
    for _ in 0..600 {
        let holder = store.lease_holder("repo").await.unwrap();
        if holder.is_some_and(|(holder, _)| holder.ends_with(&pid)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{pid} took the repo lease");
}
