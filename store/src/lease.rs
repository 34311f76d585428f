//! Leases that keep one process at a time moving a log consumer's positions (the repo projector,
//! the AppView projector, the PDS outbox): a second process started on the same projections
//! stands by until the first stops or dies, then takes over from the stored positions.
//!
//! On Postgres the holder keeps a session advisory lock (keyed by the schema and the consumer)
//! on a connection of its own, and bumps the consumer's `epoch` in `consumer_lease` when it
//! takes the lease. Every batch checks that epoch in its transaction ([`Fence`]), so a process
//! whose lock went with a cut connection commits nothing once another has taken over. On
//! SQLite the holder keeps an exclusive lock on a file beside the database, which it loses only
//! by exiting.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

use crate::store::{Pool, Store, StoreError, StoreTx};
use crate::views::{Views, ViewsTx};

/// How often a standby tries to take the lease.
const STANDBY_POLL: Duration = Duration::from_millis(500);

/// Distinguishes Stratos's advisory locks from any other application's on the database.
const ADVISORY_LOCK_CLASS: i32 = 0x5354_5241; // "STRA"

/// Where a lease is kept: the database whose positions it guards.
#[derive(Clone)]
enum Place {
    Postgres(PgPool),
    /// A SQLite file (its lock file is `<file>-<consumer>.lease`); `None` in memory.
    Sqlite(Option<PathBuf>),
}

/// What the holder of a lease keeps while it holds it.
enum Held {
    /// The session holding the advisory lock.
    Postgres(PgConnection),
    /// The locked file, unlocked when dropped (`None`: an in-memory database, which no other
    /// process can open).
    Sqlite { _locked: Option<File> },
}

/// The lease of one consumer on one database, taken with [`Lease::hold`].
pub struct Lease {
    place: Place,
    held: Option<Held>,
    /// The consumer and the epoch this process holds it at.
    state: Arc<FenceState>,
}

/// What a consumer's transactions check to commit only while their process holds the lease.
/// The default fence checks nothing (a projector driven by hand, in tests or tools).
#[derive(Clone, Debug, Default)]
pub struct Fence(Option<Arc<FenceState>>);

#[derive(Debug)]
struct FenceState {
    consumer: String,
    /// The epoch this process took the lease at; 0 while it does not hold it.
    epoch: AtomicI64,
}

impl Store {
    /// The lease of `consumer` on this store's database (not yet taken).
    pub fn lease(&self, consumer: &str) -> Lease {
        Lease::new(place_of(&self.pool), consumer)
    }

    /// Who took `consumer`'s lease last (host and process) and when (RFC 3339), on Postgres;
    /// `None` on SQLite, or before anyone took it.
    pub async fn lease_holder(
        &self,
        consumer: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        lease_holder(&self.pool, consumer).await
    }
}

impl Views {
    /// The lease of `consumer` on the views' database (not yet taken).
    pub fn lease(&self, consumer: &str) -> Lease {
        Lease::new(place_of(&self.pool), consumer)
    }

    /// [`Store::lease_holder`] on the views' database.
    pub async fn lease_holder(
        &self,
        consumer: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        lease_holder(&self.pool, consumer).await
    }
}

