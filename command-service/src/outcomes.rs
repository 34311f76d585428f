//! Waiting for the repo projector's decision on an appended event (read-your-writes).
//!
//! Decisions arrive as [`Progress`] announcements: from the projectors' in-process channel when
//! they run in this process, or from Postgres `LISTEN` when they run elsewhere. Announcements can
//! be missed (a lagging channel, a reconnecting listener), so a waiter that hears nothing for a
//! while asks the store directly. Each waiter is woken once, by the announcement that passes its
//! offset: announcements come per partition and batch, so waking every waiter on each would
//! wake each of them a dozen times per batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt};
use stratos_log::Position;
use stratos_projector::repo::{CONSUMER, Progress};
use stratos_store::{Store, StoreError};
use tokio::sync::{broadcast, oneshot};

/// How long a waiter trusts announcements before it asks the store.
const RECHECK: Duration = Duration::from_millis(500);

/// Rejections kept for waiters that have not picked theirs up yet.
const KEPT_REJECTIONS: usize = 10_000;

/// What the repo projector decided about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Applied: the projection shows it.
    Applied,
    /// Rejected, with the reason.
    Rejected(String),
}

#[derive(Default)]
struct Decided {
    next_offset: HashMap<u32, u64>,
    rejected: BTreeMap<(u32, u64), String>,
    /// The waiters of each partition by the offset they wait for.
    waiting: HashMap<u32, BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

/// The repo projector's decisions as far as this process has heard.
#[derive(Clone)]
pub struct Outcomes {
    store: Store,
    decided: Arc<Mutex<Decided>>,
}

impl Outcomes {
    /// Outcomes read from `store` when announcements are missing.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            decided: Arc::default(),
        }
    }

    /// Follows the in-process announcements of projectors running in this process.
    pub fn follow_channel(&self, mut progress: broadcast::Receiver<Progress>) {
        let outcomes = self.clone();
        tokio::spawn(async move {
            loop {
                match progress.recv().await {
                    Ok(progress) => outcomes.record(progress),
                    // Missed announcements are found in the store by the waiters.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Follows `NOTIFY` payloads from projectors in other processes (see `Store::listen`).
    pub fn follow_notifications(
        &self,
        payloads: impl Stream<Item = Result<String, StoreError>> + Send + 'static,
    ) {
        let outcomes = self.clone();
        tokio::spawn(async move {
            let mut payloads = std::pin::pin!(payloads);
            while let Some(payload) = payloads.next().await {
                match payload {
                    Ok(payload) => {
                        if let Some(progress) = Progress::from_payload(&payload) {
                            outcomes.record(progress);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "outcome notifications interrupted"),
                }
            }
        });
    }

    /// Records an announcement and wakes the waiters of the offsets it passed. One whose
    /// rejections were left out (`truncated`) teaches nothing: those waiters ask the store.
    pub fn record(&self, progress: Progress) {
        let woken: Vec<oneshot::Sender<()>> = {
            let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
            if !progress.truncated {
                let next = decided.next_offset.entry(progress.partition).or_default();
                *next = (*next).max(progress.next_offset);
                for (offset, reason) in progress.rejected {
                    decided
                        .rejected
                        .insert((progress.partition, offset), reason);
                }
                while decided.rejected.len() > KEPT_REJECTIONS {
                    decided.rejected.pop_first();
                }
            }
            match decided.waiting.get_mut(&progress.partition) {
                Some(waiting) => {
                    let later = waiting.split_off(&progress.next_offset);
                    std::mem::replace(waiting, later)
                        .into_values()
                        .flatten()
                        .collect()
                }
                None => Vec::new(),
            }
        };
        for waiter in woken {
            // A waiter that gave up has dropped its receiver: nothing to tell.
            let _ = waiter.send(());
        }
    }

    /// Waits until the event at `position` is decided.
    pub async fn wait(&self, position: Position) -> Result<Decision, StoreError> {
        loop {
            let woken = match self.heard_or_enlist(position) {
                Ok(decision) => return Ok(decision),
                Err(woken) => woken,
            };
            // Woken by the announcement that passed `position`, or not within `RECHECK`:
            // either way, what the announcements did not say, the store does.
            let _ = tokio::time::timeout(RECHECK, woken).await;
            if let Some(decision) = self.heard(position) {
                return Ok(decision);
            }
            if let Some(decision) = self.ask_store(position).await? {
                return Ok(decision);
            }
        }
    }

    /// The decision on `position` if announced; otherwise a receiver woken by the announcement
    /// that passes it (checked and enlisted under one lock, so no announcement slips between).
    fn heard_or_enlist(&self, position: Position) -> Result<Decision, oneshot::Receiver<()>> {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(decision) = take_decision(&mut decided, position) {
            return Ok(decision);
        }
        let (waiter, woken) = oneshot::channel();
        decided
            .waiting
            .entry(position.partition)
            .or_default()
            .entry(position.offset)
            .or_default()
            .push(waiter);
        Err(woken)
    }

    fn heard(&self, position: Position) -> Option<Decision> {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
        take_decision(&mut decided, position)
    }

    async fn ask_store(&self, position: Position) -> Result<Option<Decision>, StoreError> {
        let next = self
            .store
            .position(CONSUMER, position.partition)
            .await?
            .unwrap_or(0);
        if next <= position.offset {
            return Ok(None);
        }
        Ok(Some(
            match self
                .store
                .rejection(position.partition, position.offset)
                .await?
            {
                Some(reason) => Decision::Rejected(reason),
                None => Decision::Applied,
            },
        ))
    }
}

/// The announced decision on `position`, if any (its rejection, once reported, is forgotten).
fn take_decision(decided: &mut Decided, position: Position) -> Option<Decision> {
    let next = decided
        .next_offset
        .get(&position.partition)
        .copied()
        .unwrap_or(0);
    if next <= position.offset {
        return None;
    }
    Some(
        match decided
            .rejected
            .remove(&(position.partition, position.offset))
        {
            Some(reason) => Decision::Rejected(reason),
            None => Decision::Applied,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratos_store::MasterKey;
    use stratos_store::testing::TestDatabase;

    async fn outcomes() -> (Outcomes, TestDatabase) {
        let database = TestDatabase::create("sqlite").await.expect("database");
        let store = Store::connect(&database.url, MasterKey::generate())
            .await
            .expect("store");
        (Outcomes::new(store), database)
    }

    fn progress(partition: u32, next_offset: u64, rejected: &[(u64, &str)]) -> Progress {
        Progress {
            partition,
            from: 0,
            next_offset,
            rejected: rejected
                .iter()
                .map(|(offset, reason)| (*offset, reason.to_string()))
                .collect(),
            truncated: false,
        }
    }

    fn at(partition: u32, offset: u64) -> Position {
        Position { partition, offset }
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_the_announcement_that_passes_its_offset() {
        let (outcomes, _database) = outcomes().await;
        let waiting = tokio::spawn({
            let outcomes = outcomes.clone();
            async move { outcomes.wait(at(3, 7)).await }
        });
        tokio::task::yield_now().await;
        // Another partition, and this one short of the offset: still undecided.
        outcomes.record(progress(2, 100, &[]));
        outcomes.record(progress(3, 7, &[]));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        outcomes.record(progress(3, 9, &[(8, "not this one")]));
        let decision = tokio::time::timeout(Duration::from_millis(400), waiting)
            .await
            .expect("woken before the store is asked")
            .expect("task")
            .expect("decision");
        assert_eq!(decision, Decision::Applied);
        assert!(
            outcomes
                .decided
                .lock()
                .expect("lock")
                .waiting
                .values()
                .all(BTreeMap::is_empty),
            "the woken waiter is no longer enlisted"
        );
    }

    #[tokio::test]
    async fn a_rejection_reaches_its_waiter_once() {
        let (outcomes, _database) = outcomes().await;
        outcomes.record(progress(0, 5, &[(4, "stale head")]));
        assert_eq!(
            outcomes.wait(at(0, 4)).await.expect("decision"),
            Decision::Rejected("stale head".into())
        );
        assert_eq!(
            outcomes.wait(at(0, 3)).await.expect("decision"),
            Decision::Applied
        );
    }

    #[tokio::test]
    async fn many_waiters_of_one_batch_are_all_woken() {
        let (outcomes, _database) = outcomes().await;
        let waiters: Vec<_> = (0..64u64)
            .map(|offset| {
                let outcomes = outcomes.clone();
                tokio::spawn(async move { outcomes.wait(at((offset % 4) as u32, offset)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        for partition in 0..4 {
            outcomes.record(progress(partition, 64, &[(partition as u64, "rejected")]));
        }
        for (offset, waiter) in waiters.into_iter().enumerate() {
            let decision = tokio::time::timeout(Duration::from_millis(400), waiter)
                .await
                .expect("woken")
                .expect("task")
                .expect("decision");
            // Partition p rejected offset p.
            let expected = if offset < 4 {
                Decision::Rejected("rejected".into())
            } else {
                Decision::Applied
            };
            assert_eq!(decision, expected, "offset {offset}");
        }
    }
}
