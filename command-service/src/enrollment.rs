//! What anyone may learn about enrollments (spec §2.4.14, §2.4.16, §2.4.17):
//! `zone.stratos.enrollment.status`, `zone.stratos.identity.resolveEnrollments` and
//! `zone.stratos.server.listDomains`; and leaving (`zone.stratos.enrollment.unenroll`, §2.4.15).

use std::collections::HashMap;

use serde_json::{Value, json};
use stratos_schema::Ipld;
use stratos_schema::attestation::sign_attestation;
use stratos_schema::data::ipld_to_json;
use stratos_schema::syntax::Did;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::error::CommandError;
use crate::service::Commands;
use crate::xrpc::{XrpcError, json_response};

/// `zone.stratos.enrollment.status?did=…`: whether `did` is enrolled, when, and with which
/// key; its boundaries and a fresh attestation only for the actor itself.
pub async fn status(
    commands: &Commands,
    caller: Option<&Did>,
    query: &HashMap<String, String>,
) -> Result<Response, XrpcError> {
    let did = required_did(query)?;
    let Some(enrollment) = active_enrollment(commands, did).await? else {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"did": did, "enrolled": false}),
        ));
    };
    let service = commands.service();
    let mut body = json!({
        "did": did,
        "enrolled": true,
        "enrolledAt": enrollment.enrolled_at,
        "active": true,
        "signingKey": enrollment.signing_key,
        "enrollmentRkey": service.did,
    });
    if caller.is_some_and(|c| c.as_str() == did) {
        body["boundaries"] = boundary_values(&enrollment.boundaries);
        if !enrollment.boundaries.is_empty() {
            let attestation = sign_attestation(
                &service.key,
                did,
                &enrollment.boundaries,
                &enrollment.signing_key,
            );
            body["attestation"] = json!({
                "sig": ipld_to_json(&Ipld::Bytes(attestation.sig)),
                "signingKey": attestation.signing_key,
            });
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `zone.stratos.identity.resolveEnrollments?did=…`: whether `did` is enrolled here, and in
/// which boundaries.
pub async fn resolve(
    commands: &Commands,
    query: &HashMap<String, String>,
) -> Result<Response, XrpcError> {
    let did = required_did(query)?;
    let enrollment = active_enrollment(commands, did).await?;
    let boundaries = enrollment.as_ref().map_or(&[][..], |e| &e.boundaries[..]);
    Ok(json_response(
        StatusCode::OK,
        &json!({"did": did, "enrolled": enrollment.is_some(), "boundaries": boundaries}),
    ))
}

/// `zone.stratos.enrollment.unenroll` with input `{"purge"?: bool}` (an empty body is `{}`):
/// the caller leaves; with `purge`, its private content is destroyed.
pub async fn unenroll(
    commands: &Commands,
    caller: &Did,
    body: &[u8],
) -> Result<Response, XrpcError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        #[serde(default)]
        purge: bool,
    }
    let input: Input = match body.iter().all(u8::is_ascii_whitespace) {
        true => Input { purge: false },
        false => crate::xrpc::input(body)?,
    };
    commands.unenroll(caller, input.purge).await?;
    tracing::info!(did = %caller, purge = input.purge, "unenrolled");
    Ok(json_response(StatusCode::OK, &json!({"success": true})))
}

/// `zone.stratos.server.listDomains`: the boundaries of this service.
pub fn list_domains(commands: &Commands) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"domains": commands.allowed_boundaries()}),
    )
}

async fn active_enrollment(
    commands: &Commands,
    did: &str,
) -> Result<Option<stratos_store::Enrollment>, XrpcError> {
    let enrollment = commands
        .store
        .enrollment(did)
        .await
        .map_err(CommandError::from)?;
    Ok(enrollment.filter(|e| e.active))
}

fn required_did(query: &HashMap<String, String>) -> Result<&str, XrpcError> {
    let did = query
        .get("did")
        .ok_or_else(|| XrpcError::invalid_request("did parameter required"))?;
    did.parse::<Did>()
        .map_err(|e| XrpcError::invalid_request(format!("did: {e}")))?;
    Ok(did)
}

fn boundary_values(boundaries: &[String]) -> Value {
    boundaries.iter().map(|b| json!({"value": b})).collect()
}
