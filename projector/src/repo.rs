//! The repo projector: applies the log to the repo projection.
//!
//! Each batch of events (of one or more partitions) is written in **one transaction** together
//! with the partitions' next offsets, so a crash loses at most an uncommitted batch and a
//! redelivered event is never applied twice. Decisions come from the [`arbiter`](crate::arbiter), which reads only the event and the
//! actor's projected state, so a replay reaches the same state and the same per-actor sequence
//! numbers. After each batch, waiters hear which offsets are done and which were rejected.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use stratos_log::LogRecord;
use stratos_schema::blocks::BlockMap;
use stratos_schema::commit::SignedHere;
use stratos_schema::events::{
    BoundariesEvent, CommitEvent, EnrollmentEvent, Event, ImportEvent, OpAction, SequencedCommit,
    UnenrollEvent,
};
use stratos_schema::keys::PublicKey;
use stratos_schema::mst::Mst;
use stratos_store::{
    BatchProgress, Enrollment, Fence, ProjectionBatch, RecordRow, Store, StoreError, StoredRequest,
};
use tokio::sync::broadcast;

use crate::arbiter::{
    ActorState, Applied, Head, RecordChange, Rejection, decide_commit_signed_here,
};
use crate::runner::Positions;

/// The rejection reason of a commit answering a request that was already answered; the
/// request's key follows.
pub const DUPLICATE_REQUEST: &str = "duplicate request";

/// The consumer name the repo projector stores its positions under.
pub const CONSUMER: &str = "repo";

/// How many actors the projector keeps in memory before it starts over.
const CACHED_ACTORS: usize = 16_384;

/// How many tree nodes the projector keeps in memory, over all actors, before it drops them
/// (they are read again from the store as commits reach them).
const CACHED_NODES: usize = 32_768;

/// A Postgres notification payload stays under this size (the server's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7_000;

/// What a batch did to a partition: every offset before `next_offset` is decided, and these
/// were rejected. Sent to in-process waiters and, on Postgres, to every process (`NOTIFY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The partition.
    #[serde(rename = "p")]
    pub partition: u32,
    /// The batch's first offset (where the partition stood before it).
    #[serde(rename = "f", default)]
    pub from: u64,
    /// Offsets below this one are decided.
    #[serde(rename = "n")]
    pub next_offset: u64,
    /// The rejected offsets of the batch with their reasons.
    #[serde(rename = "r")]
    pub rejected: Vec<(u64, String)>,
    /// `true` when `rejected` was left out to fit a notification: ask the store instead.
    #[serde(rename = "t", default)]
    pub truncated: bool,
}

impl Progress {
    /// The notification payload (JSON, shortened to fit).
    pub fn to_payload(&self) -> String {
        let full = serde_json::to_string(self).unwrap_or_default();
        if full.len() <= MAX_PAYLOAD {
            return full;
        }
        serde_json::to_string(&Progress {
            rejected: Vec::new(),
            truncated: true,
            ..self.clone()
        })
        .unwrap_or_default()
    }

    /// Reads a notification payload.
    pub fn from_payload(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The store failed; the batch was not applied and will be read again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] stratos_log::LogError),
    /// A batch's write was cancelled before it finished (the runtime is shutting down).
    #[error("a projection write was cancelled")]
    Stopped,
}

/// An actor as the projector knows it between events.
struct CachedActor {
    state: ActorState,
    /// The nodes of the head's MST that commits have reached so far (read from the store on
    /// first use, or built by the commits), and the head commit.
    blocks: BlockMap,
    enrollment: Enrollment,
    last_seq: u64,
}

