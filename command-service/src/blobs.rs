//! Blobs: `com.atproto.repo.uploadBlob` and `com.atproto.sync.getBlob`. A blob is read by its
//! owner, and by whoever may see a record of the owner that refers to it (spec §8.2's rule).
//!
//! Blob bytes are sealed with the uploader's data key before they reach the blob store (a
//! directory or an S3-compatible bucket), like record blocks in the log, so a purge (destroying
//! the data key) makes them unreadable too; the purge then deletes them from the blob store.

use std::path::{Path, PathBuf};

use stratos_schema::Cid;
use stratos_schema::boundary::may_see;
use stratos_schema::data::cid_for_raw;
use stratos_schema::events::seal;
use stratos_schema::syntax::{Datetime, Did};
use stratos_store::BlobMeta;

use crate::error::CommandError;
use crate::s3::S3Bucket;
use crate::service::Commands;

/// Limits on uploads.
#[derive(Debug, Clone)]
pub struct BlobLimits {
    /// The largest blob, in bytes.
    pub max_bytes: usize,
    /// Accepted MIME types: exact types, or prefixes ending in `/` (e.g. `image/`).
    pub mime_types: Vec<String>,
}

impl Default for BlobLimits {
    fn default() -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            mime_types: [
                "image/",
                "video/",
                "audio/",
                "text/plain",
                "application/octet-stream",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl BlobLimits {
    fn accepts(&self, mime: &str) -> bool {
        self.mime_types
            .iter()
            .any(|allowed| match allowed.ends_with('/') {
                true => mime.starts_with(allowed.as_str()),
                false => mime == allowed,
            })
    }
}

/// Where sealed blobs are kept: a local directory, or a bucket of an S3-compatible store shared
/// by every command service. Either way an object is named `<did hash>/<cid>`.
#[derive(Debug, Clone)]
pub enum BlobStore {
    /// Files under a directory (created on first write).
    Local(PathBuf),
    /// Objects in a bucket.
    S3(S3Bucket),
}

impl BlobStore {
    fn key(did: &Did, cid: &str) -> String {
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(did.as_str().as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{hash}/{cid}")
    }

    async fn put(&self, did: &Did, cid: &Cid, sealed: Vec<u8>) -> Result<(), String> {
        let key = Self::key(did, &cid.to_string());
        match self {
            Self::Local(dir) => {
                // A temporary name and a rename: a crash never leaves a partial blob.
                let path = dir.join(&key);
                let folder = path.parent().unwrap_or(Path::new("."));
                let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
                async {
                    tokio::fs::create_dir_all(folder).await?;
                    tokio::fs::write(&temporary, sealed).await?;
                    tokio::fs::rename(&temporary, &path).await
                }
                .await
                .map_err(|e| e.to_string())
            }
            Self::S3(bucket) => bucket.put(&key, sealed).await.map_err(|e| e.to_string()),
        }
    }

    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<Vec<u8>>, String> {
        let key = Self::key(did, &cid.to_string());
        match self {
            Self::Local(dir) => match tokio::fs::read(dir.join(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(error.to_string()),
            },
            Self::S3(bucket) => bucket.get(&key).await.map_err(|e| e.to_string()),
        }
    }

    /// Deletes a blob of `did` (one already gone is not an error).
    async fn delete(&self, did: &Did, cid: &str) -> Result<(), String> {
        let key = Self::key(did, cid);
        match self {
            Self::Local(dir) => match tokio::fs::remove_file(dir.join(key)).await {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(error.to_string()),
            },
            Self::S3(bucket) => bucket.delete(&key).await.map_err(|e| e.to_string()),
        }
    }
}

impl Commands {
    /// Deletes every blob `did` uploaded from the blob store and forgets it, after a purge
    /// destroyed the data key they were sealed with. A blob the store fails to delete is logged
    /// and stays listed (unreadable all the same); returns how many were deleted.
    pub(crate) async fn delete_blobs(&self, did: &Did) -> Result<usize, CommandError> {
        let mut deleted = 0;
        for cid in self.store.blob_cids(did.as_str()).await? {
            match self.blobs.delete(did, &cid).await {
                Ok(()) => {
                    self.store.delete_blob(did.as_str(), &cid).await?;
                    deleted += 1;
                }
                Err(error) => tracing::warn!(%did, %cid, %error, "deleting a purged blob"),
            }
        }
        Ok(deleted)
    }

    /// Stores a blob of `did` and describes it.
    pub async fn upload_blob(
        &self,
        did: &Did,
        mime_type: &str,
        bytes: &[u8],
        limits: &BlobLimits,
    ) -> Result<BlobMeta, CommandError> {
        if bytes.is_empty() {
            return Err(CommandError::InvalidRequest("Blob content is empty".into()));
        }
        if bytes.len() > limits.max_bytes {
            return Err(CommandError::BlobTooLarge(limits.max_bytes));
        }
        if !limits.accepts(mime_type) {
            return Err(CommandError::InvalidMimeType(mime_type.to_string()));
        }
        let data_key = self
            .store
            .data_key(did.as_str())
            .await?
            .ok_or(CommandError::NotEnrolled)?;
        let cid = cid_for_raw(bytes);
        let sealed = seal::seal(&data_key, did, &cid, bytes);
        self.blobs
            .put(did, &cid, sealed)
            .await
            .map_err(|e| CommandError::Internal(format!("blob store: {e}")))?;
        let meta = BlobMeta {
            did: did.to_string(),
            cid: cid.to_string(),
            mime_type: mime_type.to_string(),
            size: bytes.len() as u64,
            created_at: Datetime::now().to_string(),
        };
        self.store.put_blob(&meta).await?;
        Ok(meta)
    }

    /// A blob of `owner` for `reader`: the owner's own, or one that a record of the (enrolled)
    /// owner the reader may see refers to. Anything else is not found, as if it did not exist.
    pub async fn readable_blob(
        &self,
        reader: &Did,
        owner: &Did,
        cid: &Cid,
    ) -> Result<(String, Vec<u8>), CommandError> {
        if reader != owner {
            let not_found = || CommandError::BlobNotFound(cid.to_string());
            let active = |enrollment: Option<stratos_store::Enrollment>| {
                enrollment.filter(|e| e.active).map(|e| e.boundaries)
            };
            if active(self.store.enrollment(owner.as_str()).await?).is_none() {
                return Err(not_found());
            }
            let boundaries =
                active(self.store.enrollment(reader.as_str()).await?).unwrap_or_default();
            let referrers = self
                .store
                .blob_referrers(owner.as_str(), &cid.to_string())
                .await?;
            let visible = referrers
                .iter()
                .any(|record| may_see(reader.as_str(), &boundaries, owner.as_str(), record));
            if !visible {
                return Err(not_found());
            }
        }
        self.blob(owner, cid).await
    }

    /// A blob of `did` with its MIME type, opened with the owner's data key.
    pub async fn blob(&self, did: &Did, cid: &Cid) -> Result<(String, Vec<u8>), CommandError> {
        let not_found = || CommandError::BlobNotFound(cid.to_string());
        let meta = self
            .store
            .blob(did.as_str(), &cid.to_string())
            .await?
            .ok_or_else(not_found)?;
        let sealed = self
            .blobs
            .get(did, cid)
            .await
            .map_err(|e| CommandError::Internal(format!("blob store: {e}")))?
            .ok_or_else(not_found)?;
        // Without the data key (purged) the blob is gone for good.
        let data_key = self
            .store
            .data_key(did.as_str())
            .await?
            .ok_or_else(not_found)?;
        let bytes = seal::open(&data_key, did, cid, &sealed).map_err(|_| not_found())?;
        Ok((meta.mime_type, bytes))
    }
}
