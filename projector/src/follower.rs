//! Following the repo projector: the AppView projector and the PDS publisher act only on the
//! events the repo projector accepted, and learn which those are from its announcements.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;

use stratos_log::LogRecord;
use stratos_schema::events::Event;
use stratos_store::{Store, StoreError};
use tokio::sync::broadcast;

use crate::repo::{CONSUMER, Progress};

/// How long a follower waits for the repo projector before looking again without a
/// notification.
const REPO_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// What a follower of the repo projector (the AppView projector, the PDS publisher) knows of
/// its decisions: it acts only on the events the repo projector accepted. It learns them from
/// the projector's announcements, and asks the store only when it may have missed some (no
/// projector in this process, a lagging receiver, a shortened announcement) or every poll
/// interval while it waits.
pub struct RepoFollower {
    store: Store,
    progress: broadcast::Receiver<Progress>,
    partitions: HashMap<u32, Heard>,
}

/// What a follower heard of one partition.
#[derive(Default)]
struct Heard {
    /// Offsets below this one are decided.
    decided: u64,
    /// Offsets whose every announcement was heard, so that `rejected` holds their rejections;
    /// `None` when no such range is known.
    range: Option<Range<u64>>,
    /// Rejected offsets announced in `range`.
    rejected: BTreeSet<u64>,
}

impl RepoFollower {
    /// A follower; `progress` receives the repo projector's announcements.
    pub fn new(store: Store, progress: broadcast::Receiver<Progress>) -> Self {
        Self {
            store,
            progress,
            partitions: HashMap::new(),
        }
    }

    /// The events of `records` (of any partitions, each partition's in order) at or after
    /// their partition's position in `starts` that the repo projector accepted, once it has
    /// decided them all, with the next offset of each partition that had such records.
    pub async fn accepted_batch(
        &mut self,
        records: &[LogRecord],
        starts: &HashMap<u32, u64>,
    ) -> Result<(Vec<Event>, Vec<(u32, u64)>), StoreError> {
        let mut partitions: BTreeMap<u32, Vec<&LogRecord>> = BTreeMap::new();
        for record in records {
            partitions
                .entry(record.position.partition)
                .or_default()
                .push(record);
        }
        let mut events = Vec::new();
        let mut positions = Vec::new();
        for (partition, records) in partitions {
            let start = starts.get(&partition).copied().unwrap_or(0);
            if let Some((accepted, next_offset)) =
                self.accepted_events(partition, &records, start).await?
            {
                events.extend(accepted);
                positions.push((partition, next_offset));
            }
        }
        Ok((events, positions))
    }