/// Applies the log's events to the repo projection. Owns its actors' cached state: every
/// partition has one repo projector, and an actor's events sit in one partition.
pub struct RepoProjector {
    store: Store,
    progress: broadcast::Sender<Progress>,
    actors: HashMap<String, CachedActor>,
    /// The stored positions, once read: this projector is the only one that moves them.
    positions: Positions,
    /// Commits the command side of this process signed.
    signed_here: Option<SignedHere>,
    /// The lease its batches commit under.
    fence: Fence,
    /// What was decided since the last write was taken ([`RepoProjector::take_write`]).
    open: OpenBatch,
    /// The actors of the last write taken, which may still be under way: like those of the
    /// open batch, their cached state is ahead of the store, so it stays when the cache is
    /// trimmed.
    writing_actors: HashSet<String>,
    /// The requests that write answers (actor, key).
    writing_requests: HashSet<(String, String)>,
}

/// Decided events not yet handed to a write.
#[derive(Default)]
struct OpenBatch {
    changes: ProjectionBatch,
    /// Each partition's decided offsets, from where its last write left it.
    offsets: BTreeMap<u32, Range<u64>>,
    rejected: BTreeMap<u32, Vec<(u64, String)>>,
    actors: HashSet<String>,
    events: u64,
}

/// The outcome of one event inside a batch.
type Decision = Result<(), String>;

impl RepoProjector {
    /// A projector that announces its progress on `progress`.
    pub fn new(store: Store, progress: broadcast::Sender<Progress>) -> Self {
        Self {
            store,
            progress,
            actors: HashMap::new(),
            positions: Positions::default(),
            signed_here: None,
            fence: Fence::default(),
            open: OpenBatch::default(),
            writing_actors: HashSet::new(),
            writing_requests: HashSet::new(),
        }
    }

    /// Commits batches only while the lease behind `fence` is this process's.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// Takes the signatures of commits in `signed_here` (signed by this process's command
    /// side) as checked.
    pub fn with_signed_here(mut self, signed_here: SignedHere) -> Self {
        self.signed_here = Some(signed_here);
        self
    }

    /// Where the projection of `partition` will read next (0 on a fresh projection).
    pub async fn position(&mut self, partition: u32) -> Result<u64, ProjectorError> {
        let stored = self.store.position(CONSUMER, partition);
        self.positions.get(partition, stored).await
    }

    /// Applies a batch of records (each partition's consecutive and in order) in one
    /// transaction, and announces what it did to each partition. Records below their
    /// partition's stored position (redelivery) are skipped.
    pub async fn apply_batch(
        &mut self,
        records: &[LogRecord],
    ) -> Result<Vec<Progress>, ProjectorError> {
        let written = match self.decide(records).await {
            Ok(()) => self.take_write().run().await,
            Err(error) => Err(error),
        };
        if written.is_err() {
            self.forget();
        }
        written
    }

    /// Decides records (each partition's consecutive and in order, following those decided
    /// before) into the open batch, on the state the batches decided before leave, whether
    /// written yet or not. Records below their partition's decided position are skipped.
    pub async fn decide(&mut self, records: &[LogRecord]) -> Result<(), ProjectorError> {
        self.trim_cache();
        let deciding = std::time::Instant::now();
        for record in records {
            let partition = record.position.partition;
            let decided = self.position(partition).await?;
            if record.position.offset < decided {
                continue;
            }
            self.open
                .offsets
                .entry(partition)
                .or_insert(decided..decided)
                .end = record.position.offset + 1;
            self.positions
                .advance([(partition, record.position.offset + 1)]);
            self.open.actors.insert(record.key.clone());
            self.open.events += 1;
            let mut changes = std::mem::take(&mut self.open.changes);
            let decision = self.apply_one(&mut changes, record).await;
            self.open.changes = changes;
            if let Err(reason) = decision? {
                let offset = record.position.offset;
                self.open
                    .changes
                    .reject(partition, offset, &record.key, &reason);
                self.open
                    .rejected
                    .entry(partition)
                    .or_default()
                    .push((offset, reason));
            }
        }
        metrics::histogram!("stratos_projector_decide_seconds", "projector" => "repo")
            .record(deciding.elapsed().as_secs_f64());
        Ok(())
    }

