//! The PDS outbox: writes owed to users' PDSes, delivered in order per actor.

use crate::store::{Store, StoreError, StoreTx, on, on_tx, sql};

/// One write owed to a user's PDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its place in the outbox (log order).
    pub id: i64,
    /// The user.
    pub did: String,
    /// The XRPC procedure, e.g. `com.atproto.repo.putRecord`.
    pub method: String,
    /// The JSON input.
    pub body: String,
    /// Failed deliveries so far.
    pub attempts: i32,
}

impl StoreTx {
    /// Owes `did`'s PDS a call of `method` with `body`.
    pub async fn enqueue_pds(
        &mut self,
        did: &str,
        method: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "INSERT INTO pds_outbox (did, method, body) VALUES (?, ?, ?)",
        );
        on_tx!(self, tx => {
            sqlx::query(query).bind(did).bind(method).bind(body).execute(&mut **tx).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Claims up to `limit` entries due at `now` (Unix seconds) until `lease_until`, each the
    /// oldest of its actor: an actor's later writes wait for its earlier ones, and an entry
    /// claimed by one deliverer is not handed to another until its lease runs out (a crashed
    /// deliverer's entries come back then).
    pub async fn claim_pds(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let query = sql(
            self.backend(),
            "UPDATE pds_outbox SET next_attempt_at = ? \
             WHERE next_attempt_at <= ? AND id IN ( \
                 SELECT o.id FROM pds_outbox o WHERE o.next_attempt_at <= ? \
                 AND o.id = (SELECT MIN(f.id) FROM pds_outbox f WHERE f.did = o.did) \
                 ORDER BY o.id LIMIT ?) \
             RETURNING id, did, method, body, attempts",
        );
        let mut rows: Vec<(i64, String, String, String, i32)> = on!(&self.pool, db => {
            sqlx::query_as(query)
                .bind(lease_until)
                .bind(now)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(db)
                .await?
        });
        rows.sort_by_key(|row| row.0);
        Ok(rows
            .into_iter()
            .map(|(id, did, method, body, attempts)| OutboxEntry {
                id,
                did,
                method,
                body,
                attempts,
            })
            .collect())
    }

    /// Removes a delivered (or abandoned) entry.
    pub async fn finish_pds(&self, id: i64) -> Result<(), StoreError> {
        let query = sql(self.backend(), "DELETE FROM pds_outbox WHERE id = ?");
        on!(&self.pool, db => { sqlx::query(query).bind(id).execute(db).await?; });
        Ok(())
    }

    /// Records a failed delivery; the entry is due again at `next_attempt_at`.
    pub async fn retry_pds(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "UPDATE pds_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? \
             WHERE id = ?",
        );
        on!(&self.pool, db => {
            sqlx::query(query).bind(next_attempt_at).bind(error).bind(id).execute(db).await?;
        });
        Ok(())
    }

    /// How many writes are owed to PDSes.
    pub async fn pds_backlog(&self) -> Result<u64, StoreError> {
        let query = sql(self.backend(), "SELECT COUNT(*) FROM pds_outbox");
        let count: i64 = on!(&self.pool, db => {
            sqlx::query_scalar(query).fetch_one(db).await?
        });
        Ok(count as u64)
    }
}
