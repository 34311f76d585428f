//! Shared helpers: a writer that builds commits like the command service, and an in-memory
//! projection that applies the arbiter's decisions.

#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use stratos_projector::arbiter::{ActorState, Applied, Head, Rejection, decide_commit};
use stratos_schema::Cid;
use stratos_schema::attestation::sign_attestation;
use stratos_schema::blocks::BlockMap;
use stratos_schema::commit::{SignedHere, UnsignedCommit};
use stratos_schema::data::to_dag_cbor;
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{
    CommitEvent, CommitSlice, EnrollmentEvent, OpAction, RepoOp, SealedRecord,
};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::{Mst, RecordOp, diff};
use stratos_schema::syntax::{Datetime, Did, Tid};

pub const BOUNDARY: &str = "did:web:stratos.example.com/general";

/// Builds commits the way the command service does, on its own view of the head.
#[derive(Clone)]
pub struct Writer {
    pub did: Did,
    pub key: Keypair,
    pub data_key: DataKey,
    pub tree: Mst,
    pub head: Option<Head>,
    pub micros: u64,
    /// Every MST node the writer built, for [`Writer::next`].
    pub blocks: BlockMap,
    /// Where its commits are remembered as signed in this process, if anywhere.
    pub signed_here: Option<SignedHere>,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            did: "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap(),
            key: Keypair::generate(KeyAlgorithm::P256),
            data_key: DataKey::generate(),
            tree: Mst::new(),
            head: None,
            micros: 1_732_000_000_000_000,
            blocks: BlockMap::new(),
            signed_here: None,
        }
    }

    /// A writer for another actor.
    pub fn for_did(did: &str) -> Self {
        Writer {
            did: did.parse().unwrap(),
            ..Writer::new()
        }
    }

    /// The actor's first `#enrollment`, with the genesis commit (an empty tree).
    pub fn enrollment(&mut self, service_key: &Keypair) -> EnrollmentEvent {
        self.micros += 1;
        let rev = Tid::from_parts(self.micros, 1);
        let empty = Mst::new();
        let commit =
            UnsignedCommit::new(self.did.clone(), empty.root_cid(), rev.clone()).sign(&self.key);
        let genesis = CommitSlice::new(&commit, &empty.new_nodes());
        self.blocks.extend(empty.new_nodes());
        self.head = Some(Head {
            commit: genesis.commit,
            rev,
            data: empty.root_cid(),
        });
        self.tree = empty;
        let signing_key = self.key.did_key();
        let boundaries = vec![BOUNDARY.to_string()];
        EnrollmentEvent {
            did: self.did.clone(),
            time: "2026-11-23T11:00:00.000Z".parse().unwrap(),
            attestation: sign_attestation(
                service_key,
                self.did.as_str(),
                &boundaries,
                &signing_key,
            ),
            signing_key,
            boundaries,
            service_endpoint: "https://stratos.example.com".into(),
            genesis: Some(genesis),
        }
    }

    /// The next commit on the writer's own head and blocks.
    pub fn next(&mut self, writes: &[(&str, Option<&str>)]) -> CommitEvent {
        let blocks = std::mem::take(&mut self.blocks);
        let event = self.commit(writes, &blocks);
        self.blocks = blocks;
        self.blocks.extend(self.tree.new_nodes());
        event
    }

    /// A commit of `writes` (`Some(text)` to put a post, `None` to delete) on the writer's head.
    pub fn commit(&mut self, writes: &[(&str, Option<&str>)], store: &BlockMap) -> CommitEvent {
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
        if let Some(signed_here) = &self.signed_here {
            let removed = changes.removed_nodes.clone();
            signed_here.remember(commit.to_block().0, self.key.public_key(), Some(removed));
        }
        let event = CommitEvent {
            did: self.did.clone(),
            time: "2026-11-23T12:00:00.000Z".parse::<Datetime>().unwrap(),
            slice: CommitSlice::new(&commit, &changes.created_nodes),
            prev_commit: self.head.as_ref().map(|h| h.commit),
            since: self.head.as_ref().map(|h| h.rev.clone()),
            ops,
            records,
            request: None,
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

pub fn op_of(action: OpAction, path: &str, cid: Option<Cid>, prev: Option<Cid>) -> RepoOp {
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
        prev_boundaries: Vec::new(),
    }
}

/// The projection: the actor's state and its stored blocks.
pub struct Projection {
    pub state: ActorState,
    pub blocks: BlockMap,
}

impl Projection {
    pub fn for_writer(writer: &Writer) -> Self {
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

    pub fn apply(&mut self, event: &CommitEvent) -> Result<Applied, Rejection> {
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
