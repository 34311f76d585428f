//! The command service over real HTTP: a server on a loopback port, a real HTTP client, the
//! embedded log, the projectors and SQLite.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::{Value, json};
use stratos_command::Commands;
use stratos_command::auth::ResolverConfig;
use stratos_command::http::{HttpConfig, serve};
use stratos_command::rate_limit::RateLimitConfig;
use stratos_store::Store;
use support::{GENERAL, SERVICE, Stack};
use tokio::sync::oneshot;

const ALICE: &str = "did:plc:alice";

struct Server {
    base: String,
    commands: Commands,
    store: Store,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    stack: Stack,
}

impl Server {
    async fn start(dev_auth: bool) -> Self {
        Self::start_with(dev_auth, RateLimitConfig::default()).await
    }

    async fn start_with(dev_auth: bool, rate_limit: RateLimitConfig) -> Self {
        let stack = Stack::new("sqlite").await;
        let commands = stack.commands().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let http = HttpConfig {
            dev_auth,
            max_body: 64 * 1024,
            resolver: ResolverConfig {
                allow_private: true,
                allow_http: true,
                ..ResolverConfig::default()
            },
            rate_limit,
            ..HttpConfig::default()
        };
        tokio::spawn(serve(listener, commands.clone(), http, async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            commands,
            store: stack.store.clone(),
            client: reqwest::Client::new(),
            stop: Some(stop),
            stack,
        }
    }

    async fn call(&self, nsid: &str, caller: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/xrpc/{nsid}", self.base))
            .json(body);
        if let Some(caller) = caller {
            request = request.bearer_auth(caller);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Enrolls `did` in the `general` boundary.
    async fn enroll(&self, did: &str) {
        self.commands
            .enroll(&did.parse().unwrap(), &["general".into()])
            .await
            .unwrap();
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.stack.finish().await;
    }
}

fn post(text: &str) -> Value {
    json!({
        "$type": "zone.stratos.feed.post",
        "text": text,
        "boundary": {"$type": "zone.stratos.boundary.defs#Domains", "values": [{"value": GENERAL}]},
        "createdAt": "2026-11-28T12:00:00.000Z",
    })
}

/// An HTTP status and a JSON body.
type Answer = (u16, Value);

fn error_of(answer: &Answer) -> (u16, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or("-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_http() {
    let server = Server::start(true).await;
    server.enroll(ALICE).await;

    let (status, created) = server
        .call(
            "com.atproto.repo.createRecord",
            Some(ALICE),
            &json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "record": post("hi")}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let uri = created["uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("at://did:plc:alice/zone.stratos.feed.post/"));
    let head = server.store.head(ALICE).await.unwrap().unwrap();
    assert_eq!(created["commit"]["cid"], head.commit.to_string());
    assert_eq!(created["commit"]["rev"], head.rev.as_str());
    let rkey = uri.rsplit('/').next().unwrap().to_string();

    // putRecord with the right swapRecord, then applyWrites in the ATProto union form.
    let (status, put) = server
        .call(
            "com.atproto.repo.putRecord",
            Some(ALICE),
            &json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "rkey": rkey,
                    "record": post("edited"), "swapRecord": created["cid"]}),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_ne!(put["cid"], created["cid"]);
    let (status, applied) = server
        .call(
            "com.atproto.repo.applyWrites",
            Some(ALICE),
            &json!({"repo": ALICE, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create",
                 "collection": "zone.stratos.feed.post", "value": post("second")},
                {"$type": "com.atproto.repo.applyWrites#delete",
                 "collection": "zone.stratos.feed.post", "rkey": rkey},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(
        applied["results"][0]["$type"],
        "com.atproto.repo.applyWrites#createResult"
    );
    assert_eq!(
        applied["results"][1]["$type"],
        "com.atproto.repo.applyWrites#deleteResult"
    );
    let records = server.store.records(ALICE).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_ne!(records[0].rkey, rkey);

    // deleteRecord of a missing record succeeds with a new commit.
    let (status, deleted) = server
        .call(
            "com.atproto.repo.deleteRecord",
            Some(ALICE),
            &json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "rkey": rkey}),
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert!(deleted["commit"]["rev"].is_string());

    // The writes show in the Prometheus metrics.
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"stratos_xrpc_requests_total{method="com.atproto.repo.createRecord",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("stratos_xrpc_request_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stratos_projector_events_total"),
        "{metrics}"
    );
    for stage in ["build", "log", "projection"] {
        assert!(
            metrics.contains(&format!(
                r#"stratos_write_stage_seconds_count{{stage="{stage}"}} 4"#
            )),
            "{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_xrpc_errors_and_change_nothing() {
    let server = Server::start(true).await;
    server.enroll(ALICE).await;
    server.enroll("did:plc:bob").await;
    let head = server.store.head(ALICE).await.unwrap();
    let create = |record: Value| json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "record": record});

    // An enrolled actor writing into another actor's repository, by every write procedure.
    let rkey = "3l2aaaaaaaa22";
    let into_alice = [
        ("com.atproto.repo.createRecord", create(post("x"))),
        (
            "com.atproto.repo.putRecord",
            json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "rkey": rkey,
                   "record": post("x")}),
        ),
        (
            "com.atproto.repo.deleteRecord",
            json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "rkey": rkey}),
        ),
        (
            "com.atproto.repo.applyWrites",
            json!({"repo": ALICE, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create",
                 "collection": "zone.stratos.feed.post", "value": post("x")}]}),
        ),
    ];
    for (nsid, input) in &into_alice {
        let answer = server.call(nsid, Some("did:plc:bob"), input).await;
        assert_eq!(
            error_of(&answer),
            (401, "AuthRequired"),
            "{nsid}: {}",
            answer.1
        );
    }

    let cases: Vec<(Answer, (u16, &str))> = vec![
        (
            server
                .call("com.atproto.repo.createRecord", None, &create(post("x")))
                .await,
            (401, "AuthRequired"),
        ),
        (
            server
                .call(
                    "com.atproto.repo.createRecord",
                    Some("did:plc:mallory"),
                    &create(post("x")),
                )
                .await,
            (401, "AuthRequired"),
        ),
        (
            server
                .call(
                    "com.atproto.repo.createRecord",
                    Some(ALICE),
                    &json!({"repo": ALICE}),
                )
                .await,
            (400, "InvalidRequest"),
        ),
        (
            server
                .call(
                    "com.atproto.repo.createRecord",
                    Some(ALICE),
                    &create(json!({"$type": "zone.stratos.feed.post", "text": 1.5})),
                )
                .await,
            (400, "InvalidRecord"),
        ),
        (
            server
                .call(
                    "com.atproto.repo.createRecord",
                    Some(ALICE),
                    &create(
                        json!({"$type": "zone.stratos.feed.post", "text": "no boundary",
                                   "createdAt": "2026-11-28T12:00:00.000Z"}),
                    ),
                )
                .await,
            (400, "InvalidRecord"),
        ),
        (
            server
                .call(
                    "com.atproto.repo.applyWrites",
                    Some(ALICE),
                    &json!({"repo": ALICE, "writes": [
                        {"$type": "com.atproto.repo.applyWrites#create",
                         "collection": "zone.stratos.feed.post", "value": post("fine")},
                        {"$type": "com.atproto.repo.applyWrites#update",
                         "collection": "zone.stratos.feed.post", "rkey": "3l2aaaaaaaa22",
                         "value": post("missing")},
                    ]}),
                )
                .await,
            (400, "RecordNotFound"),
        ),
        (
            server
                .call(
                    "com.atproto.repo.createRecord",
                    Some(ALICE),
                    &create(post(&"x".repeat(70 * 1024))),
                )
                .await,
            (413, "PayloadTooLarge"),
        ),
        (
            server
                .call("com.atproto.repo.nothingHere", Some(ALICE), &json!({}))
                .await,
            (501, "MethodNotImplemented"),
        ),
    ];
    for (answer, expected) in &cases {
        assert_eq!(error_of(answer), *expected, "{}", answer.1);
        assert!(answer.1["message"].is_string(), "{}", answer.1);
    }
    // A procedure called with GET.
    let response = server
        .client
        .get(format!(
            "{}/xrpc/com.atproto.repo.createRecord",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "InvalidRequest");

    assert_eq!(server.store.head(ALICE).await.unwrap(), head);
    assert!(server.store.records(ALICE).await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_tokens_are_refused_unless_switched_on() {
    let server = Server::start(false).await;
    server.enroll(ALICE).await;
    let answer = server
        .call(
            "com.atproto.repo.createRecord",
            Some(ALICE),
            &json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "record": post("x")}),
        )
        .await;
    assert_eq!(error_of(&answer), (401, "BadJwt"));
    assert!(server.store.records(ALICE).await.unwrap().is_empty());

    // The service identity, health and robots.
    let document: Value = server
        .client
        .get(format!("{}/.well-known/did.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["id"], SERVICE);
    let key = document["verificationMethod"][1]["publicKeyMultibase"]
        .as_str()
        .unwrap();
    assert_eq!(
        format!("did:key:{key}"),
        server.commands.service().key.did_key()
    );
    assert_eq!(
        document["verificationMethod"][1]["id"],
        format!("{SERVICE}#atproto")
    );
    let health = server
        .client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let robots = server
        .client
        .get(format!("{}/robots.txt", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(robots.contains("Disallow: /"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_rate_limit_are_refused_with_retry_after() {
    let server = Server::start_with(
        true,
        RateLimitConfig {
            max_writes: 3,
            window: std::time::Duration::from_secs(60),
            cooldown: std::time::Duration::from_secs(10),
            jitter: std::time::Duration::ZERO,
        },
    )
    .await;
    let create =
        json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "record": post("x")});
    for _ in 0..3 {
        let (status, body) = server
            .call("com.atproto.repo.createRecord", Some(ALICE), &create)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let response = server
        .client
        .post(format!(
            "{}/xrpc/com.atproto.repo.createRecord",
            server.base
        ))
        .bearer_auth(ALICE)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "10");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "RateLimitExceeded");
    assert_eq!(server.store.records(ALICE).await.unwrap().len(), 3);
    // Another actor is not affected.
    let bob = "did:plc:bob";
    let (status, _) = server
        .call(
            "com.atproto.repo.createRecord",
            Some(bob),
            &json!({"repo": bob, "collection": "zone.stratos.feed.post", "record": post("y")}),
        )
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_gets_the_original_answer() {
    let server = Server::start(true).await;
    let send = |key: &'static str, text: &'static str| {
        let request = server
            .client
            .post(format!("{}/xrpc/com.atproto.repo.createRecord", server.base))
            .bearer_auth(ALICE)
            .header("Idempotency-Key", key)
            .json(&json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "record": post(text)}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = send("order-1", "once").await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = send("order-1", "once").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["uri"], first["uri"]);
    assert_eq!(again["cid"], first["cid"]);
    assert_eq!(again["commit"], first["commit"]);
    assert_eq!(server.store.records(ALICE).await.unwrap().len(), 1);
    let (status, other) = send("order-2", "twice").await;
    assert_eq!(status, 200);
    assert_ne!(other["uri"], first["uri"]);
    assert_eq!(server.store.records(ALICE).await.unwrap().len(), 2);
    let (status, bad) = send("has space", "x").await;
    assert_eq!(
        (status, bad["error"].as_str().unwrap()),
        (400, "InvalidRequest")
    );
    assert_eq!(server.store.records(ALICE).await.unwrap().len(), 2);
    server.stop().await;
}

/// A `createRecord` by `caller` (anonymous with `None`) whose body is sent in chunks of at most
/// 16 KiB, without a length, on a connection of its own; the answer's status and JSON body.
/// With `finish`, the body is ended; without, the answer must come while the server still
/// expects more.
async fn chunked_create(
    base: &str,
    caller: Option<&str>,
    body: &[u8],
    finish: bool,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let authorization = caller
        .map(|caller| format!("authorization: Bearer {caller}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /xrpc/com.atproto.repo.createRecord HTTP/1.1\r\nhost: {address}\r\n\
         {authorization}content-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(16 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        stream.write_all(&framed).await.unwrap();
    }
    if finish {
        stream.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("an answer within 20 s")
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_without_a_length_are_held_to_the_limit() {
    let server = Server::start(true).await;
    server.enroll(ALICE).await;
    // Within the limit (64 KiB here), a chunked body is a body like any other.
    let input =
        json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "record": post("chunked")});
    let (status, body) = chunked_create(
        &server.base,
        Some(ALICE),
        &serde_json::to_vec(&input).unwrap(),
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Past it, the answer comes as soon as the limit is passed, before the body ends.
    let (status, body) = chunked_create(&server.base, Some(ALICE), &[b' '; 80 * 1024], false).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("PayloadTooLarge")),
        "{body}"
    );
    // Without credentials, the answer comes before any of the body is read.
    let (status, body) = chunked_create(&server.base, None, &[b' '; 1024], false).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("AuthRequired")),
        "{body}"
    );
    assert_eq!(server.store.records(ALICE).await.unwrap().len(), 1);
    server.stop().await;
}
