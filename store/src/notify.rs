//! Cross-process notifications of projection outcomes: Postgres `LISTEN/NOTIFY`, sent inside the
//! transaction that writes the outcome so a listener never hears of uncommitted rows. On SQLite
//! (one process) the projector's in-process channel does this job and these are no-ops.

use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::postgres::PgListener;

use crate::store::{Pool, Store, StoreError, StoreTx};

/// The channel outcomes are announced on.
pub const OUTCOME_CHANNEL: &str = "stratos_outcome";

impl StoreTx {
    /// Announces `payload` to every listener once this transaction commits (Postgres only).
    pub async fn notify(&mut self, payload: &str) -> Result<(), StoreError> {
        self.notify_all(&[payload]).await
    }

    /// Announces each of `payloads` to every listener once this transaction commits
    /// (Postgres only), in one statement.
    pub async fn notify_all(&mut self, payloads: &[&str]) -> Result<(), StoreError> {
        if let StoreTx::Postgres(tx) = self
            && !payloads.is_empty()
        {
            sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                .bind(OUTCOME_CHANNEL)
                .bind(payloads)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// The payloads announced with [`StoreTx::notify`] from now on, by any process; `None` on
    /// SQLite, where there is no other process to hear from.
    pub async fn listen(
        &self,
    ) -> Result<Option<BoxStream<'static, Result<String, StoreError>>>, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(OUTCOME_CHANNEL).await?;
        Ok(Some(
            listener
                .into_stream()
                .map(|item| {
                    item.map(|n| n.payload().to_string())
                        .map_err(StoreError::from)
                })
                .boxed(),
        ))
    }
}
