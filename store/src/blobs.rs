//! Metadata of uploaded blobs (the bytes live in the blob store), and the records that refer to
//! them.

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

    /// The CIDs of every blob `did` uploaded, in order.
    pub async fn blob_cids(&self, did: &str) -> Result<Vec<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT cid FROM blob WHERE did = ? ORDER BY cid",
        );
        Ok(on!(&self.pool, db => sqlx::query_scalar(query).bind(did).fetch_all(db).await?))
    }

    /// Forgets a blob of `did` (its bytes were deleted from the blob store).
    pub async fn delete_blob(&self, did: &str, cid: &str) -> Result<(), StoreError> {
        let query = sql(self.backend(), "DELETE FROM blob WHERE did = ? AND cid = ?");
        on!(&self.pool, db => {
            sqlx::query(query).bind(did).bind(cid).execute(db).await?;
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

impl Store {
    /// The boundaries of every record of `did` that refers to blob `cid` (whoever may see one of
    /// those records may read the blob); records whose content was purged are left out.
    pub async fn blob_referrers(
        &self,
        did: &str,
        cid: &str,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT r.boundaries FROM record_blob b JOIN record r \
             ON r.did = b.did AND r.collection = b.collection AND r.rkey = b.rkey \
             WHERE b.did = ? AND b.cid = ? AND r.block IS NOT NULL",
        );
        let rows: Vec<String> = on!(&self.pool, db => {
            sqlx::query_scalar(query).bind(did).bind(cid).fetch_all(db).await?
        });
        Ok(rows.iter().map(|b| crate::store::split_lines(b)).collect())
    }

    /// The blobs the records of `did` refer to, in CID order after `cursor`; with `since`, only
    /// those referred to by records written after that revision.
    pub async fn list_blobs(
        &self,
        did: &str,
        since: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT DISTINCT cid FROM record_blob WHERE did = ? AND rev > ? AND cid > ? \
             ORDER BY cid LIMIT ?",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query_scalar(query)
                .bind(did)
                .bind(since.unwrap_or(""))
                .bind(cursor.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(db)
                .await?
        }))
    }
}
