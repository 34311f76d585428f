//! The repo projector's arbiter: chains apply, forks and forgeries are rejected with reasons.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use stratos_projector::arbiter::{
    ActorState, Applied, Head, RecordChange, Rejection, decide_commit,
};
use stratos_schema::Cid;
use stratos_schema::blocks::BlockMap;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::to_dag_cbor;
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{CommitEvent, CommitSlice, OpAction, RepoOp, SealedRecord};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::{Mst, RecordOp, diff};
use stratos_schema::syntax::{Datetime, Did, Tid};

const BOUNDARY: &str = "did:web:stratos.example.com/general";

/// Builds commits the way the command service does, on its own view of the head.
#[derive(Clone)]
struct Writer {
    did: Did,
    key: Keypair,
    data_key: DataKey,
    tree: Mst,
    head: Option<Head>,
    micros: u64,
}

impl Writer {
    fn new() -> Self {
        Writer {
            did: "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap(),
            key: Keypair::generate(KeyAlgorithm::P256),
            data_key: DataKey::generate(),
            tree: Mst::new(),
            head: None,
            micros: 1_732_000_000_000_000,
        }
    }

    /// A commit of `writes` (`Some(text)` to put a post, `None` to delete) on the writer's head.
    fn commit(&mut self, writes: &[(&str, Option<&str>)], store: &BlockMap) -> CommitEvent {
        let mut records = Vec::new();
        let mut new = self.tree.clone();
        for (rkey, text) in writes {
            let path = format!("zone.stratos.feed.post/{rkey}");
            new = match text {
                Some(text) => {
                    let block = to_dag_cbor(&serde_json::json!({
                        "$type": "zone.stratos.feed.post", "text": text,
                        "boundary": {"values": [{"value": BOUNDARY}]},
                        "createdAt": "2026-11-23T12:00:00.000Z"
                    }))
                    .unwrap();
                    let cid = stratos_schema::data::cid_for_dag_cbor(&block);
                    records.push(SealedRecord::seal(&self.data_key, &self.did, cid, &block));
                    new.insert(store, &path, cid).unwrap()
                }
                None => new.remove(store, &path).unwrap().0,
            };
        }
        let changes = diff(store, &self.tree, &new).unwrap();
        let ops = changes
            .ops
            .iter()
            .map(|op| match op {
                RecordOp::Create { key, cid } => op_of(OpAction::Create, key, Some(*cid), None),
                RecordOp::Update { key, prev, cid } => {
                    op_of(OpAction::Update, key, Some(*cid), Some(*prev))
                }
                RecordOp::Delete { key, prev } => op_of(OpAction::Delete, key, None, Some(*prev)),
            })
            .collect();
        self.micros += 1;
        let rev = Tid::from_parts(self.micros, 1);
        let commit =
            UnsignedCommit::new(self.did.clone(), new.root_cid(), rev.clone()).sign(&self.key);
        let event = CommitEvent {
            did: self.did.clone(),
            time: "2026-11-23T12:00:00.000Z".parse::<Datetime>().unwrap(),
            slice: CommitSlice::new(&commit, &changes.created_nodes),
            prev_commit: self.head.as_ref().map(|h| h.commit),
            since: self.head.as_ref().map(|h| h.rev.clone()),
            ops,
            records,
        };
        self.head = Some(Head {
            commit: event.slice.commit,
            rev,
            data: new.root_cid(),
        });
        self.tree = new;
        event
    }
}

fn op_of(action: OpAction, path: &str, cid: Option<Cid>, prev: Option<Cid>) -> RepoOp {
    let boundaries = if cid.is_some() {
        vec![BOUNDARY.to_string()]
    } else {
        vec![]
    };
    RepoOp {
        action,
        path: path.to_string(),
        cid,
        prev,
        boundaries,
    }
}

/// The projection: the actor's state and its stored blocks.
struct Projection {
    state: ActorState,
    blocks: BlockMap,
}

impl Projection {
    fn for_writer(writer: &Writer) -> Self {
        Projection {
            state: ActorState {
                enrolled: true,
                signing_key: writer.key.public_key(),
                head: None,
                data_key: Some(writer.data_key.clone()),
            },
            blocks: BlockMap::new(),
        }
    }

    fn apply(&mut self, event: &CommitEvent) -> Result<Applied, Rejection> {
        let applied = decide_commit(Some(&self.state), event, &self.blocks)?;
        for cid in &applied.removed_blocks {
            self.blocks.remove(cid);
        }
        // Record blocks live in the record rows here; MST nodes and commits in `blocks`.
        self.blocks.extend(applied.new_blocks.clone());
        self.state.head = Some(applied.head.clone());
        Ok(applied)
    }
}

