//! Drives a projector over the log: tasks read every partition from the projection's stored
//! positions, and whatever records are ready (up to a batch size, of any partitions, each
//! partition's in order) go to the projector, which applies them in one transaction, and
//! starts over from the stored positions after a failure, so nothing is skipped and nothing is
//! applied twice. One transaction for all partitions keeps batches large (and commits few) when
//! the load spreads over many partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use stratos_log::{CommitLog, LogRecord, PartitionEnd, ReadPace};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::repo::ProjectorError;
use stratos_store::{Lease, StoreError};

/// A projector of one or more partitions: where it is, and how it applies a batch.
pub trait Applier: Send {
    /// The next offset to read in `partition`.
    fn position(
        &mut self,
        partition: u32,
    ) -> impl Future<Output = Result<u64, ProjectorError>> + Send;
    /// Decides records (of one or more partitions, each partition's consecutive and in
    /// order) on the state left by those decided before, and either keeps the outcome for the
    /// next [`Applier::take_write`] or writes it at once, atomically with the partitions' new
    /// positions.
    fn decide(
        &mut self,
        records: &[LogRecord],
    ) -> impl Future<Output = Result<(), ProjectorError>> + Send;
    /// The write of what was decided since the last call; it runs while the next records are
    /// decided, and each write starts once the one before has finished. By default nothing is
    /// left to write.
    fn take_write(&mut self) -> PendingWrite {
        Box::pin(async { Ok(()) })
    }
    /// Forgets what was decided but may not be written, after a write failed: the runner
    /// starts over from the stored positions.
    fn forget(&mut self) {}
}

/// A decided batch's write (see [`Applier::take_write`]).
pub type PendingWrite = futures::future::BoxFuture<'static, Result<(), ProjectorError>>;

/// The write under way, started on its own task so that it goes on while the next batch is
/// decided.
type Writing = tokio::task::JoinHandle<Result<(), ProjectorError>>;

/// The outcome of a finished write task.
fn joined_outcome(
    joined: Result<Result<(), ProjectorError>, tokio::task::JoinError>,
) -> Result<(), ProjectorError> {
    match joined {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ProjectorError::Stopped),
    }
}

/// The stored positions a projector has read, kept while it is the only one moving them.
#[derive(Debug, Default)]
pub struct Positions(HashMap<u32, u64>);

impl Positions {
    /// The position of `partition`, read with `load` the first time (0 when none is stored).
    pub async fn get(
        &mut self,
        partition: u32,
        load: impl Future<Output = Result<Option<u64>, StoreError>>,
    ) -> Result<u64, ProjectorError> {
        if let Some(next) = self.0.get(&partition) {
            return Ok(*next);
        }
        let next = load.await?.unwrap_or(0);
        self.0.insert(partition, next);
        Ok(next)
    }

    /// The positions of the partitions of `records`, each read with `load` the first time.
    pub async fn of<F>(
        &mut self,
        records: &[LogRecord],
        load: impl Fn(u32) -> F,
    ) -> Result<&HashMap<u32, u64>, ProjectorError>
    where
        F: Future<Output = Result<Option<u64>, StoreError>>,
    {
        for record in records {
            let partition = record.position.partition;
            self.get(partition, load(partition)).await?;
        }
        Ok(&self.0)
    }

    /// Takes in the new positions of a committed batch.
    pub fn advance(&mut self, positions: impl IntoIterator<Item = (u32, u64)>) {
        self.0.extend(positions);
    }

    /// Forgets every position, after a batch that may or may not have committed: they are
    /// read again.
    pub fn forget(&mut self) {
        self.0.clear();
    }

    /// Takes in the outcome of a batch: the partitions' new positions, or, after a failure,
    /// forgets them all (the commit may or may not have happened).
    pub fn settle(
        &mut self,
        outcome: Result<Vec<(u32, u64)>, ProjectorError>,
    ) -> Result<(), ProjectorError> {
        match outcome {
            Ok(positions) => {
                self.advance(positions);
                Ok(())
            }
            Err(error) => {
                self.forget();
                Err(error)
            }
        }
    }
}

/// How to drive the partitions.
#[derive(Debug, Clone, Copy)]
pub struct DriveOptions {
    /// At most this many records per transaction.
    pub batch_size: usize,
    /// Stop each partition at the end it had when started (replay) instead of following the
    /// log forever.
    pub stop_at_end: bool,
    /// How promptly the projector needs new records.
    pub pace: ReadPace,
    /// How long a batch may gather after its first record (zero: take what is ready). Fewer,
    /// larger transactions write fewer pages, for projectors nobody reads right after a write.
    pub gather: Duration,
}

