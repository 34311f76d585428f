//! A minimal client of an S3-compatible object store (AWS S3, MinIO, Cloudflare R2, …): put and
//! get whole objects of one bucket, path-style addressed (`{endpoint}/{bucket}/{key}`), signed
//! with AWS Signature Version 4.

use ring::hmac;
use sha2::{Digest, Sha256};
use stratos_xrpc::auth::Secret;

/// Where the bucket is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The service endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://minio:9000`.
    pub endpoint: String,
    /// The region the requests are signed for (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: Secret,
}

/// Why an object store request failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The endpoint and key do not make a URL.
    #[error("object URL: {0}")]
    Url(String),
    /// The store could not be reached.
    #[error("object store unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// The store answered with an error status.
    #[error("object store answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer (S3 error XML).
        body: String,
    },
}

/// One bucket of an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    config: S3Config,
    http: reqwest::Client,
}

impl S3Bucket {
    /// A client of the bucket in `config`.
    pub fn new(config: S3Config) -> Self {
        stratos_xrpc::auth::install_tls_provider();
        Self {
            config,
            http: reqwest::Client::new(),
        }
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let response = self.send(reqwest::Method::PUT, key, bytes).await?;
        check(response).await.map(drop)
    }

    /// The object under `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let response = self.send(reqwest::Method::GET, key, Vec::new()).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(check(response).await?.bytes().await?.to_vec()))
    }

    /// Deletes the object under `key` (a missing one is not an error).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let response = self.send(reqwest::Method::DELETE, key, Vec::new()).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        check(response).await.map(drop)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, S3Error> {
        let path = format!("/{}/{}", self.config.bucket, encode_key(key));
        let url = reqwest::Url::parse(&format!(
            "{}{path}",
            self.config.endpoint.trim_end_matches('/')
        ))
        .map_err(|e| S3Error::Url(e.to_string()))?;
        // The Host header as the client sends it: the port only when it is not the default.
        let host = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let payload_hash = hex(&Sha256::digest(&body));
        let date = amz_date_now();
        let headers = [
            ("host", host.as_str()),
            ("x-amz-content-sha256", payload_hash.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        let authorization = authorization(
            &self.config,
            method.as_str(),
            &path,
            &headers,
            &payload_hash,
        );
        Ok(self
            .http
            .request(method, url)
            .header("x-amz-content-sha256", &payload_hash)
            .header("x-amz-date", &date)
            .header("authorization", authorization)
            .body(body)
            .send()
            .await?)
    }
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, S3Error> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(300);
    Err(S3Error::Status { status, body })
}

/// The `Authorization` header of a request: `headers` are the signed ones, lowercase, sorted
/// by name, `x-amz-date` (`YYYYMMDDTHHMMSSZ`) among them.
fn authorization(
    config: &S3Config,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> String {
    let date = headers
        .iter()
        .find(|(name, _)| *name == "x-amz-date")
        .map_or("", |(_, value)| *value);
    let day = &date[..date.len().min(8)];
    let scope = format!("{day}/{}/s3/aws4_request", config.region);
    let signed_headers: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    let signed_headers = signed_headers.join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{}\n", value.trim()))
        .collect();
    let canonical_request =
        format!("{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{}", config.secret_key.expose()).into_bytes();
    for part in [day, config.region.as_str(), "s3", "aws4_request"] {
        key = sign(&key, part.as_bytes());
    }
    let signature = hex(&sign(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
        config.access_key
    )
}

fn sign(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as a URI path: every byte but the unreserved ones and `/` percent-encoded (SigV4's
/// canonical URI for S3).
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The current time as SigV4's `YYYYMMDDTHHMMSSZ`.
fn amz_date_now() -> String {
    stratos_schema::syntax::Datetime::now()
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect::<String>()
        + "Z"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's worked example "GET Object" of Signature Version 4 for S3.
    #[test]
    fn the_signature_of_awss_example() {
        let config = S3Config {
            endpoint: "https://examplebucket.s3.amazonaws.com".into(),
            region: "us-east-1".into(),
            bucket: "examplebucket".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", empty),
            ("x-amz-date", "20130524T000000Z"),
        ];
        assert_eq!(
            authorization(&config, "GET", "/test.txt", &headers, empty),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn keys_are_encoded_as_paths() {
        assert_eq!(encode_key("ab12/bafy-x_y.z~"), "ab12/bafy-x_y.z~");
        assert_eq!(encode_key("a b:c"), "a%20b%3Ac");
    }

    #[test]
    fn the_date_has_sigv4s_shape() {
        let date = amz_date_now();
        assert_eq!(date.len(), 16, "{date}");
        assert_eq!(&date[8..9], "T");
        assert!(date.ends_with('Z'));
    }
}
