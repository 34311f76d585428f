//! Counts for `stratos status`: actors, rejected events and the PDS outbox.

use crate::store::{Store, StoreError, on, sql};

/// What the projections hold, in numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Actors enrolled now.
    pub enrolled: u64,
    /// Actors that unenrolled.
    pub unenrolled: u64,
    /// Events the repo projector refused.
    pub rejected_events: u64,
    /// Writes owed to users' PDSes.
    pub pds_backlog: u64,
    /// Of those, the ones that failed at least once.
    pub pds_failing: u64,
}

impl Store {
    /// The counts of [`StoreCounts`].
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let actors = sql(
            self.backend(),
            "SELECT COALESCE(SUM(CASE WHEN active THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN active THEN 0 ELSE 1 END), 0) FROM enrollment",
        );
        let rejected = sql(self.backend(), "SELECT COUNT(*) FROM rejected_event");
        let outbox = sql(
            self.backend(),
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) \
             FROM pds_outbox",
        );
        let ((enrolled, unenrolled), rejected_events, (pds_backlog, pds_failing)): (
            (i64, i64),
            i64,
            (i64, i64),
        ) = on!(&self.pool, db => (
            sqlx::query_as(actors).fetch_one(db).await?,
            sqlx::query_scalar(rejected).fetch_one(db).await?,
            sqlx::query_as(outbox).fetch_one(db).await?,
        ));
        Ok(StoreCounts {
            enrolled: enrolled as u64,
            unenrolled: unenrolled as u64,
            rejected_events: rejected_events as u64,
            pds_backlog: pds_backlog as u64,
            pds_failing: pds_failing as u64,
        })
    }
}
