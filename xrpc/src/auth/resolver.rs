//! DID resolution for token checks: `did:plc` through a PLC directory, `did:web` through
//! `/.well-known/did.json`, the `#atproto` key of the document, cached for a while; and handle
//! resolution, through the handle's own `/.well-known/atproto-did` or a `resolveHandle`
//! service.
//!
//! Fetches go through [`Outbound`](crate::outbound::Outbound): no private addresses unless
//! configured for tests, capped in size and time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use serde_json::Value;
use stratos_schema::keys::{KeyAlgorithm, PublicKey};
use stratos_schema::syntax::{Did, Handle};

use crate::outbound::{Outbound, OutboundError, OutboundRequest};

/// Why a DID's keys could not be found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// Not a `did:plc` or `did:web` we can resolve.
    #[error("unsupported DID {0}")]
    Unsupported(String),
    /// The host resolves to an address we may not fetch from.
    #[error("refusing to fetch from {0}: not a public address")]
    Forbidden(String),
    /// The fetch failed or timed out.
    #[error("fetching the DID document: {0}")]
    Fetch(String),
    /// The document is not a DID document for this DID, or has no usable `#atproto` key.
    #[error("DID document: {0}")]
    Document(String),
}

/// Settings of the resolver.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// The PLC directory, e.g. `https://plc.directory`.
    pub plc_url: String,
    /// Allow fetching from private, loopback and link-local addresses (tests, private labs).
    pub allow_private: bool,
    /// Fetch `did:web` documents over plain HTTP (tests only).
    pub allow_http: bool,
    /// How long a resolved key stays cached.
    pub ttl: Duration,
    /// How many DIDs' keys are cached at most (the least recently used go first), so that
    /// issuers minting DIDs cannot grow the cache without end.
    pub cache_capacity: u64,
    /// The time limit of one fetch.
    pub timeout: Duration,
    /// The largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Services asked `com.atproto.identity.resolveHandle` (a PDS, an entryway or an AppView)
    /// when a handle's own `/.well-known/atproto-did` does not answer, in order.
    pub handle_services: Vec<String>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            plc_url: "https://plc.directory".into(),
            allow_private: false,
            allow_http: false,
            ttl: Duration::from_secs(300),
            cache_capacity: 10_000,
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            handle_services: Vec::new(),
        }
    }
}

/// Resolves DIDs to their `#atproto` keys and documents, and handles to DIDs, each with a
/// bounded TTL cache, so that requests naming the same identities again (token checks, open
/// endpoints such as `describeRepo`) do not fetch again.
#[derive(Clone)]
pub struct DidResolver {
    config: Arc<ResolverConfig>,
    keys: Cache<String, PublicKey>,
    documents: Cache<String, Value>,
    /// Handles with the DID they resolved to (a handle nobody resolved is asked again next
    /// time: its owner may be setting it up right now).
    handles: Cache<String, String>,
}

impl DidResolver {
    /// A resolver with these settings.
    pub fn new(config: ResolverConfig) -> Self {
        install_tls_provider();
        Self {
            keys: bounded_cache(&config),
            documents: bounded_cache(&config),
            handles: bounded_cache(&config),
            config: Arc::new(config),
        }
    }

    /// The `#atproto` key of `did`; `fresh` skips the cache (after a signature failure, in
    /// case the key was rotated).
    pub async fn atproto_key(&self, did: &str, fresh: bool) -> Result<PublicKey, ResolveError> {
        if !fresh && let Some(key) = self.keys.get(did) {
            return Ok(key);
        }
        let url = self.document_url(did)?;
        let document = self.fetch(&url).await?;
        let key = atproto_key(did, &document)?;
        self.keys.insert(did.to_string(), key.clone());
        // Evict now rather than on some later call, so the cache stays near its bound.
        self.keys.run_pending_tasks();
        Ok(key)
    }

    /// The DID document of `did` (cached like the keys; failures are not).
    pub async fn document(&self, did: &str) -> Result<Value, ResolveError> {
        if let Some(document) = self.documents.get(did) {
            return Ok(document);
        }
        let url = self.document_url(did)?;
        let document = self.fetch(&url).await?;
        if document.get("id").and_then(Value::as_str) != Some(did) {
            return Err(ResolveError::Document(format!("its id is not {did}")));
        }
        self.documents.insert(did.to_string(), document.clone());
        self.documents.run_pending_tasks();
        Ok(document)
    }

    /// The DID `handle` resolves to: the one its own `/.well-known/atproto-did` answers, else
    /// the first answer of the configured `resolveHandle` services; `None` for a string that
    /// is not a handle or a handle nobody resolves. Resolved handles are cached.
    pub async fn handle_did(&self, handle: &str) -> Option<String> {
        let handle = handle.parse::<Handle>().ok()?;
        // Names that never resolve on the internet (`handle.invalid` among them) are not
        // looked up anywhere.
        if RESERVED_TLDS.contains(&handle.tld()) {
            return None;
        }
        let handle = handle.as_str();
        if let Some(did) = self.handles.get(handle) {
            return Some(did);
        }
        let did = self.look_up_handle(handle).await?;
        self.handles.insert(handle.to_string(), did.clone());
        self.handles.run_pending_tasks();
        Some(did)
    }

