//! Why a command failed, with the XRPC error name and HTTP status it is answered with.

use stratos_schema::lexicon::RecordError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The request is malformed or asks for something impossible (`InvalidRequest`).
    #[error("{0}")]
    InvalidRequest(String),
    /// A record or boundary rule rejected the write (`InvalidRecord`, `InvalidCollection`,
    /// `ServiceMismatch`, `ForbiddenBoundary`).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// `swapCommit` or `swapRecord` did not match (`InvalidSwap`).
    #[error("{0}")]
    InvalidSwap(String),
    /// The record to update or delete does not exist (`RecordNotFound`).
    #[error("{0}")]
    RecordNotFound(String),
    /// An imported CAR file is malformed, oversized or not the caller's (`InvalidCar`).
    #[error("{0}")]
    InvalidCar(String),
    /// The repository already has records, so it cannot be imported into (`RepoAlreadyExists`).
    #[error("the repository already has records")]
    RepoAlreadyExists,
    /// A blob over the size limit (`BlobTooLarge`).
    #[error("blobs are limited to {0} bytes")]
    BlobTooLarge(usize),
    /// A blob of a MIME type the service does not take (`InvalidMimeType`).
    #[error("blobs of type {0} are not accepted")]
    InvalidMimeType(String),
    /// No such blob, or not one the caller may read (`BlobNotFound`).
    #[error("Blob not found: {0}")]
    BlobNotFound(String),
    /// The caller is not enrolled (`NotEnrolled`).
    #[error("User is not enrolled in this Stratos service")]
    NotEnrolled,
    /// Other writers kept winning; the write was not applied (`ConcurrentModification`).
    #[error("the repository kept changing; the write was not applied, try again")]
    ConcurrentModification,
    /// The write was rejected by the repo projector for a reason retrying cannot fix.
    #[error("the write was rejected: {0}")]
    Rejected(String),
    /// Something on our side failed (`InternalServerError`); the message is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// A node of an actor's cached tree has not been read from the projection yet (the write
    /// path reads it and tries again; `InternalServerError` if it ever reaches a caller).
    #[error("internal error: MST node {0} is not loaded")]
    MissingNode(stratos_schema::Cid),
}

impl CommandError {
    /// The XRPC `error` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::Rejected(_) => "InvalidRequest",
            Self::Record(error) => error.code.xrpc_error(),
            Self::InvalidSwap(_) => "InvalidSwap",
            Self::RecordNotFound(_) => "RecordNotFound",
            Self::InvalidCar(_) => "InvalidCar",
            Self::RepoAlreadyExists => "RepoAlreadyExists",
            Self::BlobTooLarge(_) => "BlobTooLarge",
            Self::InvalidMimeType(_) => "InvalidMimeType",
            Self::BlobNotFound(_) => "BlobNotFound",
            Self::NotEnrolled => "NotEnrolled",
            Self::ConcurrentModification => "ConcurrentModification",
            Self::Internal(_) | Self::MissingNode(_) => "InternalServerError",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Internal(_) | Self::MissingNode(_) => 500,
            _ => 400,
        }
    }

    /// The message to send (internal details stay in the logs).
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) | Self::MissingNode(_) => "Internal server error".into(),
            other => other.to_string(),
        }
    }
}

impl From<stratos_store::StoreError> for CommandError {
    fn from(error: stratos_store::StoreError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<stratos_log::LogError> for CommandError {
    fn from(error: stratos_log::LogError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<stratos_schema::mst::MstError> for CommandError {
    fn from(error: stratos_schema::mst::MstError) -> Self {
        match error {
            stratos_schema::mst::MstError::MissingBlock(cid) => Self::MissingNode(cid),
            other => Self::Internal(other.to_string()),
        }
    }
}
