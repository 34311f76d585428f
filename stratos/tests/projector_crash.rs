//! `kill -9` of the projector process in the middle of its work, then a restart, or a second
//! projector standing by that takes over: the projections equal a rebuild from the log
//! (`stratos verify-projections`), every actor's events are numbered 1..n with no gap and no
//! repeat, and every record is there. On SQLite and on a real PostgreSQL server, with the
//! embedded log.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stratos_store::testing::TestDatabase;
use stratos_store::{MasterKey, Store, Views};

const ACTORS: usize = 40;
const COMMITS: u64 = 6_000;
const PARTITIONS: u32 = 4;
const EVENTS: u64 = ACTORS as u64 + COMMITS;

struct Setup {
    log_file: String,
    database_url: String,
    master_key: String,
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stratos"));
        command
            .args(args)
            .args(["--log-file", &self.log_file])
            .args(["--partitions", &PARTITIONS.to_string()])
            .env("DATABASE_URL", &self.database_url)
            .env("STRATOS_MASTER_KEY", &self.master_key)
            .env_remove("STRATOS_VIEWS_URL")
            .env_remove("STRATOS_KAFKA_BOOTSTRAP");
        command
    }

    fn start_projector(&self) -> Projector {
        self.start_projector_logging_to(Stdio::null())
    }

    /// A projector process whose log goes to `stderr`.
    fn start_projector_logging_to(&self, stderr: impl Into<Stdio>) -> Projector {
        Projector(
            self.command(&["projector", "--batch-size", "10"])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        )
    }
}

/// A projector process, killed with SIGKILL when dropped (or by [`Projector::kill_9`]).
struct Projector(Child);

impl Projector {
    fn kill_9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Projector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_master_key() -> String {
    use std::hash::{BuildHasher, RandomState};
    (0..4)
        .map(|_| format!("{:016x}", RandomState::new().hash_one(Instant::now())))
        .collect()
}

/// Events the repo projector and the AppView projector have done, summed over partitions.
async fn progress(store: &Store, views: &Views) -> (u64, u64) {
    let repo = store
        .positions("repo")
        .await
        .unwrap()
        .iter()
        .map(|(_, next)| next)
        .sum();
    let mut view = 0;
    for partition in 0..PARTITIONS {
        view += views.position(partition).await.unwrap().unwrap_or(0);
    }
    (repo, view)
}

/// What takes the projections to the end once the first projector was killed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Recovery {
    /// A projector started after the kill.
    Restart,
    /// A second projector, started beside the first before the kill, standing by.
    Standby,
}

async fn kill_9_then_restart(kind: &'static str) {
    kill_9_then_recover(kind, Recovery::Restart).await;
}

