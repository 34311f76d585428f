//! `stratos debug` run as a real process.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::io::Write;
use std::process::{Command, Output, Stdio};
use stratos_schema::Cid;
use stratos_schema::blocks::BlockMap;
use stratos_schema::car::write_car;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::{cid_for_dag_cbor, to_dag_cbor};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use stratos_schema::syntax::{Did, Tid};

fn stratos(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratos"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stratos starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn mst_root_matches_the_library() {
    let lines: Vec<(String, Cid)> = (0..100u64)
        .map(|i| {
            (
                format!("zone.stratos.feed.post/{i:013}"),
                cid_for_dag_cbor(&i.to_be_bytes()),
            )
        })
        .collect();
    let input: String = lines.iter().map(|(k, c)| format!("{k} {c}\n")).collect();
    let expected = lines
        .iter()
        .fold(Mst::new(), |t, (k, c)| t.insert(&(), k, *c).unwrap())
        .root_cid();
    let output = stratos(&["debug", "mst-root"], &input);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output).trim(), expected.to_string());

    let empty = stratos(&["debug", "mst-root"], "");
    assert_eq!(
        stdout(&empty).trim(),
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    );
}

#[test]
fn mst_root_rejects_malformed_lines() {
    for input in [
        "no-cid-here\n",
        "a/b notacid\n",
        "bad key bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm\n",
    ] {
        let output = stratos(&["debug", "mst-root"], input);
        assert!(!output.status.success(), "{input:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("line 1"));
    }
}

/// A signed repository with `count` records, as CAR blocks.
fn repository(key: &Keypair, count: u64) -> (Cid, BlockMap) {
    let mut blocks = BlockMap::new();
    let mut tree = Mst::new();
    for i in 0..count {
        let record =
            serde_json::json!({"$type": "zone.stratos.feed.post", "text": format!("post {i}")});
        let cid = blocks.insert_dag_cbor(to_dag_cbor(&record).unwrap());
        tree = tree
            .insert(&(), &format!("zone.stratos.feed.post/{i:013}"), cid)
            .unwrap();
    }
    blocks.extend(tree.node_blocks(&()).unwrap());
    let did: Did = "did:plc:abcdefghijklmnopqrstuvwx".parse().unwrap();
    let rev = Tid::from_parts(1_700_000_000_000_000, 7);
    let commit = UnsignedCommit::new(did, tree.root_cid(), rev).sign(key);
    let (commit_cid, bytes) = commit.to_block();
    blocks.insert(commit_cid, bytes);
    (commit_cid, blocks)
}

fn car_file(dir: &tempfile::TempDir, name: &str, root: Cid, blocks: &BlockMap) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, write_car(&[root], blocks.iter())).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn car_reports_a_valid_signed_repository() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate(KeyAlgorithm::P256);
    let (root, blocks) = repository(&key, 25);
    let path = car_file(&dir, "repo.car", root, &blocks);

    let output = stratos(&["debug", "car", &path, "--key", &key.did_key()], "");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&format!("root:      {root}")), "{text}");
    assert!(text.contains("mst:       ok: 25 records"), "{text}");
    assert!(text.contains("signature: ok"), "{text}");
    assert!(
        text.contains("did=did:plc:abcdefghijklmnopqrstuvwx version=3"),
        "{text}"
    );

    let json = stratos(&["debug", "car", &path, "--json"], "");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["recordCount"], 25);
    assert_eq!(report["blocks"], blocks.len());
}

#[test]
fn car_fails_on_a_wrong_key_a_bad_block_or_a_missing_record() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate(KeyAlgorithm::P256);
    let other = Keypair::generate(KeyAlgorithm::P256);
    let (root, blocks) = repository(&key, 10);

    let path = car_file(&dir, "repo.car", root, &blocks);
    let wrong_key = stratos(&["debug", "car", &path, "--key", &other.did_key()], "");
    assert!(!wrong_key.status.success());
    assert!(stdout(&wrong_key).contains("signature: FAILED"));

    let mut missing = blocks.clone();
    let record = *blocks
        .iter()
        .find(|(cid, bytes)| **cid != root && bytes.len() < 60)
        .unwrap()
        .0;
    missing.remove(&record);
    let path = car_file(&dir, "missing.car", root, &missing);
    let output = stratos(&["debug", "car", &path], "");
    assert!(!output.status.success());
    assert!(
        stdout(&output).contains("records:   FAILED"),
        "{}",
        stdout(&output)
    );

    let mut tampered = blocks.clone();
    tampered.insert(record, to_dag_cbor(&"tampered").unwrap());
    let path = car_file(&dir, "tampered.car", root, &tampered);
    let output = stratos(&["debug", "car", &path], "");
    assert!(!output.status.success());
    assert!(
        stdout(&output).contains("cids:      FAILED"),
        "{}",
        stdout(&output)
    );

    let path = dir.path().join("garbage.car");
    std::fs::write(&path, b"this is not a car").unwrap();
    let output = stratos(&["debug", "car", path.to_str().unwrap()], "");
    assert!(!output.status.success());
}