    /// Hands what was decided since the last call to a write: one transaction that announces
    /// what it did once committed. Each write must finish before the next one starts; the
    /// next batch may be decided meanwhile.
    pub fn take_write(&mut self) -> BatchWrite {
        let mut open = std::mem::take(&mut self.open);
        let progress = open
            .offsets
            .iter()
            .map(|(partition, range)| Progress {
                partition: *partition,
                from: range.start,
                next_offset: range.end,
                rejected: open.rejected.remove(partition).unwrap_or_default(),
                truncated: false,
            })
            .collect();
        self.writing_requests = open.changes.requests().collect();
        self.writing_actors = open.actors;
        BatchWrite {
            store: self.store.clone(),
            fence: self.fence.clone(),
            announce: self.progress.clone(),
            events: open.events,
            batch: open.changes,
            progress,
        }
    }

    /// Forgets everything decided since the last batch known to be written (after a failure,
    /// when a write may or may not have committed): the cache and the positions are read again.
    pub fn forget(&mut self) {
        self.actors.clear();
        self.positions.forget();
        self.open = OpenBatch::default();
        self.writing_actors.clear();
        self.writing_requests.clear();
    }

    /// Keeps the cache within its bounds. Only actors whose state is all in the store are
    /// dropped: those of the open batch and of the write that may be under way stay.
    fn trim_cache(&mut self) {
        let (open, writing) = (&self.open.actors, &self.writing_actors);
        let ahead = |did: &String| open.contains(did) || writing.contains(did);
        if self.actors.len() > CACHED_ACTORS {
            self.actors.retain(|did, _| ahead(did));
        }
        if self.actors.values().map(|a| a.blocks.len()).sum::<usize>() > CACHED_NODES {
            for (did, actor) in self.actors.iter_mut() {
                if !ahead(did) {
                    actor.blocks = BlockMap::new();
                }
            }
        }
    }

    async fn apply_one(
        &mut self,
        batch: &mut ProjectionBatch,
        record: &LogRecord,
    ) -> Result<Decision, StoreError> {
        let event = match Event::decode(&record.payload) {
            Ok(event) => event,
            Err(error) => return Ok(Err(format!("undecodable event: {error}"))),
        };
        if event.did().as_str() != record.key {
            return Ok(Err(format!(
                "event of {} appended under the key {}",
                event.did(),
                record.key
            )));
        }
        match event {
            Event::Enrollment(event) => self.enroll(batch, event).await,
            Event::Commit(event) => self.commit(batch, &event).await,
            Event::Import(event) => self.import(batch, event).await,
            Event::Unenroll(event) => self.unenroll(batch, &event).await,
            Event::Boundaries(event) => self.set_boundaries(batch, &event).await,
        }
    }

    /// The actor's cached state, loaded from the store on first use; `None` if never enrolled.
    async fn actor(&mut self, did: &str) -> Result<Option<&mut CachedActor>, StoreError> {
        if !self.actors.contains_key(did) {
            let Some(enrollment) = self.store.enrollment(did).await? else {
                return Ok(None);
            };
            let Ok(signing_key) = PublicKey::from_did_key(&enrollment.signing_key) else {
                return Err(StoreError::Corrupt(format!("signing key of {did}")));
            };
            let head = self.store.head(did).await?;
            let actor = CachedActor {
                state: ActorState {
                    enrolled: enrollment.active,
                    signing_key,
                    head,
                    data_key: self.store.data_key(did).await?,
                },
                blocks: BlockMap::new(),
                last_seq: self.store.last_seq(did).await?,
                enrollment,
            };
            self.actors.insert(did.to_string(), actor);
        }
        Ok(self.actors.get_mut(did))
    }

