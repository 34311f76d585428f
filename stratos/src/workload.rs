//! Synthetic actors and commits, built exactly as the command service builds them (MST, signed
//! v3 commit, sealed record blocks), for benchmarks and crash tests.

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use stratos_log::CommitLog;
use stratos_schema::attestation::sign_attestation;
use stratos_schema::blocks::BlockMap;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::{cid_for_dag_cbor, to_dag_cbor};
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{
    CommitEvent, CommitSlice, EnrollmentEvent, Event, OpAction, RepoOp, SealedRecord,
};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::{Mst, diff};
use stratos_schema::syntax::{Datetime, Did, Tid};
use stratos_store::Store;

/// The boundary every synthetic post is shared in.
pub const BOUNDARY: &str = "did:web:stratos.example.com/general";

/// Appends in flight at once.
const CONCURRENCY: usize = 256;

/// One synthetic actor and its repository as its writer sees it.
pub struct Actor {
    did: Did,
    key: Keypair,
    data_key: DataKey,
    tree: Mst,
    blocks: BlockMap,
    head: Option<(stratos_schema::Cid, Tid)>,
    clock: u64,
    posts: u64,
}

/// The DID of test actor number `index`: `did:plc:` plus a fixed-width base32 number.
pub fn bench_did(index: usize) -> String {
    format!("did:plc:bench{index:019}")
}

impl Actor {
    /// Actor number `index` (its DID is [`bench_did`]).
    pub fn new(index: usize) -> Self {
        Self {
            did: bench_did(index).parse().expect("a valid did:plc"),
            key: Keypair::generate(KeyAlgorithm::P256),
            data_key: DataKey::generate(),
            tree: Mst::new(),
            blocks: BlockMap::new(),
            head: None,
            clock: 1_764_000_000_000_000 + index as u64 * 1_000,
            posts: 0,
        }
    }

    fn next_rev(&mut self) -> Tid {
        self.clock += 1_000_000;
        Tid::from_parts(self.clock, 0)
    }

    fn time(&self) -> Datetime {
        Datetime::from_timestamp_micros(self.clock as i64).expect("a time in range")
    }

    /// The actor's `#enrollment` with its genesis commit.
    pub fn enrollment(&mut self, service_key: &Keypair) -> Event {
        let rev = self.next_rev();
        let commit = UnsignedCommit::new(self.did.clone(), self.tree.root_cid(), rev.clone())
            .sign(&self.key);
        let genesis = CommitSlice::new(&commit, &self.tree.new_nodes());
        self.head = Some((genesis.commit, rev));
        let signing_key = self.key.did_key();
        let boundaries = vec![BOUNDARY.to_string()];
        Event::Enrollment(EnrollmentEvent {
            did: self.did.clone(),
            time: self.time(),
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
        })
    }

    /// A `#commit` creating one post.
    pub fn post(&mut self) -> Result<Event> {
        self.posts += 1;
        let rev = self.next_rev();
        let record = to_dag_cbor(&serde_json::json!({
            "$type": "zone.stratos.feed.post",
            "text": format!("post {} of {}", self.posts, self.did),
            "boundary": {"$type": "zone.stratos.boundary.defs#Domains", "values": [{"value": BOUNDARY}]},
            "createdAt": self.time().to_string(),
        }))?;
        let cid = cid_for_dag_cbor(&record);
        let path = format!("zone.stratos.feed.post/{rev}");
        let tree = self.tree.insert(&self.blocks, &path, cid)?;
        let changes = diff(&self.blocks, &self.tree, &tree)?;
        let commit =
            UnsignedCommit::new(self.did.clone(), tree.root_cid(), rev.clone()).sign(&self.key);
        let slice = CommitSlice::new(&commit, &changes.created_nodes);
        let (prev_commit, since) = self.head.take().unzip();
        self.blocks.extend(changes.created_nodes);
        self.tree = tree;
        self.head = Some((slice.commit, rev));
        Ok(Event::Commit(CommitEvent {
            did: self.did.clone(),
            time: self.time(),
            slice,
            prev_commit,
            since,
            ops: vec![RepoOp {
                action: OpAction::Create,
                path,
                cid: Some(cid),
                prev: None,
                boundaries: vec![BOUNDARY.to_string()],
                prev_boundaries: Vec::new(),
            }],
            records: vec![SealedRecord::seal(&self.data_key, &self.did, cid, &record)],
            request: None,
        }))
    }
}

/// What [`fill`] wrote.
pub struct Filled {
    /// Events appended (enrollments and commits).
    pub events: u64,
    /// Commits among them.
    pub commits: u64,
}

/// Enrolls `actors` actors (their data keys into `store`'s key store) and appends `commits`
/// one-post commits spread round-robin over them. Calls `on_append(n)` as events are durable.
pub async fn fill(
    log: &Arc<dyn CommitLog>,
    store: &Store,
    actors: usize,
    commits: u64,
    on_append: impl Fn(u64),
) -> Result<Filled> {
    let service_key = Keypair::generate(KeyAlgorithm::Secp256k1);
    let mut people: Vec<Actor> = (0..actors.max(1)).map(Actor::new).collect();
    let mut round = Vec::with_capacity(people.len());
    for actor in &mut people {
        store
            .put_data_key(actor.did.as_str(), &actor.data_key)
            .await?;
        round.push(actor.enrollment(&service_key));
    }
    append_all(log, &round).await?;
    on_append(round.len() as u64);
    let mut events = round.len() as u64;
    let mut remaining = commits;
    while remaining > 0 {
        // One commit per actor per round: an actor's commits stay in order.
        round.clear();
        for actor in people.iter_mut().take(remaining as usize) {
            round.push(actor.post()?);
        }
        append_all(log, &round).await?;
        on_append(round.len() as u64);
        events += round.len() as u64;
        remaining -= round.len() as u64;
    }
    Ok(Filled { events, commits })
}

async fn append_all(log: &Arc<dyn CommitLog>, events: &[Event]) -> Result<()> {
    futures::stream::iter(events)
        .map(|event| log.append_event(event))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}
