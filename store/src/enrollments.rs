//! The service-level enrollment state the repo projector keeps, and the purge of an actor's
//! projected content.

use crate::store::{Enrollment, Store, StoreError, StoreTx, StoredEnrollment, on, on_tx, sql};

impl Store {
    /// An actor's enrollment, active or not.
    pub async fn enrollment(&self, did: &str) -> Result<Option<Enrollment>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, signing_key, boundaries, service_endpoint, enrolled_at, updated_at, \
             active FROM enrollment WHERE did = ?",
        );
        let row: Option<StoredEnrollment> = on!(&self.pool, db => {
            sqlx::query_as(query).bind(did).fetch_optional(db).await?
        });
        Ok(row.map(Enrollment::from_stored))
    }

    /// Up to `limit` active enrollments with a DID after `after`, in DID order (keyset pages).
    pub async fn active_enrollments(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, signing_key, boundaries, service_endpoint, enrolled_at, updated_at, \
             active FROM enrollment WHERE active = ? AND did > ? ORDER BY did LIMIT ?",
        );
        let rows: Vec<StoredEnrollment> = on!(&self.pool, db => {
            sqlx::query_as(query)
                .bind(true)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(db)
                .await?
        });
        Ok(rows.into_iter().map(Enrollment::from_stored).collect())
    }
}

impl Store {
    /// Up to `limit` enrollments, active or not, after `(updated_at, did)` in that order: how
    /// the service stream follows enrollments (keyset pages).
    pub async fn enrollments_changed(
        &self,
        after: (&str, &str),
        limit: u32,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, signing_key, boundaries, service_endpoint, enrolled_at, updated_at, \
             active FROM enrollment WHERE updated_at > ? OR (updated_at = ? AND did > ?) \
             ORDER BY updated_at, did LIMIT ?",
        );
        let rows: Vec<StoredEnrollment> = on!(&self.pool, db => {
            sqlx::query_as(query)
                .bind(after.0)
                .bind(after.0)
                .bind(after.1)
                .bind(i64::from(limit))
                .fetch_all(db)
                .await?
        });
        Ok(rows.into_iter().map(Enrollment::from_stored).collect())
    }
}

impl StoreTx {
    /// Writes an actor's enrollment (insert or replace).
    pub(crate) async fn put_enrollment(
        &mut self,
        enrollment: &Enrollment,
    ) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "INSERT INTO enrollment (did, signing_key, boundaries, service_endpoint, \
             enrolled_at, updated_at, active) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (did) DO UPDATE SET signing_key = excluded.signing_key, \
             boundaries = excluded.boundaries, service_endpoint = excluded.service_endpoint, \
             enrolled_at = excluded.enrolled_at, updated_at = excluded.updated_at, \
             active = excluded.active",
        );
        let boundaries = enrollment.boundaries.join("\n");
        on_tx!(self, tx => {
            sqlx::query(query)
                .bind(&enrollment.did)
                .bind(&enrollment.signing_key)
                .bind(boundaries)
                .bind(&enrollment.service_endpoint)
                .bind(&enrollment.enrolled_at)
                .bind(&enrollment.updated_at)
                .bind(enrollment.active)
                .execute(&mut **tx)
                .await?;
        });
        Ok(())
    }

    /// Removes the content of every record of `did` (purge): rows, CIDs and boundaries stay so
    /// the repository still verifies; the private text is gone.
    pub(crate) async fn purge_content(&mut self, did: &str) -> Result<(), StoreError> {
        for statement in [
            "UPDATE record SET block = NULL WHERE did = ? AND block IS NOT NULL",
            "DELETE FROM record_blob WHERE did = ?",
        ] {
            let query = sql(self.backend(), statement);
            on_tx!(self, tx => {
                sqlx::query(query).bind(did).execute(&mut **tx).await?;
            });
        }
        Ok(())
    }
}
