//! An S3-compatible object store for tests: s3rver, from the test stack's Node packages
//! (`scripts/install-atproto-stack` installs them), on a free loopback port with one bucket.
//! It checks access keys but not Signature V4 signatures (the unit tests of [`crate::s3`] check
//! those against AWS's worked example).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::s3::S3Config;

/// A running object store, stopped when dropped.
pub struct S3Server {
    child: Child,
    /// Its endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Its one bucket.
    pub bucket: String,
}

impl S3Server {
    /// Starts a store keeping its objects under `dir`, with an empty `bucket`.
    pub fn start(dir: &Path, bucket: &str) -> Self {
        let root = checkout();
        let install = Command::new(root.join("scripts/install-atproto-stack"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/install-atproto-stack");
        assert!(install.status.success(), "installing the test stack failed");
        let node = String::from_utf8_lossy(&install.stdout).trim().to_string();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(node)
            .arg(root.join("tests/atproto-stack/node_modules/s3rver/bin/s3rver.js"))
            .args(["--directory", &dir.display().to_string()])
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--silent", "--configure-bucket", bucket])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting s3rver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3rver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_string(),
        }
    }

    /// How to reach the bucket, with s3rver's credentials.
    pub fn config(&self) -> S3Config {
        S3Config {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: self.bucket.clone(),
            access_key: "S3RVER".into(),
            secret_key: stratos_xrpc::auth::Secret::new("S3RVER"),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