    /// The events of `records` (of `partition`) at or after `start` that the repo projector
    /// accepted, once it has decided them all, with the offset after the last record; `None`
    /// when no record is at or after `start`.
    async fn accepted_events(
        &mut self,
        partition: u32,
        records: &[&LogRecord],
        start: u64,
    ) -> Result<Option<(Vec<Event>, u64)>, StoreError> {
        let fresh: Vec<&LogRecord> = records
            .iter()
            .copied()
            .filter(|r| r.position.offset >= start)
            .collect();
        let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
            return Ok(None);
        };
        let (first, next_offset) = (first.position.offset, last.position.offset + 1);
        self.wait_until_decided(partition, next_offset).await?;
        let rejected = match self.heard_rejections(partition, first..next_offset) {
            Some(rejected) => rejected,
            None => self
                .store
                .rejected_offsets(partition, first, next_offset)
                .await?
                .into_iter()
                .collect(),
        };
        // What comes before the next batch is done with.
        let heard = self.partitions.entry(partition).or_default();
        heard.rejected = heard.rejected.split_off(&next_offset);
        let events = fresh
            .into_iter()
            .filter(|r| !rejected.contains(&r.position.offset))
            // The repo projector accepted them, so they decode.
            .filter_map(|r| Event::decode(&r.payload).ok())
            .collect();
        Ok(Some((events, next_offset)))
    }

    /// The rejected offsets of `partition` in `offsets` if every announcement of them was
    /// heard.
    fn heard_rejections(&self, partition: u32, offsets: Range<u64>) -> Option<HashSet<u64>> {
        let heard = self.partitions.get(&partition)?;
        let range = heard.range.as_ref()?;
        (range.start <= offsets.start && offsets.end <= range.end)
            .then(|| heard.rejected.range(offsets).copied().collect())
    }

    fn decided(&self, partition: u32) -> u64 {
        self.partitions.get(&partition).map_or(0, |h| h.decided)
    }

    /// Waits until every offset of `partition` below `next_offset` is decided: woken by
    /// announcements, and asking the store every poll interval, after a lag, or without a
    /// projector in this process.
    async fn wait_until_decided(
        &mut self,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), StoreError> {
        let mut look_again = tokio::time::Instant::now() + REPO_POLL;
        while self.decided(partition) < next_offset {
            match tokio::time::timeout_at(look_again, self.progress.recv()).await {
                Ok(Ok(heard)) => {
                    self.hear(heard);
                    continue;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    self.look_in_store(partition).await?;
                    if self.decided(partition) < next_offset {
                        tokio::time::sleep_until(look_again).await;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    for heard in self.partitions.values_mut() {
                        heard.range = None;
                    }
                    self.look_in_store(partition).await?;
                }
                Err(_) => self.look_in_store(partition).await?,
            }
            look_again = tokio::time::Instant::now() + REPO_POLL;
        }
        Ok(())
    }

    /// Takes in an announcement.
    fn hear(&mut self, announced: Progress) {
        let heard = self.partitions.entry(announced.partition).or_default();
        heard.decided = heard.decided.max(announced.next_offset);
        if announced.truncated {
            heard.range = None;
            return;
        }
        match &mut heard.range {
            Some(range) if announced.from <= range.end => {
                range.end = range.end.max(announced.next_offset);
            }
            _ => {
                heard.range = Some(announced.from..announced.next_offset);
                heard.rejected.clear();
            }
        }
        heard
            .rejected
            .extend(announced.rejected.iter().map(|(offset, _)| *offset));
    }

    /// Reads how far the repo projector got in `partition` from the store.
    async fn look_in_store(&mut self, partition: u32) -> Result<(), StoreError> {
        let stored = self.store.position(CONSUMER, partition).await?.unwrap_or(0);
        let heard = self.partitions.entry(partition).or_default();
        heard.decided = heard.decided.max(stored);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stratos_store::MasterKey;

    fn progress(from: u64, next_offset: u64, rejected: &[u64]) -> Progress {
        Progress {
            partition: 3,
            from,
            next_offset,
            rejected: rejected.iter().map(|o| (*o, "no".to_string())).collect(),
            truncated: false,
        }
    }

    fn offsets(list: &[u64]) -> Option<HashSet<u64>> {
        Some(list.iter().copied().collect())
    }

    #[tokio::test]
    async fn a_follower_trusts_only_what_it_heard_without_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.sqlite").display());
        let store = Store::connect(&url, MasterKey::generate()).await.unwrap();
        let (announce, receiver) = broadcast::channel(4);
        let mut follower = RepoFollower::new(store, receiver);
        assert_eq!(
            follower.heard_rejections(3, 0..1),
            None,
            "nothing heard yet"
        );

        announce.send(progress(0, 5, &[2])).unwrap();
        announce
            .send(Progress {
                partition: 4,
                ..progress(0, 9, &[8])
            })
            .unwrap();
        announce.send(progress(5, 9, &[7])).unwrap();
        follower.wait_until_decided(3, 9).await.unwrap();
        assert_eq!(follower.decided(3), 9);
        assert_eq!(follower.heard_rejections(3, 0..9), offsets(&[2, 7]));
        assert_eq!(follower.heard_rejections(3, 3..7), offsets(&[]));

        // Offsets 9..12 were never announced to this follower: the store must say.
        announce.send(progress(12, 15, &[13])).unwrap();
        follower.wait_until_decided(3, 15).await.unwrap();
        assert_eq!(follower.heard_rejections(3, 9..15), None);
        assert_eq!(follower.heard_rejections(3, 12..15), offsets(&[13]));

        // A shortened announcement carries no rejections.
        announce
            .send(Progress {
                truncated: true,
                ..progress(15, 20, &[])
            })
            .unwrap();
        follower.wait_until_decided(3, 20).await.unwrap();
        assert_eq!(follower.heard_rejections(3, 15..20), None);

        // Missed announcements (a lagging receiver) are a gap too.
        announce.send(progress(20, 22, &[])).unwrap();
        follower.wait_until_decided(3, 22).await.unwrap();
        assert_eq!(follower.heard_rejections(3, 20..22), offsets(&[]));
        for from in 22..30 {
            announce.send(progress(from, from + 1, &[])).unwrap();
        }
        follower.wait_until_decided(3, 30).await.unwrap();
        assert_eq!(follower.heard_rejections(3, 22..30), None);
        assert_eq!(follower.heard_rejections(3, 26..30), offsets(&[]));
    }
}
