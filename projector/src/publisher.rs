//! The PDS publisher: what users' PDSes must learn from the log — their enrollment record
//! (`zone.stratos.actor.enrollment`, record key from the service DID) and the stubs of their
//! private posts (spec §5, §6).
//!
//! Two halves. The [`OutboxProjector`] follows the repo projector like the AppView projector
//! does (accepted events only) and turns each event into PDS writes in a durable outbox, in the
//! same transaction as its log position. The [`Deliverer`] empties the outbox with each user's
//! OAuth session: in log order per user, users in parallel, with exponential backoff on
//! failure. Every write is idempotent (`putRecord` at fixed keys, `deleteRecord`), so a
//! redelivery changes nothing; a PDS outage delays its users' writes and blocks nobody else's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use stratos_log::{CommitLog, LogRecord, ReadPace};
use stratos_oauth::{OAuthClient, OAuthError, Session};
use stratos_schema::data::{decode_ipld, ipld_to_json};
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{Event, OpAction, RepoOp, SealedRecord};
use stratos_schema::lexicon::{
    Attestation, BoundaryEntry, ENROLLMENT_COLLECTION, EnrollmentRecord, POST_COLLECTION,
    enrollment_rkey, stub_for,
};
use stratos_schema::syntax::{AtUri, Datetime, Did};
use stratos_store::{Fence, KeyKind, OutboxEntry, Store, StoreError};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

use crate::data_keys::DataKeys;
use crate::follower::RepoFollower;
use crate::repo::{Progress, ProjectorError};
use crate::runner::{Applier, DriveOptions, Positions, drive};

/// How long a batch of the publisher gathers after its first record.
const PUBLISHER_GATHERING: Duration = Duration::from_millis(100);

/// The publisher's name among the log's consumers.
pub const CONSUMER: &str = "pds-publisher";
/// Collections whose records get stubs (the OAuth scope covers exactly these).
const STUB_COLLECTIONS: &[&str] = &[POST_COLLECTION];
/// Deliveries attempted at once (each for a different user).
const PARALLEL: u32 = 16;
/// An outbox method made with the actor's retired session (after unenroll): deleting the
/// enrollment record, and after a purge the stubs.
const RETIRED_DELETE: &str = "retired com.atproto.repo.deleteRecord";
/// Revoking the actor's retired session, after its last writes.
const RETIRED_REVOKE: &str = "retired revoke";
/// How long a claimed write is reserved for its deliverer, in seconds.
const LEASE_SECS: i64 = 120;
/// Refused writes are tried this many times before they are given up (logged and counted).
const MAX_REFUSALS: i32 = 8;

/// Settings of the publisher.
#[derive(Clone)]
pub struct PublisherConfig {
    /// The service DID (the enrollment record key, and the stubs' `service`).
    pub service_did: String,
    /// The OAuth client that holds the users' sessions.
    pub client: OAuthClient,
    /// The longest pause between two attempts of one write.
    pub max_backoff: Duration,
}

/// Turns the accepted events of the log into outbox entries.
pub struct OutboxProjector {
    store: Store,
    repo: RepoFollower,
    service_did: String,
    data_keys: DataKeys,
    /// Whether each actor seen has an OAuth session (actors enrolled without one, in
    /// development mode, are owed nothing).
    sessions: HashMap<String, bool>,
    positions: Positions,
    wake: Arc<Notify>,
    /// The lease its batches commit under.
    fence: Fence,
}

