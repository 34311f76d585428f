//! Who the user is and where they sign in: handle → DID → PDS (from the DID document) →
//! the PDS's authorization server (`/.well-known/oauth-protected-resource`) → its metadata
//! (`/.well-known/oauth-authorization-server`), checked before use.

use serde::Deserialize;
use serde_json::Value;
use stratos_schema::syntax::Handle;
use stratos_xrpc::auth::DidResolver;
use stratos_xrpc::outbound::{Outbound, OutboundRequest};

use crate::OAuthError;

/// A resolved account: its DID and PDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's DID.
    pub did: String,
    /// Its PDS, from the `#atproto_pds` service of its DID document (no trailing `/`).
    pub pds: String,
}

/// What we use of an authorization server's metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationServer {
    /// Its issuer identifier (an origin URL).
    pub issuer: String,
    /// Where the user's browser is sent.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Where authorization requests are pushed (PAR is mandatory in ATProto).
    pub pushed_authorization_request_endpoint: String,
    /// Where tokens are revoked, if it offers that.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// The DPoP algorithms it accepts.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// The scopes it knows.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// Resolves accounts and their authorization servers.
#[derive(Clone)]
pub struct Discovery {
    pub(crate) http: Outbound,
    resolver: DidResolver,
}

impl Discovery {
    /// Discovery through `http` (its SSRF guard applies to every host), with DID documents and
    /// handles resolved by `resolver`.
    pub fn new(http: Outbound, resolver: DidResolver) -> Self {
        Self { http, resolver }
    }

    /// The account named by `input`: a DID, or a handle resolved to one.
    pub async fn identity(&self, input: &str) -> Result<Identity, OAuthError> {
        let input = input.trim().trim_start_matches('@').to_ascii_lowercase();
        let did = match input.starts_with("did:") {
            true => input,
            false => self.handle_did(&input).await?,
        };
        let document = self
            .resolver
            .document(&did)
            .await
            .map_err(|e| OAuthError::Resolve(format!("the DID document of {did}: {e}")))?;
        let pds = pds_endpoint(&document)
            .ok_or_else(|| OAuthError::Resolve(format!("{did} names no PDS (#atproto_pds)")))?;
        Ok(Identity { did, pds })
    }

    async fn handle_did(&self, handle: &str) -> Result<String, OAuthError> {
        if handle.parse::<Handle>().is_err() {
            return Err(OAuthError::Resolve(format!("{handle:?} is not a handle")));
        }
        self.resolver
            .handle_did(handle)
            .await
            .ok_or_else(|| OAuthError::Resolve(format!("could not resolve the handle {handle}")))
    }

    /// The authorization server of a PDS, with its metadata checked.
    pub async fn authorization_server(&self, pds: &str) -> Result<AuthorizationServer, OAuthError> {
        let resource: Value = self
            .get_json(&format!(
                "{}/.well-known/oauth-protected-resource",
                pds.trim_end_matches('/')
            ))
            .await?;
        let issuer = resource
            .get("authorization_servers")
            .and_then(Value::as_array)
            .and_then(|servers| servers.first())
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::Resolve(format!("{pds} names no authorization server")))?
            .trim_end_matches('/')
            .to_string();
        self.issuer_metadata(&issuer).await
    }

    /// The metadata of the authorization server `issuer`, checked: it names itself, pushes
    /// requests, and accepts ES256 DPoP proofs.
    pub async fn issuer_metadata(&self, issuer: &str) -> Result<AuthorizationServer, OAuthError> {
        let metadata: AuthorizationServer = serde_json::from_value(
            self.get_json(&format!("{issuer}/.well-known/oauth-authorization-server"))
                .await?,
        )
        .map_err(|e| OAuthError::Resolve(format!("the metadata of {issuer}: {e}")))?;
        if metadata.issuer.trim_end_matches('/') != issuer {
            return Err(OAuthError::Resolve(format!(
                "the authorization server at {issuer} calls itself {}",
                metadata.issuer
            )));
        }
        if !metadata
            .dpop_signing_alg_values_supported
            .iter()
            .any(|alg| alg == "ES256")
        {
            return Err(OAuthError::Resolve(format!(
                "{issuer} does not accept ES256 DPoP proofs"
            )));
        }
        Ok(metadata)
    }

    async fn get_json(&self, url: &str) -> Result<Value, OAuthError> {
        let response = self
            .http
            .send(OutboundRequest::get(url, "application/json"))
            .await
            .map_err(|e| OAuthError::Resolve(e.to_string()))?;
        if !response.status.is_success() {
            return Err(OAuthError::Resolve(format!("{url}: {}", response.status)));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| OAuthError::Resolve(format!("{url}: {e}")))
    }
}

/// The `#atproto_pds` endpoint of a DID document, without a trailing `/`.
pub fn pds_endpoint(document: &Value) -> Option<String> {
    document
        .get("service")?
        .as_array()?
        .iter()
        .find(|service| {
            service
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.ends_with("#atproto_pds"))
        })?
        .get("serviceEndpoint")?
        .as_str()
        .map(|endpoint| endpoint.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pds_is_the_atproto_pds_service() {
        let document = json!({
            "id": "did:plc:abc",
            "service": [
                {"id": "#other", "type": "X", "serviceEndpoint": "https://other.example"},
                {"id": "did:plc:abc#atproto_pds", "type": "AtprotoPersonalDataServer",
                 "serviceEndpoint": "https://pds.example/"},
            ],
        });
        assert_eq!(
            pds_endpoint(&document).as_deref(),
            Some("https://pds.example")
        );
        assert_eq!(pds_endpoint(&json!({"id": "did:plc:abc"})), None);
        assert_eq!(
            pds_endpoint(&json!({"service": [{"id": "#atproto_pds", "serviceEndpoint": 7}]})),
            None
        );
    }
}
