//! The client's identity towards authorization servers: its `client_id`, its redirect URI and
//! the metadata document published at the `client_id` URL.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::client_key::ClientKey;

/// How the service presents itself as an OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The `client_id`.
    pub client_id: String,
    /// Where the authorization server sends the user back.
    pub redirect_uri: String,
    /// The scope asked for.
    pub scope: String,
    /// The name shown to users on the consent page.
    pub client_name: String,
    /// The service's public URL.
    pub client_uri: String,
    /// The key of a confidential (`private_key_jwt`) web client; loopback clients have none.
    pub key: Option<Arc<ClientKey>>,
    /// Pages the consent screen may link to.
    pub pages: ClientPages,
}

/// The consent screen's branding: a logo, the terms of service, the privacy policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientPages {
    /// `logo_uri`.
    pub logo_uri: Option<String>,
    /// `tos_uri`.
    pub tos_uri: Option<String>,
    /// `policy_uri`.
    pub policy_uri: Option<String>,
}

impl ClientIdentity {
    /// The client of a service at `public_url` asking for `scope`.
    ///
    /// A service on a loopback address (`localhost`, `127.0.0.1`, `[::1]`) is an ATProto
    /// *loopback client*: `client_id` is `http://localhost?redirect_uri=…&scope=…` and needs no
    /// published document; its redirect goes to `127.0.0.1` as the specification asks. Any
    /// other service is a web client whose `client_id` is
    /// `{public_url}/client-metadata.json` (or `client_id` when given).
    pub fn new(public_url: &str, scope: &str, client_name: &str, client_id: Option<&str>) -> Self {
        let public_url = public_url.trim_end_matches('/').to_string();
        let (scheme, rest) = public_url
            .split_once("://")
            .unwrap_or(("https", &public_url));
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(host, _)| host);
        let loopback = scheme == "http" && matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        if loopback {
            let port = authority.strip_prefix(host).unwrap_or("");
            let redirect_uri = format!("http://127.0.0.1{port}/oauth/callback");
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", scope)
                .finish();
            return Self {
                client_id: format!("http://localhost?{query}"),
                redirect_uri,
                scope: scope.to_string(),
                client_name: client_name.to_string(),
                client_uri: public_url,
                key: None,
                pages: ClientPages::default(),
            };
        }
        Self {
            client_id: client_id
                .map(str::to_string)
                .unwrap_or_else(|| format!("{public_url}/client-metadata.json")),
            redirect_uri: format!("{public_url}/oauth/callback"),
            scope: scope.to_string(),
            client_name: client_name.to_string(),
            client_uri: public_url,
            key: None,
            pages: ClientPages::default(),
        }
    }

    /// This client made confidential with `key` (a web client only: a loopback client stays
    /// public, as the specification requires).
    pub fn with_key(mut self, key: ClientKey) -> Self {
        if !self.is_loopback() {
            self.key = Some(Arc::new(key));
        }
        self
    }

    /// This client with links for the consent screen.
    pub fn with_pages(mut self, pages: ClientPages) -> Self {
        self.pages = pages;
        self
    }

    /// Whether this is a loopback (development) client.
    pub fn is_loopback(&self) -> bool {
        self.client_id.starts_with("http://localhost?")
    }

    /// The client metadata document.
    pub fn metadata(&self) -> Value {
        let mut metadata = json!({
            "client_id": self.client_id,
            "client_name": self.client_name,
            "client_uri": self.client_uri,
            "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": self.scope,
            "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": true,
            "application_type": if self.is_loopback() { "native" } else { "web" },
        });
        for (name, uri) in [
            ("logo_uri", &self.pages.logo_uri),
            ("tos_uri", &self.pages.tos_uri),
            ("policy_uri", &self.pages.policy_uri),
        ] {
            if let Some(uri) = uri {
                metadata[name] = json!(uri);
            }
        }
        if self.key.is_some() {
            metadata["token_endpoint_auth_method"] = json!("private_key_jwt");
            metadata["token_endpoint_auth_signing_alg"] = json!("ES256");
            metadata["jwks_uri"] = json!(format!("{}/oauth/jwks.json", self.client_uri));
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: &str = "atproto repo:zone.stratos.actor.enrollment";

    #[test]
    fn the_consent_pages_are_published_when_configured() {
        let client = ClientIdentity::new("https://stratos.example", SCOPE, "Stratos", None);
        assert!(client.metadata().get("logo_uri").is_none());
        let client = client.with_pages(ClientPages {
            logo_uri: Some("https://stratos.example/logo.png".into()),
            tos_uri: None,
            policy_uri: Some("https://stratos.example/privacy".into()),
        });
        let metadata = client.metadata();
        assert_eq!(metadata["logo_uri"], "https://stratos.example/logo.png");
        assert_eq!(metadata["policy_uri"], "https://stratos.example/privacy");
        assert!(metadata.get("tos_uri").is_none());
    }

    #[test]
    fn loopback_services_are_loopback_clients() {
        let client = ClientIdentity::new("http://localhost:3100/", SCOPE, "Stratos", None);
        assert!(client.is_loopback());
        assert_eq!(client.redirect_uri, "http://127.0.0.1:3100/oauth/callback");
        assert_eq!(
            client.client_id,
            "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%3A3100%2Foauth%2Fcallback\
             &scope=atproto+repo%3Azone.stratos.actor.enrollment"
        );
        assert_eq!(client.metadata()["application_type"], "native");
    }

    #[test]
    fn public_services_are_web_clients() {
        let client = ClientIdentity::new("https://stratos.example.com", SCOPE, "Stratos", None);
        assert!(!client.is_loopback());
        assert_eq!(
            client.client_id,
            "https://stratos.example.com/client-metadata.json"
        );
        assert_eq!(
            client.metadata()["redirect_uris"][0],
            "https://stratos.example.com/oauth/callback"
        );
        assert_eq!(client.metadata()["dpop_bound_access_tokens"], true);
        let named = ClientIdentity::new(
            "https://stratos.example.com",
            SCOPE,
            "Stratos",
            Some("https://stratos.example.com/oauth/client.json"),
        );
        assert_eq!(
            named.client_id,
            "https://stratos.example.com/oauth/client.json"
        );
        // Plain HTTP on a public name is not a loopback client.
        assert!(!ClientIdentity::new("http://stratos.example.com", SCOPE, "S", None).is_loopback());
    }

    #[test]
    fn a_key_makes_web_clients_confidential_only() {
        let key = || ClientKey::from_config(&"11".repeat(32)).expect("a valid scalar");
        let web =
            ClientIdentity::new("https://stratos.example.com", SCOPE, "S", None).with_key(key());
        let metadata = web.metadata();
        assert_eq!(metadata["token_endpoint_auth_method"], "private_key_jwt");
        assert_eq!(metadata["token_endpoint_auth_signing_alg"], "ES256");
        assert_eq!(
            metadata["jwks_uri"],
            "https://stratos.example.com/oauth/jwks.json"
        );
        let loopback =
            ClientIdentity::new("http://localhost:3100", SCOPE, "S", None).with_key(key());
        assert!(loopback.key.is_none());
        assert_eq!(loopback.metadata()["token_endpoint_auth_method"], "none");
    }
}
