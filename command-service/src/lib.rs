//! The Stratos command service: the write side.
//!
//! * [`Commands`] — enrollment ([`Commands::enroll`]) and writes ([`Commands::write`]): validate,
//!   build the MST and the signed commit on the actor's head with the actor's key, seal the
//!   record blocks with the actor's data key, append one event, and answer once the repo
//!   projector has applied it (read-your-writes);
//!   [`Commands::import`] brings a repository in from a CAR file, re-signed with the actor's key;
//! * [`blobs`] — uploads and downloads of blobs, sealed at rest with the owner's data key;
//! * [`Outcomes`] — the repo projector's decisions, heard in process or over `LISTEN`, with the
//!   store as the fallback;
//! * [`CommandError`] — why a command failed, with its XRPC error name and status;
//! * [`auth`] and [`metrics`] — from `stratos-xrpc`, shared with the query service;
//! * enrollment queries — `enrollment.status`, `resolveEnrollments`, `listDomains`;
//! * admin procedures — operators change actors' boundaries (`zone.stratos.admin.*`);
//! * [`oauth`] — enrollment through ATProto OAuth: authorize, callback, eligibility;
//! * [`rate_limit`] — per-DID write rate limits (spec §13.1);
//! * [`http`] and [`xrpc`] — the service over HTTP: the write procedures, the DID document,
//!   health, XRPC errors and body limits.

mod admin;
pub mod blobs;
mod enroll;
mod enrollment;
mod error;
pub mod http;
mod import;
pub mod oauth;
mod outcomes;
pub mod rate_limit;
pub mod s3;
mod service;
#[cfg(feature = "testing")]
pub mod testing;
mod writes;
pub mod xrpc;

pub use stratos_xrpc::{auth, metrics};

pub use self::error::CommandError;
pub use self::import::Imported;
pub use self::outcomes::{Decision, Outcomes};
pub use self::service::{CommandConfig, Commands, CommitRef, ServiceIdentity};
pub use self::writes::{MAX_WRITES, OpResult, WriteOp, WriteResult};
