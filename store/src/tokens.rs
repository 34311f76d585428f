//! The ledger of spent service-auth tokens, shared by every instance of a service that uses
//! this database (see [`stratos_xrpc::auth::TokenLedger`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use stratos_xrpc::auth::TokenLedger;

use crate::store::{Backend, Store, StoreError, on, sql};

impl Store {
    /// The ledger services built on this store share: this database on Postgres, where a
    /// service may run as many instances; none on SQLite, whose one process remembers the
    /// tokens it saw itself.
    pub fn shared_token_ledger(&self) -> Option<Arc<dyn TokenLedger>> {
        match self.backend() {
            Backend::Postgres => Some(Arc::new(self.clone())),
            Backend::Sqlite => None,
        }
    }

    /// Records `token` as spent until `expires` (Unix seconds); `false` when it was already.
    pub async fn spend_token(&self, token: &str, expires: i64) -> Result<bool, StoreError> {
        let query = sql(
            self.backend(),
            "INSERT INTO spent_token (token, expires_at) VALUES (?, ?) \
             ON CONFLICT (token) DO NOTHING",
        );
        let inserted = on!(&self.pool, db => {
            sqlx::query(query).bind(token).bind(expires).execute(db).await?.rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Forgets the tokens that expired before `before`.
    pub async fn forget_spent_tokens(&self, before: i64) -> Result<(), StoreError> {
        let query = sql(
            self.backend(),
            "DELETE FROM spent_token WHERE expires_at < ?",
        );
        on!(&self.pool, db => {
            sqlx::query(query).bind(before).execute(db).await?;
        });
        Ok(())
    }
}

impl TokenLedger for Store {
    fn spend<'a>(&'a self, token: &'a str, expires: i64) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            self.spend_token(token, expires)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn forget_expired(&self, before: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.forget_spent_tokens(before)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
