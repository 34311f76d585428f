//! Who is calling: ATProto service-auth tokens (`Authorization: Bearer <jwt>`, minted by the
//! caller's PDS directly or when it proxies with `atproto-proxy`), checked for audience, method,
//! expiry, a fresh `jti` and the issuer's `#atproto` signature; or, only when switched on for
//! development, `Authorization: Bearer <did>`.

mod resolver;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

use stratos_schema::service_auth::{JwtError, ServiceToken};
use stratos_schema::syntax::Did;

pub use self::resolver::{
    DidResolver, ResolveError, ResolverConfig, install_tls_provider, is_public,
};

/// A secret from configuration (a password, a shared token); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Whether `offered` is this secret (compared in constant time).
    pub fn matches(&self, offered: &str) -> bool {
        same_secret(offered, &self.0)
    }

    /// The secret itself, for where it must be sent or used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(text))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Equal secrets, compared in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Says loudly that development authentication (`Bearer <did>`) is on.
pub fn warn_dev_auth() {
    tracing::warn!(
        "DEVELOPMENT AUTHENTICATION IS ON: any caller can act as any DID with \
         `Authorization: Bearer <did>`. Never run this in production."
    );
}

/// Why a caller was not authenticated; answered with 401 and [`AuthError::name`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No credentials.
    #[error("Authorization required")]
    Missing,
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] JwtError),
    /// The issuer's key could not be found.
    #[error("Could not resolve issuer DID: {0}")]
    Issuer(String),
    /// The shared ledger of spent tokens could not be asked; the token is not accepted.
    #[error("Could not check the token against the spent ones: {0}")]
    Ledger(String),
}

impl AuthError {
    /// The XRPC error name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Missing | Self::Issuer(_) => "AuthRequired",
            Self::Token(error) => error.name(),
            Self::Ledger(_) => "InternalServerError",
        }
    }

    /// The HTTP status: 401, or 500 when the ledger failed.
    pub fn status(&self) -> warp::http::StatusCode {
        match self {
            Self::Ledger(_) => warp::http::StatusCode::INTERNAL_SERVER_ERROR,
            _ => warp::http::StatusCode::UNAUTHORIZED,
        }
    }
}

/// Where spent tokens are remembered beyond this process, so that a token used at one instance
/// of a service is refused at every other (a database all instances share).
pub trait TokenLedger: Send + Sync {
    /// Records `token` (issuer and `jti`) as spent until `expires` (Unix seconds); `Ok(false)`
    /// when it was spent already.
    fn spend<'a>(&'a self, token: &'a str, expires: i64) -> BoxFuture<'a, Result<bool, String>>;
    /// Forgets the tokens that expired before `before`.
    fn forget_expired(&self, before: i64) -> BoxFuture<'_, Result<(), String>>;
}

/// How many spent tokens accumulate between sweeps of the expired ones.
const PRUNE_EVERY: usize = 1_024;

/// Checks callers' credentials.
#[derive(Clone)]
pub struct Authenticator {
    service_did: String,
    dev_auth: bool,
    resolver: DidResolver,
    /// Tokens spent at this process, with their expiry.
    used: Arc<Mutex<HashMap<String, i64>>>,
    /// Tokens spent at any instance, when instances share one.
    ledger: Option<Arc<dyn TokenLedger>>,
}

impl Authenticator {
    /// Tokens for `service_did`, issuer keys from `resolver`; `dev_auth` also accepts
    /// `Bearer <did>`. Spent tokens are remembered by this process only.
    pub fn new(service_did: &str, resolver: DidResolver, dev_auth: bool) -> Self {
        Self {
            service_did: service_did.to_string(),
            dev_auth,
            resolver,
            used: Arc::default(),
            ledger: None,
        }
    }

    /// Also records every spent token in `ledger`, shared by the service's instances.
    pub fn with_ledger(mut self, ledger: Arc<dyn TokenLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The caller of `method`, from the `Authorization` header value.
    pub async fn caller(
        &self,
        authorization: Option<&str>,
        method: &str,
    ) -> Result<Did, AuthError> {
        let credential = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(AuthError::Missing)?;
        if credential.starts_with("did:") {
            return match self.dev_auth {
                true => credential.parse().map_err(|_| AuthError::Missing),
                false => Err(AuthError::Token(JwtError::Malformed(
                    "a DID is not a token".into(),
                ))),
            };
        }
        let token = ServiceToken::parse(credential)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        token.check_claims(&self.service_did, method, now)?;
        let issuer = token.issuer_did().to_string();
        let key = self
            .resolver
            .atproto_key(&issuer, false)
            .await
            .map_err(|e| AuthError::Issuer(e.to_string()))?;
        if token.verify(std::slice::from_ref(&key)).is_err() {
            // The key may have been rotated since it was cached.
            let fresh = self
                .resolver
                .atproto_key(&issuer, true)
                .await
                .map_err(|e| AuthError::Issuer(e.to_string()))?;
            token.verify(&[fresh])?;
        }
        self.spend(&token, now).await?;
        issuer
            .parse()
            .map_err(|_| AuthError::Token(JwtError::Issuer))
    }

    /// Marks the token's `jti` used until it expires, here and in the shared ledger; a second
    /// use is refused.
    async fn spend(&self, token: &ServiceToken, now: i64) -> Result<(), AuthError> {
        let jti = format!(
            "{}|{}",
            token.claims.iss,
            token.claims.jti.as_deref().unwrap_or_default()
        );
        // Expired tokens fail their claims check anyway; forget them now and then, not on
        // every request.
        let expired_before = now - stratos_schema::service_auth::CLOCK_SKEW_SECONDS;
        let prune = {
            let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
            let prune = used.len().is_multiple_of(PRUNE_EVERY);
            if prune {
                used.retain(|_, exp| *exp >= expired_before);
            }
            if used.insert(jti.clone(), token.claims.exp).is_some() {
                return Err(AuthError::Token(JwtError::Replayed));
            }
            prune
        };
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        if prune {
            ledger
                .forget_expired(expired_before)
                .await
                .map_err(AuthError::Ledger)?;
        }
        match ledger.spend(&jti, token.claims.exp).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::Token(JwtError::Replayed)),
            Err(error) => Err(AuthError::Ledger(error)),
        }
    }
}
