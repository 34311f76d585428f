//! The write path: validate, build the new tree and the signed commit on the actor's head, seal
//! the record blocks, append one `#commit`, and answer once the repo projector has applied it.
//!
//! Writes of one actor are ordered by the actor's slot lock, which is held only while a commit
//! is built and handed to the log: the next write builds on the handed-over (not yet
//! acknowledged, not yet applied) commit, so an actor's writes are pipelined. When the projector
//! rejects a commit because another writer won (another instance, or a rejected predecessor),
//! the write is rebuilt on the projected head and appended again, a bounded number of times.

use std::time::Instant;

use stratos_projector::repo::DUPLICATE_REQUEST;
use stratos_schema::Cid;
use stratos_schema::Ipld;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::{cid_for_dag_cbor, to_dag_cbor};
use stratos_schema::events::{
    CommitEvent, CommitSlice, Event, OpAction, RepoOp, RequestRef, RequestResult, SealedRecord,
};
use stratos_schema::lexicon::{
    POST_COLLECTION, ValidationContext, check_record_author, validate_record,
};
use stratos_schema::mst::{Mst, RecordOp, diff};
use stratos_schema::syntax::{Datetime, Did, Nsid, RecordKey, Tid};
use stratos_store::Head;

use crate::error::CommandError;
use crate::outcomes::Decision;
use crate::service::{ActorRepo, CommandConfig, Commands, CommitRef, KEPT_NODES};

/// The most operations one commit may carry (as ATProto's `applyWrites`).
pub const MAX_WRITES: usize = 200;

/// One operation of a write.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// A new record; fails if the key exists. Without a key, a fresh TID is used.
    Create {
        /// The collection.
        collection: Nsid,
        /// The record key.
        rkey: Option<RecordKey>,
        /// The record.
        record: Ipld,
    },
    /// Writes a record whether or not it exists (`putRecord`), or only an existing one
    /// (`applyWrites#update`, `must_exist`).
    Put {
        /// The collection.
        collection: Nsid,
        /// The record key.
        rkey: RecordKey,
        /// The record.
        record: Ipld,
        /// The CID the record must have now (`null` in `putRecord` means: must not exist).
        swap_record: Option<Option<Cid>>,
        /// Fail with `RecordNotFound` if there is no record.
        must_exist: bool,
    },
    /// Removes a record.
    Delete {
        /// The collection.
        collection: Nsid,
        /// The record key.
        rkey: RecordKey,
        /// The CID the record must have now.
        swap_record: Option<Cid>,
        /// Fail with `RecordNotFound` if there is no record (`applyWrites`); `deleteRecord`
        /// succeeds with an unchanged tree instead.
        must_exist: bool,
    },
}

/// What one operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpResult {
    /// `at://did/collection/rkey`.
    pub uri: String,
    /// The record CID (creates and puts).
    pub cid: Option<Cid>,
}

/// The answer to an applied write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// One result per operation, in order.
    pub results: Vec<OpResult>,
    /// The applied commit.
    pub commit: CommitRef,
}

/// A commit ready to append.
struct Built {
    event: CommitEvent,
    results: Vec<OpResult>,
    tree: Mst,
    created: stratos_schema::blocks::BlockMap,
    removed: Vec<Cid>,
}

/// How many written records' boundaries an actor's state remembers at most (they are
/// forgotten once the projection has applied everything written here, or beyond this many,
/// and the projection is asked instead).
const KEPT_WRITTEN: usize = 256;

/// The most tree nodes one write reads from the projection before it gives up.
const MAX_NODE_READS: u32 = 1_024;

