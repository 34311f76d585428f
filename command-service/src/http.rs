//! The command service over HTTP: the write procedures under `/xrpc/`, the service's DID
//! document, health and readiness, with XRPC errors for everything that goes wrong.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use serde_json::json;
use stratos_schema::syntax::Did;
use stratos_xrpc::body::{BodyError, read_capped};
use tokio::net::TcpListener;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::auth::{Authenticator, DidResolver, ResolverConfig};
use crate::blobs::BlobLimits;
use crate::error::CommandError;
use crate::oauth::{self, Enrollment};
use crate::rate_limit::{RateLimitConfig, WriteRateLimiter};
use crate::service::Commands;
use crate::writes::WriteOp;
use crate::xrpc::{
    ApplyWritesInput, CreateRecordInput, DeleteRecordInput, PROCEDURES, PutRecordInput, XrpcError,
    apply_writes_output, delete_output, input, json_response, record_output,
};
use crate::{admin, enrollment};

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Accept `Authorization: Bearer <did>` as the caller's identity. For development only.
    pub dev_auth: bool,
    /// The largest request body accepted, in bytes.
    pub max_body: u64,
    /// How token issuers' DIDs are resolved.
    pub resolver: ResolverConfig,
    /// Per-DID write rate limits.
    pub rate_limit: RateLimitConfig,
    /// The largest CAR file `importRepo` accepts, in bytes (the import is one log event, so
    /// a Kafka topic's `max.message.bytes` must allow it too).
    pub max_import: u64,
    /// Limits on uploaded blobs.
    pub blobs: BlobLimits,
    /// Enrollment through OAuth; without it, `/oauth/*` answers 404.
    pub enrollment: Option<Enrollment>,
    /// The password of the `zone.stratos.admin.*` procedures; without it, they are refused.
    pub admin_password: Option<crate::auth::Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            dev_auth: false,
            max_body: 1024 * 1024,
            resolver: ResolverConfig::default(),
            rate_limit: RateLimitConfig::default(),
            max_import: 64 * 1024 * 1024,
            blobs: BlobLimits::default(),
            enrollment: None,
            admin_password: None,
        }
    }
}

impl HttpConfig {
    /// The largest body the method `nsid` accepts, in bytes.
    fn body_limit(&self, nsid: &str) -> u64 {
        match nsid {
            IMPORT => self.max_import,
            UPLOAD => self.blobs.max_bytes as u64,
            _ => self.max_body,
        }
    }
}

/// What every request handler shares.
struct State {
    commands: Commands,
    config: HttpConfig,
    auth: Authenticator,
    limiter: Arc<WriteRateLimiter>,
}

/// Serves `commands` on `listener` until `shutdown` completes (requests in flight finish).
pub async fn serve(
    listener: TcpListener,
    commands: Commands,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if config.dev_auth {
        crate::auth::warn_dev_auth();
    }
    let routes = routes(commands, config);
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Every route of the command service.
pub fn routes(
    commands: Commands,
    config: HttpConfig,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let mut auth = Authenticator::new(
        &commands.service().did,
        DidResolver::new(config.resolver.clone()),
        config.dev_auth,
    );
    if let Some(ledger) = commands.store.shared_token_ledger() {
        auth = auth.with_ledger(ledger);
    }
    // Record from now on (the projectors in this process included).
    crate::metrics::handle();
    let limiter = Arc::new(WriteRateLimiter::new(config.rate_limit.clone()));
    // One shared state: a request takes a reference count, not a copy of the configuration.
    let state = Arc::new(State {
        commands,
        config,
        auth,
        limiter,
    });
    let state = warp::any().map(move || state.clone());
    let xrpc = warp::path("xrpc")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::method())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::headers_cloned())
        .and(state.clone())
        .and(warp::body::stream())
        .then(
            |nsid: String,
             method: Method,
             query: HashMap<String, String>,
             headers: HeaderMap,
             state: Arc<State>,
             body| async move {
                let started = std::time::Instant::now();
                // The caller is checked from the headers before any of the body is read.
                let admitted = admit(&state, &nsid, &method, &headers).await;
                let response = match admitted {
                    Err(error) => error.into_response(),
                    Ok(admitted) => match read_capped(body, state.config.body_limit(&nsid)).await {
                        Ok(body) => {
                            let call = Call {
                                nsid: &nsid,
                                query: &query,
                                headers: &headers,
                                body: &body,
                            };
                            xrpc(&state, call, admitted)
                                .await
                                .unwrap_or_else(XrpcError::into_response)
                        }
                        Err(BodyError::TooLarge(limit)) => too_large(&nsid, limit),
                        Err(error) => XrpcError::from(error).into_response(),
                    },
                };
                // Unknown methods are counted together, so callers cannot grow the labels.
                let label = match PROCEDURES.contains(&nsid.as_str()) {
                    true => nsid.as_str(),
                    false => "unknown",
                };
                crate::metrics::record_request(label, response.status().as_u16(), started);
                response
            },
        );
    let did_document = warp::path!(".well-known" / "did.json")
        .and(warp::get())
        .and(state.clone())
        .map(|state: Arc<State>| did_document(&state.commands));
    let health = warp::path("health")
        .or(warp::path("ready"))
        .unify()
        .and(warp::path::end())
        .and(warp::get())
        .and(state.clone())
        .then(|state: Arc<State>| async move { health(&state.commands).await });
    let metrics = warp::path!("metrics").and(warp::get()).map(|| {
        let mut response = Response::new(crate::metrics::handle().render().into());
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    });
    let oauth = oauth_routes(state.clone());
    let robots =
        warp::path!("robots.txt").map(|| Response::new("User-agent: *\nDisallow: /\n".into()));
    let limit = {
        let state = state.clone();
        warp::any()
            .and(state)
            .and(warp::path::full())
            .and(warp::header::optional::<u64>("content-length"))
            .and_then(
                |state: Arc<State>, path: warp::path::FullPath, length: Option<u64>| async move {
                    let nsid = path.as_str().strip_prefix("/xrpc/").unwrap_or_default();
                    let limit = state.config.body_limit(nsid);
                    match length {
                        Some(length) if length > limit => Err(warp::reject::custom(TooLarge {
                            nsid: nsid.to_string(),
                            limit,
                        })),
                        _ => Ok(()),
                    }
                },
            )
            .untuple_one()
    };
    limit
        .and(
            xrpc.or(did_document)
                .unify()
                .or(health)
                .unify()
                .or(metrics)
                .unify()
                .or(robots)
                .unify()
                .or(oauth)
                .unify(),
        )
        .recover(|rejection: Rejection| async move { Ok::<_, Infallible>(rejected(rejection)) })
        .unify()
}

