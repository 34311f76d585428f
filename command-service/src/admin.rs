//! Operators' procedures, behind the admin password: boundary changes (spec §2.4.18,
//! `zone.stratos.admin.addBoundary`, `removeBoundary`, `setBoundaries`), each a `#boundaries`
//! event with a fresh attestation after which the PDS publisher rewrites the actor's enrollment
//! record; and `zone.stratos.admin.unenroll` (`{did, purge?}`), behind `stratos purge`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;
use stratos_schema::syntax::Did;
use stratos_xrpc::auth::Secret;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use crate::service::Commands;
use crate::xrpc::{XrpcError, input, json_response};

/// The admin procedures.
pub const METHODS: &[&str] = &[ADD, REMOVE, SET, UNENROLL];
const ADD: &str = "zone.stratos.admin.addBoundary";
const REMOVE: &str = "zone.stratos.admin.removeBoundary";
const SET: &str = "zone.stratos.admin.setBoundaries";
const UNENROLL: &str = "zone.stratos.admin.unenroll";

/// Whether the request carries the admin password (`Basic` with any user, or `Bearer`);
/// never, when no password is configured.
pub fn is_admin(headers: &HeaderMap, password: Option<&Secret>) -> bool {
    let Some(password) = password else {
        return false;
    };
    let Some(value) = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let offered = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.to_string(),
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("basic") => {
            let Some(decoded) = STANDARD
                .decode(token.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
            else {
                return false;
            };
            match decoded.split_once(':') {
                Some((_, password)) => password.to_string(),
                None => return false,
            }
        }
        _ => return false,
    };
    password.matches(&offered)
}

#[derive(Deserialize)]
struct OneBoundary {
    did: Option<String>,
    boundary: Option<String>,
}

#[derive(Deserialize)]
struct AllBoundaries {
    did: Option<String>,
    boundaries: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Unenroll {
    did: Option<String>,
    #[serde(default)]
    purge: bool,
}

/// Runs an admin procedure for an authenticated operator.
pub async fn call(commands: &Commands, nsid: &str, body: &[u8]) -> Result<Response, XrpcError> {
    if nsid == UNENROLL {
        return unenroll(commands, body).await;
    }
    let (did, change) = match nsid {
        SET => {
            let input: AllBoundaries = input(body)?;
            let (Some(did), Some(boundaries)) = (input.did, input.boundaries) else {
                return Err(XrpcError::invalid_request(
                    "did and boundaries array are required",
                ));
            };
            (did, Change::Set(boundaries))
        }
        _ => {
            let input: OneBoundary = input(body)?;
            let (Some(did), Some(boundary)) = (input.did, input.boundary) else {
                return Err(XrpcError::invalid_request("did and boundary are required"));
            };
            match nsid {
                ADD => (did, Change::Add(boundary)),
                _ => (did, Change::Remove(boundary)),
            }
        }
    };
    let did: Did = did
        .parse()
        .map_err(|e| XrpcError::invalid_request(format!("did: {e}")))?;
    let current = commands
        .store
        .enrollment(did.as_str())
        .await
        .map_err(crate::CommandError::from)?
        .filter(|e| e.active)
        .ok_or_else(|| {
            XrpcError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{did} is not enrolled"),
            )
        })?
        .boundaries;
    let service_did = &commands.service().did;
    let qualify = |names: &[String]| {
        stratos_schema::boundary::ensure_qualified(service_did, names)
            .map_err(|e| XrpcError::invalid_request(e.to_string()))
    };
    let wanted = match change {
        Change::Add(boundary) => {
            let mut set = current.clone();
            set.extend(qualify(&[boundary])?);
            set
        }
        Change::Remove(boundary) => {
            let gone = qualify(&[boundary])?;
            current
                .iter()
                .filter(|b| !gone.contains(b))
                .cloned()
                .collect()
        }
        Change::Set(boundaries) => qualify(&boundaries)?,
    };
    let mut wanted: Vec<String> = wanted;
    wanted.sort();
    wanted.dedup();
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|b| !commands.allowed_boundaries().contains(b))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(XrpcError::invalid_request(format!(
            "boundaries not in allowed domains: {}",
            unknown.join(", ")
        )));
    }
    commands.set_boundaries(&did, &wanted).await?;
    tracing::info!(%did, boundaries = ?wanted, "boundaries changed by an operator");
    Ok(json_response(
        StatusCode::OK,
        &json!({"did": did.as_str(), "boundaries": wanted}),
    ))
}

/// Unenrolls an actor for an operator, with or without a purge.
async fn unenroll(commands: &Commands, body: &[u8]) -> Result<Response, XrpcError> {
    let input: Unenroll = input(body)?;
    let did: Did = input
        .did
        .ok_or_else(|| XrpcError::invalid_request("did is required"))?
        .parse()
        .map_err(|e| XrpcError::invalid_request(format!("did: {e}")))?;
    match commands.unenroll(&did, input.purge).await {
        Err(crate::CommandError::NotEnrolled) => Err(XrpcError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{did} is not enrolled"),
        )),
        other => other.map_err(XrpcError::from),
    }?;
    tracing::info!(%did, purge = input.purge, "unenrolled by an operator");
    Ok(json_response(
        StatusCode::OK,
        &json!({"did": did.as_str(), "unenrolled": true, "purged": input.purge}),
    ))
}

enum Change {
    Add(String),
    Remove(String),
    Set(Vec<String>),
}
