//! `stratos up` as a user meets it: started in an empty directory, it serves writes (with
//! development authentication switched on), stops cleanly on SIGTERM, and leaves a log that
//! audits and projections that verify.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn up_serves_writes_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = Command::new(env!("CARGO_BIN_EXE_stratos"))
        .args(["up", "--dev-auth", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &base])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("STRATOS_MASTER_KEY")
        .env_remove("STRATOS_KAFKA_BOOTSTRAP")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "stratos up did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let boundary = format!("did:web:127.0.0.1%3A{port}/general");
    let mut uris = Vec::new();
    for text in ["first", "second"] {
        let response = client
            .post(format!("{base}/xrpc/com.atproto.repo.createRecord"))
            .bearer_auth("did:plc:alice")
            .json(&json!({
                "repo": "did:plc:alice",
                "collection": "zone.stratos.feed.post",
                "record": {
                    "$type": "zone.stratos.feed.post",
                    "text": text,
                    "boundary": {"values": [{"value": boundary}]},
                    "createdAt": "2026-11-28T12:00:00.000Z",
                },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        uris.push(body["uri"].as_str().unwrap().to_string());
    }

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
    let stratos = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stratos"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("STRATOS_MASTER_KEY")
            .output()
            .unwrap()
    };
    let audit = stratos(&["audit", "did:plc:alice"]);
    assert!(audit.status.success(), "{audit:?}");
    assert!(String::from_utf8_lossy(&audit.stdout).contains("3 events"));
    let verify = stratos(&["verify-projections", "--master-key-file", "data/master.key"]);
    assert!(verify.status.success(), "{verify:?}");
}
