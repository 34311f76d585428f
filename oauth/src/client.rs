//! The authorization code flow (PAR + PKCE S256 + DPoP), refresh, revocation, and calls to the
//! user's PDS with a session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stratos_xrpc::outbound::{OutboundRequest, OutboundResponse};

use crate::discovery::Discovery;
use crate::dpop::DpopKey;
use crate::metadata::ClientIdentity;
use crate::{OAuthError, random_token, unix_now};

/// How long a pending authorization stays usable, in seconds.
const PENDING_TTL: i64 = 600;
/// Refresh an access token this many seconds before it expires.
const REFRESH_MARGIN: i64 = 60;

/// An authorization started by [`OAuthClient::authorize`], waiting for its callback. Keep it
/// sealed (it holds the PKCE verifier and the DPoP key), keyed by [`state`](Self::state), and
/// use it once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The `state` sent to the authorization server.
    pub state: String,
    /// The authorization server's issuer.
    pub issuer: String,
    /// The account the user named, when they named one.
    pub did: Option<String>,
    /// The PKCE verifier.
    verifier: String,
    /// The session's DPoP key (stored form).
    dpop_key: String,
    /// The last DPoP nonce of the authorization server.
    nonce: Option<String>,
    /// When the authorization started (Unix seconds).
    pub created_at: i64,
    /// Where the caller wants the user sent after the callback (the caller's own data).
    pub return_to: Option<String>,
}

/// The query of the callback from the authorization server.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    /// The code to exchange.
    pub code: Option<String>,
    /// The state of the pending authorization.
    pub state: Option<String>,
    /// The issuer (RFC 9207).
    pub iss: Option<String>,
    /// An error instead of a code.
    pub error: Option<String>,
    /// The error's explanation.
    pub error_description: Option<String>,
}

/// A user's OAuth session: DPoP-bound tokens for their PDS. Keep it sealed at rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The account (the token's `sub`).
    pub did: String,
    /// The account's PDS.
    pub pds: String,
    /// The authorization server that issued the tokens.
    pub issuer: String,
    /// The scope granted.
    pub scope: String,
    access_token: String,
    refresh_token: Option<String>,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
    dpop_key: String,
    issuer_nonce: Option<String>,
    pds_nonce: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    sub: String,
}

/// The OAuth client of the service.
#[derive(Clone)]
pub struct OAuthClient {
    identity: ClientIdentity,
    discovery: Discovery,
}

impl OAuthClient {
    /// A client presenting itself as `identity`, resolving through `discovery`.
    pub fn new(identity: ClientIdentity, discovery: Discovery) -> Self {
        Self {
            identity,
            discovery,
        }
    }

