//! Real parts for tests (feature `testing`):
//!
//! * an S3-compatible object store: s3rver, from the test stack's Node packages
//!   (`scripts/install-atproto-stack` installs them), on a free loopback port with one bucket.
//!   It checks access keys but not Signature V4 signatures (the unit tests of [`crate::s3`]
//!   check those against AWS's worked example);
//! * the DID document a test's `did:web` issuer serves.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stratos_schema::keys::PublicKey;

use crate::s3::S3Config;

/// The ports of test object stores (see [`stratos_log::testing::unassigned_port`]).
const S3_PORTS: std::ops::Range<u16> = 12_000..14_000;

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
        let port = stratos_log::testing::unassigned_port(S3_PORTS);
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

/// The DID document of `did` with `key` as its `#atproto` key, as a `did:web` host serves it.
pub fn did_document(did: &str, key: &PublicKey) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": key.to_multibase(),
        }],
    })
}
