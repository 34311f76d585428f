//! The CARs this service exports, checked by an independent implementation: the official
//! `@atproto/repo` package (pinned in `tests/atproto-stack/`, run with the Node that
//! `scripts/install-atproto-stack` installs) verifies a whole repository, proofs of a present
//! and an absent record, and a `since` diff applied on top of an earlier export.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{GENERAL, System};

const POST: &str = "zone.stratos.feed.post";

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Node of the test stack (installed on first use).
fn node() -> String {
    let output = std::process::Command::new(checkout().join("scripts/install-atproto-stack"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "installing the ATProto test stack failed"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

async fn save_car(
    system: &System,
    dir: &Path,
    name: &str,
    caller: &str,
    nsid: &str,
    query: &[(&str, &str)],
) -> String {
    let (status, bytes) = system.call_bytes(Some(caller), nsid, query).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_verify_with_the_reference_implementation() {
    let node = node();
    let system = System::start("sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    let alice = system.enroll("alice", &["general"]).await;
    let mut posts = Vec::new();
    for i in 0..10 {
        posts.push(system.post(&alice, &format!("post {i}"), &[GENERAL]).await);
    }
    let base = save_car(
        &system,
        dir.path(),
        "base.car",
        &alice,
        "zone.stratos.sync.getRepo",
        &[("did", &alice)],
    )
    .await;
    let since = system
        .store
        .head(&alice)
        .await
        .unwrap()
        .unwrap()
        .rev
        .to_string();

    // After the base export: three new posts and one deletion.
    let rkey = |uri: &str| uri.rsplit('/').next().unwrap().to_string();
    let mut expected_writes = Vec::new();
    for i in 0..3 {
        let (uri, _) = system.post(&alice, &format!("later {i}"), &[GENERAL]).await;
        expected_writes.push(format!("create {POST}/{}", rkey(&uri)));
    }
    let deleted = rkey(&posts[0].0);
    let (status, body) = system
        .call_post(
            Some(&alice),
            "com.atproto.repo.deleteRecord",
            &json!({"repo": alice, "collection": POST, "rkey": deleted}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    expected_writes.push(format!("delete {POST}/{deleted}"));
    expected_writes.sort();

    let repo = save_car(
        &system,
        dir.path(),
        "repo.car",
        &alice,
        "zone.stratos.sync.getRepo",
        &[("did", &alice)],
    )
    .await;
    let diff = save_car(
        &system,
        dir.path(),
        "diff.car",
        &alice,
        "zone.stratos.sync.getRepo",
        &[("did", &alice), ("since", &since)],
    )
    .await;
    let present = rkey(&posts[5].0);
    let present_car = save_car(
        &system,
        dir.path(),
        "present.car",
        &alice,
        "com.atproto.sync.getRecord",
        &[("did", &alice), ("collection", POST), ("rkey", &present)],
    )
    .await;
    let absent_car = save_car(
        &system,
        dir.path(),
        "absent.car",
        &alice,
        "com.atproto.sync.getRecord",
        &[("did", &alice), ("collection", POST), ("rkey", &deleted)],
    )
    .await;

    let signing_key = system
        .store
        .enrollment(&alice)
        .await
        .unwrap()
        .unwrap()
        .signing_key;
    let job = json!({
        "did": alice,
        "signingKey": signing_key,
        "repo": repo,
        "proofs": [
            {"car": present_car, "collection": POST, "rkey": present, "cid": posts[5].1},
            {"car": absent_car, "collection": POST, "rkey": deleted, "cid": null},
        ],
        "diff": {"base": base, "car": diff},
    });
    let job_path = dir.path().join("job.json");
    std::fs::write(&job_path, job.to_string()).unwrap();
    let output = std::process::Command::new(&node)
        .arg(checkout().join("tests/atproto-stack/verify-car.mjs"))
        .arg(&job_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "@atproto/repo refused an export: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["repo"]["records"], json!(12), "{verdict}");
    assert_eq!(verdict["proofs"], json!([true, true]), "{verdict}");
    assert_eq!(
        verdict["diff"]["writes"],
        json!(expected_writes),
        "{verdict}"
    );
    system.finish().await;
}
