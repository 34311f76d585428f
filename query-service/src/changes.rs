//! Wake-ups for readers that follow the projections (`subscribeRecords`): a counter that moves
//! whenever the repo projector announces progress, in process or over Postgres `LISTEN`.
//! Followers also look again now and then, so a missed announcement only delays them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};
use stratos_projector::repo::Progress;
use stratos_store::StoreError;
use tokio::sync::{broadcast, watch};

/// Announces that the projections may have moved.
#[derive(Clone)]
pub struct Changes {
    tick: watch::Sender<u64>,
    /// The furthest each partition was announced to reach: the same batch heard twice (in
    /// process and over `LISTEN`) wakes the followers once.
    reached: Arc<Mutex<HashMap<u32, u64>>>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    /// Nothing heard yet.
    pub fn new() -> Self {
        Self {
            tick: watch::Sender::new(0),
            reached: Arc::default(),
        }
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tick.subscribe()
    }

    /// Announces a change.
    pub fn poke(&self) {
        self.tick.send_modify(|tick| *tick = tick.wrapping_add(1));
    }

    /// Announces a repo projector batch, unless it was heard already.
    pub fn heard(&self, progress: &Progress) {
        let advanced = {
            let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
            let next = reached.entry(progress.partition).or_default();
            let advanced = progress.next_offset > *next;
            *next = (*next).max(progress.next_offset);
            advanced
        };
        if advanced {
            self.poke();
        }
    }

    /// Follows the announcements of projectors running in this process.
    pub fn follow_channel(&self, mut progress: broadcast::Receiver<Progress>) {
        let changes = self.clone();
        tokio::spawn(async move {
            loop {
                match progress.recv().await {
                    Ok(progress) => changes.heard(&progress),
                    Err(broadcast::error::RecvError::Lagged(_)) => changes.poke(),
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
        let changes = self.clone();
        tokio::spawn(async move {
            let mut payloads = std::pin::pin!(payloads);
            while let Some(payload) = payloads.next().await {
                match payload {
                    Ok(payload) => match Progress::from_payload(&payload) {
                        Some(progress) => changes.heard(&progress),
                        None => changes.poke(),
                    },
                    Err(error) => tracing::warn!(%error, "projection notifications interrupted"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(partition: u32, next_offset: u64) -> Progress {
        Progress {
            partition,
            from: 0,
            next_offset,
            rejected: Vec::new(),
            truncated: false,
        }
    }

    #[test]
    fn a_batch_heard_twice_wakes_followers_once() {
        let changes = Changes::new();
        let followers = changes.subscribe();
        changes.heard(&batch(0, 5));
        changes.heard(&batch(0, 5));
        assert_eq!(*followers.borrow(), 1);
        changes.heard(&batch(1, 5));
        changes.heard(&batch(0, 7));
        changes.heard(&batch(0, 6));
        assert_eq!(*followers.borrow(), 3);
    }
}
