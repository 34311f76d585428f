//! The schema migrations of the projections and of the AppView views, run on connect and by
//! `stratos migrate`. The two sets share one migration table when they share a database, so
//! each ignores the other's entries.

use sqlx::migrate::Migrator;

use crate::store::{Pool, StoreError, on, open_pool};

/// Which set of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The repo projection, the key store and the service's own state.
    Projections,
    /// The AppView views (spec §10.1).
    Views,
}

/// What `migrate` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The versions applied by this run, oldest first.
    pub applied: Vec<i64>,
    /// The newest version of the schema, now in place.
    pub latest: i64,
}

fn migrator(pool: &Pool, schema: Schema) -> Migrator {
    let mut migrator = match (pool, schema) {
        (Pool::Postgres(_), Schema::Projections) => sqlx::migrate!("../migrations/postgres"),
        (Pool::Sqlite(..), Schema::Projections) => sqlx::migrate!("../migrations/sqlite"),
        (Pool::Postgres(_), Schema::Views) => sqlx::migrate!("../migrations/appview-postgres"),
        (Pool::Sqlite(..), Schema::Views) => sqlx::migrate!("../migrations/appview-sqlite"),
    };
    migrator.set_ignore_missing(true);
    migrator
}

/// Runs the pending migrations of `schema` on `pool`.
pub(crate) async fn run(pool: &Pool, schema: Schema) -> Result<Migrated, StoreError> {
    let migrator = migrator(pool, schema);
    let before = applied_versions(pool).await?;
    on!(pool, db => migrator.run(db).await?);
    let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    Ok(Migrated {
        applied: versions
            .iter()
            .copied()
            .filter(|v| !before.contains(v))
            .collect(),
        latest: versions.iter().copied().max().unwrap_or(0),
    })
}

/// Connects to `url`, runs the pending migrations of `schema`, and disconnects.
pub async fn migrate(url: &str, schema: Schema) -> Result<Migrated, StoreError> {
    let pool = open_pool(url).await?;
    let migrated = run(&pool, schema).await;
    pool.close().await;
    migrated
}

/// The versions recorded in the migration table (none before the first migration).
async fn applied_versions(pool: &Pool) -> Result<Vec<i64>, StoreError> {
    let exists: bool = match pool {
        Pool::Postgres(db) => {
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(db)
                .await?
        }
        Pool::Sqlite(db, ..) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = '_sqlx_migrations'",
            )
            .fetch_one(db)
            .await?
        }
    };
    if !exists {
        return Ok(Vec::new());
    }
    let query = "SELECT version FROM _sqlx_migrations WHERE success";
    Ok(on!(pool, db => sqlx::query_scalar(query).fetch_all(db).await?))
}
