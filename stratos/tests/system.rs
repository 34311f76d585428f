//! The system's promises, each checked against every deployment: `stratos up` on the embedded
//! defaults, separate command service, projector and query service processes on Kafka and
//! PostgreSQL, and `stratos up` on Kafka and PostgreSQL (see `support::deployment`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::deployment::{ADMIN_PASSWORD, Deployment, Mode};
use support::stream::{next_seqs, subscribe};

in_every_mode!(
    boundaries_decide_who_reads_what,
    a_subscriber_sees_backfill_then_live_writes_once_in_order,
    a_retried_write_gets_the_original_answer,
    a_restart_loses_nothing_acknowledged,
    a_blob_is_read_by_whoever_may_see_a_record_using_it,
);

/// An HTTP client speaking as development-authenticated callers.
struct Client {
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        Self {
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, url: String, caller: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(url)
            .bearer_auth(caller)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn get(&self, url: String, caller: Option<&str>, query: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self.http.get(url).query(query);
        if let Some(caller) = caller {
            request = request.bearer_auth(caller);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Writes a post as `author` in `boundary`, and returns the answer.
    async fn write_post(
        &self,
        deployment: &Deployment,
        author: &str,
        text: &str,
        boundary: &str,
    ) -> Value {
        let (status, body) = self
            .post(
                format!("{}/xrpc/com.atproto.repo.createRecord", deployment.writes),
                author,
                &post(author, text, &deployment.boundary(boundary)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Enrolls Alice, Bob and Carol (each writes a `friends` post), then narrows Carol to
    /// `friends`: Alice and Bob share `family`, Carol does not.
    async fn enroll_three(&self, deployment: &Deployment) {
        for who in [ALICE, BOB, CAROL] {
            self.write_post(deployment, who, &format!("hello from {who}"), "friends")
                .await;
        }
        let (status, body) = self
            .post(
                format!(
                    "{}/xrpc/zone.stratos.admin.setBoundaries",
                    deployment.writes
                ),
                ADMIN_PASSWORD,
                &json!({"did": CAROL, "boundaries": ["friends"]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["boundaries"], json!([deployment.boundary("friends")]));
    }

    /// The texts of `viewer`'s timeline, once the AppView projector has caught up to `expected`
    /// posts (the views follow the log; they are not part of a write's answer).
    async fn timeline(
        &self,
        deployment: &Deployment,
        viewer: &str,
        expected: usize,
    ) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .get(
                    format!("{}/xrpc/zone.stratos.feed.getTimeline", deployment.reads),
                    Some(viewer),
                    &[("limit", "100")],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let texts: Vec<String> = body["feed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["post"]["record"]["text"].as_str().unwrap().to_string())
                .collect();
            if texts.len() >= expected || Instant::now() > deadline {
                return texts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn post(author: &str, text: &str, boundary: &str) -> Value {
    json!({
        "repo": author,
        "collection": "zone.stratos.feed.post",
        "record": {
            "$type": "zone.stratos.feed.post",
            "text": text,
            "boundary": {"values": [{"value": boundary}]},
            "createdAt": "2026-11-29T12:00:00.000Z",
        },
    })
}

fn rkey(uri: &Value) -> &str {
    uri.as_str().unwrap().rsplit('/').next().unwrap()
}

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";
const CAROL: &str = "did:plc:carol";

async fn boundaries_decide_who_reads_what(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let client = Client::new();
    client.enroll_three(&deployment).await;
    let family = client
        .write_post(&deployment, ALICE, "family dinner", "family")
        .await;

    // getRecord: the author and Bob see it; Carol and an anonymous reader get what a missing
    // record gets.
    let get_record = |caller: Option<&'static str>| {
        let (client, deployment, family) = (&client, &deployment, &family);
        async move {
            let query = [
                ("repo", ALICE),
                ("collection", "zone.stratos.feed.post"),
                ("rkey", rkey(&family["uri"])),
            ];
            let url = format!("{}/xrpc/com.atproto.repo.getRecord", deployment.reads);
            client.get(url, caller, &query).await
        }
    };
    for viewer in [ALICE, BOB] {
        let (status, body) = get_record(Some(viewer)).await;
        assert_eq!(status, 200, "{viewer}: {body}");
        assert_eq!(body["value"]["text"], "family dinner");
        assert_eq!(body["cid"], family["cid"]);
    }
    for viewer in [Some(CAROL), None] {
        let (status, body) = get_record(viewer).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("RecordNotFound")),
            "{viewer:?}"
        );
    }

    // Hydration tells Carol the record is there but not for her.
    let (status, body) = client
        .post(
            format!("{}/xrpc/zone.stratos.repo.hydrateRecords", deployment.reads),
            CAROL,
            &json!({"uris": [family["uri"]]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["blocked"], json!([family["uri"]]));

    // listRecords skips what the viewer may not see.
    let (_, body) = client
        .get(
            format!("{}/xrpc/com.atproto.repo.listRecords", deployment.reads),
            Some(CAROL),
            &[("repo", ALICE), ("collection", "zone.stratos.feed.post")],
        )
        .await;
    assert_eq!(body["records"].as_array().unwrap().len(), 1, "{body}");

    // Timelines: Bob sees all four posts, Carol the three hellos.
    let bob = client.timeline(&deployment, BOB, 4).await;
    assert_eq!(bob.len(), 4, "{bob:?}");
    assert!(bob.contains(&"family dinner".to_string()));
    let carol = client.timeline(&deployment, CAROL, 3).await;
    assert_eq!(carol.len(), 3, "{carol:?}");
    assert!(!carol.contains(&"family dinner".to_string()));
    deployment.finish().await;
}

async fn a_subscriber_sees_backfill_then_live_writes_once_in_order(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let client = Client::new();
    for index in 0..5 {
        client
            .write_post(&deployment, ALICE, &format!("before {index}"), "friends")
            .await;
    }
    let mut subscriber = subscribe(&deployment.reads, ALICE, Some(2)).await;
    // Live writes race the backfill: still no gap and no duplicate.
    let writes = futures::future::join_all((0..10).map(|index| {
        let (client, deployment) = (&client, &deployment);
        async move {
            let text = format!("during {index}");
            client.write_post(deployment, ALICE, &text, "family").await
        }
    }));
    let (answers, seen) = tokio::join!(writes, next_seqs(&mut subscriber, 13));
    assert_eq!(answers.len(), 10);
    assert_eq!(seen, (3..=15).collect::<Vec<u64>>());
    // Nothing more arrives.
    let extra = tokio::time::timeout(Duration::from_millis(300), subscriber.next()).await;
    assert!(extra.is_err(), "an extra frame: {extra:?}");
    deployment.finish().await;
}

async fn a_retried_write_gets_the_original_answer(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let client = Client::new();
    let write = |key: &'static str, text: &'static str| {
        client
            .http
            .post(format!(
                "{}/xrpc/com.atproto.repo.createRecord",
                deployment.writes
            ))
            .bearer_auth(ALICE)
            .header("Idempotency-Key", key)
            .json(&post(ALICE, text, &deployment.boundary("friends")))
            .send()
    };
    let first: Value = write("retry-1", "once")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again: Value = write("retry-1", "once")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first, again);
    let other: Value = write("retry-2", "once")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(other["uri"], first["uri"]);
    // Two records, not three.
    let (_, body) = client
        .get(
            format!("{}/xrpc/com.atproto.repo.listRecords", deployment.reads),
            Some(ALICE),
            &[("repo", ALICE), ("collection", "zone.stratos.feed.post")],
        )
        .await;
    assert_eq!(body["records"].as_array().unwrap().len(), 2, "{body}");
    deployment.finish().await;
}

async fn a_restart_loses_nothing_acknowledged(mode: Mode) {
    let mut deployment = Deployment::start(mode).await;
    let client = Client::new();
    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let answer = client
            .write_post(&deployment, ALICE, &format!("post {index}"), "friends")
            .await;
        acknowledged.push(answer);
    }
    deployment.restart().await;
    for answer in &acknowledged {
        let (status, body) = client
            .get(
                format!("{}/xrpc/com.atproto.repo.getRecord", deployment.reads),
                Some(ALICE),
                &[
                    ("repo", ALICE),
                    ("collection", "zone.stratos.feed.post"),
                    ("rkey", rkey(&answer["uri"])),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["cid"], answer["cid"]);
    }
    // The chain goes on where it stopped.
    let next = client
        .write_post(&deployment, ALICE, "after the restart", "friends")
        .await;
    assert!(next["commit"]["rev"].as_str() > acknowledged[19]["commit"]["rev"].as_str());
    let mut subscriber = subscribe(&deployment.reads, ALICE, None).await;
    assert_eq!(
        next_seqs(&mut subscriber, 21).await,
        (1..=21).collect::<Vec<u64>>()
    );
    deployment.finish().await;
}

async fn a_blob_is_read_by_whoever_may_see_a_record_using_it(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let client = Client::new();
    client.enroll_three(&deployment).await;
    let picture = b"\x89PNG a family picture".to_vec();
    let uploaded: Value = client
        .http
        .post(format!(
            "{}/xrpc/com.atproto.repo.uploadBlob",
            deployment.writes
        ))
        .bearer_auth(ALICE)
        .header("content-type", "image/png")
        .body(picture.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = uploaded["blob"]["ref"]["$link"]
        .as_str()
        .unwrap()
        .to_string();
    let get_blob = |reader: Option<&'static str>| {
        let (client, deployment, cid) = (&client, &deployment, &cid);
        async move {
            let mut request = client
                .http
                .get(format!(
                    "{}/xrpc/com.atproto.sync.getBlob",
                    deployment.writes
                ))
                .query(&[("did", ALICE), ("cid", cid.as_str())]);
            if let Some(reader) = reader {
                request = request.bearer_auth(reader);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.bytes().await.unwrap().to_vec(),
            )
        }
    };
    // Before any record uses it, the blob is its owner's alone.
    assert_eq!(get_blob(Some(ALICE)).await, (200, picture.clone()));
    assert_eq!(get_blob(Some(BOB)).await.0, 400);

    let mut record = post(ALICE, "dinner", &deployment.boundary("family"));
    record["record"]["embed"] = json!({
        "$type": "app.bsky.embed.images",
        "images": [{"image": uploaded["blob"], "alt": "the table"}],
    });
    let (status, family) = client
        .post(
            format!("{}/xrpc/com.atproto.repo.createRecord", deployment.writes),
            ALICE,
            &record,
        )
        .await;
    assert_eq!(status, 200, "{family}");
    assert_eq!(
        get_blob(Some(BOB)).await,
        (200, picture.clone()),
        "Bob shares family"
    );
    let (status, body) = get_blob(Some(CAROL)).await;
    assert_eq!(status, 400, "Carol does not");
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"], "BlobNotFound");
    assert_eq!(get_blob(None).await.0, 401);

    // listBlobs: the owner's (or a trusted service's) to ask.
    let list = |reader: &'static str, since: Option<String>| {
        let (client, deployment) = (&client, &deployment);
        async move {
            let mut query = vec![("did", ALICE.to_string())];
            query.extend(since.map(|since| ("since", since)));
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client
                .get(
                    format!("{}/xrpc/com.atproto.sync.listBlobs", deployment.reads),
                    Some(reader),
                    &query,
                )
                .await
        }
    };
    assert_eq!(list(ALICE, None).await, (200, json!({"cids": [cid]})));
    let rev = family["commit"]["rev"].as_str().unwrap().to_string();
    assert_eq!(list(ALICE, Some(rev)).await, (200, json!({"cids": []})));
    let (status, body) = list(BOB, None).await;
    assert_eq!((status, &body["error"]), (401, &json!("AuthRequired")));

    // Once the post is gone, so is Bob's access.
    let (status, _) = client
        .post(
            format!("{}/xrpc/com.atproto.repo.deleteRecord", deployment.writes),
            ALICE,
            &json!({"repo": ALICE, "collection": "zone.stratos.feed.post", "rkey": rkey(&family["uri"])}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(get_blob(Some(BOB)).await.0, 400);
    assert_eq!(get_blob(Some(ALICE)).await.0, 200);
    deployment.finish().await;
}
