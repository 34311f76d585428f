//! Blobs over HTTP, kept in a local directory or an S3-compatible bucket: uploads with size and
//! type limits, downloads by the owner (others learn nothing), sealed at rest, and deleted when
//! the owner leaves with a purge.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::Value;
use stratos_command::blobs::{BlobLimits, BlobStore};
use stratos_command::http::HttpConfig;
use stratos_command::s3::{S3Bucket, S3Config};
use stratos_command::testing::S3Server;
use support::{Stack, serve_commands};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_in_a_local_directory() {
    let stack = Stack::new("sqlite").await;
    let store = BlobStore::Local(stack.blob_dir());
    blobs_are_private_sealed_and_limited(&stack, store, &stack.blob_dir()).await;
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_in_an_s3_compatible_bucket() {
    let stack = Stack::new("postgres").await;
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path(), "stratos-blobs");
    let store = BlobStore::S3(S3Bucket::new(server.config()));
    blobs_are_private_sealed_and_limited(&stack, store, objects.path()).await;
    // The objects are in the bucket, under the owner's prefix.
    assert!(!walk(&objects.path().join("stratos-blobs")).is_empty());
    // A bucket that does not exist is an error, not an empty store.
    let missing = S3Config {
        bucket: "no-such-bucket".into(),
        ..server.config()
    };
    let commands = stack
        .commands_storing_blobs_in(BlobStore::S3(S3Bucket::new(missing)))
        .await;
    let refused = commands
        .upload_blob(
            &ALICE.parse().unwrap(),
            "image/png",
            b"x",
            &BlobLimits::default(),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    stack.finish().await;
}

/// Uploads, downloads and limits through HTTP, with blobs in `blob_store`, whose bytes end up
/// somewhere under `storage` (checked for plaintext).
async fn blobs_are_private_sealed_and_limited(
    stack: &Stack,
    blob_store: BlobStore,
    storage: &std::path::Path,
) {
    let commands = stack.commands_storing_blobs_in(blob_store).await;
    for did in [ALICE, BOB] {
        commands
            .enroll(&did.parse().unwrap(), &["general".into()])
            .await
            .unwrap();
    }
    let config = HttpConfig {
        dev_auth: true,
        blobs: BlobLimits {
            max_bytes: 1024,
            ..BlobLimits::default()
        },
        ..HttpConfig::default()
    };
    let (base, _stop) = serve_commands(commands, config).await;
    let client = reqwest::Client::new();
    let upload = |caller: &'static str, mime: &'static str, bytes: Vec<u8>| {
        let request = client
            .post(format!("{base}/xrpc/com.atproto.repo.uploadBlob"))
            .bearer_auth(caller)
            .header("content-type", mime)
            .body(bytes);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let stored_before: std::collections::HashSet<_> = walk(storage).into_iter().collect();
    let secret = b"\x89PNG a very private picture".to_vec();
    let (status, uploaded) = upload(ALICE, "image/png", secret.clone()).await;
    assert_eq!(status, 200, "{uploaded}");
    let cid = uploaded["blob"]["ref"]["$link"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(cid, stratos_schema::data::cid_for_raw(&secret).to_string());
    assert_eq!(uploaded["blob"]["mimeType"], "image/png");
    assert_eq!(uploaded["blob"]["size"], secret.len());

    // Sealed on disk: the bytes are nowhere in the blob directory.
    let mut found_plaintext = false;
    for entry in walk(storage) {
        let bytes = std::fs::read(entry).unwrap();
        found_plaintext |= bytes.windows(secret.len()).any(|w| w == secret.as_slice());
    }
    assert!(!found_plaintext);

    let get = |caller: &'static str, did: &'static str| {
        let request = client
            .get(format!(
                "{base}/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}"
            ))
            .bearer_auth(caller);
        async move { request.send().await.unwrap() }
    };
    let response = get(ALICE, ALICE).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), secret);
    // Someone else learns nothing, not even that it exists.
    let response = get(BOB, ALICE).await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "BlobNotFound"
    );

    // Limits.
    let refused = [
        (
            upload(ALICE, "image/png", vec![1; 2048]).await,
            (413, "PayloadTooLarge"),
        ),
        (
            upload(ALICE, "application/x-msdownload", vec![1; 10]).await,
            (400, "InvalidMimeType"),
        ),
        (
            upload(ALICE, "image/png", Vec::new()).await,
            (400, "InvalidRequest"),
        ),
    ];
    for ((status, body), expected) in refused {
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            expected,
            "{body}"
        );
    }

    // Alice leaves with a purge: her blob is unreadable for good and gone from the blob
    // store; Bob's stays.
    let alices: Vec<_> = walk(storage)
        .into_iter()
        .filter(|path| !stored_before.contains(path))
        .collect();
    assert!(!alices.is_empty());
    let (status, bobs) = upload(BOB, "image/png", b"bob's picture".to_vec()).await;
    assert_eq!(status, 200, "{bobs}");
    let response = client
        .post(format!("{base}/xrpc/zone.stratos.enrollment.unenroll"))
        .bearer_auth(ALICE)
        .json(&serde_json::json!({"purge": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = get(ALICE, ALICE).await;
    assert_eq!(response.status().as_u16(), 400);
    for path in &alices {
        assert!(!path.exists(), "{} is still stored", path.display());
    }
    assert!(
        stack.store.blob_cids(ALICE).await.unwrap().is_empty(),
        "the purged blobs are still listed"
    );
    let bobs_cid = bobs["blob"]["ref"]["$link"].as_str().unwrap();
    let response = client
        .get(format!(
            "{base}/xrpc/com.atproto.sync.getBlob?did={BOB}&cid={bobs_cid}"
        ))
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), b"bob's picture");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
