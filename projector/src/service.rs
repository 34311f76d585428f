//! Runs the projectors of a deployment over every partition of the log: the repo projector and
//! (when views are configured) the AppView projector, one task each, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use stratos_log::{CommitLog, ReadPace};
use stratos_schema::commit::SignedHere;
use stratos_store::{Store, Views};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::repo::{Progress, ProjectorError, RepoProjector};
use crate::runner::{DriveOptions, drive};
use crate::views::ViewProjector;

/// Default records per transaction.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// Settings of [`start`].
#[derive(Debug, Clone, Copy)]
pub struct ProjectorOptions {
    /// At most this many records per transaction.
    pub batch_size: usize,
    /// Stop each partition at the offsets the log had when started (a rebuild) instead of
    /// following it.
    pub stop_at_end: bool,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            stop_at_end: false,
        }
    }
}

/// Running projectors: their tasks and the repo projector's progress announcements.
pub struct Projectors {
    tasks: JoinSet<()>,
    progress: broadcast::Sender<Progress>,
    shutdown: watch::Sender<bool>,
    signed_here: SignedHere,
}

impl Projectors {
    /// The repo projector's announcements from now on (for waiting on a write's outcome).
    pub fn subscribe(&self) -> broadcast::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Where a command side in this process remembers the commits it signs, so that the repo
    /// projector takes their signatures as checked.
    pub fn signed_here(&self) -> SignedHere {
        self.signed_here.clone()
    }

    /// Asks every worker to stop after its current batch, and waits for them.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until every worker finished (with `stop_at_end`, once the log's end is reached).
    pub async fn finished(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the repo projector (and the AppView projector if `views` is given) over every
/// partition. `on_batch(records)` is called after each repo projector batch (for progress bars).
pub async fn start(
    log: Arc<dyn CommitLog>,
    store: Store,
    views: Option<Views>,
    options: ProjectorOptions,
    on_batch: impl Fn(usize) + Clone + Send + Sync + 'static,
) -> Result<Projectors, ProjectorError> {
    let (progress, _) = broadcast::channel(1_024);
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let partitions = log.partitions().await?;
    // Writers wait for the repo projector; the AppView projector follows its announcements.
    let drive_options = DriveOptions {
        batch_size: options.batch_size,
        stop_at_end: options.stop_at_end,
        pace: ReadPace::Prompt,
        gather: Duration::ZERO,
    };
    if let Some(views) = &views {
        // Subscribed before the repo projector starts, so it hears every announcement.
        let lease = views.lease(crate::views::CONSUMER);
        let mut view = ViewProjector::new(store.clone(), views.clone(), progress.subscribe())
            .with_fence(lease.fence());
        let (log, partitions, stop) = (log.clone(), partitions.clone(), stop.clone());
        tasks.spawn(async move {
            // Batches are not left to gather: a post shows in the views as soon as its write
            // is answered.
            let options = DriveOptions {
                pace: ReadPace::Relaxed,
                ..drive_options
            };
            drive(&mut view, lease, log, &partitions, options, stop, |_| {}).await;
        });
    }
    let signed_here = SignedHere::default();
    let lease = store.lease(crate::repo::CONSUMER);
    let mut repo = RepoProjector::new(store.clone(), progress.clone())
        .with_signed_here(signed_here.clone())
        .with_fence(lease.fence());
    tasks.spawn(async move {
        drive(
            &mut repo,
            lease,
            log,
            &partitions,
            drive_options,
            stop,
            on_batch,
        )
        .await;
    });
    Ok(Projectors {
        tasks,
        progress,
        shutdown,
        signed_here,
    })
}