#[test]
fn a_chain_of_creates_updates_and_deletes_applies() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    let first = writer.commit(
        &[
            ("3l2aaaaaaaa22", Some("one")),
            ("3l2bbbbbbbb22", Some("two")),
        ],
        &projection.blocks,
    );
    let applied = projection.apply(&first).unwrap();
    assert_eq!(applied.records.len(), 2);
    assert!(
        matches!(&applied.records[0], RecordChange::Put { block: Some(b), boundaries, .. }
        if boundaries == &[BOUNDARY.to_string()] && b.windows(3).any(|w| w == b"one"))
    );

    let second = writer.commit(
        &[
            ("3l2aaaaaaaa22", Some("one, edited")),
            ("3l2bbbbbbbb22", None),
        ],
        &projection.blocks,
    );
    let applied = projection.apply(&second).unwrap();
    let [
        RecordChange::Put { cid: updated, .. },
        RecordChange::Delete { prev: deleted, .. },
    ] = applied.records.as_slice()
    else {
        panic!("an update and a delete: {:?}", applied.records);
    };
    // The replaced and deleted record blocks are released and the old commit is removed.
    let first_records: Vec<Cid> = first.ops.iter().filter_map(|op| op.cid).collect();
    assert!(applied.released_records.contains(deleted));
    assert!(
        first_records
            .iter()
            .all(|cid| applied.released_records.contains(cid))
    );
    assert!(applied.removed_blocks.contains(&first.slice.commit));
    assert_ne!(updated, &first_records[0]);
    assert_eq!(
        projection.state.head.as_ref().unwrap().commit,
        second.slice.commit
    );

    // Every node of the head's tree is still stored: garbage collection kept what is reachable.
    let tree = Mst::load(&projection.blocks, writer.tree.root_cid()).unwrap();
    assert_eq!(tree.entries(&projection.blocks).unwrap().len(), 1);
    tree.node_blocks(&projection.blocks).unwrap();
}

#[test]
fn of_two_commits_on_the_same_head_exactly_one_applies() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    let base = writer.commit(&[("3l2aaaaaaaa22", Some("base"))], &projection.blocks);
    projection.apply(&base).unwrap();
    let mut rival = writer.clone();
    let ours = writer.commit(&[("3l2bbbbbbbb22", Some("ours"))], &projection.blocks);
    let theirs = rival.commit(&[("3l2ccccccccc2", Some("theirs"))], &projection.blocks);
    projection.apply(&ours).unwrap();
    assert!(matches!(
        projection.apply(&theirs),
        Err(Rejection::NotOnHead { .. })
    ));
    // Redelivery of an applied commit is rejected too: it no longer builds on the head.
    assert!(matches!(
        projection.apply(&ours),
        Err(Rejection::NotOnHead { .. })
    ));
}

#[test]
fn forged_unknown_and_unenrolled_are_rejected() {
    let mut writer = Writer::new();
    let projection = Projection::for_writer(&writer);
    let event = writer.commit(&[("3l2aaaaaaaa22", Some("hello"))], &projection.blocks);

    assert_eq!(
        decide_commit(None, &event, &projection.blocks),
        Err(Rejection::UnknownActor)
    );
    let mut unenrolled = projection.state.clone();
    unenrolled.enrolled = false;
    assert_eq!(
        decide_commit(Some(&unenrolled), &event, &projection.blocks),
        Err(Rejection::NotEnrolled)
    );
    let mut other_key = projection.state.clone();
    other_key.signing_key = Keypair::generate(KeyAlgorithm::P256).public_key();
    assert_eq!(
        decide_commit(Some(&other_key), &event, &projection.blocks),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn ops_that_do_not_match_the_tree_are_rejected() {
    let mut writer = Writer::new();
    let projection = Projection::for_writer(&writer);
    let event = writer.commit(
        &[("3l2aaaaaaaa22", Some("a")), ("3l2bbbbbbbb22", Some("b"))],
        &projection.blocks,
    );
    let mut dropped = event.clone();
    dropped.ops.pop();
    assert!(matches!(
        decide_commit(Some(&projection.state), &dropped, &projection.blocks),
        Err(Rejection::OpsMismatch(_))
    ));
    let mut unsealed = event.clone();
    unsealed.records.clear();
    assert!(matches!(
        decide_commit(Some(&projection.state), &unsealed, &projection.blocks),
        Err(Rejection::BadRecord(_))
    ));
}

#[test]
fn a_purged_actor_replays_without_content() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    projection.state.data_key = None;
    let event = writer.commit(&[("3l2aaaaaaaa22", Some("secret"))], &projection.blocks);
    let applied = projection.apply(&event).unwrap();
    assert!(matches!(
        &applied.records[0],
        RecordChange::Put { block: None, .. }
    ));
}