    /// How the client presents itself.
    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    /// Starts an authorization for the account `input` (handle or DID): pushes the request to
    /// its authorization server and returns the URL to send the user to, with the pending
    /// authorization to keep until the callback.
    pub async fn authorize(
        &self,
        input: &str,
        return_to: Option<String>,
    ) -> Result<(String, PendingAuthorization), OAuthError> {
        let identity = self.discovery.identity(input).await?;
        let server = self.discovery.authorization_server(&identity.pds).await?;
        let verifier = random_token(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let dpop = DpopKey::generate();
        let state = random_token(24);
        let form = [
            ("client_id", self.identity.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", self.identity.redirect_uri.as_str()),
            ("scope", self.identity.scope.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", input.trim()),
        ];
        let mut nonce = None;
        let response = self
            .post_form(
                (
                    &server.issuer,
                    &server.pushed_authorization_request_endpoint,
                ),
                &form,
                &dpop,
                &mut nonce,
            )
            .await?;
        let request_uri = response
            .get("request_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::Refused("no request_uri in the PAR answer".into()))?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.identity.client_id)
            .append_pair("request_uri", request_uri)
            .finish();
        let url = format!("{}?{query}", server.authorization_endpoint);
        let pending = PendingAuthorization {
            state,
            issuer: server.issuer,
            did: Some(identity.did),
            verifier,
            dpop_key: dpop.to_stored().to_string(),
            nonce,
            created_at: unix_now(),
            return_to,
        };
        Ok((url, pending))
    }

    /// Completes `pending` with the callback's `params`: exchanges the code and checks that
    /// the tokens are for the account they name and come from that account's own
    /// authorization server.
    pub async fn callback(
        &self,
        pending: PendingAuthorization,
        params: &CallbackParams,
    ) -> Result<Session, OAuthError> {
        if unix_now() - pending.created_at > PENDING_TTL {
            return Err(OAuthError::Callback(
                "the authorization took too long; start again".into(),
            ));
        }
        if let Some(error) = &params.error {
            return Err(OAuthError::Refused(format!(
                "{error}: {}",
                params.error_description.as_deref().unwrap_or("")
            )));
        }
        if params.state.as_deref() != Some(pending.state.as_str()) {
            return Err(OAuthError::Callback("state mismatch".into()));
        }
        let server = self.discovery.issuer_metadata(&pending.issuer).await?;
        if let Some(iss) = &params.iss
            && iss.trim_end_matches('/') != pending.issuer
        {
            return Err(OAuthError::Callback(format!(
                "issuer mismatch: expected {}, got {iss}",
                pending.issuer
            )));
        }
        let code = params
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::Callback("no code".into()))?;
        let dpop = DpopKey::from_stored(&pending.dpop_key)?;
        let mut nonce = pending.nonce.clone();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.identity.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
            ("client_id", self.identity.client_id.as_str()),
        ];
        let tokens = self
            .token_request(
                (&server.issuer, &server.token_endpoint),
                &form,
                &dpop,
                &mut nonce,
            )
            .await?;
        if pending.did.as_deref().is_some_and(|did| did != tokens.sub) {
            return Err(OAuthError::Callback(format!(
                "the tokens are for {}, not for the account that signed in",
                tokens.sub
            )));
        }
        // The account's own PDS must send it to this issuer, or any server could claim any DID.
        let identity = self.discovery.identity(&tokens.sub).await?;
        let home = self.discovery.authorization_server(&identity.pds).await?;
        if home.issuer.trim_end_matches('/') != pending.issuer {
            return Err(OAuthError::Callback(format!(
                "{} does not sign in at {}",
                tokens.sub, pending.issuer
            )));
        }
        Ok(Session {
            did: tokens.sub,
            pds: identity.pds,
            issuer: pending.issuer,
            scope: tokens.scope.unwrap_or_default(),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: unix_now() + tokens.expires_in.unwrap_or(300),
            dpop_key: pending.dpop_key,
            issuer_nonce: nonce,
            pds_nonce: None,
        })
    }

    /// Exchanges the session's refresh token for fresh tokens.
    pub async fn refresh(&self, session: &mut Session) -> Result<(), OAuthError> {
        let refresh_token = session
            .refresh_token
            .clone()
            .ok_or_else(|| OAuthError::SessionEnded("no refresh token".into()))?;
        let server = self.discovery.issuer_metadata(&session.issuer).await?;
        let dpop = DpopKey::from_stored(&session.dpop_key)?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", self.identity.client_id.as_str()),
        ];
        let tokens = self
            .token_request(
                (&server.issuer, &server.token_endpoint),
                &form,
                &dpop,
                &mut session.issuer_nonce,
            )
            .await
            .map_err(|e| match e {
                OAuthError::Refused(reason) => OAuthError::SessionEnded(reason),
                other => other,
            })?;
        if tokens.sub != session.did {
            return Err(OAuthError::SessionEnded(format!(
                "the refreshed tokens are for {}",
                tokens.sub
            )));
        }
        session.access_token = tokens.access_token;
        session.refresh_token = tokens.refresh_token.or(Some(refresh_token));
        session.expires_at = unix_now() + tokens.expires_in.unwrap_or(300);
        if let Some(scope) = tokens.scope {
            session.scope = scope;
        }
        Ok(())
    }

    /// Revokes the session's tokens at its authorization server (best effort: a server
    /// without a revocation endpoint just lets them expire).
    pub async fn revoke(&self, session: &Session) -> Result<(), OAuthError> {
        let server = self.discovery.issuer_metadata(&session.issuer).await?;
        let Some(endpoint) = server.revocation_endpoint else {
            return Ok(());
        };
        let dpop = DpopKey::from_stored(&session.dpop_key)?;
        let mut nonce = session.issuer_nonce.clone();
        let tokens = session.refresh_token.iter().chain([&session.access_token]);
        for token in tokens {
            let form = [
                ("token", token.as_str()),
                ("client_id", self.identity.client_id.as_str()),
            ];
            self.post_form((&server.issuer, &endpoint), &form, &dpop, &mut nonce)
                .await?;
        }
        Ok(())
    }

    /// Calls the user's PDS with the session: `method` on `path` (e.g.
    /// `/xrpc/com.atproto.repo.putRecord`) with an optional JSON body. Refreshes the tokens
    /// when they are about to expire, and follows the PDS's DPoP nonce. The caller stores
    /// the session again afterwards: its tokens or nonces may have changed.
    pub async fn call(
        &self,
        session: &mut Session,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<OutboundResponse, OAuthError> {
        if session.expires_at - REFRESH_MARGIN <= unix_now() {
            self.refresh(session).await?;
        }
        let url = format!("{}{path}", session.pds);
        let dpop = DpopKey::from_stored(&session.dpop_key)?;
        let mut refreshed = false;
        let mut retried_nonce = false;
        loop {
            let mut headers = HeaderMap::new();
            insert(
                &mut headers,
                "authorization",
                &format!("DPoP {}", session.access_token),
            )?;
            let proof = dpop.proof(
                method.as_str(),
                &url,
                session.pds_nonce.as_deref(),
                Some(&session.access_token),
            );
            insert(&mut headers, "dpop", &proof)?;
            if body.is_some() {
                insert(&mut headers, "content-type", "application/json")?;
            }
            let response = self
                .discovery
                .http
                .send(OutboundRequest {
                    method: method.clone(),
                    url: url.clone(),
                    headers,
                    body: body.map(|b| b.to_string().into_bytes()),
                })
                .await
                .map_err(|e| OAuthError::Network(e.to_string()))?;
            if let Some(nonce) = response.header("dpop-nonce") {
                session.pds_nonce = Some(nonce.to_string());
            }
            if response.status.as_u16() == 401 {
                let challenge = response.header("www-authenticate").unwrap_or_default();
                if challenge.contains("use_dpop_nonce") && !retried_nonce {
                    retried_nonce = true;
                    continue;
                }
                if challenge.contains("invalid_token") && !refreshed {
                    refreshed = true;
                    self.refresh(session).await?;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// A token endpoint request: the form with a DPoP proof, parsed and checked.
    async fn token_request(
        &self,
        server: (&str, &str),
        form: &[(&str, &str)],
        dpop: &DpopKey,
        nonce: &mut Option<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let answer = self.post_form(server, form, dpop, nonce).await?;
        let tokens: TokenResponse = serde_json::from_value(answer)
            .map_err(|e| OAuthError::Refused(format!("a malformed token answer: {e}")))?;
        if !tokens.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(OAuthError::Refused(format!(
                "token type {} instead of DPoP",
                tokens.token_type
            )));
        }
        if !tokens.sub.starts_with("did:") {
            return Err(OAuthError::Refused(format!(
                "the token subject {} is not a DID",
                tokens.sub
            )));
        }
        if let Some(scope) = &tokens.scope
            && !scope.split(' ').any(|s| s == "atproto")
        {
            return Err(OAuthError::Refused(format!(
                "the granted scope {scope:?} lacks atproto"
            )));
        }
        Ok(tokens)
    }

    /// `form` encoded, with a fresh client assertion for `issuer` when the client is
    /// confidential.
    fn form_body(&self, issuer: &str, form: &[(&str, &str)]) -> String {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(form);
        if let Some(key) = &self.identity.key {
            body.append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            );
            body.append_pair(
                "client_assertion",
                &key.assertion(&self.identity.client_id, issuer),
            );
        }
        body.finish()
    }

    /// POSTs `form` to an endpoint of the authorization server `issuer` with a DPoP proof (and
    /// a client assertion for a confidential client), retrying once with the server's nonce
    /// when it asks for one; the JSON answer of a success.
    async fn post_form(
        &self,
        (issuer, endpoint): (&str, &str),
        form: &[(&str, &str)],
        dpop: &DpopKey,
        nonce: &mut Option<String>,
    ) -> Result<Value, OAuthError> {
        for attempt in 0..2 {
            let body = self.form_body(issuer, form);
            let mut headers = HeaderMap::new();
            insert(
                &mut headers,
                "content-type",
                "application/x-www-form-urlencoded",
            )?;
            insert(&mut headers, "accept", "application/json")?;
            insert(
                &mut headers,
                "dpop",
                &dpop.proof("POST", endpoint, nonce.as_deref(), None),
            )?;
            let response = self
                .discovery
                .http
                .send(OutboundRequest {
                    method: Method::POST,
                    url: endpoint.to_string(),
                    headers,
                    body: Some(body.into_bytes()),
                })
                .await
                .map_err(|e| OAuthError::Network(e.to_string()))?;
            if let Some(fresh) = response.header("dpop-nonce") {
                *nonce = Some(fresh.to_string());
            }
            let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            if response.status.is_success() {
                return Ok(answer);
            }
            let error = answer.get("error").and_then(Value::as_str).unwrap_or("");
            if error == "use_dpop_nonce" && attempt == 0 {
                continue;
            }
            let description = answer
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(OAuthError::Refused(format!(
                "{} {error} {description}",
                response.status
            )));
        }
        Err(OAuthError::Refused(
            "the server kept asking for a new DPoP nonce".into(),
        ))
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), OAuthError> {
    let value = HeaderValue::from_str(value)
        .map_err(|_| OAuthError::Refused(format!("an unprintable {name} header")))?;
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}
