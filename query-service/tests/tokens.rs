//! Service-auth tokens at the query service: several instances on one Postgres database share
//! the spent tokens, so a token read at one is refused at another.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use stratos_command::testing::did_document;
use stratos_query::subscribe::SubscribeLimits;
use stratos_query::{Changes, Queries, QueryConfig};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::service_auth::{Claims, sign_token};
use stratos_store::testing::TestDatabase;
use stratos_store::{MasterKey, Store};
use stratos_xrpc::auth::ResolverConfig;
use warp::Filter;

const SERVICE: &str = "did:web:stratos.example.com";
const TIMELINE: &str = "zone.stratos.feed.getTimeline";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_read_at_one_instance_is_refused_at_another() {
    stratos_xrpc::auth::install_tls_provider();
    // The issuer: a `did:web` whose document a loopback server serves.
    let key = Keypair::generate(KeyAlgorithm::P256);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let did = format!(
        "did:web:127.0.0.1%3A{}",
        listener.local_addr().unwrap().port()
    );
    let document = did_document(&did, &key.public_key());
    let route = warp::path!(".well-known" / "did.json").map(move || warp::reply::json(&document));
    tokio::spawn(warp::serve(route).incoming(listener).run());

    let database = TestDatabase::create("postgres").await.unwrap();
    let store = Store::connect(&database.url, MasterKey::generate())
        .await
        .unwrap();
    let instance = || {
        Queries::new(
            store.clone(),
            None,
            Changes::new(),
            QueryConfig {
                service_did: SERVICE.into(),
                trusted_services: Vec::new(),
                dev_auth: false,
                resolver: ResolverConfig {
                    allow_private: true,
                    allow_http: true,
                    ..ResolverConfig::default()
                },
                sync_token: None,
                subscribe: SubscribeLimits::default(),
            },
        )
    };
    let (first, second) = (instance(), instance());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = sign_token(
        &key,
        &Claims {
            iss: did.clone(),
            aud: SERVICE.into(),
            exp: now + 60,
            iat: Some(now),
            lxm: Some(TIMELINE.into()),
            jti: Some("once".into()),
        },
    );
    let authorization = format!("Bearer {token}");
    assert!(first.caller(Some(&authorization), TIMELINE).await.is_ok());
    let refused = second
        .caller(Some(&authorization), TIMELINE)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status.as_u16(), refused.error),
        (401, "BadJwt"),
        "{}",
        refused.message
    );
    store.close().await;
    database.drop_database().await.unwrap();
}
