//! The Stratos query service: the read side. It reads only the projections.
//!
//! * [`viewer`] — who is asking (an actor, an allow-listed service acting for a viewer, or
//!   nobody) and the one access rule every read applies;
//! * [`records`] — `com.atproto.repo.getRecord`, `listRecords`, `describeRepo`;
//! * [`hydrate`] — `zone.stratos.repo.hydrateRecord` and `hydrateRecords`;
//! * [`feeds`] — `zone.stratos.feed.getTimeline`, `getAuthorFeed`, `getPosts` over the AppView
//!   views;
//! * [`sync`] — `com.atproto.sync.getRecord` (proof CARs) and `zone.stratos.sync.getRepo`
//!   (streamed CARs);
//! * [`subscribe`] — `zone.stratos.sync.subscribeRecords` over WebSocket;
//! * [`tails`] — reads shared by the subscribers that follow one stream live;
//! * [`changes`] — wake-ups when the projections moved, heard in process or over `LISTEN`;
//! * [`http`] — the routes.

pub mod changes;
pub mod feeds;
pub mod http;
pub mod hydrate;
pub mod records;
pub mod subscribe;
pub mod sync;
pub mod tails;
pub mod viewer;

use std::sync::Arc;

use stratos_store::{Store, Views};
use stratos_xrpc::auth::{Authenticator, DidResolver, ResolverConfig};

pub use self::changes::Changes;

/// Settings of the query service.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The service's DID: the audience of tokens.
    pub service_did: String,
    /// Services (AppViews) allowed to read for a named viewer, to export repositories and to
    /// subscribe to every stream.
    pub trusted_services: Vec<String>,
    /// Accept `Authorization: Bearer <did>` as the caller's identity. For development only.
    pub dev_auth: bool,
    /// How token issuers' DIDs are resolved.
    pub resolver: ResolverConfig,
    /// A shared secret that subscribes as a trusted service (`syncToken`), if configured.
    pub sync_token: Option<String>,
    /// Timing and limits of `subscribeRecords`.
    pub subscribe: subscribe::SubscribeLimits,
}

/// The read side over the projections.
#[derive(Clone)]
pub struct Queries {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    views: Option<Views>,
    config: QueryConfig,
    auth: Authenticator,
    resolver: DidResolver,
    changes: Changes,
    tails: tails::Tails,
}

impl Queries {
    /// Reads from `store` (and the AppView `views`, for feeds), woken by `changes`.
    pub fn new(store: Store, views: Option<Views>, changes: Changes, config: QueryConfig) -> Self {
        let resolver = DidResolver::new(config.resolver.clone());
        let mut auth = Authenticator::new(&config.service_did, resolver.clone(), config.dev_auth);
        if let Some(ledger) = store.shared_token_ledger() {
            auth = auth.with_ledger(ledger);
        }
        Self {
            inner: Arc::new(Inner {
                store,
                views,
                config,
                auth,
                resolver,
                changes,
                tails: tails::Tails::default(),
            }),
        }
    }

    /// The repo projection.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &QueryConfig {
        &self.inner.config
    }

    fn views(&self) -> Option<&Views> {
        self.inner.views.as_ref()
    }
}