impl Commands {
    /// Applies `ops` as one commit of `did`'s repository, after checking `swap_commit` against
    /// the current commit, and answers once the repo projector has applied it.
    pub async fn write(
        &self,
        did: &Did,
        ops: Vec<WriteOp>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteResult, CommandError> {
        self.write_idempotent(did, ops, swap_commit, None).await
    }

    /// [`Commands::write`] for a request carrying an `Idempotency-Key`: the first request with
    /// a key is applied once; every retry with the same key (to any instance, also after a
    /// crash) gets the original answer.
    pub async fn write_idempotent(
        &self,
        did: &Did,
        ops: Vec<WriteOp>,
        swap_commit: Option<Cid>,
        idempotency_key: Option<&str>,
    ) -> Result<WriteResult, CommandError> {
        let request_key = idempotency_key.map(hash_key);
        if let Some(key) = &request_key
            && let Some(answer) = self.answered(did, key).await?
        {
            return Ok(answer);
        }
        if ops.is_empty() {
            // A commit that changes nothing would only move the revision on.
            return Err(CommandError::InvalidRequest(
                "at least one write per commit".into(),
            ));
        }
        if ops.len() > MAX_WRITES {
            return Err(CommandError::InvalidRequest(format!(
                "at most {MAX_WRITES} writes per commit"
            )));
        }
        // Fresh keys for creates without one, chosen once so retries write the same records.
        let ops: Vec<WriteOp> = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Create {
                    collection,
                    rkey: None,
                    record,
                } => WriteOp::Create {
                    collection,
                    rkey: Some(self.fresh_rkey()),
                    record,
                },
                other => other,
            })
            .collect();
        let mut last_reason = String::new();
        for attempt in 0..self.config.max_attempts.max(1) {
            let started = Instant::now();
            let (acknowledgement, results, commit) = {
                let slot = self.slot(did);
                let mut guard = slot.lock().await;
                if guard.is_none() {
                    *guard = Some(self.load(did).await?);
                }
                // Nodes of the tree the write reaches but the cache lacks are read one by one;
                // a node the projection no longer has means its head moved on: load again.
                let mut reads = 0;
                let mut built = loop {
                    let Some(repo) = guard.as_mut() else {
                        return Err(CommandError::NotEnrolled);
                    };
                    match self.build(did, repo, &ops, swap_commit).await {
                        Err(CommandError::MissingNode(cid)) if reads < MAX_NODE_READS => {
                            reads += 1;
                            if !self
                                .store
                                .read_block_into(did.as_str(), &cid, &mut repo.blocks)
                                .await?
                            {
                                *guard = Some(self.load(did).await?);
                            }
                        }
                        result => break result?,
                    }
                };
                let Some(repo) = guard.as_mut() else {
                    return Err(CommandError::NotEnrolled);
                };
                built.event.request = request_key.as_ref().map(|key| RequestRef {
                    key: key.clone(),
                    results: built
                        .results
                        .iter()
                        .map(|r| RequestResult {
                            uri: r.uri.clone(),
                            cid: r.cid,
                        })
                        .collect(),
                });
                let commit = CommitRef {
                    cid: built.event.slice.commit,
                    rev: built.event.slice.rev.to_string(),
                };
                let head = Head {
                    commit: built.event.slice.commit,
                    rev: built.event.slice.rev.clone(),
                    data: built.tree.root_cid(),
                };
                // The versions this commit writes, for the boundaries of the next writes.
                let written: Vec<_> = built
                    .event
                    .ops
                    .iter()
                    .map(|op| {
                        (
                            op.path.clone(),
                            op.cid.map(|cid| (cid, op.boundaries.clone())),
                        )
                    })
                    .collect();
                // Handed over in order under the lock; the next write of this actor builds on
                // it while the log acknowledges it.
                let acknowledgement =
                    match self.log.enqueue_event(&Event::Commit(built.event)).await {
                        Ok(acknowledgement) => acknowledgement,
                        Err(error) => {
                            *guard = None;
                            return Err(error.into());
                        }
                    };
                for cid in &built.removed {
                    repo.blocks.remove(cid);
                }
                if repo.written.len() + written.len() > KEPT_WRITTEN {
                    repo.written.clear();
                }
                for (path, written) in written {
                    match written {
                        Some(written) => repo.written.insert(path, written),
                        None => repo.written.remove(&path),
                    };
                }
                repo.blocks.extend(built.created);
                repo.tree = built.tree;
                repo.head = head;
                (acknowledgement, built.results, commit)
            };
            let handed_over = Instant::now();
            record_stage("build", started, handed_over);
            let position = match acknowledgement.await {
                Ok(position) => position,
                Err(error) => {
                    // Unknown whether it landed: start over from the projection. (A write
                    // built on this one meanwhile is decided by the projector and rebuilt if
                    // it was refused.)
                    *self.slot(did).lock().await = None;
                    return Err(error.into());
                }
            };
            crash_after_append(idempotency_key);
            let acknowledged = Instant::now();
            record_stage("log", handed_over, acknowledged);
            let decision = self.outcomes.wait(position).await?;
            record_stage("projection", acknowledged, Instant::now());
            match decision {
                Decision::Applied => {
                    self.trim(did, &commit).await;
                    return Ok(WriteResult { results, commit });
                }
                Decision::Rejected(reason) if reason.starts_with(DUPLICATE_REQUEST) => {
                    // An earlier attempt of this request (perhaps before a crash) was applied.
                    let key = request_key.as_deref().unwrap_or_default();
                    return self.answered(did, key).await?.ok_or_else(|| {
                        CommandError::Internal(format!("no stored answer for request {key}"))
                    });
                }
                Decision::Rejected(reason) => {
                    metrics::counter!("stratos_write_retries_total").increment(1);
                    tracing::debug!(%did, %reason, "commit rejected; rebuilding on the projected head");
                    // Another commit won: rebuild from the projection, which has decided ours,
                    // after a short random pause so competing instances stop colliding.
                    *self.slot(did).lock().await = None;
                    last_reason = reason;
                    tokio::time::sleep(retry_pause(attempt)).await;
                }
            }
        }
        tracing::warn!(%did, reason = %last_reason, "write gave up after repeated rejections");
        Err(CommandError::ConcurrentModification)
    }

    /// Once the projection has applied `commit`, an actor whose newest commit here it still is
    /// and that holds more tree nodes than it keeps starts over from the projection on its next
    /// write (not before: a write built on an older head would be rejected).
    async fn trim(&self, did: &Did, commit: &CommitRef) {
        let slot = self.slot(did);
        let mut guard = slot.lock().await;
        let Some(repo) = guard.as_mut() else { return };
        if repo.head.commit != commit.cid {
            return;
        }
        if repo.blocks.len() > KEPT_NODES {
            *guard = None;
        } else {
            // Nothing is in flight: the projection has every version written here.
            repo.written.clear();
        }
    }

    /// The stored answer to `did`'s request `key` (a hash), if it was applied.
    async fn answered(&self, did: &Did, key: &str) -> Result<Option<WriteResult>, CommandError> {
        let Some(stored) = self.store.request(did.as_str(), key).await? else {
            return Ok(None);
        };
        let corrupt = |what: &str| CommandError::Internal(format!("stored answer: {what}"));
        let results: Vec<serde_json::Value> =
            serde_json::from_str(&stored.results).map_err(|e| corrupt(&e.to_string()))?;
        let results = results
            .iter()
            .map(|r| {
                Ok(OpResult {
                    uri: r["uri"].as_str().ok_or_else(|| corrupt("uri"))?.to_string(),
                    cid: r["cid"]
                        .as_str()
                        .map(stratos_schema::data::parse_cid)
                        .transpose()
                        .map_err(|e| corrupt(&e.to_string()))?,
                })
            })
            .collect::<Result<_, CommandError>>()?;
        Ok(Some(WriteResult {
            results,
            commit: CommitRef {
                cid: stratos_schema::data::parse_cid(&stored.commit_cid)
                    .map_err(|e| corrupt(&e.to_string()))?,
                rev: stored.rev,
            },
        }))
    }

    fn fresh_rkey(&self) -> RecordKey {
        let tid = self.clock.next(None);
        tid.as_str().parse().expect("a TID is a valid record key")
    }

    /// Builds the commit of `ops` on the repository's current head.
    async fn build(
        &self,
        did: &Did,
        repo: &ActorRepo,
        ops: &[WriteOp],
        swap_commit: Option<Cid>,
    ) -> Result<Built, CommandError> {
        if let Some(swap) = swap_commit
            && swap != repo.head.commit
        {
            return Err(CommandError::InvalidSwap(format!(
                "the current commit is {}, not {swap}",
                repo.head.commit
            )));
        }
        let mut tree = repo.tree.clone();
        let mut sealed = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        let mut boundaries_of = std::collections::BTreeMap::new();
        let mut previous_of = std::collections::BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for op in ops {
            let (collection, rkey) = op.key();
            let rkey = rkey.unwrap_or_else(|| self.fresh_rkey());
            check_key(collection, &rkey)?;
            let path = format!("{collection}/{rkey}");
            if !seen.insert(path.clone()) {
                return Err(CommandError::InvalidRequest(format!(
                    "{path} is written twice in one commit"
                )));
            }
            let uri = format!("at://{did}/{path}");
            let existing = tree.get(&repo.blocks, &path)?;
            match op {
                WriteOp::Create { record, .. } | WriteOp::Put { record, .. } => {
                    match op {
                        WriteOp::Create { .. } if existing.is_some() => {
                            return Err(CommandError::InvalidRequest(format!(
                                "record already exists: {uri}"
                            )));
                        }
                        WriteOp::Put {
                            must_exist: true, ..
                        } if existing.is_none() => {
                            return Err(CommandError::RecordNotFound(format!(
                                "Record not found: {uri}"
                            )));
                        }
                        WriteOp::Put {
                            swap_record: Some(expected),
                            ..
                        } if *expected != existing => {
                            return Err(CommandError::InvalidSwap(format!(
                                "the record at {uri} is not the expected one"
                            )));
                        }
                        _ => {}
                    }
                    let parents = self.reply_parent(record).await?;
                    self.check_record(repo, collection, record, &parents)?;
                    let block = to_dag_cbor(record)
                        .map_err(|e| CommandError::InvalidRequest(format!("record: {e}")))?;
                    let cid = cid_for_dag_cbor(&block);
                    sealed.push(SealedRecord::seal(&repo.data_key, did, cid, &block));
                    let boundaries = stratos_schema::boundary::extract_boundaries(record);
                    // An update that changes the boundaries names the ones it leaves.
                    if let Some(current) = existing {
                        let previous = self.boundaries_of(did, repo, &path, current).await?;
                        if previous != boundaries {
                            previous_of.insert(path.clone(), previous);
                        }
                    }
                    boundaries_of.insert(path.clone(), boundaries);
                    tree = tree.insert(&repo.blocks, &path, cid)?;
                    results.push(OpResult {
                        uri,
                        cid: Some(cid),
                    });
                }
                WriteOp::Delete {
                    swap_record,
                    must_exist,
                    ..
                } => {
                    if let Some(expected) = swap_record
                        && existing != Some(*expected)
                    {
                        return Err(CommandError::InvalidSwap(format!(
                            "the record at {uri} is not the expected one"
                        )));
                    }
                    if existing.is_none() && *must_exist {
                        return Err(CommandError::RecordNotFound(format!(
                            "Record not found: {uri}"
                        )));
                    }
                    if let Some(current) = existing {
                        // Deletes carry the boundaries the record had, for filtered consumers.
                        let had = self.boundaries_of(did, repo, &path, current).await?;
                        boundaries_of.insert(path.clone(), had);
                        tree = tree.remove(&repo.blocks, &path)?.0;
                    }
                    results.push(OpResult { uri, cid: None });
                }
            }
        }
        let changes = diff(&repo.blocks, &repo.tree, &tree)?;
        let repo_ops = changes
            .ops
            .iter()
            .map(|op| {
                let (action, key, cid, prev) = match op {
                    RecordOp::Create { key, cid } => (OpAction::Create, key, Some(*cid), None),
                    RecordOp::Update { key, prev, cid } => {
                        (OpAction::Update, key, Some(*cid), Some(*prev))
                    }
                    RecordOp::Delete { key, prev } => (OpAction::Delete, key, None, Some(*prev)),
                };
                RepoOp {
                    action,
                    path: key.clone(),
                    cid,
                    prev,
                    boundaries: boundaries_of.get(key).cloned().unwrap_or_default(),
                    prev_boundaries: match action {
                        OpAction::Update => previous_of.get(key).cloned().unwrap_or_default(),
                        _ => Vec::new(),
                    },
                }
            })
            .collect();
        // Only records the tree really references travel (a put of identical content is no op).
        let referenced: std::collections::BTreeSet<Cid> = changes
            .ops
            .iter()
            .filter_map(|op| match op {
                RecordOp::Create { cid, .. } | RecordOp::Update { cid, .. } => Some(*cid),
                RecordOp::Delete { .. } => None,
            })
            .collect();
        sealed.retain(|record| referenced.contains(&record.cid));
        sealed.sort_by_key(|record| record.cid);
        sealed.dedup_by_key(|record| record.cid);

        let rev: Tid = self.clock.next(Some(&repo.head.rev));
        let commit = UnsignedCommit::new(did.clone(), tree.root_cid(), rev).sign(&repo.signing);
        let slice = CommitSlice::new(&commit, &changes.created_nodes);
        self.signed(slice.commit, &repo.signing, Some(&changes.removed_nodes));
        let event = CommitEvent {
            did: did.clone(),
            time: Datetime::now(),
            slice,
            prev_commit: Some(repo.head.commit),
            since: Some(repo.head.rev.clone()),
            ops: repo_ops,
            records: sealed,
            request: None,
        };
        Ok(Built {
            event,
            results,
            tree,
            created: changes.created_nodes,
            removed: changes.removed_nodes,
        })
    }
}