/// `/oauth/authorize`, `/oauth/callback` and the client metadata, when enrollment through
/// OAuth is configured.
fn oauth_routes(
    state: impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let enrolling = state.and_then(|state: Arc<State>| async move {
        match state.config.enrollment.clone() {
            Some(enrollment) => Ok((state, enrollment)),
            None => Err(warp::reject::not_found()),
        }
    });
    let authorize = warp::path!("oauth" / "authorize")
        .and(warp::get())
        .and(enrolling.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(
            |(state, enrollment): (Arc<State>, Enrollment), query: HashMap<String, String>| async move {
                oauth::authorize(&state.commands, &enrollment, &query).await
            },
        );
    let callback = warp::path!("oauth" / "callback")
        .and(warp::get())
        .and(enrolling.clone())
        .and(warp::query::<stratos_oauth::CallbackParams>())
        .and(warp::header::optional::<String>("accept"))
        .then(
            |(state, enrollment): (Arc<State>, Enrollment),
             params: stratos_oauth::CallbackParams,
             accept: Option<String>| async move {
                let wants_html = accept.is_some_and(|a| a.contains("text/html"));
                oauth::callback(&state.commands, &enrollment, params, wants_html).await
            },
        );
    let metadata = warp::path("client-metadata.json")
        .or(warp::path!(".well-known" / "oauth-client-metadata.json"))
        .unify()
        .and(warp::path::end())
        .and(warp::get())
        .and(enrolling.clone())
        .map(|(_, enrollment): (Arc<State>, Enrollment)| oauth::client_metadata(&enrollment));
    let jwks = warp::path!("oauth" / "jwks.json")
        .and(warp::get())
        .and(enrolling)
        .and_then(|(_, enrollment): (Arc<State>, Enrollment)| async move {
            oauth::jwks(&enrollment).ok_or_else(warp::reject::not_found)
        });
    authorize
        .or(callback)
        .unify()
        .or(metadata)
        .unify()
        .or(jwks)
        .unify()
}

/// The import procedure, which takes a CAR body instead of JSON.
const IMPORT: &str = "zone.stratos.repo.importRepo";
/// The blob upload procedure, which takes the blob as its body.
const UPLOAD: &str = "com.atproto.repo.uploadBlob";
/// The blob download query.
const GET_BLOB: &str = "com.atproto.sync.getBlob";
/// The enrollment queries.
const STATUS: &str = "zone.stratos.enrollment.status";
const RESOLVE_ENROLLMENTS: &str = "zone.stratos.identity.resolveEnrollments";
const LIST_DOMAINS: &str = "zone.stratos.server.listDomains";
const UNENROLL: &str = "zone.stratos.enrollment.unenroll";

/// A body announced larger than the limit of the method called.
#[derive(Debug)]
struct TooLarge {
    nsid: String,
    limit: u64,
}

impl warp::reject::Reject for TooLarge {}

/// The answer to a body over `limit` bytes: `400 InvalidCar` for an import (spec §2.4.11),
/// `413 PayloadTooLarge` otherwise. The rest of the body was not read, so the connection
/// closes.
fn too_large(nsid: &str, limit: u64) -> Response {
    let error = match nsid {
        IMPORT => XrpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidCar",
            format!("the CAR file is larger than the limit of {limit} bytes"),
        ),
        _ => XrpcError::from(BodyError::TooLarge(limit)),
    };
    let mut response = error.into_response();
    response.headers_mut().insert(
        warp::http::header::CONNECTION,
        warp::http::HeaderValue::from_static("close"),
    );
    response
}

