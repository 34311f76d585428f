//! Enrollment through ATProto OAuth (spec §5): `GET /oauth/authorize` sends the user to their
//! authorization server, `GET /oauth/callback` completes the exchange, applies the eligibility
//! policy and enrolls; the client metadata is published at `/client-metadata.json` and
//! `/.well-known/oauth-client-metadata.json`, and a confidential client's keys at
//! `/oauth/jwks.json`.
//!
//! Pending authorizations and sessions are sealed with the master key; sessions are kept as the
//! actor's `oauth-session` secret, for the PDS publisher to write with.

use std::collections::HashMap;

use serde_json::json;
use stratos_oauth::{CallbackParams, OAuthClient, OAuthError, PendingAuthorization, Session};
use stratos_schema::syntax::Did;
use stratos_store::KeyKind;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::error::CommandError;
use crate::service::Commands;
use crate::xrpc::{XrpcError, json_response};

/// Who may enroll (spec §5.2).
#[derive(Debug, Clone, Default)]
pub struct EnrollmentPolicy {
    /// `true`: anyone; `false`: only the allowed DIDs and the accounts of the allowed PDSes.
    pub open: bool,
    /// DIDs allowed in allow-list mode.
    pub allowed_dids: Vec<String>,
    /// PDS endpoints whose accounts are allowed in allow-list mode.
    pub allowed_pds_endpoints: Vec<String>,
    /// Boundaries given at enrollment (bare or qualified); empty: every allowed boundary.
    pub auto_enroll_domains: Vec<String>,
}

impl EnrollmentPolicy {
    /// Whether the account `did`, hosted on `pds`, may enroll; the message for the user if not.
    pub fn check(&self, did: &str, pds: &str) -> Result<(), &'static str> {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        let allowed = self.open
            || self.allowed_dids.iter().any(|d| d == did)
            || self.allowed_pds_endpoints.iter().any(|p| same(p, pds));
        match allowed {
            true => Ok(()),
            false => Err("Your account is not eligible for this Stratos service"),
        }
    }
}

/// The OAuth client and the policy it enrolls with.
#[derive(Clone)]
pub struct Enrollment {
    /// The OAuth client of the service.
    pub client: OAuthClient,
    /// Who may enroll.
    pub policy: EnrollmentPolicy,
    /// Include the causes of failures in answers (development).
    pub verbose_errors: bool,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("client_id", &self.client.identity().client_id)
            .field("policy", &self.policy)
            .finish()
    }
}

/// `GET /oauth/authorize?handle=…[&redirect_uri=…]`.
pub async fn authorize(
    commands: &Commands,
    enrollment: &Enrollment,
    query: &HashMap<String, String>,
) -> Response {
    let Some(handle) = query.get("handle").filter(|h| !h.trim().is_empty()) else {
        return XrpcError::invalid_request("Handle parameter required").into_response();
    };
    let return_to = match query.get("redirect_uri") {
        None => None,
        Some(uri) => match return_url(uri, &enrollment.client.identity().client_uri) {
            Ok(uri) => Some(uri),
            Err(error) => return error.into_response(),
        },
    };
    let started = enrollment.client.authorize(handle, return_to).await;
    let stored = match started {
        Ok((url, pending)) => store_pending(commands, &pending).await.map(|()| url),
        Err(error) => Err(error),
    };
    match stored {
        Ok(url) => redirect(&url),
        Err(error) => {
            tracing::info!(%handle, %error, "could not start an OAuth authorization");
            let status = match error {
                OAuthError::Resolve(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let message = describe("Failed to start authorization flow", &error, enrollment);
            XrpcError::new(status, "AuthorizationError", message).into_response()
        }
    }
}

/// `GET /oauth/callback?code=…&state=…&iss=…` (or `error=…`).
pub async fn callback(
    commands: &Commands,
    enrollment: &Enrollment,
    params: CallbackParams,
    wants_html: bool,
) -> Response {
    let answer = complete(commands, enrollment, params).await;
    let (status, name, message) = match answer {
        Ok(response) => return response,
        Err(Failure::Denied(message)) => (StatusCode::FORBIDDEN, "EnrollmentDenied", message),
        Err(Failure::Invalid(message)) => (StatusCode::BAD_REQUEST, "CallbackError", message),
        Err(Failure::Internal(message)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "CallbackError", message)
        }
    };
    match wants_html {
        true => page(status, "Enrollment failed", &message),
        false => XrpcError::new(status, name, message).into_response(),
    }
}

/// The client metadata document.
pub fn client_metadata(enrollment: &Enrollment) -> Response {
    json_response(StatusCode::OK, &enrollment.client.identity().metadata())
}

/// The JWKS of a confidential client; `None` for a public one.
pub fn jwks(enrollment: &Enrollment) -> Option<Response> {
    let key = enrollment.client.identity().key.as_ref()?;
    Some(json_response(StatusCode::OK, &key.jwks()))
}

/// Why a callback did not enroll anyone.
enum Failure {
    Denied(String),
    Invalid(String),
    Internal(String),
}

async fn complete(
    commands: &Commands,
    enrollment: &Enrollment,
    params: CallbackParams,
) -> Result<Response, Failure> {
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "OAuth callback failed");
        Failure::Internal(describe_text(
            "Failed to complete authorization",
            e,
            enrollment,
        ))
    };
    let state = params
        .state
        .clone()
        .ok_or_else(|| Failure::Invalid("The callback has no state".into()))?;
    let pending = commands
        .store
        .take_oauth_pending(&state)
        .await
        .map_err(|e| internal(&e))?
        .and_then(|bytes| serde_json::from_slice::<PendingAuthorization>(&bytes).ok())
        .ok_or_else(|| {
            Failure::Invalid("Unknown or expired authorization; please start again".into())
        })?;
    let return_to = pending.return_to.clone();
    let session =
        enrollment
            .client
            .callback(pending, &params)
            .await
            .map_err(|error| match error {
                OAuthError::Refused(_) | OAuthError::Callback(_) => Failure::Invalid(describe(
                    "Authorization was not completed",
                    &error,
                    enrollment,
                )),
                other => internal(&other),
            })?;
    if let Err(message) = enrollment.policy.check(&session.did, &session.pds) {
        tracing::info!(did = %session.did, pds = %session.pds, "enrollment denied");
        if let Err(error) = enrollment.client.revoke(&session).await {
            tracing::warn!(did = %session.did, %error, "could not revoke a denied session");
        }
        return Err(Failure::Denied(message.into()));
    }
    let did = session
        .did
        .parse::<Did>()
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    let already = commands
        .store
        .enrollment(did.as_str())
        .await
        .map_err(|e| internal(&e))?
        .is_some_and(|e| e.active);
    save_session(commands, &session)
        .await
        .map_err(|e| internal(&e))?;
    if !already {
        let boundaries = match enrollment.policy.auto_enroll_domains.is_empty() {
            true => commands.allowed_boundaries().to_vec(),
            false => enrollment.policy.auto_enroll_domains.clone(),
        };
        commands
            .enroll(&did, &boundaries)
            .await
            .map_err(|e| internal(&e))?;
        tracing::info!(%did, "enrolled through OAuth");
    }
    if let Some(url) = return_to {
        let separator = if url.contains('?') { '&' } else { '?' };
        return Ok(redirect(&format!("{url}{separator}stratos_enrolled=true")));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "success": true,
            "did": did.as_str(),
            "enrolled": !already,
            "message": match already {
                true => "Already enrolled in Stratos",
                false => "Successfully enrolled in Stratos",
            },
        }),
    ))
}