    /// Asks the handle's own well-known address, then each `resolveHandle` service.
    async fn look_up_handle(&self, handle: &str) -> Option<String> {
        let scheme = if self.config.allow_http {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{handle}/.well-known/atproto-did");
        if let Ok(body) = self.fetch_bytes(&url, "text/plain").await
            && let Some(did) = did_text(String::from_utf8_lossy(&body).trim())
        {
            return Some(did);
        }
        let services = self
            .config
            .handle_services
            .iter()
            .filter(|service| self.config.allow_http || service.starts_with("https://"));
        for service in services {
            let url = format!(
                "{}/xrpc/com.atproto.identity.resolveHandle?handle={handle}",
                service.trim_end_matches('/')
            );
            if let Ok(body) = self.fetch(&url).await
                && let Some(did) = body.get("did").and_then(Value::as_str).and_then(did_text)
            {
                return Some(did);
            }
        }
        None
    }

    fn document_url(&self, did: &str) -> Result<String, ResolveError> {
        if did.starts_with("did:plc:") && did.len() <= 64 {
            return Ok(format!(
                "{}/{did}",
                self.config.plc_url.trim_end_matches('/')
            ));
        }
        if let Some(rest) = did.strip_prefix("did:web:") {
            let mut parts = rest.split(':');
            let host = parts
                .next()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| ResolveError::Unsupported(did.into()))?
                .replace("%3A", ":")
                .replace("%3a", ":");
            let path: Vec<&str> = parts.collect();
            let scheme = if self.config.allow_http {
                "http"
            } else {
                "https"
            };
            return Ok(if path.is_empty() {
                format!("{scheme}://{host}/.well-known/did.json")
            } else {
                format!("{scheme}://{host}/{}/did.json", path.join("/"))
            });
        }
        Err(ResolveError::Unsupported(did.into()))
    }

    async fn fetch(&self, url: &str) -> Result<Value, ResolveError> {
        let body = self.fetch_bytes(url, "application/json").await?;
        serde_json::from_slice(&body).map_err(|e| ResolveError::Document(e.to_string()))
    }

    /// GETs `url` from a checked address, within the size and time caps.
    async fn fetch_bytes(&self, url: &str, accept: &'static str) -> Result<Vec<u8>, ResolveError> {
        let response = self
            .outbound()
            .send(OutboundRequest::get(url, accept))
            .await
            .map_err(|e| match e {
                OutboundError::Forbidden(host) => ResolveError::Forbidden(host),
                other => ResolveError::Fetch(other.to_string()),
            })?;
        if !response.status.is_success() {
            return Err(ResolveError::Fetch(format!("{url}: {}", response.status)));
        }
        Ok(response.body)
    }

    /// The outbound limits of document fetches.
    fn outbound(&self) -> Outbound {
        Outbound {
            allow_private: self.config.allow_private,
            // `document_url` already chose the scheme.
            allow_http: true,
            timeout: self.config.timeout,
            max_bytes: self.config.max_bytes,
        }
    }
}

/// A cache of at most `config.cache_capacity` entries (least recently used go first), each
/// kept for `config.ttl`.
fn bounded_cache<V: Clone + Send + Sync + 'static>(config: &ResolverConfig) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(config.cache_capacity)
        .time_to_live(config.ttl)
        .eviction_policy(EvictionPolicy::lru())
        .build()
}

/// Makes ring the process's TLS crypto provider (reqwest is built without one). Call it before
/// building any HTTP client; calling it again does nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// Top-level domains of handles that are not resolved: the special-use and reserved names the
/// atproto handle specification disallows (`.test`, meant for development, is resolved).
const RESERVED_TLDS: &[&str] = &[
    "alt",
    "arpa",
    "example",
    "internal",
    "invalid",
    "local",
    "localhost",
    "onion",
];

/// `text` when it is a DID.
fn did_text(text: &str) -> Option<String> {
    text.parse::<Did>().ok().map(|did| did.to_string())
}

/// The `#atproto` verification method of a DID document whose `id` is `did`.
fn atproto_key(did: &str, document: &Value) -> Result<PublicKey, ResolveError> {
    if document.get("id").and_then(Value::as_str) != Some(did) {
        return Err(ResolveError::Document(format!("its id is not {did}")));
    }
    let methods = document
        .get("verificationMethod")
        .and_then(Value::as_array)
        .ok_or_else(|| ResolveError::Document("no verificationMethod".into()))?;
    let method = methods
        .iter()
        .find(|m| {
            m.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id == "#atproto" || id == format!("{did}#atproto"))
        })
        .ok_or_else(|| ResolveError::Document("no #atproto key".into()))?;
    let multibase = method
        .get("publicKeyMultibase")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ResolveError::Document("the #atproto key has no publicKeyMultibase".into())
        })?;
    let kind = method.get("type").and_then(Value::as_str).unwrap_or("");
    let key = match kind {
        "EcdsaSecp256r1VerificationKey2019" => {
            PublicKey::from_legacy_multibase(KeyAlgorithm::P256, multibase)
        }
        "EcdsaSecp256k1VerificationKey2019" => {
            PublicKey::from_legacy_multibase(KeyAlgorithm::Secp256k1, multibase)
        }
        _ => PublicKey::from_multibase(multibase),
    };
    key.map_err(|e| ResolveError::Document(format!("the #atproto key: {e}")))
}