fn rejected(rejection: Rejection) -> Response {
    if let Some(TooLarge { nsid, limit }) = rejection.find() {
        return too_large(nsid, *limit);
    }
    if rejection.is_not_found() {
        return XrpcError::new(StatusCode::NOT_FOUND, "NotFound", "Not found").into_response();
    }
    XrpcError::invalid_request(format!("{rejection:?}")).into_response()
}

/// One XRPC call as it arrived, its body read.
struct Call<'a> {
    nsid: &'a str,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// Who a call was let in as, decided from its method and headers alone.
enum Admitted {
    /// An admin procedure, with the admin password.
    Admin,
    /// A query anyone may make.
    Anyone,
    /// An authenticated caller.
    Caller(Did),
}

/// Checks a call's HTTP method and credentials before its body is read, so that nobody
/// unauthenticated makes the service read a body.
async fn admit(
    state: &State,
    nsid: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Admitted, XrpcError> {
    let expected = match nsid {
        GET_BLOB | STATUS | RESOLVE_ENROLLMENTS | LIST_DOMAINS => Method::GET,
        known if PROCEDURES.contains(&known) => Method::POST,
        _ => {
            return Err(XrpcError::new(
                StatusCode::NOT_IMPLEMENTED,
                "MethodNotImplemented",
                format!("Method not implemented: {nsid}"),
            ));
        }
    };
    if *method != expected {
        return Err(XrpcError::invalid_request(format!(
            "Incorrect HTTP method ({method}) expected {expected}"
        )));
    }
    let authorization = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if admin::METHODS.contains(&nsid) {
        return match admin::is_admin(headers, state.config.admin_password.as_ref()) {
            true => Ok(Admitted::Admin),
            false => Err(XrpcError::auth_required("Admin auth required")),
        };
    }
    match nsid {
        RESOLVE_ENROLLMENTS | LIST_DOMAINS => return Ok(Admitted::Anyone),
        STATUS if authorization.is_none() => return Ok(Admitted::Anyone),
        _ => {}
    }
    state
        .auth
        .caller(authorization, nsid)
        .await
        .map(Admitted::Caller)
        .map_err(XrpcError::from)
}

/// Carries out one admitted XRPC call.
async fn xrpc(state: &State, call: Call<'_>, admitted: Admitted) -> Result<Response, XrpcError> {
    let Call {
        nsid,
        query,
        headers,
        body,
    } = call;
    let (commands, config) = (&state.commands, &state.config);
    let caller = match admitted {
        Admitted::Admin => return admin::call(commands, nsid, body).await,
        Admitted::Anyone => {
            return match nsid {
                RESOLVE_ENROLLMENTS => enrollment::resolve(commands, query).await,
                LIST_DOMAINS => Ok(enrollment::list_domains(commands)),
                _ => enrollment::status(commands, None, query).await,
            };
        }
        Admitted::Caller(caller) => caller,
    };
    if nsid == STATUS {
        return enrollment::status(commands, Some(&caller), query).await;
    }
    if nsid == UNENROLL {
        return enrollment::unenroll(commands, &caller, body).await;
    }
    if nsid == GET_BLOB {
        return get_blob(commands, &caller, query).await;
    }
    if nsid == UPLOAD {
        let mime = headers
            .get(warp::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim())
            .filter(|v| !v.is_empty())
            .unwrap_or("application/octet-stream");
        let blob = commands
            .upload_blob(&caller, mime, body, &config.blobs)
            .await?;
        return Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"blob": {
                "$type": "blob",
                "ref": {"$link": blob.cid},
                "mimeType": blob.mime_type,
                "size": blob.size,
            }}),
        ));
    }
    if nsid == IMPORT {
        let imported = commands
            .import(&caller, body, state.config.max_import as usize)
            .await?;
        return Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "imported": imported.records,
                "commit": {"cid": imported.commit.cid.to_string(), "rev": imported.commit.rev},
            }),
        ));
    }
    let (repo, ops, swap_commit, kinds) = match nsid {
        "com.atproto.repo.createRecord" => {
            let input: CreateRecordInput = input(body)?;
            let repo = input.repo.clone();
            let (ops, swap) = input.into_write()?;
            (repo, ops, swap, Vec::new())
        }
        "com.atproto.repo.putRecord" => {
            let input: PutRecordInput = input(body)?;
            let repo = input.repo.clone();
            let (ops, swap) = input.into_write()?;
            (repo, ops, swap, Vec::new())
        }
        "com.atproto.repo.deleteRecord" => {
            let input: DeleteRecordInput = input(body)?;
            let repo = input.repo.clone();
            let (ops, swap) = input.into_write()?;
            (repo, ops, swap, Vec::new())
        }
        _ => {
            let input: ApplyWritesInput = input(body)?;
            let repo = input.repo.clone();
            let (ops, swap) = input.into_write()?;
            let kinds = ops.iter().map(kind).collect();
            (repo, ops, swap, kinds)
        }
    };
    if repo != caller.as_str() {
        return Err(XrpcError::auth_required(
            "Cannot write to another user's repository",
        ));
    }
    if let Err(wait) = state
        .limiter
        .check(caller.as_str(), ops.len().max(1) as u32)
    {
        let mut response = XrpcError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            format!("Write rate limit exceeded. Try again in {wait}s."),
        )
        .into_response();
        response
            .headers_mut()
            .insert(warp::http::header::RETRY_AFTER, wait.into());
        return Ok(response);
    }
    let key = idempotency_key(headers)?;
    let result = match commands
        .write_idempotent(&caller, ops.clone(), swap_commit, key)
        .await
    {
        // Development callers are enrolled in every allowed boundary on first use.
        Err(CommandError::NotEnrolled) if config.dev_auth => {
            commands
                .enroll(&caller, commands.allowed_boundaries())
                .await?;
            commands
                .write_idempotent(&caller, ops, swap_commit, key)
                .await?
        }
        other => other?,
    };
    let body = match nsid {
        "com.atproto.repo.deleteRecord" => delete_output(&result),
        "com.atproto.repo.applyWrites" => apply_writes_output(&result, &kinds),
        _ => record_output(&result),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// The `Idempotency-Key` header: 1 to 256 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, XrpcError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key))
        }
        _ => Err(XrpcError::invalid_request(
            "Idempotency-Key must be 1 to 256 visible ASCII characters",
        )),
    }
}