async fn store_pending(
    commands: &Commands,
    pending: &PendingAuthorization,
) -> Result<(), OAuthError> {
    let bytes = serde_json::to_vec(pending).map_err(|e| OAuthError::Stored(e.to_string()))?;
    commands
        .store
        .put_oauth_pending(&pending.state, &bytes, pending.created_at)
        .await
        .map_err(|e| OAuthError::Stored(e.to_string()))
}

/// Keeps `session` as the actor's sealed `oauth-session` secret.
pub async fn save_session(commands: &Commands, session: &Session) -> Result<(), CommandError> {
    let bytes = zeroize::Zeroizing::new(
        serde_json::to_vec(session).map_err(|e| CommandError::Internal(e.to_string()))?,
    );
    commands
        .store
        .put_key(&session.did, KeyKind::OAuthSession, &bytes)
        .await?;
    Ok(())
}

/// A `redirect_uri` the user may be sent back to: an absolute `http(s)` URL, `https` when
/// the service itself is.
fn return_url(uri: &str, public_url: &str) -> Result<String, XrpcError> {
    let parsed = uri
        .parse::<warp::http::Uri>()
        .ok()
        .filter(|u| u.host().is_some())
        .ok_or_else(|| XrpcError::invalid_request("Invalid redirect_uri"))?;
    let secure_only = public_url.starts_with("https://");
    match parsed.scheme_str() {
        Some("https") => Ok(uri.to_string()),
        Some("http") if !secure_only => Ok(uri.to_string()),
        Some("http") => Err(XrpcError::invalid_request("redirect_uri must use https")),
        _ => Err(XrpcError::invalid_request("Invalid redirect_uri")),
    }
}

fn describe(summary: &str, error: &OAuthError, enrollment: &Enrollment) -> String {
    match error {
        // What the user typed or did is theirs to see.
        OAuthError::Resolve(_) | OAuthError::Refused(_) | OAuthError::Callback(_) => {
            format!("{summary}: {error}")
        }
        _ => describe_text(summary, error, enrollment),
    }
}

fn describe_text(summary: &str, cause: &dyn std::fmt::Display, enrollment: &Enrollment) -> String {
    match enrollment.verbose_errors {
        true => format!("{summary}: {cause}"),
        false => summary.to_string(),
    }
}

fn redirect(url: &str) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A small HTML page for people who reached the callback in a browser.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>",
        escape(message)
    );
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_policy_allows_open_listed_dids_and_listed_pdses() {
        let closed = EnrollmentPolicy {
            allowed_dids: vec!["did:plc:alice".into()],
            allowed_pds_endpoints: vec!["https://pds.example/".into()],
            ..Default::default()
        };
        assert!(closed.check("did:plc:alice", "https://elsewhere").is_ok());
        assert!(closed.check("did:plc:bob", "https://pds.example").is_ok());
        assert!(closed.check("did:plc:bob", "https://elsewhere").is_err());
        let open = EnrollmentPolicy {
            open: true,
            ..Default::default()
        };
        assert!(open.check("did:plc:bob", "https://elsewhere").is_ok());
    }

    #[test]
    fn return_urls_are_absolute_http_urls() {
        assert!(return_url("https://app.example/done", "https://s.example").is_ok());
        assert!(return_url("http://app.example/done", "http://127.0.0.1:3100").is_ok());
        assert_eq!(
            return_url("http://app.example/done", "https://s.example")
                .unwrap_err()
                .message,
            "redirect_uri must use https"
        );
        for bad in [
            "/relative",
            "javascript:alert(1)",
            "not a url",
            "ftp://x.example/",
        ] {
            assert!(return_url(bad, "http://127.0.0.1").is_err(), "{bad}");
        }
    }
}
