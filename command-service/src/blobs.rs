//! Blobs: `com.atproto.repo.uploadBlob` and `com.atproto.sync.getBlob`. A blob is read by its
//! owner, and by whoever may see a record of the owner that refers to it (spec §8.2's rule).
//!
//! Blob bytes are sealed with the uploader's data key before they touch the disk, like record
//! blocks in the log, so a purge (destroying the data key) makes them unreadable too. Files are
//! written to a temporary name and renamed, so a crash never leaves a partial blob.

use std::path::{Path, PathBuf};

use stratos_schema::Cid;
use stratos_schema::boundary::may_see;
use stratos_schema::data::cid_for_raw;
use stratos_schema::events::seal;
use stratos_schema::syntax::{Datetime, Did};
use stratos_store::BlobMeta;

use crate::error::CommandError;
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

/// Sealed blobs in a local directory: `<dir>/<did hash>/<cid>`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Blobs under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, did: &Did, cid: &Cid) -> PathBuf {
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(did.as_str().as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(hash).join(cid.to_string())
    }

    async fn put(&self, did: &Did, cid: &Cid, sealed: &[u8]) -> std::io::Result<()> {
        let path = self.path(did, cid);
        let folder = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(folder).await?;
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&temporary, sealed).await?;
        tokio::fs::rename(&temporary, &path).await
    }

    async fn get(&self, did: &Did, cid: &Cid) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(did, cid)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl Commands {
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
            .put(did, &cid, &sealed)
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
