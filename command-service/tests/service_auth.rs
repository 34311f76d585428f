//! Service-auth tokens over HTTP: the issuer's DID document is served by a real HTTP server
//! (`did:web` on a loopback port), tokens are minted with the issuer's key, and every bad token
//! gets its 401 and writes nothing.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use serde_json::{Value, json};
use stratos_command::auth::{DidResolver, ResolverConfig};
use stratos_command::http::HttpConfig;
use stratos_command::testing::did_document;
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::service_auth::{Claims, sign_token};
use support::{GENERAL, SERVICE, Stack, serve_http};
use tokio::sync::oneshot;
use warp::Filter;

const CREATE: &str = "com.atproto.repo.createRecord";

/// A `did:web` identity whose document a loopback HTTP server serves.
struct Issuer {
    did: String,
    key: Keypair,
    _stop: oneshot::Sender<()>,
}

async fn issuer(algorithm: KeyAlgorithm) -> Issuer {
    let key = Keypair::generate(algorithm);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let did = format!("did:web:127.0.0.1%3A{port}");
    let document = did_document(&did, &key.public_key());
    let route = warp::path!(".well-known" / "did.json").map(move || warp::reply::json(&document));
    Issuer {
        did,
        key,
        _stop: serve_route(listener, route),
    }
}

/// Serves `route` on `listener` until the returned sender is dropped.
fn serve_route<F>(listener: tokio::net::TcpListener, route: F) -> oneshot::Sender<()>
where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            })
            .run(),
    );
    stop
}

