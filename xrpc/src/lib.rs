//! What the Stratos HTTP services share:
//!
//! * [`XrpcError`] and [`json_response`] — XRPC answers: JSON `{"error", "message"}` with their
//!   status;
//! * [`body`] — request bodies read with a cap;
//! * [`auth`] — ATProto service-auth tokens checked against the issuer's DID document (with an
//!   SSRF-guarded, cached resolver), and the development-only `Bearer <did>`;
//! * [`outbound`] — SSRF-guarded outbound HTTP with size and time caps;
//! * [`metrics`] — the process's Prometheus recorder behind `GET /metrics`.

pub mod auth;
pub mod body;
mod error;
pub mod metrics;
pub mod outbound;

pub use self::error::{XrpcError, json_response};
