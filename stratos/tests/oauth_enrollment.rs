//! Enrollment through ATProto OAuth against a real PDS and PLC directory, with no browser:
//! `/oauth/authorize` pushes the request and redirects to the PDS, the account signs in and
//! consents there, `/oauth/callback` exchanges the code and enrolls. The stored session then
//! writes to the PDS with DPoP-bound tokens, and refreshes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use stratos_oauth::{ClientIdentity, Discovery, OAuthClient, Session};
use stratos_store::{KeyKind, MasterKey, Store};
use stratos_xrpc::auth::{DidResolver, ResolverConfig};
use stratos_xrpc::outbound::Outbound;
use support::atproto::{Account, AtprotoStack, spawn_up, spawn_up_at};
use support::{free_port, stop, stratos, wait_ready};

const CREATE: &str = "com.atproto.repo.createRecord";
const ADMIN_PASSWORD: &str = "operator-secret";
const SCOPE: &str = "atproto repo:zone.stratos.actor.enrollment repo:zone.stratos.feed.post";

struct Service {
    base: String,
    did: String,
    http: reqwest::Client,
}

impl Service {
    /// `GET /oauth/authorize?handle=…` → the authorization URL it redirects to.
    async fn authorize(&self, handle: &str) -> String {
        let response = self
            .http
            .get(format!("{}/oauth/authorize", self.base))
            .query(&[("handle", handle)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response.headers().get("location").cloned();
        assert_eq!(status, 302, "{}", response.text().await.unwrap());
        location.unwrap().to_str().unwrap().to_string()
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A private post by `account` with a token its PDS minted.
    async fn write(&self, stack: &AtprotoStack, account: &Account) -> (u16, Value) {
        let token = stack.service_auth(account, &self.did, CREATE, None).await;
        self.call(token, CREATE, &self.post(account, None, "private"))
            .await
    }

    /// The input of a post by `account` (at `rkey` for a `putRecord`).
    fn post(&self, account: &Account, rkey: Option<&str>, text: &str) -> Value {
        let mut input = json!({
            "repo": account.did,
            "collection": "zone.stratos.feed.post",
            "record": {
                "$type": "zone.stratos.feed.post",
                "text": text,
                "boundary": {"values": [{"value": format!("{}/general", self.did)}]},
                "createdAt": "2026-11-29T12:00:00.000Z",
            },
        });
        if let Some(rkey) = rkey {
            input["rkey"] = json!(rkey);
        }
        input
    }

    /// What `enrollment.status` says of `did`'s enrollment, anonymously.
    async fn enrolled(&self, did: &str) -> bool {
        let (_, body) = self
            .get(&format!("/xrpc/zone.stratos.enrollment.status?did={did}"))
            .await;
        body["enrolled"].as_bool().unwrap()
    }

    /// What `enrollment.status` says of `did`'s enrollment to `viewer`, signed in.
    async fn status_as(&self, stack: &AtprotoStack, viewer: &Account, did: &str) -> (u16, Value) {
        let token = stack
            .service_auth(viewer, &self.did, "zone.stratos.enrollment.status", None)
            .await;
        let response = self
            .http
            .get(format!(
                "{}/xrpc/zone.stratos.enrollment.status?did={did}",
                self.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The Prometheus exposition of `/metrics`.
    async fn metrics(&self) -> String {
        let response = self.http.get(format!("{}/metrics", self.base)).send();
        response.await.unwrap().text().await.unwrap()
    }

    /// A procedure call with a service-auth token.
    async fn call(&self, token: String, method: &str, input: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/xrpc/{method}", self.base))
            .bearer_auth(token)
            .json(input)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// A record on the PDS, if it is there.
async fn pds_record(
    stack: &AtprotoStack,
    did: &str,
    collection: &str,
    rkey: &str,
) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/xrpc/com.atproto.repo.getRecord", stack.pds_url))
        .query(&[("repo", did), ("collection", collection), ("rkey", rkey)])
        .send()
        .await
        .unwrap();
    match response.status().is_success() {
        true => Some(response.json::<Value>().await.unwrap()["value"].clone()),
        false => None,
    }
}

/// Waits (up to a minute) until `check` holds of the PDS record.
async fn eventually(
    stack: &AtprotoStack,
    did: &str,
    collection: &str,
    rkey: &str,
    check: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let record = pds_record(stack, did, collection, rkey).await;
        if check(record.as_ref()) {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{collection}/{rkey} on the PDS never became as expected: {record:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Checks the service's attestation in `enrollment` (a status answer or an enrollment record)
/// over `did`, `boundaries` and its `signingKey`.
fn verify_attestation(enrollment: &Value, did: &str, boundaries: &[&str]) {
    let attestation = stratos_schema::attestation::Attestation {
        sig: base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            enrollment["attestation"]["sig"]["$bytes"].as_str().unwrap(),
        )
        .unwrap(),
        signing_key: enrollment["attestation"]["signingKey"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    stratos_schema::attestation::verify_attestation(
        &attestation,
        did,
        boundaries,
        enrollment["signingKey"].as_str().unwrap(),
    )
    .unwrap();
}

/// The record key of an AT-URI.
fn rkey(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn enrollment_through_oauth_with_a_real_pds() {
    let mut stack = AtprotoStack::start().await;
    let alice = stack.create_account("alice").await;
    let bob = stack.create_account("bob").await;
    let carol = stack.create_account("carol").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = Service {
        base: format!("http://127.0.0.1:{port}"),
        did: format!("did:web:localhost%3A{port}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    // Only alice and carol are on the allow-list.
    let allowed = format!("{},{}", alice.did, carol.did);
    let up = spawn_up(
        dir.path(),
        port,
        &stack,
        &[
            "--enrollment-mode",
            "allowlist",
            "--allowed-dids",
            &allowed,
            "--allowed-domains",
            "general,team",
            "--auto-enroll-domains",
            "general",
            "--admin-password",
            ADMIN_PASSWORD,
        ],
    );
    wait_ready(&service.http, &service.base).await;

    let (status, body) = service.write(&stack, &alice).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NotEnrolled")));

    // The authorization is pushed to alice's PDS for exactly our scope, as a loopback client.
    let location = service.authorize(&alice.handle).await;
    assert!(
        location.starts_with(&format!("{}/oauth/authorize?", stack.pds_url)),
        "{location}"
    );
    let client_id = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "client_id")
        .unwrap()
        .1
        .to_string();
    let client_scope = reqwest::Url::parse(&client_id)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .to_string();
    assert_eq!(client_scope, SCOPE);

    let callback = stack.approve(&location, &alice).await;
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["did"], alice.did.as_str());
    assert_eq!(body["enrolled"], true);
    assert_eq!(body["message"], "Successfully enrolled in Stratos");

    // A callback is used once.
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("CallbackError"))
    );

    // Enrolled: alice's PDS tokens now write.
    let (status, body) = service.write(&stack, &alice).await;
    assert_eq!(status, 200, "{body}");

    // describeRepo names alice by the handle of her DID document, which resolves back to her.
    let (status, body) = service
        .get(&format!(
            "/xrpc/com.atproto.repo.describeRepo?repo={}",
            alice.did
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["handle"], alice.handle.as_str());
    assert_eq!(body["handleIsCorrect"], true);
    assert_eq!(body["didDoc"]["id"], alice.did.as_str());
    assert_eq!(body["collections"], json!(["zone.stratos.feed.post"]));

    // What anyone may learn, and what only alice may.
    let boundary = format!("{}/general", service.did);
    let (status, body) = service
        .get(&format!(
            "/xrpc/zone.stratos.enrollment.status?did={}",
            alice.did
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enrolled"], true);
    assert_eq!(body["enrollmentRkey"], service.did.as_str());
    assert!(
        body["signingKey"]
            .as_str()
            .unwrap()
            .starts_with("did:key:zDn")
    );
    assert!(body.get("boundaries").is_none() && body.get("attestation").is_none());
    let (_, own) = service.status_as(&stack, &alice, &alice.did).await;
    assert_eq!(own["boundaries"], json!([{"value": boundary}]));
    verify_attestation(&own, &alice.did, &[&boundary]);
    // Another signed-in user learns no more than anyone does (spec REF-46).
    let (status, others) = service.status_as(&stack, &bob, &alice.did).await;
    assert_eq!(status, 200);
    assert_eq!(others["enrolled"], true, "{others}");
    assert!(
        others.get("boundaries").is_none() && others.get("attestation").is_none(),
        "{others}"
    );
    let (_, body) = service
        .get(&format!(
            "/xrpc/zone.stratos.identity.resolveEnrollments?did={}",
            alice.did
        ))
        .await;
    assert_eq!(
        body,
        json!({"did": alice.did, "enrolled": true, "boundaries": [boundary]})
    );
    // Bob is not enrolled (yet): no boundaries. And the DID is required.
    let (status, body) = service
        .get(&format!(
            "/xrpc/zone.stratos.identity.resolveEnrollments?did={}",
            bob.did
        ))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"did": bob.did, "enrolled": false, "boundaries": []})
        )
    );
    let (status, body) = service
        .get("/xrpc/zone.stratos.identity.resolveEnrollments")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest")),
        "{body}"
    );
    let (_, body) = service
        .get(&format!(
            "/xrpc/zone.stratos.enrollment.status?did={}",
            bob.did
        ))
        .await;
    assert_eq!(body, json!({"did": bob.did, "enrolled": false}));
    let (_, body) = service.get("/xrpc/zone.stratos.server.listDomains").await;
    assert_eq!(
        body,
        json!({"domains": [boundary, format!("{}/team", service.did)]})
    );
    let (status, body) = service.get("/xrpc/zone.stratos.enrollment.status").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("did parameter required"))
    );

    // The PDS publisher writes alice's enrollment record to her PDS: the key and attestation
    // Stratos reports, signed by the service key of its DID document.
    let enrollment_rkey = service.did.replace("%3A", ":");
    let record = eventually(
        &stack,
        &alice.did,
        "zone.stratos.actor.enrollment",
        &enrollment_rkey,
        |r| r.is_some(),
    )
    .await
    .unwrap();
    assert_eq!(record["signingKey"], own["signingKey"]);
    assert_eq!(record["service"], format!("http://localhost:{port}"));
    assert_eq!(record["boundaries"], json!([{"value": boundary}]));
    let (_, document) = service.get("/.well-known/did.json").await;
    assert_eq!(
        record["attestation"]["signingKey"].as_str().unwrap(),
        format!(
            "did:key:{}",
            document["verificationMethod"][0]["publicKeyMultibase"]
                .as_str()
                .unwrap()
        )
    );
    verify_attestation(&record, &alice.did, &[&boundary]);

    // A private post gets its stub on the PDS, pointing at the record by CID; an update moves
    // the stub to the new CID; a delete removes it.
    const POST: &str = "zone.stratos.feed.post";
    let (status, created) = service.write(&stack, &alice).await;
    assert_eq!(status, 200, "{created}");
    let uri = created["uri"].as_str().unwrap();
    let stub = eventually(&stack, &alice.did, POST, rkey(uri), |r| r.is_some())
        .await
        .unwrap();
    assert_eq!(stub["source"]["subject"]["cid"], created["cid"]);
    assert_eq!(stub["source"]["subject"]["uri"], uri);
    assert_eq!(stub["source"]["vary"], "authenticated");
    assert_eq!(
        stub["source"]["service"],
        format!("{}#atproto_pns", service.did)
    );
    // That service reference resolves in the service's DID document, to this service.
    let services = document["service"].as_array().unwrap();
    assert!(
        services.iter().any(|entry| entry["id"] == "#atproto_pns"
            && entry["serviceEndpoint"] == format!("http://localhost:{port}")),
        "{document}"
    );
    assert!(stub.get("text").is_none(), "the stub carries no content");
    let token = stack
        .service_auth(&alice, &service.did, "com.atproto.repo.putRecord", None)
        .await;
    let (status, updated) = service
        .call(
            token,
            "com.atproto.repo.putRecord",
            &service.post(&alice, Some(rkey(uri)), "edited"),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_ne!(updated["cid"], created["cid"]);
    eventually(&stack, &alice.did, POST, rkey(uri), |r| {
        r.is_some_and(|r| r["source"]["subject"]["cid"] == updated["cid"])
    })
    .await;
    let token = stack
        .service_auth(&alice, &service.did, "com.atproto.repo.deleteRecord", None)
        .await;
    let (status, body) = service
        .call(
            token,
            "com.atproto.repo.deleteRecord",
            &json!({"repo": alice.did, "collection": POST, "rkey": rkey(uri)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually(&stack, &alice.did, POST, rkey(uri), |r| r.is_none()).await;

    // The PDS goes down: five posts are still acknowledged, and their stubs arrive once it is
    // back.
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(stack.service_auth(&alice, &service.did, CREATE, None).await);
    }
    stack.pause().await;
    let mut written = Vec::new();
    for (index, token) in tokens.into_iter().enumerate() {
        let (status, body) = service
            .call(
                token,
                CREATE,
                &service.post(&alice, None, &format!("offline {index}")),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        written.push(body);
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stack.resume().await;
    for body in &written {
        let uri = body["uri"].as_str().unwrap();
        eventually(&stack, &alice.did, POST, rkey(uri), |r| {
            r.is_some_and(|r| r["source"]["subject"]["cid"] == body["cid"])
        })
        .await;
    }

    // They did fail while it was down, and were retried.
    let metrics = service.metrics().await;
    let retried: f64 = metrics
        .lines()
        .find(|l| l.starts_with("stratos_pds_writes_total{outcome=\"retried\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(retried >= 1.0, "no PDS write was retried:\n{metrics}");

    // An operator adds a boundary: Stratos reports it, and alice's PDS record is rewritten with
    // a fresh attestation.
    let team = format!("{}/team", service.did);
    let admin = |password: &str, method: &str, input: Value| {
        let request = service
            .http
            .post(format!("{}/xrpc/{method}", service.base))
            .bearer_auth(password)
            .json(&input);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    const ADD: &str = "zone.stratos.admin.addBoundary";
    let (status, body) = admin("wrong", ADD, json!({"did": alice.did, "boundary": "team"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("AuthRequired"))
    );
    let (status, body) = admin(
        ADMIN_PASSWORD,
        ADD,
        json!({"did": alice.did, "boundary": "secret"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not in allowed domains")
    );
    // Adding and removing: an unenrolled DID is not found, a boundary is required.
    const REMOVE: &str = "zone.stratos.admin.removeBoundary";
    for method in [ADD, REMOVE] {
        let (status, body) = admin(
            ADMIN_PASSWORD,
            method,
            json!({"did": bob.did, "boundary": "team"}),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (404, Some("NotFound")));
        let (status, body) = admin(ADMIN_PASSWORD, method, json!({"did": alice.did})).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("did and boundary are required"))
        );
    }
    let (status, body) = admin(
        ADMIN_PASSWORD,
        ADD,
        json!({"did": alice.did, "boundary": "team"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["boundaries"], json!([boundary, team]));
    let record = eventually(
        &stack,
        &alice.did,
        "zone.stratos.actor.enrollment",
        &enrollment_rkey,
        |r| r.is_some_and(|r| r["boundaries"].as_array().is_some_and(|b| b.len() == 2)),
    )
    .await
    .unwrap();
    verify_attestation(&record, &alice.did, &[&boundary, &team]);
    // Back to the one boundary: removed, then set to none and to it again.
    let (status, body) = admin(
        ADMIN_PASSWORD,
        REMOVE,
        json!({"did": alice.did, "boundary": "team"}),
    )
    .await;
    assert_eq!(
        (status, &body["boundaries"]),
        (200, &json!([boundary])),
        "{body}"
    );
    const SET: &str = "zone.stratos.admin.setBoundaries";
    let (status, body) = admin(
        ADMIN_PASSWORD,
        SET,
        json!({"did": alice.did, "boundaries": ["secret"]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not in allowed domains"),
        "{body}"
    );
    let (status, body) = admin(ADMIN_PASSWORD, SET, json!({"did": alice.did})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("did and boundaries array are required"))
    );
    // Without the password nothing changes; with it, the empty set is allowed.
    for method in [REMOVE, SET] {
        let input = json!({"did": alice.did, "boundary": "general", "boundaries": []});
        let (status, body) = admin("wrong", method, input).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("AuthRequired")),
            "{method}"
        );
    }
    let (_, own) = service.status_as(&stack, &alice, &alice.did).await;
    assert_eq!(own["boundaries"], json!([{"value": boundary}]));
    let (status, body) = admin(
        ADMIN_PASSWORD,
        SET,
        json!({"did": alice.did, "boundaries": []}),
    )
    .await;
    assert_eq!((status, &body["boundaries"]), (200, &json!([])), "{body}");
    let (status, body) = admin(
        ADMIN_PASSWORD,
        SET,
        json!({"did": alice.did, "boundaries": ["general"]}),
    )
    .await;
    assert_eq!(
        (status, &body["boundaries"]),
        (200, &json!([boundary])),
        "{body}"
    );
    eventually(
        &stack,
        &alice.did,
        "zone.stratos.actor.enrollment",
        &enrollment_rkey,
        |r| r.is_some_and(|r| r["boundaries"] == json!([{"value": boundary}])),
    )
    .await;

    // Signing in again keeps the enrollment.
    let callback = stack
        .approve(&service.authorize(&alice.did).await, &alice)
        .await;
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enrolled"], false);
    assert_eq!(body["message"], "Already enrolled in Stratos");

    // Bob is not on the allow-list: denied, and still not enrolled.
    let callback = stack
        .approve(&service.authorize(&bob.handle).await, &bob)
        .await;
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!(
        (status, body["error"].as_str(), body["message"].as_str()),
        (
            403,
            Some("EnrollmentDenied"),
            Some("Your account is not eligible for this Stratos service")
        )
    );
    let (status, body) = service.write(&stack, &bob).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NotEnrolled")));
    // In a browser, the same denial is a page that says why.
    let callback = stack
        .approve(&service.authorize(&bob.handle).await, &bob)
        .await;
    let page = service
        .http
        .get(format!("{}/oauth/callback?{callback}", service.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 403);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = page.text().await.unwrap();
    assert!(
        text.contains("Your account is not eligible for this Stratos service"),
        "{text}"
    );

    // Bad starts and callbacks.
    let (status, body) = service.get("/oauth/authorize").await;
    assert_eq!(
        (status, body["error"].as_str(), body["message"].as_str()),
        (
            400,
            Some("InvalidRequest"),
            Some("Handle parameter required")
        )
    );
    let (status, body) = service.get("/oauth/authorize?handle=nobody.test").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("AuthorizationError"))
    );
    let (status, body) = service
        .get("/oauth/authorize?handle=alice.test&redirect_uri=javascript:alert(1)")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest"))
    );
    let (status, body) = service.get("/oauth/callback?code=x&state=forged").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("CallbackError"))
    );
    let (status, body) = service.get("/client-metadata.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["client_id"], client_id.as_str());
    assert_eq!(body["dpop_bound_access_tokens"], true);

    // Carol enrolls, posts to a boundary she shares with alice, and leaves with a purge: her
    // enrollment record leaves her PDS and her post becomes unreadable.
    let callback = stack
        .approve(&service.authorize(&carol.handle).await, &carol)
        .await;
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!((status, &body["enrolled"]), (200, &json!(true)), "{body}");
    let (status, created) = service.write(&stack, &carol).await;
    assert_eq!(status, 200, "{created}");
    let carol_post = rkey(created["uri"].as_str().unwrap()).to_string();
    let read_as_alice = async |stack: &AtprotoStack| {
        let token = stack
            .service_auth(&alice, &service.did, "com.atproto.repo.getRecord", None)
            .await;
        let response = service
            .http
            .get(format!("{}/xrpc/com.atproto.repo.getRecord", service.base))
            .query(&[
                ("repo", carol.did.as_str()),
                ("collection", "zone.stratos.feed.post"),
                ("rkey", carol_post.as_str()),
            ])
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = read_as_alice(&stack).await;
    assert_eq!(status, 200, "{body}");
    eventually(
        &stack,
        &carol.did,
        "zone.stratos.actor.enrollment",
        &enrollment_rkey,
        |r| r.is_some(),
    )
    .await;
    eventually(&stack, &carol.did, POST, &carol_post, |r| r.is_some()).await;
    const UNENROLL: &str = "zone.stratos.enrollment.unenroll";
    let token = stack
        .service_auth(&carol, &service.did, UNENROLL, None)
        .await;
    let (status, body) = service.call(token, UNENROLL, &json!({"purge": true})).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    assert!(!service.enrolled(&carol.did).await);
    eventually(
        &stack,
        &carol.did,
        "zone.stratos.actor.enrollment",
        &enrollment_rkey,
        |r| r.is_none(),
    )
    .await;
    // Her content is destroyed, so its stub leaves her PDS too.
    eventually(&stack, &carol.did, POST, &carol_post, |r| r.is_none()).await;
    let (status, body) = read_as_alice(&stack).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RecordNotFound"))
    );
    let token = stack
        .service_auth(&carol, &service.did, UNENROLL, None)
        .await;
    let (status, body) = service.call(token, UNENROLL, &json!({})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NotEnrolled")));
    let (status, body) = service.write(&stack, &carol).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NotEnrolled")));
    // She may come back: a new enrollment.
    let callback = stack
        .approve(&service.authorize(&carol.handle).await, &carol)
        .await;
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!((status, &body["enrolled"]), (200, &json!(true)), "{body}");
    // Her re-enrollment does not bring the purged post back.
    let (status, body) = read_as_alice(&stack).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RecordNotFound"))
    );
    // An operator purges her again from the command line.
    let purge = |password: &str| {
        stratos(dir.path())
            .args(["purge", &carol.did, "--url", &service.base])
            .args(["--admin-password", password])
            .output()
            .unwrap()
    };
    assert!(!purge("wrong").status.success());
    let purged = purge(ADMIN_PASSWORD);
    assert!(purged.status.success(), "{purged:?}");
    let again = purge(ADMIN_PASSWORD);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("NotFound"));
    assert!(!service.enrolled(&carol.did).await);
    // Everything owed to PDSes goes out, her old session's revocation included (read from the
    // store itself: the backlog gauge is refreshed at most once a second).
    let master =
        MasterKey::from_hex(&std::fs::read_to_string(dir.path().join("data/master.key")).unwrap())
            .unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("data/stratos.sqlite").display()
    );
    let store = Store::connect(&url, master.clone()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.pds_backlog().await.unwrap() > 0
        || store
            .key(&carol.did, KeyKind::OAuthRetired)
            .await
            .unwrap()
            .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox does not empty"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let metrics = service.metrics().await;
    assert!(metrics.contains("stratos_pds_outbox_backlog"), "{metrics}");
    stop(up);

    // The session is sealed in the key store; with it the service writes to alice's PDS.
    let sealed = store
        .key(&alice.did, KeyKind::OAuthSession)
        .await
        .unwrap()
        .unwrap();
    let mut session: Session = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(session.did, alice.did);
    assert_eq!(session.pds, stack.pds_url);
    assert!(session.scope.contains("repo:zone.stratos.actor.enrollment"));
    assert!(
        store
            .key(&bob.did, KeyKind::OAuthSession)
            .await
            .unwrap()
            .is_none()
    );
    // Replaying the whole log rebuilds everything but carol's purged post: the key that
    // opens it in the log is gone. Alice's posts come back whole.
    drop(store);
    let replay = stratos(dir.path())
        .args(["replay", "--master-key-file", "data/master.key"])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let store = Store::connect(&url, master).await.unwrap();
    let purged = store
        .records_at(&[(&carol.did, "zone.stratos.feed.post", &carol_post)])
        .await
        .unwrap();
    assert_eq!(
        purged.len(),
        1,
        "the record stays, so the repository verifies"
    );
    assert!(purged[0].1.block.is_none(), "the purged post was rebuilt");
    let kept = store
        .records_at(&[(
            &alice.did,
            "zone.stratos.feed.post",
            rkey(written[0]["uri"].as_str().unwrap()),
        )])
        .await
        .unwrap();
    assert!(kept[0].1.block.is_some());
    // Carol's sessions were revoked and forgotten, and her purged keys are gone.
    for (kind, present) in [
        (KeyKind::OAuthRetired, false),
        (KeyKind::OAuthSession, false),
        (KeyKind::Data, false),
        (KeyKind::Signing, false),
    ] {
        let key = store.key(&carol.did, kind).await.unwrap();
        assert_eq!(key.is_some(), present, "{kind:?}");
    }
    let resolver = ResolverConfig {
        plc_url: stack.plc_url.clone(),
        allow_private: true,
        allow_http: true,
        handle_services: vec![stack.pds_url.clone()],
        ..ResolverConfig::default()
    };
    let oauth = OAuthClient::new(
        ClientIdentity::new(
            &format!("http://localhost:{port}"),
            SCOPE,
            "Stratos Service",
            None,
        ),
        Discovery::new(
            Outbound {
                allow_private: true,
                allow_http: true,
                ..Outbound::default()
            },
            DidResolver::new(resolver),
        ),
    );
    let put = json!({
        "repo": alice.did,
        "collection": "zone.stratos.actor.enrollment",
        "rkey": "self",
        "record": {"$type": "zone.stratos.actor.enrollment", "service": service.base,
                   "createdAt": "2026-11-29T12:00:00.000Z"},
    });
    // Writes to alice's PDS with the session: the status, or `None` if the session has ended.
    async fn post(
        oauth: &OAuthClient,
        session: &mut Session,
        method: &str,
        body: &Value,
    ) -> Option<u16> {
        let path = format!("/xrpc/{method}");
        match oauth.call(session, Method::POST, &path, Some(body)).await {
            Ok(response) => Some(response.status.as_u16()),
            Err(stratos_oauth::OAuthError::SessionEnded(_)) => None,
            Err(other) => panic!("{method}: {other}"),
        }
    }
    const PUT: &str = "com.atproto.repo.putRecord";
    assert_eq!(post(&oauth, &mut session, PUT, &put).await, Some(200));
    // Outside the granted scope the PDS refuses.
    let outside = json!({
        "repo": alice.did,
        "collection": "app.bsky.feed.post",
        "record": {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-11-29T12:00:00.000Z"},
    });
    assert_eq!(
        post(&oauth, &mut session, CREATE, &outside).await,
        Some(403)
    );
    // A refreshed session still writes.
    oauth.refresh(&mut session).await.unwrap();
    assert_eq!(post(&oauth, &mut session, PUT, &put).await, Some(200));
    // A revoked session does not.
    oauth.revoke(&session).await.unwrap();
    assert!(matches!(
        post(&oauth, &mut session, PUT, &put).await,
        None | Some(401)
    ));
}

/// A confidential client (`private_key_jwt`) as in production: an https client id whose
/// metadata and JWKS the authorization server fetches (served to it from loopback by the
/// harness), a client assertion on every request, and the PDS publisher writing with the
/// resulting session.
#[tokio::test]
async fn a_confidential_client_enrolls_with_a_real_pds() {
    let mut stack = AtprotoStack::start().await;
    let dave = stack.create_account("dave").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = Service {
        base: format!("http://127.0.0.1:{port}"),
        did: "did:web:stratos.example.com".to_string(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    stack
        .serve_client("https://stratos.example.com", &service.base)
        .await;
    let secret = "5f".repeat(32);
    let up = spawn_up_at(
        dir.path(),
        port,
        &stack,
        ("https://stratos.example.com", &service.did),
        &[
            "--enrollment-mode",
            "open",
            "--oauth-client-secret",
            &secret,
        ],
    );
    wait_ready(&service.http, &service.base).await;
    let location = service.authorize(&dave.handle).await;
    assert!(
        location.contains("client_id=https%3A%2F%2Fstratos.example.com%2Fclient-metadata.json"),
        "{location}"
    );
    let callback = stack.approve(&location, &dave).await;
    let (status, body) = service.get(&format!("/oauth/callback?{callback}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enrolled"], true);
    // The publisher writes with the confidential session.
    let record = eventually(
        &stack,
        &dave.did,
        "zone.stratos.actor.enrollment",
        "did:web:stratos.example.com",
        |r| r.is_some(),
    )
    .await
    .unwrap();
    assert_eq!(record["service"], "https://stratos.example.com");
    stop(up);
}
