//! Typed access to the Stratos projections on Postgres or SQLite, behind one interface that both
//! backends pass with the same test suite.
//!
//! * [`keys`] — the key store: actor data keys and signing keys, wrapped by the service master
//!   key, shared by the command side and the projectors;
//! * [`Store`] / [`StoreTx`] — connections, migrations (`migrations/postgres`,
//!   `migrations/sqlite`) and transactions, so a projector writes its rows and its log position
//!   together; the enrollment state, purges, a digest of the projected state
//!   (`verify-projections`) and cross-process outcome notifications (`LISTEN/NOTIFY`);
//! * [`RebuildTarget`] — a fresh place beside the live projections to rebuild them into, and the
//!   switch-over;
//! * [`Views`] — the AppView table contract (spec §10.1) in a database or schema of its own;
//! * the ledger of spent service-auth tokens, shared by a service's instances.

mod batch;
mod blobs;
mod digest;
mod enrollments;
mod feeds;
pub mod keys;
mod lease;
mod migrations;
mod notify;
mod oauth;
mod outbox;
mod reads;
mod rebuild;
mod requests;
mod status;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod views;

pub use self::batch::{BatchProgress, ProjectionBatch};
pub use self::blobs::BlobMeta;
pub use self::feeds::{FeedCursor, FeedItem, MAX_TIMELINE_BOUNDARIES};
pub use self::keys::{KeyKind, MasterKey};
pub use self::lease::{Fence, Lease};
pub use self::migrations::{Migrated, Schema, migrate};
pub use self::notify::OUTCOME_CHANNEL;
pub use self::outbox::OutboxEntry;
pub use self::reads::{KeyOrder, RecordBlock, RecordBlocks};
pub use self::rebuild::RebuildTarget;
pub use self::requests::StoredRequest;
pub use self::status::StoreCounts;
pub use self::store::{
    ActorEvent, Backend, Enrollment, Head, RecordRow, Store, StoreError, StoreTx, VersionedKey,
};
pub use self::views::{EnrollmentRow, PostRow, Views, ViewsTx, default_views_url};
