//! `stratos up` as a user meets it: started in an empty directory, it serves writes (with
//! development authentication switched on), stops cleanly on SIGTERM, and leaves a log that
//! audits and projections that verify.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{create_post, free_port, post_request, stratos, wait_ready};

/// `stratos up --dev-auth` on `port` in `dir`; with `crash_key`, it aborts right after
/// appending the write of the request with that idempotency key (a test-build fault point).
fn spawn_up(dir: &std::path::Path, port: u16, crash_key: Option<&str>) -> std::process::Child {
    let mut command = stratos(dir);
    command
        .args(["up", "--dev-auth", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &format!("http://127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(key) = crash_key {
        command.env("STRATOS_FAULT_ABORT_AFTER_APPEND", key);
    }
    command.spawn().unwrap()
}

#[tokio::test]
async fn up_serves_writes_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = spawn_up(dir.path(), port, None);
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;

    let boundary = format!("did:web:127.0.0.1%3A{port}/general");
    let mut uris = Vec::new();
    for text in ["first", "second"] {
        let (status, body) = create_post(&client, &base, &boundary, text).await;
        assert_eq!(status, 200);
        uris.push(body["uri"].as_str().unwrap().to_string());
    }

    // Enrolled in development mode, without an OAuth session: nothing is owed to a PDS, so no
    // PDS write was even attempted (let the publisher see the writes first).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(!metrics.contains("stratos_pds_writes_total"), "{metrics}");

    // SIGTERM: the process stops by itself, successfully.
    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "stratos up did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let mut announced = String::new();
    std::io::Read::read_to_string(&mut up.stdout.take().unwrap(), &mut announced).unwrap();
    assert!(announced.contains("did:web:127.0.0.1%3A"), "{announced}");

    // What it left behind audits and verifies.
    let run = |args: &[&str]| stratos(dir.path()).args(args).output().unwrap();
    let audit = run(&["audit", "did:plc:alice"]);
    assert!(audit.status.success(), "{audit:?}");
    assert!(String::from_utf8_lossy(&audit.stdout).contains("3 events"));
    let verify = run(&["verify-projections", "--master-key-file", "data/master.key"]);
    assert!(verify.status.success(), "{verify:?}");
    // And its status: every projector caught up, one actor, nothing refused.
    let status = run(&["status", "--json", "--master-key-file", "data/master.key"]);
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["log"]["events"], 3);
    for consumer in ["repo", "appview", "pds-publisher"] {
        assert_eq!(
            status["consumers"][consumer]["lag"], 0,
            "{consumer}: {status}"
        );
    }
    assert_eq!(status["actors"], json!({"enrolled": 1, "unenrolled": 0}));
    assert_eq!(status["rejectedEvents"], 0);
    assert_eq!(status["pdsOutbox"]["backlog"], 0);
}

