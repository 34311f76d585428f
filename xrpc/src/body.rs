//! Request bodies read with a cap: a body sent without a length (chunked) is refused as soon as
//! it passes the cap, instead of being buffered whole.

use bytes::Buf;
use futures::StreamExt;
use warp::http::StatusCode;

use crate::XrpcError;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than the cap (in bytes).
    #[error("request bodies are limited to {0} bytes")]
    TooLarge(u64),
    /// The connection failed while the body arrived.
    #[error("reading the body: {0}")]
    Unreadable(String),
}

impl From<BodyError> for XrpcError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge(_) => XrpcError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                error.to_string(),
            ),
            BodyError::Unreadable(_) => XrpcError::invalid_request(error.to_string()),
        }
    }
}

/// Reads `body` (as `warp::body::stream()` gives it) whole, refusing it once it passes `cap`
/// bytes.
pub async fn read_capped(
    body: impl futures::Stream<Item = Result<impl Buf, warp::Error>>,
    cap: u64,
) -> Result<Vec<u8>, BodyError> {
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|error| BodyError::Unreadable(error.to_string()))?;
        if (bytes.len() + chunk.remaining()) as u64 > cap {
            return Err(BodyError::TooLarge(cap));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(bytes)
}