/// One PDS write: the user, the procedure and its input.
type PdsCall = (String, &'static str, Value);

impl OutboxProjector {
    /// Whether `did` has the session `method` needs: writes for actors without one (enrolled
    /// in development mode) are not queued at all.
    async fn deliverable(&mut self, did: &str, method: &str) -> Result<bool, StoreError> {
        if method.starts_with("retired ") {
            return Ok(self.store.key(did, KeyKind::OAuthRetired).await?.is_some());
        }
        if let Some(known) = self.sessions.get(did) {
            return Ok(*known);
        }
        let present = self.store.key(did, KeyKind::OAuthSession).await?.is_some();
        self.sessions.insert(did.to_string(), present);
        Ok(present)
    }

    async fn calls(&mut self, event: Event) -> Result<Vec<PdsCall>, StoreError> {
        let rkey = enrollment_rkey(&self.service_did);
        if let Event::Enrollment(_) | Event::Unenroll(_) = &event {
            // A session is stored before its enrollment and retired with the unenrollment.
            self.sessions.remove(event.did().as_str());
        }
        self.data_keys.observe(&event);
        Ok(match event {
            Event::Enrollment(event) => {
                let record = enrollment_record(
                    event.service_endpoint,
                    &event.boundaries,
                    event.signing_key,
                    event.attestation,
                    &event.time,
                );
                vec![put_enrollment(event.did.as_str(), &rkey, &record)]
            }
            Event::Boundaries(event) => {
                // The repo projector has applied it: the enrollment holds the key and endpoint.
                let Some(enrollment) = self.store.enrollment(event.did.as_str()).await? else {
                    return Ok(Vec::new());
                };
                let record = enrollment_record(
                    enrollment.service_endpoint,
                    &event.boundaries,
                    enrollment.signing_key,
                    event.attestation,
                    &event.time,
                );
                vec![put_enrollment(event.did.as_str(), &rkey, &record)]
            }
            Event::Unenroll(event) => {
                // With the session the command service retired: after a purge the stubs
                // (which would point at destroyed content), then the enrollment record, then
                // the session itself.
                let did = event.did.as_str();
                let mut calls = match event.purge {
                    true => self.stub_deletions(did).await?,
                    false => Vec::new(),
                };
                calls.push((
                    did.to_string(),
                    RETIRED_DELETE,
                    json!({"repo": did, "collection": ENROLLMENT_COLLECTION, "rkey": rkey}),
                ));
                calls.push((did.to_string(), RETIRED_REVOKE, json!({})));
                calls
            }
            Event::Commit(event) => {
                // Stubs of an actor without a session would be dropped: not worth opening.
                if !self
                    .deliverable(event.did.as_str(), "com.atproto.repo.putRecord")
                    .await?
                {
                    return Ok(Vec::new());
                }
                let key = self.data_keys.get(event.did.as_str()).await?;
                let service = format!("{}#atproto_pns", self.service_did);
                stub_calls(&event.did, &event.ops, &event.records, &key, &service)
            }
            // Imported records get no stubs (spec §6.2).
            Event::Import(_) => Vec::new(),
        })
    }

    /// Deletions of the stubs of every record `did` has on a stubbed collection, made with
    /// the retired session. A record without a stub (imported, or written before the actor had
    /// a session) costs a deletion the PDS answers without a change.
    async fn stub_deletions(&self, did: &str) -> Result<Vec<PdsCall>, StoreError> {
        let mut calls = Vec::new();
        for collection in STUB_COLLECTIONS {
            for rkey in self.store.record_keys(did, collection).await? {
                calls.push((
                    did.to_string(),
                    RETIRED_DELETE,
                    json!({"repo": did, "collection": collection, "rkey": rkey}),
                ));
            }
        }
        Ok(calls)
    }

    /// Queues the PDS writes of the accepted events of `records` with the new positions, in
    /// one transaction; returns those positions.
    async fn write(&mut self, records: &[LogRecord]) -> Result<Vec<(u32, u64)>, ProjectorError> {
        let store = &self.store;
        let starts = self
            .positions
            .of(records, |partition| store.position(CONSUMER, partition))
            .await?;
        let (events, positions) = self.repo.accepted_batch(records, starts).await?;
        if positions.is_empty() {
            return Ok(positions);
        }
        let mut calls = Vec::new();
        for event in events {
            for call in self.calls(event).await? {
                if self.deliverable(&call.0, call.1).await? {
                    calls.push(call);
                }
            }
        }
        let mut tx = self.store.begin().await?;
        for (did, method, body) in &calls {
            tx.enqueue_pds(did, method, &body.to_string()).await?;
        }
        tx.check_fence(&self.fence).await?;
        tx.set_positions(CONSUMER, &positions).await?;
        tx.commit().await?;
        if !calls.is_empty() {
            self.wake.notify_one();
        }
        Ok(positions)
    }
}

impl Applier for OutboxProjector {
    async fn position(&mut self, partition: u32) -> Result<u64, ProjectorError> {
        let stored = self.store.position(CONSUMER, partition);
        self.positions.get(partition, stored).await
    }

    async fn decide(&mut self, records: &[LogRecord]) -> Result<(), ProjectorError> {
        let outcome = self.write(records).await;
        self.positions.settle(outcome)
    }

    fn forget(&mut self) {
        self.positions.forget();
    }
}

/// The enrollment record of an actor, as its PDS keeps it.
fn enrollment_record(
    service: String,
    boundaries: &[String],
    signing_key: String,
    signed: stratos_schema::attestation::Attestation,
    time: &Datetime,
) -> EnrollmentRecord {
    EnrollmentRecord {
        service,
        boundaries: boundaries
            .iter()
            .map(|value| BoundaryEntry {
                value: value.clone(),
            })
            .collect(),
        signing_key,
        attestation: Attestation {
            sig: signed.sig,
            signing_key: signed.signing_key,
        },
        created_at: time.as_str().to_string(),
    }
}

fn put_enrollment(did: &str, rkey: &str, record: &EnrollmentRecord) -> PdsCall {
    (
        did.to_string(),
        "com.atproto.repo.putRecord",
        json!({
            "repo": did,
            "collection": ENROLLMENT_COLLECTION,
            "rkey": rkey,
            "record": ipld_to_json(&record.to_ipld()),
        }),
    )
}

/// The stub writes of a commit's ops on stubbed collections.
fn stub_calls(
    did: &Did,
    ops: &[RepoOp],
    sealed: &[SealedRecord],
    key: &Option<DataKey>,
    service: &str,
) -> Vec<PdsCall> {
    ops.iter()
        .filter_map(|op| {
            let (collection, rkey) = op.path.split_once('/')?;
            if !STUB_COLLECTIONS.contains(&collection) {
                return None;
            }
            let target = json!({"repo": did.as_str(), "collection": collection, "rkey": rkey});
            match (op.action, op.cid) {
                (OpAction::Delete, _) => {
                    Some((did.to_string(), "com.atproto.repo.deleteRecord", target))
                }
                (OpAction::Create | OpAction::Update, Some(cid)) => {
                    // Without the data key (purged) there is nothing left to point to.
                    let key = key.as_ref()?;
                    let block = sealed.iter().find(|r| r.cid == cid)?.open(key, did).ok()?;
                    let record = decode_ipld(&block).ok()?;
                    let uri: AtUri = format!("at://{}/{}", did.as_str(), op.path).parse().ok()?;
                    let mut body = target;
                    body["record"] = stub_for(&record, &uri, &cid, service).to_json();
                    Some((did.to_string(), "com.atproto.repo.putRecord", body))
                }
                _ => None,
            }
        })
        .collect()
}

/// Delivers the outbox to users' PDSes.
pub struct Deliverer {
    store: Store,
    config: PublisherConfig,
    wake: Arc<Notify>,
}

/// What became of one delivery attempt.
enum Delivery {
    Delivered,
    Retry(String),
    GiveUp(String),
}

impl Deliverer {
    /// Delivers until `shutdown` turns `true`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        // The backlog gauge counts the whole outbox: at most once a second, not every round.
        let mut counted = tokio::time::Instant::now() - Duration::from_secs(1);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = unix_now();
            let claimed = self.store.claim_pds(now, now + LEASE_SECS, PARALLEL).await;
            let due = match claimed {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "reading the PDS outbox");
                    Vec::new()
                }
            };
            if counted.elapsed() >= Duration::from_secs(1) {
                counted = tokio::time::Instant::now();
                if let Ok(backlog) = self.store.pds_backlog().await {
                    metrics::gauge!("stratos_pds_outbox_backlog").set(backlog as f64);
                }
            }
            if due.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            futures::future::join_all(due.into_iter().map(|entry| self.deliver(entry))).await;
        }
    }

    async fn deliver(&self, entry: OutboxEntry) {
        let outcome = self.attempt(&entry).await;
        let result = match &outcome {
            Delivery::Delivered => self.store.finish_pds(entry.id).await,
            Delivery::GiveUp(error) => {
                tracing::warn!(did = %entry.did, method = %entry.method, %error,
                    "giving up a PDS write");
                self.store.finish_pds(entry.id).await
            }
            Delivery::Retry(error) => {
                let pause = backoff(entry.attempts, self.config.max_backoff);
                tracing::info!(did = %entry.did, method = %entry.method, %error,
                    retry_in_s = pause.as_secs(), "a PDS write failed");
                self.store
                    .retry_pds(entry.id, unix_now() + pause.as_secs() as i64, error)
                    .await
            }
        };
        let label = match outcome {
            Delivery::Delivered => "delivered",
            Delivery::Retry(_) => "retried",
            Delivery::GiveUp(_) => "abandoned",
        };
        metrics::counter!("stratos_pds_writes_total", "outcome" => label).increment(1);
        if let Err(error) = result {
            tracing::warn!(%error, "updating the PDS outbox");
        }
    }

    async fn attempt(&self, entry: &OutboxEntry) -> Delivery {
        let (kind, method) = match entry.method.strip_prefix("retired ") {
            Some(method) => (KeyKind::OAuthRetired, method),
            None => (KeyKind::OAuthSession, entry.method.as_str()),
        };
        let stored = match self.store.versioned_key(&entry.did, kind).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Delivery::GiveUp("NotEnrolled: no OAuth session".into()),
            Err(error) => return Delivery::Retry(error.to_string()),
        };
        let Ok(mut session) = serde_json::from_slice::<Session>(&stored.key) else {
            return Delivery::GiveUp("the stored OAuth session is unreadable".into());
        };
        if method == "revoke" {
            return self.revoke(entry, kind, &session).await;
        }
        let Ok(body) = serde_json::from_str::<Value>(&entry.body) else {
            return Delivery::GiveUp("the outbox entry is unreadable".into());
        };
        let path = format!("/xrpc/{method}");
        let answer = self
            .config
            .client
            .call(&mut session, Method::POST, &path, Some(&body))
            .await;
        // Tokens may have been refreshed and nonces changed: keep them, unless the session was
        // retired (unenroll) or replaced (a new sign-in) meanwhile.
        if let Ok(bytes) = serde_json::to_vec(&session)
            && let Err(error) = self
                .store
                .update_key(&entry.did, kind, &stored, &bytes)
                .await
        {
            tracing::warn!(did = %entry.did, %error, "saving an OAuth session");
        }
        let refused = |reason: String| match entry.attempts + 1 >= MAX_REFUSALS {
            true => Delivery::GiveUp(reason),
            false => Delivery::Retry(reason),
        };
        match answer {
            Ok(response) if response.status.is_success() => Delivery::Delivered,
            Ok(response) => {
                let status = response.status.as_u16();
                let text = String::from_utf8_lossy(&response.body);
                let reason = format!("{status} {}", text.chars().take(200).collect::<String>());
                match status {
                    // Down, overloaded, or tokens in flux: keep trying.
                    401 | 408 | 429 | 500..=599 => Delivery::Retry(reason),
                    _ => refused(reason),
                }
            }
            Err(error @ OAuthError::SessionEnded(_)) => refused(error.to_string()),
            Err(error) => Delivery::Retry(error.to_string()),
        }
    }

    /// Revokes a retired session at its authorization server and forgets it.
    async fn revoke(&self, entry: &OutboxEntry, kind: KeyKind, session: &Session) -> Delivery {
        let outcome = match self.config.client.revoke(session).await {
            Ok(()) => Delivery::Delivered,
            Err(error @ OAuthError::Network(_)) if entry.attempts + 1 < MAX_REFUSALS => {
                return Delivery::Retry(error.to_string());
            }
            // Not revocable: it expires on its own; forget it all the same.
            Err(error) => Delivery::GiveUp(error.to_string()),
        };
        match self.store.destroy_key(&entry.did, kind).await {
            Ok(_) => outcome,
            Err(error) => Delivery::Retry(error.to_string()),
        }
    }
}

