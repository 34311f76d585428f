//! Wake-ups for readers that follow the projections (`subscribeRecords`): a counter that moves
//! whenever the repo projector announces progress, in process or over Postgres `LISTEN`.
//! Followers also look again now and then, so a missed announcement only delays them.

use futures::{Stream, StreamExt};
use stratos_projector::repo::Progress;
use stratos_store::StoreError;
use tokio::sync::{broadcast, watch};

/// Announces that the projections may have moved.
#[derive(Clone)]
pub struct Changes {
    tick: watch::Sender<u64>,
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

    /// Follows the announcements of projectors running in this process.
    pub fn follow_channel(&self, mut progress: broadcast::Receiver<Progress>) {
        let changes = self.clone();
        tokio::spawn(async move {
            loop {
                match progress.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => changes.poke(),
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
                    Ok(_) => changes.poke(),
                    Err(error) => tracing::warn!(%error, "projection notifications interrupted"),
                }
            }
        });
    }
}