/// Applies `partitions` until each reached its end (with `options.stop_at_end`) or `shutdown`
/// turns `true`, while this process holds `lease` (standing by until it can take it, and
/// giving it back at the end). Calls `on_batch(records)` after each decided batch. Failures
/// are logged and retried from the stored positions with a growing pause.
pub async fn drive<A: Applier>(
    applier: &mut A,
    mut lease: Lease,
    log: Arc<dyn CommitLog>,
    partitions: &[PartitionEnd],
    options: DriveOptions,
    mut shutdown: watch::Receiver<bool>,
    mut on_batch: impl FnMut(usize) + Send,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        if !lease.hold(&mut shutdown).await {
            break;
        }
        // Whatever the applier knew may be stale if another process held the lease meanwhile.
        applier.forget();
        let mut writing = None;
        let outcome = follow(
            applier,
            &log,
            partitions,
            options,
            &mut shutdown,
            &mut on_batch,
            &mut writing,
        )
        .await;
        match finish(applier, outcome, &mut writing).await {
            Ok(()) => break,
            Err(error) => {
                if let ProjectorError::Store(StoreError::LeaseLost(consumer)) = &error {
                    // Taken again after the pause, at a new epoch, unless another process has
                    // it: then this one stands by.
                    tracing::warn!(%consumer, "the lease was lost; taking it again or standing by");
                    lease.release().await;
                } else {
                    tracing::warn!(%error, "projector batch failed; retrying from the stored positions");
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
    lease.release().await;
}

/// Ends a run of [`follow`]: however it ended, the write under way finishes, and so does what
/// was decided after it; after a failure the applier forgets what it decided (its positions
/// included), so the next run starts from the stored positions.
async fn finish<A: Applier>(
    applier: &mut A,
    outcome: Result<(), ProjectorError>,
    writing: &mut Option<Writing>,
) -> Result<(), ProjectorError> {
    let mut finished = match writing.take() {
        Some(write) => joined_outcome(write.await),
        None => Ok(()),
    };
    if outcome.is_ok() && finished.is_ok() {
        // What was decided while the last write ran.
        finished = applier.take_write().await;
    }
    let outcome = outcome.and(finished);
    if outcome.is_err() {
        applier.forget();
    }
    outcome
}

/// Applies the partitions from the applier's positions until done (with
/// `options.stop_at_end`), stopped or failed, leaving the last write in `writing`.
async fn follow<A: Applier>(
    applier: &mut A,
    log: &Arc<dyn CommitLog>,
    partitions: &[PartitionEnd],
    options: DriveOptions,
    shutdown: &mut watch::Receiver<bool>,
    on_batch: &mut (impl FnMut(usize) + Send),
    writing: &mut Option<Writing>,
) -> Result<(), ProjectorError> {
    // With `stop_at_end`, the partitions still short of their ends, and those ends.
    let mut open: BTreeMap<u32, u64> = BTreeMap::new();
    let mut streams = Vec::with_capacity(partitions.len());
    for end in partitions {
        let position = applier.position(end.partition).await?;
        if options.stop_at_end {
            if position >= end.end {
                continue;
            }
            open.insert(end.partition, end.end);
        }
        streams.push(log.consume(end.partition, position, options.pace));
    }
    if streams.is_empty() {
        return Ok(());
    }
    // Every partition is read by a task of its own, which pauses only between records: a
    // stream polled only while the projector is not busy could hold a reader's connection
    // (the embedded log's) mid-query for as long as a batch takes. The tasks end with this
    // set, when this function returns.
    let batch_size = options.batch_size.max(1);
    let (sender, mut receiver) = mpsc::channel(batch_size);
    let mut readers = JoinSet::new();
    for mut stream in streams {
        let sender = sender.clone();
        readers.spawn(async move {
            while let Some(record) = stream.next().await {
                if sender.send(record).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(sender);
    let mut chunk = Vec::with_capacity(batch_size);
    // Records decided since the last write was taken. While a write is under way, what arrives
    // is decided into the next one (up to a batch), so a write carries all that came during
    // the last.
    let mut decided = 0;
    loop {
        let room = batch_size - decided;
        let received = tokio::select! {
            received = receiver.recv_many(&mut chunk, room), if room > 0 => received,
            joined = async { writing.as_mut().expect("a write is under way").await },
                if writing.is_some() =>
            {
                *writing = None;
                joined_outcome(joined)?;
                if decided > 0 {
                    *writing = Some(tokio::spawn(applier.take_write()));
                    decided = 0;
                }
                continue;
            }
            _ = shutdown.changed() => return Ok(()),
        };
        if received == 0 {
            return Err(ProjectorError::Log(stratos_log::LogError::Closed));
        }
        if !options.gather.is_zero() && chunk.len() < room {
            tokio::select! {
                _ = tokio::time::sleep(options.gather) => {}
                _ = shutdown.changed() => return Ok(()),
            }
            while chunk.len() < room
                && let Ok(record) = receiver.try_recv()
            {
                chunk.push(record);
            }
        }
        let mut batch = Vec::with_capacity(chunk.len());
        for record in chunk.drain(..) {
            let record = record?;
            let past_end = options.stop_at_end
                && open
                    .get(&record.position.partition)
                    .is_none_or(|end| record.position.offset >= *end);
            if !past_end {
                batch.push(record);
            }
        }
        if !batch.is_empty() {
            applier.decide(&batch).await?;
            decided += batch.len();
            if writing.is_none() {
                *writing = Some(tokio::spawn(applier.take_write()));
                decided = 0;
            }
            on_batch(batch.len());
        }
        if options.stop_at_end {
            let mut reached = Vec::new();
            for (partition, end) in &open {
                if applier.position(*partition).await? >= *end {
                    reached.push(*partition);
                }
            }
            for partition in reached {
                open.remove(&partition);
            }
            if open.is_empty() {
                return Ok(());
            }
        }
    }
}
