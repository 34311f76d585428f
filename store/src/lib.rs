//! Typed access to the Stratos projections on Postgres or SQLite, behind one interface that both
//! backends pass with the same test suite.
//!
//! * [`keys`] — the key store: actor data keys and signing keys, wrapped by the service master
//!   key, shared by the command side and the projectors;
//! * [`Store`] / [`StoreTx`] — connections, migrations (`migrations/postgres`,
//!   `migrations/sqlite`) and transactions, so a projector writes its rows and its log position
//!   together.

pub mod keys;
mod store;

pub use self::keys::{KeyKind, MasterKey};
pub use self::store::{ActorEvent, Backend, Head, RecordRow, Store, StoreError, StoreTx};
