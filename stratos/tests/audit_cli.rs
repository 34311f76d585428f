//! `stratos audit` against a real embedded log file, run as a real process.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;
use stratos_log::{CommitLog, EmbeddedConfig, EmbeddedLog};
use stratos_schema::attestation::sign_attestation;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::{cid_for_dag_cbor, to_dag_cbor};
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{
    CommitEvent, CommitSlice, EnrollmentEvent, Event, OpAction, RepoOp, SealedRecord,
};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use stratos_schema::syntax::{Did, Tid};

const BOUNDARY: &str = "did:web:stratos.example.com/general";

struct Actor {
    did: Did,
    key: Keypair,
    data_key: DataKey,
    tree: Mst,
    head: (stratos_schema::Cid, Tid),
    micros: u64,
}

impl Actor {
    fn enroll() -> (Self, Event) {
        let did: Did = "did:plc:audit0audit0audit0audit0".parse().unwrap();
        let key = Keypair::generate(KeyAlgorithm::P256);
        let service = Keypair::generate(KeyAlgorithm::Secp256k1);
        let rev = Tid::from_parts(1_732_000_000_000_000, 1);
        let genesis =
            UnsignedCommit::new(did.clone(), Mst::new().root_cid(), rev.clone()).sign(&key);
        let slice = CommitSlice::new(&genesis, &Mst::new().node_blocks(&()).unwrap());
        let event = Event::Enrollment(EnrollmentEvent {
            did: did.clone(),
            time: "2026-11-23T12:00:00.000Z".parse().unwrap(),
            signing_key: key.did_key(),
            boundaries: vec![BOUNDARY.into()],
            attestation: sign_attestation(&service, did.as_str(), &[BOUNDARY], &key.did_key()),
            service_endpoint: "https://stratos.example.com".into(),
            genesis: Some(slice.clone()),
        });
        let actor = Actor {
            did,
            key,
            data_key: DataKey::generate(),
            tree: Mst::new(),
            head: (slice.commit, rev),
            micros: 1_732_000_000_000_000,
        };
        (actor, event)
    }

    /// A commit creating one post, signed with `signer` (the actor's key unless forging).
    fn post(&mut self, rkey: &str, signer: Option<&Keypair>) -> Event {
        let block =
            to_dag_cbor(&serde_json::json!({"$type": "zone.stratos.feed.post", "text": rkey}))
                .unwrap();
        let cid = cid_for_dag_cbor(&block);
        let path = format!("zone.stratos.feed.post/{rkey}");
        let new = self.tree.insert(&(), &path, cid).unwrap();
        self.micros += 1;
        let rev = Tid::from_parts(self.micros, 1);
        let commit = UnsignedCommit::new(self.did.clone(), new.root_cid(), rev.clone())
            .sign(signer.unwrap_or(&self.key));
        let event = CommitEvent {
            did: self.did.clone(),
            time: "2026-11-23T12:00:01.000Z".parse().unwrap(),
            slice: CommitSlice::new(&commit, &new.new_nodes()),
            prev_commit: Some(self.head.0),
            since: Some(self.head.1.clone()),
            ops: vec![RepoOp {
                action: OpAction::Create,
                path,
                cid: Some(cid),
                prev: None,
                boundaries: vec![BOUNDARY.into()],
                prev_boundaries: Vec::new(),
            }],
            records: vec![SealedRecord::seal(&self.data_key, &self.did, cid, &block)],
            request: None,
        };
        if signer.is_none() {
            self.head = (event.slice.commit, rev);
            self.tree = new;
        }
        Event::Commit(event)
    }
}

fn audit(path: &std::path::Path, did: &Did, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stratos"))
        .args([
            "audit",
            did.as_str(),
            "--log-file",
            path.to_str().unwrap(),
            "--partitions",
            "4",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test]
async fn audit_checks_every_event_and_flags_a_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let mut config = EmbeddedConfig::new(&path);
    config.partitions = 4;
    let log = EmbeddedLog::open(config).await.unwrap();

    let (mut actor, enrollment) = Actor::enroll();
    log.append_event(&enrollment).await.unwrap();
    log.append_event(&actor.post("3l2aaaaaaaa22", None))
        .await
        .unwrap();
    log.append_event(&actor.post("3l2bbbbbbbb22", None))
        .await
        .unwrap();
    let honest = audit(&path, &actor.did, &[]);
    let text = String::from_utf8_lossy(&honest.stdout);
    assert!(honest.status.success(), "{text}");
    assert!(text.contains("#enrollment"), "{text}");
    assert_eq!(text.matches("signature=ok chain=ok").count(), 3, "{text}");
    assert!(
        text.contains("create zone.stratos.feed.post/3l2bbbbbbbb22"),
        "{text}"
    );
    assert!(
        text.contains("3 events of did:plc:audit0audit0audit0audit0"),
        "{text}"
    );

    let forger = Keypair::generate(KeyAlgorithm::P256);
    log.append_event(&actor.post("3l2cccccccc22", Some(&forger)))
        .await
        .unwrap();
    let forged = audit(&path, &actor.did, &["--json"]);
    assert!(!forged.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&forged.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2]["signature"], "ok");
    assert!(
        lines[3]["signature"]["failed"].is_string(),
        "{:?}",
        lines[3]
    );
}
