//! Answers to idempotent client requests, so a retried request gets its original answer.

use crate::store::{Store, StoreError, StoreTx, on, on_tx, sql};

/// The stored answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// The caller.
    pub did: String,
    /// SHA-256 (hex) of the caller's `Idempotency-Key`.
    pub key: String,
    /// The commit that answered it.
    pub commit_cid: String,
    /// Its revision.
    pub rev: String,
    /// The per-operation results as JSON (`[{uri, cid}]`).
    pub results: String,
}

impl Store {
    /// The stored answer to `did`'s request `key`.
    pub async fn request(&self, did: &str, key: &str) -> Result<Option<StoredRequest>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, key, commit_cid, rev, results FROM request WHERE did = ? AND key = ?",
        );
        let row: Option<(String, String, String, String, String)> = on!(&self.pool, db => {
            sqlx::query_as(query).bind(did).bind(key).fetch_optional(db).await?
        });
        Ok(
            row.map(|(did, key, commit_cid, rev, results)| StoredRequest {
                did,
                key,
                commit_cid,
                rev,
                results,
            }),
        )
    }
}

impl StoreTx {
    pub(crate) async fn put_request(&mut self, request: &StoredRequest) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "INSERT INTO request (did, key, commit_cid, rev, results) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (did, key) DO NOTHING",
        );
        on_tx!(self, tx => {
            sqlx::query(query)
                .bind(&request.did)
                .bind(&request.key)
                .bind(&request.commit_cid)
                .bind(&request.rev)
                .bind(&request.results)
                .execute(&mut **tx)
                .await?;
        });
        Ok(())
    }
}