/// The pause after `attempts` failures: 1 s, 2 s, 4 s, … up to `max`.
fn backoff(attempts: i32, max: Duration) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    Duration::from_secs(1u64 << exponent).min(max)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The running publisher: an outbox projector per partition and the deliverer.
pub struct Publisher {
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
}

impl Publisher {
    /// Stops after the current batches and deliveries.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the publisher over every partition of `log`, following the repo projector:
/// `repo_progress` receives its announcements when it runs in this process (else the
/// publisher looks at its stored positions every 200 ms).
pub async fn start_publisher(
    log: Arc<dyn CommitLog>,
    store: Store,
    config: PublisherConfig,
    repo_progress: broadcast::Receiver<Progress>,
) -> Result<Publisher, ProjectorError> {
    let (shutdown, stop) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let partitions = log.partitions().await?;
    let lease = store.lease(CONSUMER);
    let mut projector = OutboxProjector {
        store: store.clone(),
        repo: RepoFollower::new(store.clone(), repo_progress),
        service_did: config.service_did.clone(),
        data_keys: DataKeys::new(store.clone()),
        sessions: HashMap::new(),
        positions: Positions::default(),
        wake: wake.clone(),
        fence: lease.fence(),
    };
    let stop_projector = stop.clone();
    tasks.spawn(async move {
        let options = DriveOptions {
            batch_size: crate::service::DEFAULT_BATCH_SIZE,
            stop_at_end: false,
            // It follows the repo projector's announcements and nobody waits for it: its
            // batches gather, and fewer of its transactions take the store's write lock.
            pace: ReadPace::Relaxed,
            gather: PUBLISHER_GATHERING,
        };
        drive(
            &mut projector,
            lease,
            log,
            &partitions,
            options,
            stop_projector,
            |_| {},
        )
        .await;
    });
    let deliverer = Deliverer {
        store,
        config,
        wake,
    };
    tasks.spawn(deliverer.run(stop));
    Ok(Publisher { tasks, shutdown })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let pauses: Vec<u64> = (0..8).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(1_000, max), max);
    }
}