impl Commands {
    /// Record validation (spec §3) and the author-boundary rule.
    pub(crate) fn check_record(
        &self,
        repo: &ActorRepo,
        collection: &Nsid,
        record: &Ipld,
        parents: &ParentMap,
    ) -> Result<(), CommandError> {
        let config: &CommandConfig = &self.config;
        let context = ValidationContext::new(&config.service.did, self.allowed_boundaries())
            .with_parents(parents);
        validate_record(&context, collection, record)?;
        check_record_author(&config.service.did, record, &repo.boundaries)?;
        Ok(())
    }
}

/// The boundaries of reply parents stored on this service, by URI.
pub(crate) type ParentMap = std::collections::BTreeMap<String, Vec<String>>;

impl Commands {
    /// The boundaries of the record's reply parent, when the projection holds it. A parent not
    /// (yet) projected yields an empty map: the subset rule has nothing to compare with, and
    /// the author-boundary rule still applies.
    async fn reply_parent(&self, record: &Ipld) -> Result<ParentMap, CommandError> {
        let mut parents = ParentMap::new();
        let Some(uri) = stratos_schema::lexicon::reply_parent_uri(record) else {
            return Ok(parents);
        };
        let Ok(parsed) = uri.parse::<stratos_schema::syntax::AtUri>() else {
            return Ok(parents);
        };
        let (Some(collection), Some(rkey)) = (parsed.collection(), parsed.rkey()) else {
            return Ok(parents);
        };
        let author = parsed.authority().to_string();
        if let Some(row) = self
            .store
            .record(&author, collection.as_str(), rkey.as_str())
            .await?
        {
            parents.insert(uri.to_string(), row.boundaries);
        }
        Ok(parents)
    }
}

