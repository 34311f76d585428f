//! Stratos projectors: consumers of the commit log that build the state the services read.
//!
//! * [`arbiter`] — the repo projector's decision, a pure function: given an actor's projected
//!   state and a `#commit`, apply it (with exactly which blocks and records change) or reject it
//!   with a reason. The log order decides between concurrent writers; the arbiter makes every
//!   replay reach the same decisions.
//! * [`repo`] — the repo projector: batches of events (of any partitions) applied in one
//!   transaction with the partitions' positions, announcing progress and rejections to waiters.
//! * [`follower`] — what the repo projector's followers know of its decisions, from its
//!   announcements.
//! * [`appview`] and [`views`] — the mapping from applied events to the AppView table contract
//!   (spec §10.1) and the AppView projector that writes it, following the repo projector.
//! * [`runner`] and [`service`] — one task per projector over every partition (a reader task per
//!   partition), restarting from the stored positions after failures; replay mode stops at the
//!   log's end.
//! * [`publisher`] — the PDS publisher: enrollment records and stubs owed to users' PDSes, in a
//!   durable outbox filled with the publisher's position and delivered with users' OAuth
//!   sessions, in order per user, with backoff.
//! * [`audit`] — an actor's history checked event by event, for `stratos audit`.

pub mod appview;
pub mod arbiter;
pub mod audit;
mod data_keys;
pub mod follower;
pub mod publisher;
pub mod repo;
pub mod runner;
pub mod service;
pub mod views;
