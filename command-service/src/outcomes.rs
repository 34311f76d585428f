//! Waiting for the repo projector's decision on an appended event (read-your-writes).
//!
//! Decisions arrive as [`Progress`] announcements: from the projectors' in-process channel when
//! they run in this process, or from Postgres `LISTEN` when they run elsewhere. Announcements can
//! be missed (a lagging channel, a reconnecting listener), so a waiter that hears nothing for a
//! while asks the store directly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt};
use stratos_log::Position;
use stratos_projector::repo::{CONSUMER, Progress};
use stratos_store::{Store, StoreError};
use tokio::sync::{Notify, broadcast};

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
}

/// The repo projector's decisions as far as this process has heard.
#[derive(Clone)]
pub struct Outcomes {
    store: Store,
    decided: Arc<Mutex<Decided>>,
    changed: Arc<Notify>,
}

impl Outcomes {
    /// Outcomes read from `store` when announcements are missing.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            decided: Arc::default(),
            changed: Arc::new(Notify::new()),
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

    /// Records an announcement. One whose rejections were left out (`truncated`) teaches
    /// nothing: its waiters ask the store.
    pub fn record(&self, progress: Progress) {
        if progress.truncated {
            return;
        }
        {
            let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
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
        self.changed.notify_waiters();
    }

    /// Waits until the event at `position` is decided.
    pub async fn wait(&self, position: Position) -> Result<Decision, StoreError> {
        loop {
            let notified = self.changed.notified();
            if let Some(decision) = self.heard(position) {
                return Ok(decision);
            }
            if tokio::time::timeout(RECHECK, notified).await.is_err()
                && let Some(decision) = self.ask_store(position).await?
            {
                return Ok(decision);
            }
        }
    }

    fn heard(&self, position: Position) -> Option<Decision> {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
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
