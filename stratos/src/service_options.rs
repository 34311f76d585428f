//! The settings of the HTTP services (`up`, `command-service`, `query-service`): what they
//! are, how they are checked, and the service configurations built from them.

use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;
use stratos_command::auth::{DidResolver, ResolverConfig};
use stratos_command::blobs::{BlobLimits, BlobStore};
use stratos_command::http::HttpConfig;
use stratos_command::oauth::{Enrollment, EnrollmentPolicy};
use stratos_command::rate_limit::RateLimitConfig;
use stratos_command::s3::{S3Bucket, S3Config};
use stratos_oauth::{ClientIdentity, ClientKey, ClientPages, Discovery, OAuthClient};
use stratos_projector::publisher::PublisherConfig;
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_xrpc::auth::Secret;
use stratos_xrpc::outbound::Outbound;

/// Options of the HTTP service.
#[derive(Debug, Clone, Args)]
pub struct ServiceOptions {
    /// The address to listen on.
    #[arg(long, env = "STRATOS_LISTEN", default_value = "127.0.0.1:3100")]
    pub(crate) listen: SocketAddr,
    /// The public URL of the service.
    #[arg(
        long,
        env = "STRATOS_PUBLIC_URL",
        default_value = "http://127.0.0.1:3100"
    )]
    pub(crate) public_url: String,
    /// The service DID (default: the `did:web` of the public URL's host).
    #[arg(long, env = "STRATOS_SERVICE_DID")]
    service_did: Option<String>,
    /// The boundaries actors may be enrolled in, comma-separated.
    #[arg(
        long,
        env = "STRATOS_ALLOWED_DOMAINS",
        default_value = "general",
        value_delimiter = ','
    )]
    pub(crate) allowed_domains: Vec<String>,
    /// Accept `Authorization: Bearer <did>` as the caller and enroll such callers on first use.
    /// For development only; never in production.
    #[arg(long, env = "STRATOS_DEV_AUTH", value_parser = crate::options::switch)]
    pub(crate) dev_auth: bool,
    /// The largest request body, in bytes.
    #[arg(long, env = "STRATOS_MAX_BODY", default_value_t = 1024 * 1024)]
    max_body: u64,
    /// Writes allowed per DID per window.
    #[arg(long, env = "STRATOS_WRITE_RATE_MAX_WRITES", default_value_t = 300)]
    write_rate_max_writes: u32,
    /// The rate limit's sliding window, in milliseconds.
    #[arg(long, env = "STRATOS_WRITE_RATE_WINDOW_MS", default_value_t = 60_000)]
    write_rate_window_ms: u64,
    /// How long writes are refused after the limit was exceeded, in milliseconds.
    #[arg(long, env = "STRATOS_WRITE_RATE_COOLDOWN_MS", default_value_t = 10_000)]
    write_rate_cooldown_ms: u64,
    /// A random extra cooldown in [0, jitter) milliseconds.
    #[arg(
        long,
        env = "STRATOS_WRITE_RATE_COOLDOWN_JITTER_MS",
        default_value_t = 1_000
    )]
    write_rate_cooldown_jitter_ms: u64,
    /// The largest CAR file `importRepo` accepts, in bytes (an import is one log event; with
    /// Kafka, the topic's `max.message.bytes` must allow it too).
    #[arg(long, env = "STRATOS_IMPORT_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    import_max_bytes: u64,
    /// The largest blob, in bytes.
    #[arg(long, env = "STRATOS_BLOB_MAX_BYTES", default_value_t = 5 * 1024 * 1024)]
    blob_max_bytes: usize,
    #[command(flatten)]
    pub(crate) blob_storage: BlobStorageOptions,
    /// The PLC directory that resolves token issuers' `did:plc`.
    #[arg(long, env = "STRATOS_PLC_URL", default_value = "https://plc.directory")]
    plc_url: String,
    /// Fetch DID documents from private and loopback addresses, and `did:web` over plain HTTP.
    /// For local test stacks only.
    #[arg(long, env = "STRATOS_ALLOW_PRIVATE_DID_HOSTS", value_parser = crate::options::switch)]
    allow_private_did_hosts: bool,
    /// Services (AppView DIDs) allowed to read for named viewers, export repositories and
    /// subscribe to every stream, comma-separated.
    #[arg(long, env = "STRATOS_ALLOWED_APPVIEWS", value_delimiter = ',')]
    pub(crate) allowed_appviews: Vec<String>,
    /// A shared secret that subscribes to `subscribeRecords` as a trusted service.
    #[arg(long, env = "STRATOS_SYNC_TOKEN", hide_env_values = true)]
    pub(crate) sync_token: Option<Secret>,
    /// The service's secp256k1 signing key (attestations, its DID document), 64 hex
    /// characters. Default: one generated on first start and kept in the key store.
    #[arg(long, env = "STRATOS_SIGNING_KEY_HEX", hide_env_values = true)]
    signing_key_hex: Option<Secret>,
    /// The password of the `zone.stratos.admin.*` procedures (`Bearer <password>`, or Basic
    /// with any user); without it they are refused.
    #[arg(long, env = "STRATOS_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<Secret>,
    #[command(flatten)]
    enrollment: EnrollmentOptions,
}

