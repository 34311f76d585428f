//! Helpers for tests that run `stratos` processes.

#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // tests fail loudly by design

pub mod atproto;
pub mod deployment;
pub mod stream;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the service at `base` answers its health check.
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a `stratos` process with SIGTERM; it must exit by itself, successfully, within 30 s.
pub fn stop(mut process: std::process::Child) {
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
        assert!(Instant::now() < deadline, "stratos did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
