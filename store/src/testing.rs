//! Fresh databases for tests (feature `testing`): an empty database on the PostgreSQL server of
//! `DATABASE_URL` (default: the local server), or a SQLite file in a temporary directory.

use sqlx::Connection;

/// The server test databases are created on: `DATABASE_URL`, or the local PostgreSQL.
pub fn postgres_server() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// An empty database that lives as long as this value (Postgres ones are dropped by
/// [`TestDatabase::drop_database`]; a failed test leaves its database for inspection).
pub struct TestDatabase {
    /// `"postgres"` or `"sqlite"`.
    pub kind: &'static str,
    /// The URL to connect to.
    pub url: String,
    name: Option<String>,
    dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh database of `kind` (`"postgres"` or `"sqlite"`).
    pub async fn create(kind: &'static str) -> Result<Self, sqlx::Error> {
        if kind == "sqlite" {
            let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
            let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
            return Ok(Self {
                kind,
                url,
                name: None,
                dir: Some(dir),
            });
        }
        let server = postgres_server();
        let name = format!("stratos_test_{:016x}", random_suffix());
        let mut admin = sqlx::PgConnection::connect(&server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        let base = server
            .split('?')
            .next()
            .and_then(|s| s.rsplit_once('/'))
            .map_or(server.as_str(), |(base, _)| base);
        Ok(Self {
            kind,
            url: format!("{base}/{name}"),
            name: Some(name),
            dir: None,
        })
    }

    /// Another database URL of the same kind beside this one: for SQLite a second file in the
    /// same directory, for Postgres the same database (callers choose a schema).
    pub fn sibling_sqlite(&self, file: &str) -> Option<String> {
        self.dir
            .as_ref()
            .map(|dir| format!("sqlite://{}", dir.path().join(file).display()))
    }

    /// Ends every other session on the Postgres database, as a server restart or a cut network
    /// would (their transactions roll back); returns how many. Nothing to do for SQLite.
    pub async fn cut_connections(&self) -> Result<u64, sqlx::Error> {
        self.end_sessions(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
    }

    /// Ends the Postgres sessions holding advisory locks on this database (the projectors'
    /// leases, as a cut connection would); returns how many. Nothing to do for SQLite.
    pub async fn end_lease_sessions(&self) -> Result<u64, sqlx::Error> {
        self.end_sessions(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await
    }

    /// Ends the Postgres sessions whose `pid`s `sessions` selects; returns how many.
    async fn end_sessions(&self, sessions: &'static str) -> Result<u64, sqlx::Error> {
        if self.name.is_none() {
            return Ok(0);
        }
        let mut connection = sqlx::PgConnection::connect(&self.url).await?;
        let ended: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM ({sessions}) AS s) \
             AS ended"
        )))
        .fetch_one(&mut connection)
        .await?;
        connection.close().await?;
        Ok(ended as u64)
    }

    /// Drops the Postgres database (forcing out connections); nothing to do for SQLite.
    pub async fn drop_database(self) -> Result<(), sqlx::Error> {
        if let Some(name) = &self.name {
            let mut admin = sqlx::PgConnection::connect(&postgres_server()).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await?;
        }
        Ok(())
    }
}

fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