impl WriteOp {
    fn key(&self) -> (&Nsid, Option<RecordKey>) {
        match self {
            WriteOp::Create {
                collection, rkey, ..
            } => (collection, rkey.clone()),
            WriteOp::Put {
                collection, rkey, ..
            }
            | WriteOp::Delete {
                collection, rkey, ..
            } => (collection, Some(rkey.clone())),
        }
    }
}

/// Fault injection for crash tests (feature `fault-injection`, never in release builds): the
/// process aborts right after appending the commit of the request whose idempotency key is
/// `STRATOS_FAULT_ABORT_AFTER_APPEND`, before anyone hears the answer.
#[cfg(feature = "fault-injection")]
fn crash_after_append(key: Option<&str>) {
    if let (Some(key), Ok(target)) = (key, std::env::var("STRATOS_FAULT_ABORT_AFTER_APPEND"))
        && key == target
    {
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
fn crash_after_append(_: Option<&str>) {}

/// A random pause before the next attempt: up to 5 ms × 2^attempt, at most 250 ms.
fn retry_pause(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let ceiling = (5u64 << attempt.min(6)).min(250);
    std::time::Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
}

/// The SHA-256 (hex) of a client's idempotency key: what the log and the store keep.
fn hash_key(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Collections are `zone.stratos.*`; post keys are TIDs.
pub(crate) fn check_key(collection: &Nsid, rkey: &RecordKey) -> Result<(), CommandError> {
    if !stratos_schema::lexicon::is_stratos_collection(collection.as_str()) {
        return Err(CommandError::Record(
            stratos_schema::lexicon::RecordError::new(
                stratos_schema::lexicon::RecordErrorCode::InvalidCollection,
                "Only zone.stratos.* collections are supported",
            ),
        ));
    }
    if collection.as_str() == POST_COLLECTION && rkey.as_str().parse::<Tid>().is_err() {
        return Err(CommandError::InvalidRequest(format!(
            "the record key of a {POST_COLLECTION} must be a TID, not {rkey}"
        )));
    }
    Ok(())
}

/// Records how long one stage of a write attempt took: `build` (the actor's lock, the new tree
/// and signed commit, handing it to the log), `log` (until the log acknowledged it),
/// `projection` (until the repo projector decided it).
fn record_stage(stage: &'static str, from: Instant, to: Instant) {
    metrics::histogram!("stratos_write_stage_seconds", "stage" => stage)
        .record(to.duration_since(from).as_secs_f64());
}