/// Where uploaded blobs are kept (sealed with their owner's data key).
#[derive(Debug, Clone, Args)]
pub struct BlobStorageOptions {
    /// `local`: files under `--blob-dir`; `s3`: a bucket of an S3-compatible store (what several
    /// command services share).
    #[arg(
        long,
        env = "STRATOS_BLOB_STORAGE",
        value_enum,
        default_value = "local"
    )]
    blob_storage: BlobStorage,
    /// The directory of local blob storage.
    #[arg(long, env = "STRATOS_BLOB_DIR", default_value = "data/blobs")]
    blob_dir: std::path::PathBuf,
    /// The bucket of S3 blob storage.
    #[arg(long, env = "STRATOS_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// The region requests are signed for.
    #[arg(long, env = "STRATOS_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// The store's endpoint (default: AWS S3 in the region); buckets are addressed path-style.
    #[arg(long, env = "STRATOS_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The access key id.
    #[arg(long, env = "STRATOS_S3_ACCESS_KEY")]
    s3_access_key: Option<String>,
    /// The secret access key.
    #[arg(long, env = "STRATOS_S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: Option<Secret>,
}

/// Kinds of blob storage.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BlobStorage {
    /// A local directory.
    Local,
    /// An S3-compatible bucket.
    S3,
}

impl BlobStorageOptions {
    /// The configured store; S3 needs a bucket and both keys.
    pub fn store(&self) -> Result<BlobStore> {
        if matches!(self.blob_storage, BlobStorage::Local) {
            return Ok(BlobStore::Local(self.blob_dir.clone()));
        }
        let missing = |option: &str| anyhow::anyhow!("--blob-storage s3 needs {option}");
        let endpoint = self
            .s3_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.s3_region));
        web_url("--s3-endpoint", &endpoint)?;
        Ok(BlobStore::S3(S3Bucket::new(S3Config {
            endpoint,
            region: self.s3_region.clone(),
            bucket: self
                .s3_bucket
                .clone()
                .ok_or_else(|| missing("--s3-bucket"))?,
            access_key: self
                .s3_access_key
                .clone()
                .ok_or_else(|| missing("--s3-access-key"))?,
            secret_key: self
                .s3_secret_key
                .clone()
                .ok_or_else(|| missing("--s3-secret-key"))?,
        })))
    }
}

