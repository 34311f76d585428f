//! Metadata of uploaded blobs (the bytes live in the blob store).

use crate::store::{Store, StoreError, on, sql};

/// One uploaded blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The uploader.
    pub did: String,
    /// The blob's CID (raw codec).
    pub cid: String,
    /// Its MIME type.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded.
    pub created_at: String,
}

impl Store {
    /// Records an uploaded blob (uploading the same blob again changes nothing).
    pub async fn put_blob(&self, blob: &BlobMeta) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "INSERT INTO blob (did, cid, mime_type, size, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (did, cid) DO NOTHING",
        );
        on!(&self.pool, db => {
            sqlx::query(query)
                .bind(&blob.did)
                .bind(&blob.cid)
                .bind(&blob.mime_type)
                .bind(blob.size as i64)
                .bind(&blob.created_at)
                .execute(db)
                .await?;
        });
        Ok(())
    }

    /// A blob of `did`.
    pub async fn blob(&self, did: &str, cid: &str) -> Result<Option<BlobMeta>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, cid, mime_type, size, created_at FROM blob WHERE did = ? AND cid = ?",
        );
        let row: Option<(String, String, String, i64, String)> = on!(&self.pool, db => {
            sqlx::query_as(query).bind(did).bind(cid).fetch_optional(db).await?
        });
        Ok(row.map(|(did, cid, mime_type, size, created_at)| BlobMeta {
            did,
            cid,
            mime_type,
            size: size as u64,
            created_at,
        }))
    }
}