async fn kill_9_then_recover(kind: &'static str, recovery: Recovery) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(kind).await.unwrap();
    let setup = Setup {
        log_file: dir.path().join("log.sqlite").display().to_string(),
        database_url: database.url.clone(),
        master_key: random_master_key(),
    };
    let fill = setup
        .command(&[
            "bench",
            "fill",
            "--actors",
            &ACTORS.to_string(),
            "--commits",
            &COMMITS.to_string(),
        ])
        .output()
        .unwrap();
    assert!(fill.status.success(), "{fill:?}");
    assert!(Path::new(&setup.log_file).exists());

    let store = Store::connect(
        &setup.database_url,
        MasterKey::from_hex(&setup.master_key).unwrap(),
    )
    .await
    .unwrap();
    let views = Views::connect(&stratos_store::default_views_url(&setup.database_url))
        .await
        .unwrap();

    // Kill the projector with SIGKILL as soon as it is part-way through.
    let first_log = dir.path().join("first.log");
    let projector = setup.start_projector_logging_to(std::fs::File::create(&first_log).unwrap());
    let standby_log = dir.path().join("standby.log");
    let mut standby = None;
    if recovery == Recovery::Standby {
        // The first projector has taken its leases once it has applied something.
        let deadline = Instant::now() + Duration::from_secs(60);
        while progress(&store, &views).await.0 == 0 {
            assert!(Instant::now() < deadline, "the projector made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let log = std::fs::File::create(&standby_log).unwrap();
        standby = Some(setup.start_projector_logging_to(log));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&standby_log)
            .unwrap()
            .contains("standing by")
        {
            assert!(
                Instant::now() < deadline,
                "the second projector stands by; first: {}; second: {}",
                std::fs::read_to_string(&first_log).unwrap(),
                std::fs::read_to_string(&standby_log).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_at = loop {
        let (repo, _) = progress(&store, &views).await;
        if repo > EVENTS / 20 {
            projector.kill_9();
            break progress(&store, &views).await.0;
        }
        assert!(Instant::now() < deadline, "the projector made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        killed_at < EVENTS,
        "the projector finished before it could be killed"
    );

    // A restart (or the standby) resumes from the stored positions and catches up.
    let projector = standby.unwrap_or_else(|| setup.start_projector());
    let deadline = Instant::now() + Duration::from_secs(300);
    while progress(&store, &views).await != (EVENTS, EVENTS) {
        assert!(Instant::now() < deadline, "the projector did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    projector.kill_9();
    if recovery == Recovery::Standby {
        let log = std::fs::read_to_string(&standby_log).unwrap();
        assert!(log.contains("took over the lease"), "{log}");
    }

    // Nothing applied twice, nothing missing.
    for index in 0..ACTORS {
        let did = format!("did:plc:bench{index:019}");
        let events = store.actor_events(&did, 0, 10_000).await.unwrap();
        let expected: Vec<u64> = (1..=COMMITS / ACTORS as u64).collect();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            expected,
            "{did}"
        );
        let records = store.records(&did).await.unwrap();
        assert_eq!(records.len() as u64, COMMITS / ACTORS as u64, "{did}");
        assert!(records.iter().all(|r| r.block.is_some()));
    }
    assert_eq!(store.rejection_count().await.unwrap(), 0);
    store.close().await;
    views.close().await;

    // The live projections equal a rebuild from scratch.
    let verify = setup
        .command(&["verify-projections", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{verify:?}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["match"], true, "{report}");
    assert_eq!(report["report"]["events"], EVENTS);
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn kill_9_then_restart_on_sqlite() {
    kill_9_then_restart("sqlite").await;
}

#[tokio::test]
async fn kill_9_then_restart_on_postgres() {
    kill_9_then_restart("postgres").await;
}

#[tokio::test]
async fn a_standby_takes_over_after_kill_9_on_sqlite() {
    kill_9_then_recover("sqlite", Recovery::Standby).await;
}

#[tokio::test]
async fn a_standby_takes_over_after_kill_9_on_postgres() {
    kill_9_then_recover("postgres", Recovery::Standby).await;
}

/// `stratos replay` rebuilds into fresh tables, switches over, and keeps the key store.
async fn replay_switches_over(kind: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(kind).await.unwrap();
    let setup = Setup {
        log_file: dir.path().join("log.sqlite").display().to_string(),
        database_url: database.url.clone(),
        master_key: random_master_key(),
    };
    let fill = setup
        .command(&["bench", "fill", "--actors", "3", "--commits", "30"])
        .output()
        .unwrap();
    assert!(fill.status.success(), "{fill:?}");

    let replay = setup.command(&["replay", "--json"]).output().unwrap();
    assert!(replay.status.success(), "{replay:?}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&replay.stdout).trim()).unwrap();
    assert_eq!(report["report"]["events"], 33);
    assert_eq!(report["report"]["rejected"], 0);

    let store = Store::connect(
        &setup.database_url,
        MasterKey::from_hex(&setup.master_key).unwrap(),
    )
    .await
    .unwrap();
    let did = format!("did:plc:bench{:019}", 0);
    assert!(store.head(&did).await.unwrap().is_some());
    assert!(store.data_key(&did).await.unwrap().is_some());
    let records = store.records(&did).await.unwrap();
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.block.is_some()));
    let views = Views::connect(&stratos_store::default_views_url(&setup.database_url))
        .await
        .unwrap();
    assert_eq!(views.post_uris_by(&did).await.unwrap().len(), 10);
    store.close().await;
    views.close().await;

    // A second replay over the first gives the same projections.
    let verify = setup.command(&["verify-projections"]).output().unwrap();
    assert!(verify.status.success(), "{verify:?}");
    assert!(String::from_utf8_lossy(&verify.stdout).contains("match"));
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn replay_switches_over_on_sqlite() {
    replay_switches_over("sqlite").await;
}

#[tokio::test]
async fn replay_switches_over_on_postgres() {
    replay_switches_over("postgres").await;
}
