//! The query service over HTTP: its XRPC queries, the `subscribeRecords` WebSocket, and (when
//! it runs alone) health, readiness and metrics.

use std::convert::Infallible;
use std::future::Future;

use serde_json::Value;
use stratos_schema::syntax::Tid;
use stratos_xrpc::body::read_capped;
use stratos_xrpc::{XrpcError, json_response};
use tokio::net::TcpListener;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::Queries;
use crate::feeds::{DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT, cursor_param};
use crate::records::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, collection_param, did_param, rkey_param};
use crate::subscribe::{SUBSCRIBE_RECORDS, SubscribeParams};

/// The XRPC methods this service answers, with their HTTP method.
pub const METHODS: &[(&str, Method)] = &[
    ("com.atproto.repo.getRecord", Method::GET),
    ("com.atproto.repo.listRecords", Method::GET),
    ("com.atproto.repo.describeRepo", Method::GET),
    ("com.atproto.sync.getRecord", Method::GET),
    ("zone.stratos.sync.getRepo", Method::GET),
    ("com.atproto.sync.listBlobs", Method::GET),
    ("zone.stratos.repo.hydrateRecord", Method::GET),
    ("zone.stratos.repo.hydrateRecords", Method::POST),
    ("zone.stratos.feed.getTimeline", Method::GET),
    ("zone.stratos.feed.getAuthorFeed", Method::GET),
    ("zone.stratos.feed.getPosts", Method::GET),
    (SUBSCRIBE_RECORDS, Method::GET),
];

/// The `listBlobs` page size when none is asked for, and the largest.
const DEFAULT_BLOB_LIMIT: u32 = 500;
const MAX_BLOB_LIMIT: u32 = 1000;

/// A `since` revision parameter.
fn since_param(value: Option<&str>) -> Result<Option<Tid>, XrpcError> {
    value
        .map(|since| {
            since
                .parse()
                .map_err(|e| XrpcError::invalid_request(format!("since: {e}")))
        })
        .transpose()
}

/// The largest JSON body a query procedure takes.
const MAX_QUERY_BODY: u64 = 256 * 1024;

/// The query parameters of a call, in order (a name may repeat).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// `limit`, clamped to `1..=max`.
    fn limit(&self, default: u32, max: u32) -> Result<u32, XrpcError> {
        match self.get("limit") {
            None => Ok(default),
            Some(text) => text
                .parse::<i64>()
                .map(|n| n.clamp(1, i64::from(max)) as u32)
                .map_err(|_| XrpcError::invalid_request("limit must be an integer")),
        }
    }

    fn flag(&self, name: &str) -> Result<bool, XrpcError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(XrpcError::invalid_request(format!(
                "{name} must be true or false"
            ))),
        }
    }
}

/// The query service's routes; anything else is rejected (not found) for the next filter.
pub fn routes(
    queries: Queries,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let state = warp::any().map(move || queries.clone());
    let subscribe = warp::path!("xrpc" / "zone.stratos.sync.subscribeRecords")
        .and(warp::ws())
        .and(warp::query::<Vec<(String, String)>>())
        .and(warp::header::optional::<String>("authorization"))
        .and(state.clone())
        .map(
            |ws: warp::ws::Ws,
             query: Vec<(String, String)>,
             authorization: Option<String>,
             queries: Queries| {
                let params = Params(query);
                let params = SubscribeParams {
                    did: params.get("did").map(str::to_string),
                    cursor: params.get("cursor").map(str::to_string),
                    domain: params.get("domain").map(str::to_string),
                    sync_token: params.get("syncToken").map(str::to_string),
                };
                ws.max_message_size(64 * 1024)
                    .on_upgrade(move |socket| queries.subscribe(socket, params, authorization))
                    .into_response()
            },
        );
    let xrpc = warp::path("xrpc")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and_then(|nsid: String| async move {
            match METHODS.iter().any(|(name, _)| *name == nsid) {
                true => Ok(nsid),
                false => Err(warp::reject::not_found()),
            }
        })
        .and(warp::method())
        .and(
            warp::query::<Vec<(String, String)>>()
                .or(warp::any().map(Vec::new))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(state)
        .then(
            |nsid: String,
             method: Method,
             query: Vec<(String, String)>,
             headers: HeaderMap,
             body,
             queries: Queries| async move {
                let started = std::time::Instant::now();
                let outcome = match read_capped(body, MAX_QUERY_BODY).await {
                    Ok(body) => {
                        call(&queries, &nsid, &method, &Params(query), &headers, &body).await
                    }
                    Err(error) => Err(error.into()),
                };
                let mut response = match outcome {
                    Ok(response) => response,
                    Err(error) => error.into_response(),
                };
                if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    // The rest of the body was not read: this connection cannot go on.
                    response.headers_mut().insert(
                        warp::http::header::CONNECTION,
                        warp::http::HeaderValue::from_static("close"),
                    );
                }
                stratos_xrpc::metrics::record_request(&nsid, response.status().as_u16(), started);
                response
            },
        );
    subscribe.or(xrpc).unify()
}

/// An optional CID parameter, checked for syntax.
fn cid_param(value: Option<&str>) -> Result<Option<&str>, XrpcError> {
    match value {
        Some(text) if stratos_schema::data::parse_cid(text).is_err() => Err(
            XrpcError::invalid_request(format!("cid: not a CID: {text}")),
        ),
        other => Ok(other),
    }
}

