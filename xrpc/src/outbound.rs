//! Guarded outbound HTTP: every request to a host named by a user (a DID document, a handle,
//! a PDS, an authorization server) goes through here.
//!
//! The host's addresses are resolved first and private, loopback and link-local ranges are
//! refused (unless configured for tests); the connection is pinned to the checked address so a
//! second lookup cannot swap it; redirects are not followed; answers are capped in size and
//! time.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};

use crate::auth::{install_tls_provider, is_public};

/// Why an outbound request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    /// The URL is not one we may fetch (scheme, or no host).
    #[error("refusing to fetch {0}")]
    BadUrl(String),
    /// The host resolves to an address we may not connect to.
    #[error("refusing to fetch from {0}: not a public address")]
    Forbidden(String),
    /// The request failed, timed out, or its answer was too large.
    #[error("{0}")]
    Failed(String),
}

/// The limits of outbound requests.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Allow private, loopback and link-local addresses (tests, private labs).
    pub allow_private: bool,
    /// Allow plain `http://` URLs (tests only).
    pub allow_http: bool,
    /// The time limit of one request.
    pub timeout: Duration,
    /// The largest answer accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            allow_private: false,
            allow_http: false,
            timeout: Duration::from_secs(10),
            max_bytes: 256 * 1024,
        }
    }
}

/// An outbound request: method, URL, headers and an optional body.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: String,
    /// Headers to send.
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl OutboundRequest {
    /// A `GET` of `url` accepting `accept`.
    pub fn get(url: impl Into<String>, accept: &'static str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static(accept),
        );
        Self {
            method: Method::GET,
            url: url.into(),
            headers,
            body: None,
        }
    }
}

/// The answer to an outbound request, read whole (within the size cap).
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl OutboundResponse {
    /// A header as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Outbound {
    /// Sends `request` to a checked address and reads the answer within the caps.
    pub async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        install_tls_provider();
        let failed = |e: reqwest::Error| OutboundError::Failed(e.to_string());
        let url =
            Url::parse(&request.url).map_err(|_| OutboundError::BadUrl(request.url.clone()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(OutboundError::BadUrl(request.url)),
        }
        let host = url
            .host_str()
            .ok_or_else(|| OutboundError::BadUrl(request.url.clone()))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let address = self.checked_address(&host, port).await?;
        let client = reqwest::Client::builder()
            .resolve(&host, address)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stratos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(failed)?;
        let mut builder = client.request(request.method, url).headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(failed)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(OutboundError::Failed(format!(
                    "{}: the answer is larger than {} bytes",
                    request.url, self.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status,
            headers,
            body,
        })
    }

    /// The first address of `host` we may connect to.
    async fn checked_address(&self, host: &str, port: u16) -> Result<SocketAddr, OutboundError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| OutboundError::Failed(format!("{host}: {e}")))?
            .collect();
        addresses
            .into_iter()
            .find(|a| self.allow_private || is_public(a.ip()))
            .ok_or_else(|| OutboundError::Forbidden(host.to_string()))
    }
}
