//! Shared live reads for `subscribeRecords`: when many subscribers follow the same actor (and
//! domain) and wake for the same change, one of them reads and encodes the frames after their
//! common position and the others take the result, so a change costs a few queries, not a few
//! per subscriber.
//!
//! A page read after a subscriber saw wake-up `tick` holds everything that wake-up announced, so
//! a subscriber that saw an older or equal tick may use it; a subscriber elsewhere in the stream
//! reads on its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Frames after a stream position, as one read produced them.
#[derive(Debug, Default)]
pub struct Page {
    /// The encoded frames, in order.
    pub frames: Vec<Vec<u8>>,
    /// The sequence number of the last event read (none when nothing was new).
    pub last_seq: Option<u64>,
    /// Whether the read hit its size limit (more may follow at once).
    pub full: bool,
}

/// The last page read for one stream, and after which position and wake-up.
struct Entry {
    after: u64,
    tick: u64,
    page: Arc<Page>,
}

/// One stream's shared state; subscribers hold it, the registry only refers to it.
#[derive(Default)]
pub struct Tail {
    last: tokio::sync::Mutex<Option<Entry>>,
}

/// Streams in this process are kept apart by actor and domain filter.
type StreamKey = (String, Option<String>);

/// The registry of followed streams.
#[derive(Default)]
pub struct Tails {
    streams: Mutex<HashMap<StreamKey, Weak<Tail>>>,
}

/// Streams kept in the registry before forgotten ones are swept out.
const SWEEP_ABOVE: usize = 1_024;

impl Tails {
    /// The shared state of the stream of `did` filtered by `domain`; held for as long as the
    /// subscriber follows it.
    pub fn tail(&self, did: &str, domain: Option<&str>) -> Arc<Tail> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (did.to_string(), domain.map(str::to_string));
        if let Some(tail) = streams.get(&key).and_then(Weak::upgrade) {
            return tail;
        }
        if streams.len() >= SWEEP_ABOVE {
            streams.retain(|_, tail| tail.strong_count() > 0);
        }
        let tail = Arc::new(Tail::default());
        streams.insert(key, Arc::downgrade(&tail));
        tail
    }
}

impl Tail {
    /// The page after `after` for a subscriber that saw wake-up `tick`: the last one read when
    /// it fits, otherwise `read`'s (one reader at a time; the others wait and take its page).
    pub async fn page<E, F>(&self, after: u64, tick: u64, read: F) -> Result<Arc<Page>, E>
    where
        F: Future<Output = Result<Page, E>>,
    {
        let mut last = self.last.lock().await;
        if let Some(entry) = last.as_ref()
            && entry.after == after
            && entry.tick >= tick
        {
            return Ok(entry.page.clone());
        }
        let page = Arc::new(read.await?);
        *last = Some(Entry {
            after,
            tick,
            page: page.clone(),
        });
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn page(seq: u64) -> Page {
        Page {
            frames: vec![vec![seq as u8]],
            last_seq: Some(seq),
            full: false,
        }
    }

    #[tokio::test]
    async fn subscribers_at_one_position_share_a_read() {
        let tails = Tails::default();
        let tail = tails.tail("did:plc:a", None);
        let reads = AtomicUsize::new(0);
        let read = |seq| {
            let reads = &reads;
            async move {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(page(seq))
            }
        };
        let first = tail.page(4, 7, read(5)).await.unwrap();
        let same = tails
            .tail("did:plc:a", None)
            .page(4, 7, read(9))
            .await
            .unwrap();
        assert_eq!(same.last_seq, first.last_seq);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // A later wake-up, another position, or another domain reads again.
        assert_eq!(tail.page(4, 8, read(6)).await.unwrap().last_seq, Some(6));
        assert_eq!(tail.page(6, 8, read(7)).await.unwrap().last_seq, Some(7));
        let filtered = tails.tail("did:plc:a", Some("x"));
        assert_eq!(
            filtered.page(6, 8, read(8)).await.unwrap().last_seq,
            Some(8)
        );
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_stream_nobody_follows_is_forgotten() {
        let tails = Tails::default();
        let tail = tails.tail("did:plc:a", None);
        tail.page(0, 1, async { Ok::<_, ()>(page(1)) })
            .await
            .unwrap();
        drop(tail);
        let fresh = tails.tail("did:plc:a", None);
        let reread = fresh
            .page(0, 1, async { Ok::<_, ()>(page(2)) })
            .await
            .unwrap();
        assert_eq!(reread.last_seq, Some(2));
    }
}