    async fn enroll(
        &mut self,
        batch: &mut ProjectionBatch,
        event: EnrollmentEvent,
    ) -> Result<Decision, StoreError> {
        let did = event.did.to_string();
        let signing_key = match PublicKey::from_did_key(&event.signing_key) {
            Ok(key) => key,
            Err(error) => return Ok(Err(format!("signing key: {error}"))),
        };
        let data_key = self.store.data_key(&did).await?;
        let existing = self.actor(&did).await?;
        let enrolled_at = event.time.to_string();
        let enrollment = Enrollment {
            did: did.clone(),
            signing_key: event.signing_key.clone(),
            boundaries: event.boundaries.clone(),
            service_endpoint: event.service_endpoint.clone(),
            enrolled_at: enrolled_at.clone(),
            updated_at: enrolled_at,
            active: true,
        };
        if let Some(actor) = existing
            && actor.state.head.is_some()
        {
            // A re-enrollment keeps the repository.
            batch.put_enrollment(enrollment.clone());
            actor.state.enrolled = true;
            actor.state.signing_key = signing_key;
            actor.state.data_key = data_key;
            actor.enrollment = enrollment;
            return Ok(Ok(()));
        }
        let Some(genesis) = &event.genesis else {
            return Ok(Err(
                "a first enrollment must carry the genesis commit".into()
            ));
        };
        let (commit, blocks) = match genesis.open(&event.did) {
            Ok(opened) => opened,
            Err(error) => return Ok(Err(format!("genesis commit: {error}"))),
        };
        if commit.verify(&signing_key).is_err() {
            return Ok(Err(Rejection::BadSignature.to_string()));
        }
        if commit.data != Mst::new().root_cid() {
            return Ok(Err("the genesis commit must hold an empty tree".into()));
        }
        let head = Head {
            commit: genesis.commit,
            rev: commit.rev.clone(),
            data: commit.data,
        };
        batch.put_enrollment(enrollment.clone());
        for (cid, bytes) in blocks.iter() {
            batch.put_block(&did, *cid, bytes.to_vec());
        }
        batch.set_head(&did, head.clone());
        let last_seq = self.store.last_seq(&did).await?;
        self.actors.insert(
            did,
            CachedActor {
                state: ActorState {
                    enrolled: true,
                    signing_key,
                    head: Some(head),
                    data_key,
                },
                blocks,
                enrollment,
                last_seq,
            },
        );
        Ok(Ok(()))
    }

    async fn commit(
        &mut self,
        batch: &mut ProjectionBatch,
        event: &CommitEvent,
    ) -> Result<Decision, StoreError> {
        let did = event.did.to_string();
        // A retried idempotent request is answered once.
        if let Some(request) = &event.request
            && (batch.has_request(&did, &request.key)
                || self
                    .writing_requests
                    .contains(&(did.clone(), request.key.clone()))
                || self.store.request(&did, &request.key).await?.is_some())
        {
            return Ok(Err(format!("{DUPLICATE_REQUEST} {}", request.key)));
        }
        let (store, signed_here) = (self.store.clone(), self.signed_here.clone());
        let Some(actor) = self.actor(&did).await? else {
            return Ok(Err(Rejection::UnknownActor.to_string()));
        };
        let applied = match decide(&store, actor, event, signed_here.as_ref()).await? {
            Ok(applied) => applied,
            Err(rejection) => return Ok(Err(rejection.to_string())),
        };
        record_applied(batch, actor, event, &applied);
        if let Some(request) = &event.request {
            let results: Vec<serde_json::Value> = request
                .results
                .iter()
                .map(|r| serde_json::json!({"uri": r.uri, "cid": r.cid.map(|c| c.to_string())}))
                .collect();
            batch.put_request(StoredRequest {
                did: did.clone(),
                key: request.key.clone(),
                commit_cid: applied.head.commit.to_string(),
                rev: applied.head.rev.to_string(),
                results: serde_json::Value::Array(results).to_string(),
            });
        }
        Ok(Ok(()))
    }