/// Who may enroll through OAuth, and how the service presents itself to their PDS.
#[derive(Debug, Clone, Args)]
pub struct EnrollmentOptions {
    /// `open`: anyone may enroll; `allowlist`: only the allowed DIDs and PDS endpoints.
    #[arg(
        long,
        env = "STRATOS_ENROLLMENT_MODE",
        value_enum,
        default_value = "allowlist"
    )]
    enrollment_mode: EnrollmentMode,
    /// DIDs allowed to enroll in allow-list mode, comma-separated.
    #[arg(long, env = "STRATOS_ALLOWED_DIDS", value_delimiter = ',')]
    allowed_dids: Vec<String>,
    /// PDS endpoints whose accounts may enroll in allow-list mode, comma-separated.
    #[arg(long, env = "STRATOS_ALLOWED_PDS_ENDPOINTS", value_delimiter = ',')]
    allowed_pds_endpoints: Vec<String>,
    /// Boundaries new enrollees get, comma-separated (default: every allowed boundary).
    #[arg(long, env = "STRATOS_AUTO_ENROLL_DOMAINS", value_delimiter = ',')]
    auto_enroll_domains: Vec<String>,
    /// The OAuth `client_id` (default: `{public URL}/client-metadata.json`, or a loopback
    /// client when the public URL is on localhost).
    #[arg(long, env = "STRATOS_OAUTH_CLIENT_ID")]
    oauth_client_id: Option<String>,
    /// The private key of a confidential client (`private_key_jwt`; its public half is served
    /// at `/oauth/jwks.json`): a P-256 JWK or 64 hex characters. Without it, a public client.
    #[arg(long, env = "STRATOS_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    oauth_client_secret: Option<Secret>,
    /// The name users see on their PDS's consent page.
    #[arg(
        long,
        env = "STRATOS_OAUTH_CLIENT_NAME",
        default_value = "Stratos Service"
    )]
    oauth_client_name: String,
    /// A logo the consent page may show (`logo_uri`).
    #[arg(long, env = "STRATOS_OAUTH_CLIENT_LOGO_URI")]
    oauth_client_logo_uri: Option<String>,
    /// The terms of service the consent page links to (`tos_uri`).
    #[arg(long, env = "STRATOS_OAUTH_CLIENT_TOS_URI")]
    oauth_client_tos_uri: Option<String>,
    /// The privacy policy the consent page links to (`policy_uri`).
    #[arg(long, env = "STRATOS_OAUTH_CLIENT_POLICY_URI")]
    oauth_client_policy_uri: Option<String>,
    /// Services that resolve handles (`com.atproto.identity.resolveHandle`) when a handle's
    /// own `/.well-known/atproto-did` does not answer (sign-in, `describeRepo`),
    /// comma-separated.
    #[arg(
        long,
        env = "STRATOS_HANDLE_RESOLVERS",
        value_delimiter = ',',
        default_value = "https://bsky.social"
    )]
    handle_resolvers: Vec<String>,
}

/// Who may enroll.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EnrollmentMode {
    /// Anyone.
    Open,
    /// Only the allowed DIDs and the accounts of the allowed PDS endpoints.
    Allowlist,
}

/// The scope the service asks users for: its enrollment record and its stubs.
const OAUTH_SCOPE: &str = "atproto repo:zone.stratos.actor.enrollment repo:zone.stratos.feed.post";

/// The entries of a comma-separated setting: each trimmed, empty ones dropped (`"a, b,"` is
/// `a` and `b`).
fn entries(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .collect()
}

impl ServiceOptions {
    /// The allowed boundaries (`--allowed-domains`).
    pub(crate) fn allowed_domains(&self) -> Vec<String> {
        entries(&self.allowed_domains)
    }

    /// The AppView DIDs trusted to read for others (`--allowed-appviews`).
    pub(crate) fn allowed_appviews(&self) -> Vec<String> {
        entries(&self.allowed_appviews)
    }

    /// Checks what the types alone do not: URLs, DIDs, boundaries and the OAuth client key.
    pub fn validate(&self) -> Result<()> {
        web_url("--public-url", &self.public_url)?;
        web_url("--plc-url", &self.plc_url)?;
        for resolver in entries(&self.enrollment.handle_resolvers) {
            web_url("--handle-resolvers", &resolver)?;
        }
        let settings = &self.enrollment;
        for (option, page) in [
            ("--oauth-client-logo-uri", &settings.oauth_client_logo_uri),
            ("--oauth-client-tos-uri", &settings.oauth_client_tos_uri),
            (
                "--oauth-client-policy-uri",
                &settings.oauth_client_policy_uri,
            ),
        ] {
            if let Some(page) = page {
                web_url(option, page)?;
            }
        }
        self.service_did()
            .parse::<stratos_schema::syntax::Did>()
            .with_context(|| format!("--service-did {:?} is not a DID", self.service_did()))?;
        for did in self
            .allowed_appviews()
            .iter()
            .chain(&entries(&self.enrollment.allowed_dids))
        {
            did.parse::<stratos_schema::syntax::Did>()
                .with_context(|| format!("{did:?} (an allowed DID or AppView) is not a DID"))?;
        }
        let allowed_domains = self.allowed_domains();
        anyhow::ensure!(
            !allowed_domains.is_empty(),
            "--allowed-domains names no boundary"
        );
        if let Some(missing) = entries(&self.enrollment.auto_enroll_domains)
            .into_iter()
            .find(|d| !allowed_domains.contains(d))
        {
            anyhow::bail!("--auto-enroll-domains: {missing:?} is not an allowed boundary");
        }
        self.service_key()?;
        self.blob_storage.store()?;
        anyhow::ensure!(self.max_body > 0, "--max-body must be above zero");
        anyhow::ensure!(
            self.write_rate_max_writes > 0 && self.write_rate_window_ms > 0,
            "the write rate limit must allow some writes in a window above zero"
        );
        self.enrollment().map(drop)
    }

