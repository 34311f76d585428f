//! Fresh places to rebuild projections into, beside the live ones, and the switch-over.
//!
//! * Postgres: a schema named after the live one with a suffix (`_rebuild`, `_verify`); the switch renames
//!   the live schema to `<name>_replaced_<unix time>` and the rebuild to `<name>` in one
//!   transaction, after copying the key store into the rebuild in that same transaction.
//! * SQLite: a file beside the live one with a suffix (`.rebuild`, `.verify`); the switch copies the key store
//!   in, keeps the live file as `<file>.replaced-<unix time>` and moves the rebuild in place.
//!
//! What the service keeps beside the projections without deriving it from the log — the key
//! store, uploaded blobs' metadata, pending OAuth authorizations, the PDS outbox, spent
//! service-auth tokens and the positions of consumers a rebuild does not run (the PDS
//! publisher) — is carried over, never rebuilt.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::store::StoreError;

/// A fresh, empty place for a rebuild of the projections at a live URL.
#[derive(Debug, Clone)]
pub struct RebuildTarget {
    live_url: String,
    url: String,
    kind: Kind,
}

/// The tables of state that is not derived from the log (see the module documentation).
const CARRIED_TABLES: &[&str] = &[
    "actor_key",
    "blob",
    "oauth_pending",
    "pds_outbox",
    "spent_token",
];

/// The statements that carry that state from schema (or attached database) `live` into
/// `target`: each carried table is replaced, and the positions of consumers the rebuild did not
/// run are added.
fn carry_statements(live: &str, target: &str) -> Vec<String> {
    let mut statements = Vec::new();
    for table in CARRIED_TABLES {
        statements.push(format!("DELETE FROM {target}.{table}"));
        statements.push(format!(
            "INSERT INTO {target}.{table} SELECT * FROM {live}.{table}"
        ));
    }
    statements.push(format!(
        "INSERT INTO {target}.consumer_position SELECT * FROM {live}.consumer_position l \
         WHERE NOT EXISTS (SELECT 1 FROM {target}.consumer_position t \
         WHERE t.consumer = l.consumer)"
    ));
    statements
}

#[derive(Debug, Clone)]
enum Kind {
    Postgres { live_schema: String, schema: String },
    Sqlite { live: PathBuf, path: PathBuf },
}

impl RebuildTarget {
    /// Creates an empty target beside the projections at `live_url`, named with `label` (e.g.
    /// `rebuild`, `verify`), replacing a leftover one of the same name.
    pub async fn prepare(live_url: &str, label: &str) -> Result<Self, StoreError> {
        if let Some(live) = sqlite_path(live_url) {
            let path = with_suffix(&live, &format!(".{label}"));
            remove_database_files(&path)?;
            return Ok(Self {
                live_url: live_url.to_string(),
                url: format!("sqlite://{}", path.display()),
                kind: Kind::Sqlite { live, path },
            });
        }
        let mut connection = pg_options(live_url)?.connect().await?;
        let live_schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut connection)
            .await?;
        let schema = format!("{live_schema}_{label}");
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote(&schema)
        )))
        .execute(&mut connection)
        .await?;
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {}", quote(&schema))))
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        Ok(Self {
            live_url: live_url.to_string(),
            url: with_search_path(live_url, &schema),
            kind: Kind::Postgres {
                live_schema,
                schema,
            },
        })
    }

    /// The URL to connect the rebuild's [`Store`](crate::Store) and [`Views`](crate::Views) to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes the rebuild the live projections, carrying over the state that is not derived from
    /// the log when `carry_state` (the target holds the repo projection). Every connection to both must be
    /// closed first on SQLite. Returns where the replaced projections were kept.
    pub async fn switch_over(self, carry_state: bool) -> Result<String, StoreError> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.kind {
            Kind::Postgres {
                live_schema,
                schema,
            } => {
                let replaced = format!("{live_schema}_replaced_{stamp}");
                let mut connection = pg_options(&self.live_url)?.connect().await?;
                let mut tx = connection.begin().await?;
                if carry_state {
                    let (live, target) = (quote(&live_schema), quote(&schema));
                    for statement in carry_statements(&live, &target) {
                        sqlx::query(AssertSqlSafe(statement))
                            .execute(&mut *tx)
                            .await?;
                    }
                    // New outbox entries continue after the carried ones.
                    sqlx::query(AssertSqlSafe(format!(
                        "SELECT setval(pg_get_serial_sequence('{target}.pds_outbox', 'id'), \
                         GREATEST((SELECT MAX(id) FROM {target}.pds_outbox), 1))"
                    )))
                    .execute(&mut *tx)
                    .await?;
                }
                for (from, to) in [(&live_schema, &replaced), (&schema, &live_schema)] {
                    sqlx::query(AssertSqlSafe(format!(
                        "ALTER SCHEMA {} RENAME TO {}",
                        quote(from),
                        quote(to)
                    )))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                connection.close().await?;
                Ok(format!("schema {replaced}"))
            }
            Kind::Sqlite { live, path } => {
                let mut target = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?
                    .connect()
                    .await?;
                if carry_state {
                    sqlx::query("ATTACH DATABASE ? AS live")
                        .bind(live.display().to_string())
                        .execute(&mut target)
                        .await?;
                    let mut tx = target.begin().await?;
                    for statement in carry_statements("live", "main") {
                        sqlx::query(AssertSqlSafe(statement))
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    sqlx::query("DETACH DATABASE live")
                        .execute(&mut target)
                        .await?;
                }
                // Fold the write-ahead log into the file before it moves.
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut target)
                    .await?;
                target.close().await?;
                let replaced = with_suffix(&live, &format!(".replaced-{stamp}"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = with_suffix(&live, suffix);
                    if from.exists() {
                        std::fs::rename(&from, with_suffix(&replaced, suffix))
                            .map_err(sqlx::Error::Io)?;
                    }
                }
                std::fs::rename(&path, &live).map_err(sqlx::Error::Io)?;
                remove_database_files(&path)?;
                Ok(format!("file {}", replaced.display()))
            }
        }
    }

    /// Removes the target (after a verification, or a failed rebuild).
    pub async fn discard(self) -> Result<(), StoreError> {
        match self.kind {
            Kind::Postgres { schema, .. } => {
                let mut connection = pg_options(&self.live_url)?.connect().await?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    quote(&schema)
                )))
                .execute(&mut connection)
                .await?;
                connection.close().await?;
                Ok(())
            }
            Kind::Sqlite { path, .. } => Ok(remove_database_files(&path)?),
        }
    }
}

/// The file of a `sqlite:` URL, if it is one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

fn pg_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    Ok(PgConnectOptions::from_str(url)?)
}

/// `url` with its connections' `search_path` set to `schema`.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes a SQLite database file and its `-wal` and `-shm` companions, if present.
fn remove_database_files(path: &Path) -> Result<(), sqlx::Error> {
    for suffix in ["", "-wal", "-shm"] {
        match std::fs::remove_file(with_suffix(path, suffix)) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(sqlx::Error::Io(error)),
        }
    }
    Ok(())
}