/// `com.atproto.sync.getBlob?did=…&cid=…`: a blob of `did` the caller may read (its owner, or
/// a viewer of a record referring to it).
async fn get_blob(
    commands: &Commands,
    caller: &Did,
    query: &HashMap<String, String>,
) -> Result<Response, XrpcError> {
    let did = query
        .get("did")
        .ok_or_else(|| XrpcError::invalid_request("did is required"))?;
    let cid = query
        .get("cid")
        .ok_or_else(|| XrpcError::invalid_request("cid is required"))
        .and_then(|c| {
            stratos_schema::data::parse_cid(c)
                .map_err(|e| XrpcError::invalid_request(format!("cid: {e}")))
        })?;
    let owner: Did = did
        .parse()
        .map_err(|_| XrpcError::invalid_request(format!("did: {did:?} is not a DID")))?;
    let (mime, bytes) = commands.readable_blob(caller, &owner, &cid).await?;
    let mut response = Response::new(bytes.into());
    if let Ok(value) = warp::http::HeaderValue::from_str(&mime) {
        response
            .headers_mut()
            .insert(warp::http::header::CONTENT_TYPE, value);
    }
    // Served as data, never as a page: no sniffing, and content that a browser would run
    // (an SVG image, say) runs nothing and reaches nothing.
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; sandbox"),
    ] {
        headers.insert(name, warp::http::HeaderValue::from_static(value));
    }
    Ok(response)
}

fn kind(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Create { .. } => "create",
        WriteOp::Put { .. } => "update",
        WriteOp::Delete { .. } => "delete",
    }
}

/// The service's DID document: its key under `#atproto_pns` and `#atproto`, and its endpoint.
fn did_document(commands: &Commands) -> Response {
    let service = commands.service();
    let multibase = service.key.public_key().to_multibase();
    let method = |fragment: &str| {
        json!({
            "id": format!("{}#{fragment}", service.did),
            "type": "Multikey",
            "controller": service.did,
            "publicKeyMultibase": multibase,
        })
    };
    json_response(
        StatusCode::OK,
        &json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": service.did,
            "verificationMethod": [method("atproto_pns"), method("atproto")],
            "service": [
                {"id": "#stratos", "type": "StratosService", "serviceEndpoint": service.endpoint},
                {"id": "#atproto_pns", "type": "StratosService", "serviceEndpoint": service.endpoint},
            ],
        }),
    )
}

async fn health(commands: &Commands) -> Response {
    let ok = commands.store.ping().await.is_ok();
    json_response(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({
            "status": if ok { "ok" } else { "error" },
            "components": {"db": if ok { "ok" } else { "error" }},
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}