    /// The configured service signing key, if any.
    pub fn service_key(&self) -> Result<Option<Keypair>> {
        self.signing_key_hex
            .as_ref()
            .map(|hex| {
                Keypair::from_private_hex(KeyAlgorithm::Secp256k1, hex.expose())
                    .context("--signing-key-hex is not a secp256k1 private key (64 hex characters)")
            })
            .transpose()
    }

    /// The service DID: the configured one, or the `did:web` of the public URL's host.
    pub fn service_did(&self) -> String {
        self.service_did.clone().unwrap_or_else(|| {
            let host = self
                .public_url
                .split("://")
                .nth(1)
                .unwrap_or(&self.public_url)
                .trim_end_matches('/');
            format!("did:web:{}", host.replace(':', "%3A"))
        })
    }

    /// The command service's HTTP settings.
    pub fn http_config(&self) -> Result<HttpConfig> {
        Ok(HttpConfig {
            dev_auth: self.dev_auth,
            max_body: self.max_body,
            max_import: self.import_max_bytes,
            blobs: BlobLimits {
                max_bytes: self.blob_max_bytes,
                ..BlobLimits::default()
            },
            resolver: self.resolver(),
            rate_limit: RateLimitConfig {
                max_writes: self.write_rate_max_writes,
                window: Duration::from_millis(self.write_rate_window_ms),
                cooldown: Duration::from_millis(self.write_rate_cooldown_ms),
                jitter: Duration::from_millis(self.write_rate_cooldown_jitter_ms),
            },
            enrollment: Some(self.enrollment()?),
            admin_password: self
                .admin_password
                .clone()
                .filter(|password| !password.expose().is_empty()),
        })
    }

    /// The PDS publisher's settings: the service DID, and the OAuth client holding the sessions.
    pub fn publisher_config(&self) -> Result<PublisherConfig> {
        Ok(PublisherConfig {
            service_did: self.service_did(),
            client: self.enrollment()?.client,
            max_backoff: Duration::from_secs(60),
        })
    }

    /// The OAuth client and eligibility policy of the service.
    pub fn enrollment(&self) -> Result<Enrollment> {
        let settings = &self.enrollment;
        let mut identity = ClientIdentity::new(
            &self.public_url,
            OAUTH_SCOPE,
            &settings.oauth_client_name,
            settings.oauth_client_id.as_deref(),
        )
        .with_pages(ClientPages {
            logo_uri: settings.oauth_client_logo_uri.clone(),
            tos_uri: settings.oauth_client_tos_uri.clone(),
            policy_uri: settings.oauth_client_policy_uri.clone(),
        });
        if let Some(secret) = &settings.oauth_client_secret {
            identity = identity.with_key(ClientKey::from_config(secret.expose())?);
        }
        let outbound = Outbound {
            allow_private: self.allow_private_did_hosts,
            allow_http: self.allow_private_did_hosts,
            ..Outbound::default()
        };
        let discovery = Discovery::new(outbound, DidResolver::new(self.resolver()));
        Ok(Enrollment {
            client: OAuthClient::new(identity, discovery),
            policy: EnrollmentPolicy {
                open: matches!(settings.enrollment_mode, EnrollmentMode::Open),
                allowed_dids: entries(&settings.allowed_dids),
                allowed_pds_endpoints: entries(&settings.allowed_pds_endpoints),
                auto_enroll_domains: entries(&settings.auto_enroll_domains),
            },
            verbose_errors: self.dev_auth,
        })
    }

    /// How DIDs (token issuers', accounts') and handles are resolved.
    pub fn resolver(&self) -> ResolverConfig {
        ResolverConfig {
            plc_url: self.plc_url.clone(),
            allow_private: self.allow_private_did_hosts,
            allow_http: self.allow_private_did_hosts,
            handle_services: entries(&self.enrollment.handle_resolvers),
            ..ResolverConfig::default()
        }
    }
}

/// An `http(s)://` URL with a host.
fn web_url(option: &str, text: &str) -> Result<()> {
    let url = reqwest::Url::parse(text).with_context(|| format!("{option} {text:?}"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        "{option} {text:?} is not an http(s) URL"
    );
    Ok(())
}
