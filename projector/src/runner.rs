//! Drives projectors over the log: one task per partition reads from the projection's stored
//! position, hands whatever records are ready (up to a batch size) to the projector, and starts
//! over from the stored position after a failure, so nothing is skipped and nothing is applied
//! twice.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use stratos_log::{CommitLog, LogRecord};
use tokio::sync::watch;

use crate::repo::ProjectorError;

/// A projector of one partition: where it is, and how it applies a batch.
pub trait Applier: Send {
    /// The next offset to read.
    fn position(&mut self) -> impl Future<Output = Result<u64, ProjectorError>> + Send;
    /// Applies consecutive records atomically with the new position; returns the next offset.
    fn apply(
        &mut self,
        records: &[LogRecord],
    ) -> impl Future<Output = Result<u64, ProjectorError>> + Send;
}

/// How to drive a partition.
#[derive(Debug, Clone, Copy)]
pub struct DriveOptions {
    /// At most this many records per transaction.
    pub batch_size: usize,
    /// Stop once the position reaches this offset (replay); `None` follows the log forever.
    pub until: Option<u64>,
}

/// Applies `partition` until `options.until` is reached or `shutdown` turns `true`. Calls
/// `on_batch(records)` after each applied batch. Failures are logged and retried from the
/// stored position with a growing pause.
pub async fn drive<A: Applier>(
    applier: &mut A,
    log: Arc<dyn CommitLog>,
    partition: u32,
    options: DriveOptions,
    mut shutdown: watch::Receiver<bool>,
    mut on_batch: impl FnMut(usize) + Send,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match follow(
            applier,
            &log,
            partition,
            options,
            &mut shutdown,
            &mut on_batch,
        )
        .await
        {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(partition, %error, "projector batch failed; retrying from the stored position");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn follow<A: Applier>(
    applier: &mut A,
    log: &Arc<dyn CommitLog>,
    partition: u32,
    options: DriveOptions,
    shutdown: &mut watch::Receiver<bool>,
    on_batch: &mut (impl FnMut(usize) + Send),
) -> Result<(), ProjectorError> {
    let mut position = applier.position().await?;
    if options.until.is_some_and(|until| position >= until) {
        return Ok(());
    }
    let mut records = log
        .consume(partition, position)
        .ready_chunks(options.batch_size.max(1));
    loop {
        let chunk = tokio::select! {
            chunk = records.next() => chunk,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(chunk) = chunk else {
            return Err(ProjectorError::Log(stratos_log::LogError::Closed));
        };
        let mut batch = Vec::with_capacity(chunk.len());
        for record in chunk {
            let record = record?;
            if options
                .until
                .is_some_and(|until| record.position.offset >= until)
            {
                break;
            }
            batch.push(record);
        }
        if !batch.is_empty() {
            position = applier.apply(&batch).await?;
            on_batch(batch.len());
        }
        if options.until.is_some_and(|until| position >= until) {
            return Ok(());
        }
    }
}
