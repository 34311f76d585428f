//! Helpers for tests that run `stratos` processes.

#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // tests fail loudly by design

pub mod atproto;
pub mod deployment;
pub mod stream;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A free loopback port for a `stratos` process to listen on (see
/// [`stratos_log::testing::unassigned_port`]).
pub fn free_port() -> u16 {
    stratos_log::testing::unassigned_port(20_000..32_000)
}

/// How long one health check may take: whatever else listens on a port (a process that lost
/// it to another) may never answer.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until the service at `base` answers its health check.
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = client
            .get(format!("{base}/health"))
            .timeout(HEALTH_CHECK_TIMEOUT)
            .send()
            .await;
        if let Ok(response) = health
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed when dropped unstopped, so a test that fails half-way leaves no
/// service running behind it.
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }
}

impl From<KillOnDrop> for Child {
    fn from(mut guarded: KillOnDrop) -> Child {
        guarded.0.take().expect("guards a child until taken")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stops a `stratos` process with SIGTERM; it must exit by itself, successfully, within 30 s
/// (else it is killed and the test fails).
pub fn stop(process: impl Into<Child>) {
    let mut process = process.into();
    std::process::Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.try_wait().unwrap() {
            assert!(status.success(), "stratos stopped with {status}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = process.kill();
            let _ = process.wait();
            panic!("stratos did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `stratos` binary, run in `dir`, with no Stratos setting inherited from the environment
/// the tests run in (`STRATOS_*`, `DATABASE_URL`).
pub fn stratos(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stratos"));
    command.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("STRATOS_") || name == "DATABASE_URL" {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// A `createRecord` of a post by alice (development authentication) in `boundary`, at `base`.
pub fn post_request(
    client: &reqwest::Client,
    base: &str,
    boundary: &str,
    text: &str,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/xrpc/com.atproto.repo.createRecord"))
        .bearer_auth("did:plc:alice")
        .json(&post_input("did:plc:alice", boundary, text))
}

/// The `createRecord` input of a post by `repo` in `boundary`.
pub fn post_input(repo: &str, boundary: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "repo": repo,
        "collection": "zone.stratos.feed.post",
        "record": {
            "$type": "zone.stratos.feed.post",
            "text": text,
            "boundary": {"values": [{"value": boundary}]},
            "createdAt": "2026-11-28T12:00:00.000Z",
        },
    })
}

/// Sends [`post_request`]; the status and the answer.
pub async fn create_post(
    client: &reqwest::Client,
    base: &str,
    boundary: &str,
    text: &str,
) -> (u16, serde_json::Value) {
    let response = post_request(client, base, boundary, text)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}