/// A process that crashed after appending a write but before answering: the client retries
/// with the same `Idempotency-Key` against the restarted service and gets one record and the
/// original answer.
#[tokio::test]
async fn a_retry_after_a_crash_gets_the_original_answer() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();
    let boundary = format!("did:web:127.0.0.1%3A{port}/general");
    let write = |key: Option<&'static str>| {
        let mut request = post_request(&client, &base, &boundary, "exactly once");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };

    let mut crashing = spawn_up(dir.path(), port, Some("crash-me"));
    wait_ready(&client, &base).await;
    assert!(write(None).await.unwrap().status().is_success());
    // The process dies after the append, before the answer.
    assert!(write(Some("crash-me")).await.is_err());
    let status = crashing.wait().unwrap();
    assert!(!status.success(), "{status:?}");

    let mut restarted = spawn_up(dir.path(), port, None);
    wait_ready(&client, &base).await;
    let response = write(Some("crash-me")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    // And once more, for good measure.
    let again: Value = write(Some("crash-me")).await.unwrap().json().await.unwrap();
    assert_eq!(again, answer);
    Command::new("kill")
        .args(["-TERM", &restarted.id().to_string()])
        .status()
        .unwrap();
    assert!(restarted.wait().unwrap().success());

    // One record from the crashed request, which is the one the answer names.
    let audit = stratos(dir.path())
        .args(["audit", "did:plc:alice", "--json"])
        .output()
        .unwrap();
    assert!(audit.status.success(), "{audit:?}");
    let creates: Vec<String> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["chain"] == "ok" && entry["type"] == "#commit")
        .flat_map(|entry| {
            entry["ops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|op| op.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    let rkey = answer["uri"].as_str().unwrap().rsplit('/').next().unwrap();
    assert!(creates[1].ends_with(rkey), "{creates:?} vs {answer}");
}

/// With a client key, a public service is a confidential OAuth client: its metadata says
/// `private_key_jwt` and points at its JWKS, which holds the public half only. A key that is
/// not one stops the start with a clear error.
#[tokio::test]
async fn a_client_key_makes_a_confidential_oauth_client() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let start = |secret: &str| {
        stratos(dir.path())
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", "https://stratos.example.com"])
            .args(["--oauth-client-secret", secret])
            .args([
                "--oauth-client-policy-uri",
                "https://stratos.example.com/privacy",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = start("not a key").wait_with_output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("OAuth client key"));

    let mut up = start(&"2a".repeat(32));
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let get = async |path: &str| -> Value {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert!(response.status().is_success(), "{path}");
        response.json().await.unwrap()
    };
    let metadata = get("/client-metadata.json").await;
    assert_eq!(
        metadata["client_id"],
        "https://stratos.example.com/client-metadata.json"
    );
    assert_eq!(metadata["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(
        metadata["policy_uri"],
        "https://stratos.example.com/privacy"
    );
    assert_eq!(
        metadata["jwks_uri"],
        "https://stratos.example.com/oauth/jwks.json"
    );
    let jwks = get("/oauth/jwks.json").await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kid"].as_str(), key["crv"].as_str()),
        (Some("key-1"), Some("P-256"))
    );
    assert!(
        key.get("d").is_none(),
        "the private part is never published"
    );
    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(up.wait().unwrap().success());
}

/// The README's tour, followed as written: its first block starts the service, the others run in
/// bash one after the other (against this test's port, with this build's binary).
#[tokio::test]
async fn the_readme_tour_works_as_written() {
    let readme = include_str!("../../README.md");
    let tour = readme
        .split("## A tour")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let blocks: Vec<&str> = tour
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 6, "{blocks:?}");

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let binary = env!("CARGO_BIN_EXE_stratos");
    let up_args: Vec<&str> = blocks[0]
        .trim()
        .strip_prefix("cargo run --release -- ")
        .unwrap()
        .split_whitespace()
        .collect();
    let up = stratos(dir.path())
        .args(&up_args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // The README's boundaries name the default public URL's DID.
        .args(["--public-url", "http://127.0.0.1:3100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    stratos_command::auth::install_tls_provider();
    wait_ready(&reqwest::Client::new(), &base).await;

    let run = |block: &str| -> String {
        let script = block
            .replace("S=http://127.0.0.1:3100", "")
            .replace("cargo run --release --", binary);
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("S", &base)
            .env("STRATOS_URL", &base)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{block}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let enrolled = run(blocks[1]);
    assert_eq!(
        enrolled.matches("\"uri\":\"at://did:plc:").count(),
        3,
        "{enrolled}"
    );
    assert!(enrolled.contains("\"boundaries\":[\"did:web:127.0.0.1%3A3100/friends\"]"));
    assert!(run(blocks[2]).contains("\"uri\":\"at://did:plc:alice/"));

    let timelines = run(blocks[3]);
    let lines: Vec<&str> = timelines.lines().collect();
    assert_eq!(
        lines.len(),
        7,
        "Bob sees four posts, Carol three: {timelines}"
    );
    assert_eq!(
        lines[..4].iter().filter(|l| l.contains("family")).count(),
        1
    );
    assert!(
        !lines[4..].iter().any(|l| l.contains("family")),
        "{timelines}"
    );

    let frames = run(blocks[4]);
    let frames: Vec<Value> = frames
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(frames.len() >= 2, "{frames:?}");
    assert!(frames.iter().all(|f| f["header"]["op"] == 1));
    assert!(
        frames
            .iter()
            .any(|f| f["body"]["ops"][0]["record"]["text"] == "family dinner on sunday"),
        "{frames:?}"
    );
    assert!(run(blocks[5]).contains("did:plc:alice"));

    support::stop(up);
}

/// `STRATOS_SIGNING_KEY_HEX` is the key the service publishes and signs with; it stays in the
/// key store for the next start.
#[tokio::test]
async fn a_configured_service_key_is_published_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let start = |key: Option<&str>| {
        let mut command = stratos(dir.path());
        command
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(key) = key {
            command.env("STRATOS_SIGNING_KEY_HEX", key);
        }
        command.spawn().unwrap()
    };
    let refused = start(Some("not a key")).wait_with_output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--signing-key-hex"));

    let hex = "3b".repeat(32);
    let expected = stratos_schema::keys::Keypair::from_private_hex(
        stratos_schema::keys::KeyAlgorithm::Secp256k1,
        &hex,
    )
    .unwrap()
    .public_key()
    .to_multibase();
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();
    for key in [Some(hex.as_str()), None] {
        let up = start(key);
        wait_ready(&client, &base).await;
        let document: Value = client
            .get(format!("{base}/.well-known/did.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for method in document["verificationMethod"].as_array().unwrap() {
            assert_eq!(method["publicKeyMultibase"], expected.as_str(), "{key:?}");
        }
        support::stop(up);
    }
}