/// A secp256k1 issuer, enrolled in `general`.
async fn enrolled_issuer(stack: &Stack) -> Issuer {
    let issuer = issuer(KeyAlgorithm::Secp256k1).await;
    stack
        .commands()
        .await
        .enroll(&issuer.did.parse().unwrap(), &["general".into()])
        .await
        .unwrap();
    issuer
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(issuer: &Issuer, jti: &str) -> Claims {
    Claims {
        iss: issuer.did.clone(),
        aud: SERVICE.into(),
        exp: now() + 60,
        iat: Some(now()),
        lxm: Some(CREATE.into()),
        jti: Some(jti.into()),
    }
}

async fn start(stack: &Stack, allow_private: bool) -> (String, oneshot::Sender<()>) {
    let config = HttpConfig {
        resolver: ResolverConfig {
            allow_private,
            allow_http: true,
            ..ResolverConfig::default()
        },
        ..HttpConfig::default()
    };
    serve_http(stack, config).await
}

async fn create(base: &str, issuer: &Issuer, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/xrpc/{CREATE}"))
        .bearer_auth(token)
        .json(&json!({
            "repo": issuer.did,
            "collection": "zone.stratos.feed.post",
            "record": {
                "$type": "zone.stratos.feed.post",
                "text": "signed",
                "boundary": {"values": [{"value": GENERAL}]},
                "createdAt": "2026-11-28T12:00:00.000Z",
            },
        }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_tokens_are_checked_end_to_end() {
    let stack = Stack::new("sqlite").await;
    let (base, _stop) = start(&stack, true).await;
    for algorithm in [KeyAlgorithm::Secp256k1, KeyAlgorithm::P256] {
        let issuer = issuer(algorithm).await;
        let commands = stack.commands().await;
        commands
            .enroll(&issuer.did.parse().unwrap(), &["general".into()])
            .await
            .unwrap();

        let token = sign_token(&issuer.key, &claims(&issuer, "first"));
        let (status, body) = create(&base, &issuer, &token).await;
        assert_eq!(status, 200, "{body}");

        let stranger = Keypair::generate(algorithm);
        let parts: Vec<String> = sign_token(&issuer.key, &claims(&issuer, "tampered"))
            .split('.')
            .map(str::to_string)
            .collect();
        let other = sign_token(
            &issuer.key,
            &Claims {
                exp: now() + 90,
                ..claims(&issuer, "tampered")
            },
        );
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            other.split('.').nth(1).unwrap(),
            parts[2]
        );
        let refused = [
            (token.clone(), "BadJwt"), // replayed
            (
                sign_token(
                    &issuer.key,
                    &Claims {
                        aud: "did:web:other.example.com".into(),
                        ..claims(&issuer, "aud")
                    },
                ),
                "BadJwtAudience",
            ),
            (
                sign_token(
                    &issuer.key,
                    &Claims {
                        lxm: Some("com.atproto.repo.deleteRecord".into()),
                        ..claims(&issuer, "lxm")
                    },
                ),
                "BadJwtLexiconMethod",
            ),
            (
                sign_token(
                    &issuer.key,
                    &Claims {
                        exp: now() - 120,
                        ..claims(&issuer, "expired")
                    },
                ),
                "JwtExpired",
            ),
            (
                sign_token(&stranger, &claims(&issuer, "stranger")),
                "BadJwtSignature",
            ),
            (tampered, "BadJwtSignature"),
            (
                sign_token(
                    &issuer.key,
                    &Claims {
                        iss: "did:web:127.0.0.1%3A1".into(),
                        ..claims(&issuer, "unknown")
                    },
                ),
                "AuthRequired",
            ),
            (issuer.did.clone(), "BadJwt"), // a development token, not switched on
        ];
        for (token, expected) in refused {
            let (status, body) = create(&base, &issuer, &token).await;
            assert_eq!(
                (status, body["error"].as_str().unwrap()),
                (401, expected),
                "{body}"
            );
        }
        assert_eq!(stack.store.records(&issuer.did).await.unwrap().len(), 1);
    }
    stack.finish().await;
}

/// Instances of the command service on one Postgres database share the spent tokens: a token
/// used at one is refused at the other, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_spent_at_one_instance_is_refused_at_another() {
    let stack = Stack::new("postgres").await;
    let (first, _stop_first) = start(&stack, true).await;
    let (second, _stop_second) = start(&stack, true).await;
    let issuer = enrolled_issuer(&stack).await;
    let token = sign_token(&issuer.key, &claims(&issuer, "once"));
    let (status, body) = create(&first, &issuer, &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = create(&second, &issuer, &token).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "BadJwt"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    assert_eq!(stack.store.records(&issuer.did).await.unwrap().len(), 1);
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_documents_on_private_addresses_are_not_fetched() {
    let stack = Stack::new("sqlite").await;
    let (base, _stop) = start(&stack, false).await;
    let issuer = enrolled_issuer(&stack).await;
    let token = sign_token(&issuer.key, &claims(&issuer, "ssrf"));
    let (status, body) = create(&base, &issuer, &token).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "AuthRequired")
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a public address"),
        "{body}"
    );
    assert!(stack.store.records(&issuer.did).await.unwrap().is_empty());
    stack.finish().await;
}

/// The resolver keeps at most its capacity of keys, the least recently used leaving first; a
/// key that left is fetched again when asked for. Documents are cached too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_cache_is_bounded() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let did = move |name: &str| format!("did:web:127.0.0.1%3A{port}:u:{name}");
    let key = Keypair::generate(KeyAlgorithm::P256).public_key();
    let fetches: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = fetches.clone();
    // `did:web:host:u:<name>` documents, each fetch counted.
    let route = warp::path!("u" / String / "did.json").map(move |name: String| {
        *counted.lock().unwrap().entry(name.clone()).or_default() += 1;
        warp::reply::json(&did_document(&did(&name), &key))
    });
    let _stop = serve_route(listener, route);
    let resolver = DidResolver::new(ResolverConfig {
        allow_private: true,
        allow_http: true,
        cache_capacity: 2,
        ..ResolverConfig::default()
    });
    let fetched = |name: &str| fetches.lock().unwrap().get(name).copied().unwrap_or(0);
    for name in ["a", "a", "b", "a", "b"] {
        resolver.atproto_key(&did(name), false).await.unwrap();
    }
    assert_eq!((fetched("a"), fetched("b")), (1, 1), "both cached");
    for name in ["c", "d"] {
        resolver.atproto_key(&did(name), false).await.unwrap();
    }
    resolver.atproto_key(&did("a"), false).await.unwrap();
    assert_eq!(fetched("a"), 2, "a left the cache for c and d");
    resolver.atproto_key(&did("d"), false).await.unwrap();
    assert_eq!(fetched("d"), 1, "d is still cached");
    // Whole documents (describeRepo, sign-in) are cached the same way.
    for _ in 0..3 {
        let document = resolver.document(&did("d")).await.unwrap();
        assert_eq!(document["id"], did("d"));
    }
    assert_eq!(fetched("d"), 2, "the document was fetched once");
}

/// Handles resolve through the configured `resolveHandle` service when their own well-known
/// address does not answer; reserved names are never looked up, and a plain-HTTP service is
/// asked only where plain HTTP is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_resolve_through_a_resolve_handle_service() {
    use std::sync::{Arc, Mutex};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = format!("http://{}", listener.local_addr().unwrap());
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = asked.clone();
    let route = warp::path!("xrpc" / "com.atproto.identity.resolveHandle")
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .map(move |query: std::collections::HashMap<String, String>| {
            let handle = query.get("handle").cloned().unwrap_or_default();
            recorded.lock().unwrap().push(handle.clone());
            warp::reply::json(&json!({"did": format!("did:plc:{}", handle.replace('.', ""))}))
        });
    let _stop = serve_route(listener, route);
    let resolver = |allow_http: bool| {
        DidResolver::new(ResolverConfig {
            allow_private: true,
            allow_http,
            handle_services: vec![service.clone()],
            ..ResolverConfig::default()
        })
    };
    let resolver_over_http = resolver(true);
    assert_eq!(
        resolver_over_http.handle_did("Alice.Test").await.as_deref(),
        Some("did:plc:alicetest")
    );
    for reserved in ["handle.invalid", "printer.local", "x.onion", "not a handle"] {
        assert_eq!(
            resolver_over_http.handle_did(reserved).await,
            None,
            "{reserved}"
        );
    }
    assert_eq!(resolver(false).handle_did("bob.test").await, None);
    assert_eq!(*asked.lock().unwrap(), ["alice.test"]);
    // A resolved handle is answered from the cache.
    assert_eq!(
        resolver_over_http.handle_did("alice.test").await.as_deref(),
        Some("did:plc:alicetest")
    );
    assert_eq!(*asked.lock().unwrap(), ["alice.test"]);
}