async fn lease_holder(pool: &Pool, consumer: &str) -> Result<Option<(String, String)>, StoreError> {
    let Pool::Postgres(db) = pool else {
        return Ok(None);
    };
    Ok(sqlx::query_as(
        "SELECT holder, to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM consumer_lease WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_optional(db)
    .await?)
}

fn place_of(pool: &Pool) -> Place {
    match pool {
        Pool::Postgres(db) => Place::Postgres(db.clone()),
        Pool::Sqlite(_, file) => Place::Sqlite(file.path.clone()),
    }
}

impl Lease {
    fn new(place: Place, consumer: &str) -> Self {
        Self {
            place,
            held: None,
            state: Arc::new(FenceState {
                consumer: consumer.to_string(),
                epoch: AtomicI64::new(0),
            }),
        }
    }

    /// The fence of this lease, for the consumer's transactions.
    pub fn fence(&self) -> Fence {
        Fence(Some(self.state.clone()))
    }

    /// Returns once this process holds the lease: at once if it still does, otherwise after
    /// taking it, standing by while another process holds it. Returns `false` if `shutdown`
    /// turned `true` first.
    pub async fn hold(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut standing_by = false;
        loop {
            if *shutdown.borrow() {
                return false;
            }
            if self.still_held().await {
                return true;
            }
            // Taking waits for batches in flight under the previous holder's epoch.
            let taken = tokio::select! {
                taken = self.try_take() => taken,
                _ = shutdown.changed() => return false,
            };
            match taken {
                Ok(true) => {
                    if standing_by {
                        tracing::info!(consumer = %self.state.consumer, "took over the lease");
                    }
                    return true;
                }
                Ok(false) if !standing_by => {
                    tracing::info!(
                        consumer = %self.state.consumer,
                        "another process holds the lease; standing by to take over"
                    );
                    standing_by = true;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(consumer = %self.state.consumer, %error, "taking the lease failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Gives the lease up (another process may take it at once).
    pub async fn release(&mut self) {
        self.state.epoch.store(0, Ordering::SeqCst);
        if let Some(Held::Postgres(connection)) = self.held.take() {
            let _ = connection.close().await;
        }
    }

    /// Whether the lease taken before is still this process's: on Postgres, whether the
    /// session holding the lock still answers.
    async fn still_held(&mut self) -> bool {
        let alive = match &mut self.held {
            None => false,
            Some(Held::Sqlite { .. }) => true,
            Some(Held::Postgres(connection)) => connection.ping().await.is_ok(),
        };
        if !alive {
            self.held = None;
            self.state.epoch.store(0, Ordering::SeqCst);
        }
        alive
    }

    /// Takes the lease if no other process holds it.
    async fn try_take(&mut self) -> Result<bool, StoreError> {
        let held = match &self.place {
            Place::Postgres(pool) => take_on_postgres(pool, &self.state.consumer).await?,
            Place::Sqlite(path) => take_on_sqlite(path.as_ref(), &self.state.consumer)?,
        };
        let Some((held, epoch)) = held else {
            return Ok(false);
        };
        self.held = Some(held);
        self.state.epoch.store(epoch, Ordering::SeqCst);
        Ok(true)
    }
}

/// Takes the advisory lock on a connection of its own, then the next epoch.
async fn take_on_postgres(
    pool: &PgPool,
    consumer: &str,
) -> Result<Option<(Held, i64)>, StoreError> {
    let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))",
    )
    .bind(ADVISORY_LOCK_CLASS)
    .bind(consumer)
    .fetch_one(&mut connection)
    .await?;
    if !locked {
        connection.close().await?;
        return Ok(None);
    }
    // Waits for the batches in flight under the previous epoch (they hold the row `FOR SHARE`).
    let epoch: i64 = sqlx::query_scalar(
        "INSERT INTO consumer_lease (consumer, epoch, holder, taken_at) VALUES ($1, 1, $2, now()) \
         ON CONFLICT (consumer) DO UPDATE SET epoch = consumer_lease.epoch + 1, \
         holder = excluded.holder, taken_at = excluded.taken_at RETURNING epoch",
    )
    .bind(consumer)
    .bind(holder())
    .fetch_one(&mut connection)
    .await?;
    Ok(Some((Held::Postgres(connection), epoch)))
}

/// Locks `<file>-<consumer>.lease` beside the database file.
fn take_on_sqlite(
    path: Option<&PathBuf>,
    consumer: &str,
) -> Result<Option<(Held, i64)>, StoreError> {
    let Some(path) = path else {
        return Ok(Some((Held::Sqlite { _locked: None }, 1)));
    };
    let mut name = path.clone().into_os_string();
    name.push(format!("-{consumer}.lease"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|error| StoreError::Lease(format!("opening {name:?}: {error}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some((
            Held::Sqlite {
                _locked: Some(file),
            },
            1,
        ))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => {
            Err(StoreError::Lease(format!("locking {name:?}: {error}")))
        }
    }
}

/// Who holds a lease, as `consumer_lease.holder` shows it: host and process.
fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unknown host".to_string());
    format!("{host} pid {}", std::process::id())
}

impl Fence {
    /// Checks, inside `tx`, that this process still holds the lease (on Postgres; a SQLite
    /// lease is held until the process exits). Fails with [`StoreError::LeaseLost`] if not.
    pub(crate) async fn check(&self, tx: &mut StoreTx) -> Result<(), StoreError> {
        match tx {
            StoreTx::Postgres(tx) => self.check_on(tx).await,
            StoreTx::Sqlite(..) => Ok(()),
        }
    }

    /// [`Fence::check`] on a Postgres connection inside a transaction.
    async fn check_on(&self, db: &mut PgConnection) -> Result<(), StoreError> {
        let Some((consumer, epoch)) = self.epoch()? else {
            return Ok(());
        };
        let current: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM consumer_lease WHERE consumer = $1 FOR SHARE")
                .bind(consumer)
                .fetch_optional(db)
                .await?;
        if current != Some(epoch) {
            return Err(StoreError::LeaseLost(consumer.to_string()));
        }
        Ok(())
    }

    /// The consumer and the epoch to check (`None` for a fence that checks nothing); fails
    /// with [`StoreError::LeaseLost`] while this process does not hold the lease.
    pub(crate) fn epoch(&self) -> Result<Option<(&str, i64)>, StoreError> {
        let Some(state) = &self.0 else {
            return Ok(None);
        };
        match state.epoch.load(Ordering::SeqCst) {
            0 => Err(StoreError::LeaseLost(state.consumer.clone())),
            epoch => Ok(Some((state.consumer.as_str(), epoch))),
        }
    }
}

impl StoreTx {
    /// Fails unless this process holds the lease behind `fence` (see [`Fence::check`]).
    pub async fn check_fence(&mut self, fence: &Fence) -> Result<(), StoreError> {
        fence.check(self).await
    }
}

impl ViewsTx {
    /// Fails unless this process holds the lease behind `fence` (see [`Fence::check`]).
    pub async fn check_fence(&mut self, fence: &Fence) -> Result<(), StoreError> {
        fence.check(&mut self.0).await
    }
}