    async fn import(
        &mut self,
        batch: &mut ProjectionBatch,
        event: ImportEvent,
    ) -> Result<Decision, StoreError> {
        let did = event.did.to_string();
        let (store, signed_here) = (self.store.clone(), self.signed_here.clone());
        let Some(actor) = self.actor(&did).await? else {
            return Ok(Err(Rejection::UnknownActor.to_string()));
        };
        if actor
            .state
            .head
            .as_ref()
            .is_some_and(|head| head.data != Mst::new().root_cid())
        {
            return Ok(Err("the repository already has records".into()));
        }
        // An import is a commit creating every entry on the empty tree.
        let commit = CommitEvent {
            did: event.did,
            time: event.time,
            since: actor.state.head.as_ref().map(|h| h.rev.clone()),
            slice: event.slice,
            prev_commit: event.prev_commit,
            ops: event.entries,
            records: event.records,
            request: None,
        };
        if commit.ops.iter().any(|op| op.action != OpAction::Create) {
            return Ok(Err("an import may only create records".into()));
        }
        let applied = match decide(&store, actor, &commit, signed_here.as_ref()).await? {
            Ok(applied) => applied,
            Err(rejection) => return Ok(Err(rejection.to_string())),
        };
        record_applied(batch, actor, &commit, &applied);
        Ok(Ok(()))
    }

    async fn unenroll(
        &mut self,
        batch: &mut ProjectionBatch,
        event: &UnenrollEvent,
    ) -> Result<Decision, StoreError> {
        let did = event.did.to_string();
        let Some(actor) = self.actor(&did).await? else {
            return Ok(Err(Rejection::UnknownActor.to_string()));
        };
        actor.state.enrolled = false;
        actor.enrollment.active = false;
        actor.enrollment.updated_at = event.time.to_string();
        batch.put_enrollment(actor.enrollment.clone());
        if event.purge {
            actor.state.data_key = None;
            batch.purge_content(&did);
        }
        Ok(Ok(()))
    }

    async fn set_boundaries(
        &mut self,
        batch: &mut ProjectionBatch,
        event: &BoundariesEvent,
    ) -> Result<Decision, StoreError> {
        let did = event.did.to_string();
        let Some(actor) = self.actor(&did).await? else {
            return Ok(Err(Rejection::UnknownActor.to_string()));
        };
        if !actor.state.enrolled {
            return Ok(Err(Rejection::NotEnrolled.to_string()));
        }
        actor.enrollment.boundaries = event.boundaries.clone();
        actor.enrollment.updated_at = event.time.to_string();
        batch.put_enrollment(actor.enrollment.clone());
        Ok(Ok(()))
    }
}

impl crate::runner::Applier for RepoProjector {
    async fn position(&mut self, partition: u32) -> Result<u64, ProjectorError> {
        RepoProjector::position(self, partition).await
    }

    async fn decide(&mut self, records: &[LogRecord]) -> Result<(), ProjectorError> {
        RepoProjector::decide(self, records).await
    }

    fn take_write(&mut self) -> crate::runner::PendingWrite {
        let write = RepoProjector::take_write(self);
        Box::pin(async move { write.run().await.map(|_| ()) })
    }

    fn forget(&mut self) {
        RepoProjector::forget(self);
    }
}

/// A decided batch's transaction, ready to run.
pub struct BatchWrite {
    store: Store,
    fence: Fence,
    announce: broadcast::Sender<Progress>,
    events: u64,
    batch: ProjectionBatch,
    progress: Vec<Progress>,
}

