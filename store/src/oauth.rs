//! OAuth authorizations waiting for their callback, sealed with the master key. (Sessions are
//! actor secrets: [`KeyKind::OAuthSession`] in the key store.)

use crate::keys::KeyKind;
use crate::store::{Store, StoreError, on, sql};
use sqlx::Row;

/// How long a pending authorization is kept, in seconds.
const PENDING_TTL_SECS: i64 = 600;

impl Store {
    /// Keeps a pending authorization under its `state` (and forgets expired ones).
    pub async fn put_oauth_pending(
        &self,
        state: &str,
        pending: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let wrapped = self.master.wrap(state, KeyKind::OAuthPending, pending);
        let prune = sql(
            self.backend(),
            "DELETE FROM oauth_pending WHERE created_at < ?",
        );
        let insert = sql(
            self.backend(),
            "INSERT INTO oauth_pending (state, wrapped, created_at) VALUES (?, ?, ?)",
        );
        on!(&self.pool, db => {
            sqlx::query(prune).bind(now - PENDING_TTL_SECS).execute(db).await?;
            sqlx::query(insert).bind(state).bind(&wrapped).bind(now).execute(db).await?;
        });
        Ok(())
    }

    /// Takes the pending authorization of `state` out of the store: a state is used once.
    pub async fn take_oauth_pending(&self, state: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let query = sql(
            self.backend(),
            "DELETE FROM oauth_pending WHERE state = ? RETURNING wrapped",
        );
        let wrapped: Option<Vec<u8>> = on!(&self.pool, db => {
            sqlx::query(query)
                .bind(state)
                .fetch_optional(db)
                .await?
                .map(|row| row.get::<Vec<u8>, _>(0))
        });
        Ok(match wrapped {
            Some(wrapped) => Some(
                self.master
                    .unwrap(state, KeyKind::OAuthPending, &wrapped)?
                    .to_vec(),
            ),
            None => None,
        })
    }
}
