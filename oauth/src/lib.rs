//! An ATProto OAuth client, as the service uses it: to enroll users (authorization code with
//! PKCE S256, pushed authorization requests, DPoP-bound tokens with server nonces) and then to
//! write to their PDS with their session.
//!
//! * [`OAuthClient`] — starts an authorization ([`OAuthClient::authorize`]) and completes it
//!   ([`OAuthClient::callback`]), refreshes and revokes sessions, and makes calls to the user's
//!   PDS ([`OAuthClient::call`]);
//! * [`ClientIdentity`] — the client's `client_id`, redirect URI and published metadata
//!   (a loopback public client for development and tests, a web client in production);
//! * [`Discovery`] — handle → DID → PDS → authorization server, checked;
//! * [`DpopKey`] — a session's proof-of-possession key;
//! * [`ClientKey`] — a confidential client's key (`private_key_jwt` assertions, its JWKS).
//!
//! Pending authorizations and sessions are plain serialisable values; the caller keeps them
//! sealed at rest. Every outbound request goes through the SSRF guard of
//! [`stratos_xrpc::outbound`].

mod client;
mod client_key;
mod discovery;
mod dpop;
mod metadata;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

pub use self::client::{CallbackParams, OAuthClient, PendingAuthorization, Session};
pub use self::client_key::{CLIENT_KEY_ID, ClientKey};
pub use self::discovery::{AuthorizationServer, Discovery, Identity, pds_endpoint};
pub use self::dpop::DpopKey;
pub use self::metadata::{ClientIdentity, ClientPages};

/// Why an OAuth step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The account, its PDS or its authorization server could not be found or is unfit.
    #[error("resolving: {0}")]
    Resolve(String),
    /// The authorization server refused a request.
    #[error("the authorization server refused: {0}")]
    Refused(String),
    /// The callback does not match the pending authorization, or the tokens are not for the
    /// account they claim.
    #[error("invalid callback: {0}")]
    Callback(String),
    /// The session can no longer be used (revoked, or its refresh failed).
    #[error("the session has ended: {0}")]
    SessionEnded(String),
    /// A network failure.
    #[error("network: {0}")]
    Network(String),
    /// A stored value could not be read back.
    #[error("stored OAuth data: {0}")]
    Stored(String),
}

/// `bytes` random bytes as base64url.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