impl BatchWrite {
    /// Writes the batch's net changes with the partitions' new positions in one transaction,
    /// then announces what it did to each partition.
    pub async fn run(self) -> Result<Vec<Progress>, ProjectorError> {
        if self.progress.is_empty() {
            return Ok(self.progress);
        }
        let started = std::time::Instant::now();
        let positions: Vec<(u32, u64)> = self
            .progress
            .iter()
            .map(|announced| (announced.partition, announced.next_offset))
            .collect();
        let payloads: Vec<String> = self.progress.iter().map(Progress::to_payload).collect();
        let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
        let progress = BatchProgress {
            consumer: CONSUMER,
            positions: &positions,
            payloads: &payloads,
            fence: Some(&self.fence),
        };
        self.store.write_batch(&self.batch, progress).await?;
        let rejected: u64 = self.progress.iter().map(|p| p.rejected.len() as u64).sum();
        metrics::counter!("stratos_projector_events_total", "projector" => "repo", "outcome" => "applied")
            .increment(self.events - rejected);
        metrics::counter!("stratos_projector_events_total", "projector" => "repo", "outcome" => "rejected")
            .increment(rejected);
        metrics::histogram!("stratos_projector_batch_seconds", "projector" => "repo")
            .record(started.elapsed().as_secs_f64());
        for announced in &self.progress {
            // Nobody may be listening; that is fine.
            let _ = self.announce.send(announced.clone());
        }
        Ok(self.progress)
    }
}

/// Decides `event` against the cached actor, reading the nodes of its tree that the cache lacks
/// from the store one by one. The store holds every node of the projected head's tree (the
/// cache holds those of this batch, not yet written), so a node missing from both is missing
/// from the tree: the commit is rejected, as it would be with the whole tree in memory.
async fn decide(
    store: &Store,
    actor: &mut CachedActor,
    event: &CommitEvent,
    signed_here: Option<&SignedHere>,
) -> Result<Result<Applied, Rejection>, StoreError> {
    loop {
        match decide_commit_signed_here(Some(&actor.state), event, &actor.blocks, signed_here) {
            // Each read adds a node the tree lacked, so the loop ends with the tree.
            Err(Rejection::MissingNode(cid)) => {
                if !store
                    .read_block_into(event.did.as_str(), &cid, &mut actor.blocks)
                    .await?
                {
                    return Ok(Err(Rejection::MissingNode(cid)));
                }
            }
            decision => return Ok(decision),
        }
    }
}

/// Adds an applied commit to the batch (blocks, records, head and the actor's next sequenced
/// event) and moves the cached actor forward.
fn record_applied(
    batch: &mut ProjectionBatch,
    actor: &mut CachedActor,
    event: &CommitEvent,
    applied: &Applied,
) {
    let did = event.did.as_str();
    for cid in &applied.removed_blocks {
        batch.delete_block(did, *cid);
    }
    for (cid, bytes) in applied.new_blocks.iter() {
        batch.put_block(did, *cid, bytes.to_vec());
    }
    for change in &applied.records {
        match change {
            RecordChange::Put {
                path,
                cid,
                boundaries,
                block,
                created,
            } => {
                let (collection, rkey) = split_path(path);
                let row = RecordRow {
                    collection: collection.to_string(),
                    rkey: rkey.to_string(),
                    cid: *cid,
                    boundaries: boundaries.clone(),
                    block: block.clone(),
                };
                match created {
                    true => batch.create_record(did, row, applied.head.rev.as_str()),
                    false => batch.put_record(did, row, applied.head.rev.as_str()),
                }
            }
            RecordChange::Delete { path, .. } => {
                let (collection, rkey) = split_path(path);
                batch.delete_record(did, collection, rkey);
            }
        }
    }
    batch.set_head(did, applied.head.clone());
    let seq = actor.last_seq + 1;
    let body = SequencedCommit {
        did: event.did.clone(),
        time: event.time.clone(),
        rev: applied.head.rev.clone(),
        commit: applied.head.commit,
        ops: event.ops.clone(),
    }
    .encode();
    batch.add_actor_event(did, seq, "#commit", Some(applied.head.rev.as_str()), body);

    actor.last_seq = seq;
    for cid in &applied.removed_blocks {
        actor.blocks.remove(cid);
    }
    actor.blocks.extend(applied.new_blocks.clone());
    actor.state.head = Some(applied.head.clone());
}

fn split_path(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or((path, ""))
}
