//! The AppView projector: keeps the AppView views (spec §10.1) in step with the log.
//!
//! It follows the repo projector rather than judging events itself: a batch is applied only once
//! the repo projector has decided every event in it, and events the repo projector rejected are
//! skipped. Record contents come from the event's sealed blocks, opened with the actor's data
//! key (none after a purge: the post is removed instead of shown empty). Rows and the views'
//! positions are written in one transaction.

use stratos_log::LogRecord;
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{Event, OpAction, RepoOp, SealedRecord};
use stratos_schema::syntax::Did;
use stratos_store::{EnrollmentRow, Fence, PostRow, Store, StoreError, Views, ViewsTx};
use tokio::sync::broadcast;

use crate::appview::{
    ViewChange, boundaries_change, commit_changes, enrollment_change, unenroll_change,
};
use crate::arbiter::RecordChange;
use crate::data_keys::DataKeys;
use crate::follower::RepoFollower;
use crate::repo::{Progress, ProjectorError};
use crate::runner::{Applier, Positions};

/// Applies the log's events to the views.
pub struct ViewProjector {
    views: Views,
    repo: RepoFollower,
    data_keys: DataKeys,
    positions: Positions,
    fence: Fence,
}

/// The AppView projector's lease name.
pub const CONSUMER: &str = "appview";

impl ViewProjector {
    /// A projector; `repo_progress` announces the repo projector's batches.
    pub fn new(store: Store, views: Views, repo_progress: broadcast::Receiver<Progress>) -> Self {
        Self {
            data_keys: DataKeys::new(store.clone()),
            repo: RepoFollower::new(store, repo_progress),
            views,
            positions: Positions::default(),
            fence: Fence::default(),
        }
    }

    /// Commits batches only while the lease behind `fence` is this process's.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    async fn changes(&mut self, event: Event) -> Result<Vec<ViewChange>, StoreError> {
        self.data_keys.observe(&event);
        Ok(match event {
            Event::Enrollment(event) => vec![enrollment_change(&event)],
            Event::Boundaries(event) => vec![boundaries_change(&event)],
            Event::Unenroll(event) => vec![unenroll_change(&event)],
            Event::Commit(event) => {
                let key = self.data_keys.get(event.did.as_str()).await?;
                let records = record_changes(&event.did, &event.ops, &event.records, &key);
                commit_changes(&event.did, &event.time, &records)
            }
            Event::Import(event) => {
                let key = self.data_keys.get(event.did.as_str()).await?;
                let records = record_changes(&event.did, &event.entries, &event.records, &key);
                commit_changes(&event.did, &event.time, &records)
            }
        })
    }
}

impl Applier for ViewProjector {
    async fn position(&mut self, partition: u32) -> Result<u64, ProjectorError> {
        let stored = self.views.position(partition);
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

impl ViewProjector {
    /// Writes the accepted events of `records` and the new positions in one transaction;
    /// returns those positions.
    async fn write(&mut self, records: &[LogRecord]) -> Result<Vec<(u32, u64)>, ProjectorError> {
        let views = &self.views;
        let starts = self
            .positions
            .of(records, |partition| views.position(partition))
            .await?;
        let (events, positions) = self.repo.accepted_batch(records, starts).await?;
        if positions.is_empty() {
            return Ok(positions);
        }
        let mut tx = self.views.begin().await?;
        // Runs of post upserts go out together; anything else keeps its place between them.
        let mut posts: Vec<(Box<PostRow>, Vec<String>)> = Vec::new();
        for event in events {
            for change in self.changes(event).await? {
                write_change(&mut tx, change, &mut posts).await?;
            }
        }
        upsert_posts(&mut tx, &mut posts).await?;
        tx.check_fence(&self.fence).await?;
        tx.set_positions(&positions).await?;
        tx.commit().await?;
        Ok(positions)
    }
}

/// The record changes of accepted ops, with contents opened where the key allows.
fn record_changes(
    did: &Did,
    ops: &[RepoOp],
    sealed: &[SealedRecord],
    key: &Option<DataKey>,
) -> Vec<RecordChange> {
    ops.iter()
        .filter_map(|op| match (op.action, op.cid, op.prev) {
            (OpAction::Delete, _, Some(prev)) => Some(RecordChange::Delete {
                path: op.path.clone(),
                prev,
            }),
            (OpAction::Create | OpAction::Update, Some(cid), _) => {
                let block = key.as_ref().and_then(|key| {
                    sealed
                        .iter()
                        .find(|r| r.cid == cid)
                        .and_then(|r| r.open(key, did).ok())
                });
                Some(RecordChange::Put {
                    path: op.path.clone(),
                    cid,
                    boundaries: op.boundaries.clone(),
                    block,
                    created: op.action == OpAction::Create,
                })
            }
            _ => None,
        })
        .collect()
}

/// Writes the pending post upserts and empties `posts`.
async fn upsert_posts(
    tx: &mut ViewsTx,
    posts: &mut Vec<(Box<PostRow>, Vec<String>)>,
) -> Result<(), StoreError> {
    if posts.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&PostRow, &[String])> = posts
        .iter()
        .map(|(post, boundaries)| (post.as_ref(), boundaries.as_slice()))
        .collect();
    tx.upsert_posts(&rows).await?;
    posts.clear();
    Ok(())
}

/// Writes `change`, except a post upsert, which joins the pending ones in `posts`; those are
/// written before any other change, so every change keeps its place.
async fn write_change(
    tx: &mut ViewsTx,
    change: ViewChange,
    posts: &mut Vec<(Box<PostRow>, Vec<String>)>,
) -> Result<(), StoreError> {
    match change {
        ViewChange::UpsertPost { post, boundaries } => posts.push((post, boundaries)),
        ViewChange::DeletePost { uri } => {
            upsert_posts(tx, posts).await?;
            tx.delete_post(&uri).await?;
        }
        ViewChange::UpsertEnrollment {
            did,
            service_url,
            enrolled_at,
            boundaries,
            restore_posts,
        } => {
            upsert_posts(tx, posts).await?;
            let row = EnrollmentRow {
                did,
                service_url,
                enrolled_at,
                boundaries,
            };
            tx.upsert_enrollment(&row).await?;
            if restore_posts {
                tx.restore_posts(&row.did).await?;
            }
        }
        ViewChange::WithdrawActor { did } => {
            upsert_posts(tx, posts).await?;
            tx.withdraw_actor(&did).await?;
        }
        ViewChange::RemoveActor { did } => {
            upsert_posts(tx, posts).await?;
            tx.remove_actor(&did).await?;
        }
    }
    Ok(())
}
