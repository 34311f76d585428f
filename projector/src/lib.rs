//! Stratos projectors: consumers of the commit log that build the state the services read.
//!
//! * [`arbiter`] — the repo projector's decision, a pure function: given an actor's projected
//!   state and a `#commit`, apply it (with exactly which blocks and records change) or reject it
//!   with a reason. The log order decides between concurrent writers; the arbiter makes every
//!   replay reach the same decisions.
//! * [`audit`] — an actor's history checked event by event, for `stratos audit`.
//! * [`appview`] — the mapping from applied events to the AppView table contract (spec §10.1).

pub mod appview;
pub mod arbiter;
pub mod audit;