async fn call(
    queries: &Queries,
    nsid: &str,
    method: &Method,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, XrpcError> {
    let expected = METHODS
        .iter()
        .find(|(name, _)| *name == nsid)
        .map(|(_, method)| method.clone())
        .unwrap_or(Method::GET);
    if *method != expected {
        return Err(XrpcError::invalid_request(format!(
            "Incorrect HTTP method ({method}) expected {expected}"
        )));
    }
    if nsid == SUBSCRIBE_RECORDS {
        return Err(XrpcError::invalid_request(
            "subscribeRecords is a WebSocket: send an upgrade request",
        ));
    }
    let authorization = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let caller = queries.caller(authorization, nsid).await?;
    let json = |value: Value| Ok(json_response(StatusCode::OK, &value));
    if nsid == "com.atproto.repo.getRecord" {
        // The hottest read looks the viewer's boundaries up together with the record.
        return json(
            queries
                .get_record(
                    queries.reader(&caller, params.get("viewer"))?,
                    &did_param("repo", params.get("repo"))?,
                    &collection_param(params.get("collection"))?,
                    &rkey_param(params.get("rkey"))?,
                    cid_param(params.get("cid"))?,
                )
                .await?,
        );
    }
    let viewer = queries.viewer(&caller, params.get("viewer")).await?;
    match nsid {
        "com.atproto.repo.listRecords" => json(
            queries
                .list_records(
                    &viewer,
                    &did_param("repo", params.get("repo"))?,
                    &collection_param(params.get("collection"))?,
                    params.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?,
                    params.get("cursor"),
                    params.flag("reverse")?,
                )
                .await?,
        ),
        "com.atproto.repo.describeRepo" => json(
            queries
                .describe_repo(&did_param("repo", params.get("repo"))?)
                .await?,
        ),
        "com.atproto.sync.getRecord" => {
            queries
                .sync_record(
                    &viewer,
                    &did_param("did", params.get("did"))?,
                    &collection_param(params.get("collection"))?,
                    &rkey_param(params.get("rkey"))?,
                )
                .await
        }
        "zone.stratos.sync.getRepo" => {
            queries
                .get_repo(
                    &viewer,
                    &did_param("did", params.get("did"))?,
                    since_param(params.get("since"))?.as_ref(),
                )
                .await
        }
        "com.atproto.sync.listBlobs" => json(
            queries
                .list_blobs(
                    &viewer,
                    &did_param("did", params.get("did"))?,
                    since_param(params.get("since"))?.as_ref(),
                    params.limit(DEFAULT_BLOB_LIMIT, MAX_BLOB_LIMIT)?,
                    params.get("cursor"),
                )
                .await?,
        ),
        "zone.stratos.repo.hydrateRecord" => json(
            queries
                .hydrate_record(&viewer, params.get("uri"), cid_param(params.get("cid"))?)
                .await?,
        ),
        "zone.stratos.repo.hydrateRecords" => {
            let input: Value = serde_json::from_slice(body)
                .map_err(|_| crate::viewer::bad_request("InvalidInput", "URIs array required"))?;
            json(queries.hydrate_records(&viewer, &input).await?)
        }
        "zone.stratos.feed.getTimeline" => json(
            queries
                .timeline(
                    &viewer,
                    params.get("boundary"),
                    params.limit(DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT)?,
                    cursor_param(params.get("cursor"))?.as_ref(),
                )
                .await?,
        ),
        "zone.stratos.feed.getAuthorFeed" => json(
            queries
                .author_feed(
                    &viewer,
                    &did_param("actor", params.get("actor"))?,
                    params.get("boundary"),
                    params.limit(DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT)?,
                    cursor_param(params.get("cursor"))?.as_ref(),
                )
                .await?,
        ),
        "zone.stratos.feed.getPosts" => {
            json(queries.get_posts(&viewer, &params.all("uris")).await?)
        }
        _ => Err(XrpcError::new(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method not implemented",
        )),
    }
}

/// Serves the query service alone on `listener` until `shutdown` completes: its routes plus
/// `/health`, `/ready`, `/metrics`, and XRPC errors for everything else.
pub async fn serve(
    listener: TcpListener,
    queries: Queries,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    stratos_xrpc::metrics::handle();
    if queries.config().dev_auth {
        stratos_xrpc::auth::warn_dev_auth();
    }
    let health_state = queries.clone();
    let health = warp::path("health")
        .or(warp::path("ready"))
        .unify()
        .and(warp::path::end())
        .and(warp::get())
        .then(move || {
            let queries = health_state.clone();
            async move {
                match queries.store().ping().await {
                    Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
                    Err(_) => XrpcError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "the store does not answer",
                    )
                    .into_response(),
                }
            }
        });
    let metrics = warp::path!("metrics").and(warp::get()).map(|| {
        let mut response = Response::new(stratos_xrpc::metrics::handle().render().into());
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    });
    let unknown = warp::path("xrpc").map(|| {
        XrpcError::new(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method not implemented",
        )
        .into_response()
    });
    let routes = routes(queries)
        .or(health)
        .unify()
        .or(metrics)
        .unify()
        .or(unknown)
        .unify()
        .recover(|rejection: Rejection| async move { Ok::<_, Infallible>(rejected(&rejection)) })
        .unify();
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// The XRPC answer to a request no route took.
pub fn rejected(rejection: &Rejection) -> Response {
    if rejection.is_not_found() {
        return XrpcError::new(StatusCode::NOT_FOUND, "NotFound", "Not found").into_response();
    }
    XrpcError::invalid_request(format!("{rejection:?}")).into_response()
}
