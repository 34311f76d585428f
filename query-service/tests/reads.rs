//! Record reads and hydration over HTTP: the owner, a viewer sharing a boundary, an outsider,
//! an anonymous caller and an allow-listed AppView each see exactly what the access rule
//! allows, also after the outsider's boundaries change.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{APPVIEW, GENERAL, System, WRITERS, error_name};

const GET_RECORD: &str = "com.atproto.repo.getRecord";
const LIST_RECORDS: &str = "com.atproto.repo.listRecords";
const HYDRATE: &str = "zone.stratos.repo.hydrateRecord";
const HYDRATE_MANY: &str = "zone.stratos.repo.hydrateRecords";
const POST: &str = "zone.stratos.feed.post";

fn rkey(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

async fn who_sees_a_record(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let carol = system.enroll("carol", &["writers"]).await;
    let (uri, cid) = system.post(&alice, "for general", &[GENERAL]).await;
    let params = [
        ("repo", alice.as_str()),
        ("collection", POST),
        ("rkey", rkey(&uri)),
    ];

    for viewer in [Some(alice.as_str()), Some(bob.as_str()), Some(APPVIEW)] {
        let (status, body) = system.call(viewer, GET_RECORD, &params).await;
        assert_eq!(status, 200, "{viewer:?}: {body}");
        assert_eq!(body["uri"], json!(uri));
        assert_eq!(body["cid"], json!(cid));
        assert_eq!(body["value"]["text"], json!("for general"));
    }
    for viewer in [Some(carol.as_str()), None] {
        let (status, body) = system.call(viewer, GET_RECORD, &params).await;
        assert_eq!(
            (status, error_name(&body)),
            (400, "RecordNotFound"),
            "{viewer:?}"
        );
    }
    // Asking for another CID is asking for a record that does not exist.
    let mut stale = params.to_vec();
    stale.push((
        "cid",
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    ));
    let (status, body) = system.call(Some(&alice), GET_RECORD, &stale).await;
    assert_eq!((status, error_name(&body)), (400, "RecordNotFound"));
    // A malformed CID is a bad request, for reads and hydration alike.
    let mut malformed = params.to_vec();
    malformed.push(("cid", "not-a-cid"));
    let (status, body) = system.call(Some(&alice), GET_RECORD, &malformed).await;
    assert_eq!((status, error_name(&body)), (400, "InvalidRequest"));
    let (status, body) = system
        .call(
            Some(&alice),
            HYDRATE,
            &[("uri", &uri), ("cid", "not-a-cid")],
        )
        .await;
    assert_eq!((status, error_name(&body)), (400, "InvalidRequest"));

    // Hydration tells blocked from missing.
    let (status, body) = system.call(Some(&bob), HYDRATE, &[("uri", &uri)]).await;
    assert_eq!((status, body["cid"].as_str()), (200, Some(cid.as_str())));
    let (status, body) = system.call(Some(&carol), HYDRATE, &[("uri", &uri)]).await;
    assert_eq!((status, error_name(&body)), (400, "RecordBlocked"));
    let (status, body) = system.call(None, HYDRATE, &[("uri", &uri)]).await;
    assert_eq!((status, error_name(&body)), (400, "RecordBlocked"));
    let missing = format!("at://{alice}/{POST}/3zzzzzzzzzzzz");
    let (status, body) = system.call(Some(&bob), HYDRATE, &[("uri", &missing)]).await;
    assert_eq!((status, error_name(&body)), (400, "RecordNotFound"));
    let (status, body) = system
        .call(Some(&bob), HYDRATE, &[("uri", "not a uri")])
        .await;
    assert_eq!((status, error_name(&body)), (400, "HydrationError"));
    let (status, body) = system.call(Some(&bob), HYDRATE, &[]).await;
    assert_eq!((status, error_name(&body)), (400, "InvalidInput"));

    // An AppView hydrates for a named viewer, and sees what that viewer sees.
    for (viewer, expected) in [(&bob, 200), (&carol, 400)] {
        let (status, _) = system
            .call(Some(APPVIEW), HYDRATE, &[("uri", &uri), ("viewer", viewer)])
            .await;
        assert_eq!(status, expected, "for {viewer}");
    }
    // Only allow-listed services may name a viewer.
    let (status, body) = system
        .call(Some(&carol), HYDRATE, &[("uri", &uri), ("viewer", &bob)])
        .await;
    assert_eq!((status, error_name(&body)), (403, "Forbidden"));

    // The outsider joins the boundary: now they see it.
    system.enroll("carol", &["writers", "general"]).await;
    let (status, _) = system.call(Some(&carol), GET_RECORD, &params).await;
    assert_eq!(status, 200);
    system.finish().await;
}

async fn hydrating_many_records(system: System) {
    let alice = system.enroll("alice", &["general", "writers"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let (open, _) = system.post(&alice, "general", &[GENERAL]).await;
    let (closed, _) = system.post(&alice, "writers", &[WRITERS]).await;
    let (own, _) = system.post(&bob, "bob's own", &[GENERAL]).await;
    let missing = format!("at://{alice}/{POST}/3zzzzzzzzzzzz");
    let uris = json!([open, closed, own, missing, "garbage"]);
    let (status, body) = system
        .call_post(Some(&bob), HYDRATE_MANY, &json!({"uris": uris}))
        .await;
    assert_eq!(status, 200, "{body}");
    let found: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(found, [open.as_str(), own.as_str()]);
    assert_eq!(body["blocked"], json!([closed]));
    assert_eq!(body["notFound"], json!([missing, "garbage"]));

    let (status, body) = system
        .call_post(Some(&bob), HYDRATE_MANY, &json!({"uris": []}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"records": [], "notFound": [], "blocked": []}))
    );
    let too_many: Vec<String> = (0..101).map(|_| open.clone()).collect();
    let (status, body) = system
        .call_post(Some(&bob), HYDRATE_MANY, &json!({"uris": too_many}))
        .await;
    assert_eq!((status, error_name(&body)), (400, "TooManyUris"));
    let (status, body) = system
        .call_post(Some(&bob), HYDRATE_MANY, &json!({"urls": []}))
        .await;
    assert_eq!((status, error_name(&body)), (400, "InvalidInput"));
    let oversized = json!({"uris": ["x".repeat(300 * 1024)]});
    let (status, body) = system.call_post(Some(&bob), HYDRATE_MANY, &oversized).await;
    assert_eq!((status, error_name(&body)), (413, "PayloadTooLarge"));
    system.finish().await;
}

async fn listing_records_in_pages(system: System) {
    let alice = system.enroll("alice", &["general", "writers"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let mut general = Vec::new();
    for i in 0..9 {
        let boundary = if i % 3 == 2 { WRITERS } else { GENERAL };
        let (uri, _) = system.post(&alice, &format!("post {i}"), &[boundary]).await;
        if boundary == GENERAL {
            general.push(uri);
        }
    }
    // Bob sees the six general posts, newest key first, in full pages of four and two.
    let page = |viewer: String, cursor: Option<String>, reverse: bool| {
        let system = &system;
        let alice = alice.clone();
        async move {
            let mut query = vec![
                ("repo", alice),
                ("collection", POST.to_string()),
                ("limit", "4".to_string()),
            ];
            if let Some(cursor) = cursor {
                query.push(("cursor", cursor));
            }
            if reverse {
                query.push(("reverse", "true".to_string()));
            }
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = system.call(Some(&viewer), LIST_RECORDS, &query).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let uris = |body: &Value| -> Vec<String> {
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uri"].as_str().unwrap().to_string())
            .collect()
    };
    let first = page(bob.clone(), None, false).await;
    let mut newest_first = general.clone();
    newest_first.reverse();
    assert_eq!(uris(&first), newest_first[..4]);
    let cursor = first["cursor"].as_str().unwrap().to_string();
    let second = page(bob.clone(), Some(cursor), false).await;
    assert_eq!(uris(&second), newest_first[4..]);
    assert!(second.get("cursor").is_none(), "{second}");
    // Ascending.
    let first = page(bob.clone(), None, true).await;
    assert_eq!(uris(&first), general[..4]);
    // The owner sees all nine.
    let all = page(alice.clone(), None, false).await;
    let rest = page(
        alice.clone(),
        all["cursor"].as_str().map(str::to_string),
        false,
    )
    .await;
    let last = page(
        alice.clone(),
        rest["cursor"].as_str().map(str::to_string),
        false,
    )
    .await;
    assert_eq!(uris(&all).len() + uris(&rest).len() + uris(&last).len(), 9);
    // Anonymous callers see none; bad parameters are refused.
    let (status, body) = system
        .call(
            None,
            LIST_RECORDS,
            &[("repo", &alice), ("collection", POST)],
        )
        .await;
    assert_eq!(
        (status, body["records"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    for bad in [
        vec![("repo", "nobody"), ("collection", POST)],
        vec![("repo", alice.as_str()), ("collection", "not an nsid")],
        vec![
            ("repo", alice.as_str()),
            ("collection", POST),
            ("limit", "many"),
        ],
        vec![
            ("repo", alice.as_str()),
            ("collection", POST),
            ("reverse", "maybe"),
        ],
        vec![("repo", alice.as_str())],
    ] {
        let (status, body) = system.call(Some(&bob), LIST_RECORDS, &bad).await;
        assert_eq!(
            (status, error_name(&body)),
            (400, "InvalidRequest"),
            "{bad:?}"
        );
    }
    system.finish().await;
}

async fn describing_a_repo(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    system.post(&alice, "hello", &[GENERAL]).await;
    let (status, body) = system
        .call(None, "com.atproto.repo.describeRepo", &[("repo", &alice)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["did"], json!(alice));
    assert_eq!(body["collections"], json!([POST]));
    assert_eq!(body["handleIsCorrect"], json!(false));
    let (status, body) = system
        .call(
            None,
            "com.atproto.repo.describeRepo",
            &[("repo", "did:plc:nobody")],
        )
        .await;
    assert_eq!((status, error_name(&body)), (400, "RepoNotFound"));
    // A query with the wrong HTTP method.
    let (status, body) = system.call_post(None, GET_RECORD, &json!({})).await;
    assert_eq!((status, error_name(&body)), (400, "InvalidRequest"));
    system.finish().await;
}

/// An actor who unenrolled: its records are served to nobody, by any read; back after a
/// re-enrollment.
async fn records_of_an_actor_who_left(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let (uri, _) = system.post(&alice, "before leaving", &[GENERAL]).await;
    let params = [
        ("repo", alice.as_str()),
        ("collection", POST),
        ("rkey", rkey(&uri)),
    ];
    let list = [("repo", alice.as_str()), ("collection", POST)];
    let reads = async |expect_visible: bool| {
        for viewer in [alice.as_str(), bob.as_str(), APPVIEW] {
            let (status, body) = system.call(Some(viewer), GET_RECORD, &params).await;
            assert_eq!(status == 200, expect_visible, "getRecord {viewer}: {body}");
            let (_, body) = system
                .call(Some(viewer), "com.atproto.repo.listRecords", &list)
                .await;
            let listed = body["records"].as_array().map_or(0, Vec::len);
            assert_eq!(listed == 1, expect_visible, "listRecords {viewer}: {body}");
            let (_, body) = system
                .call(
                    Some(viewer),
                    "zone.stratos.repo.hydrateRecord",
                    &[("uri", uri.as_str())],
                )
                .await;
            assert_eq!(
                body.get("value").is_some(),
                expect_visible,
                "hydrate {viewer}: {body}"
            );
        }
    };
    reads(true).await;
    let did: stratos_schema::syntax::Did = alice.parse().unwrap();
    system.commands.unenroll(&did, false).await.unwrap();
    reads(false).await;
    system
        .commands
        .enroll(&did, &["general".to_string()])
        .await
        .unwrap();
    reads(true).await;
    system.finish().await;
}

on_both_backends!(
    records_of_an_actor_who_left,
    who_sees_a_record,
    hydrating_many_records,
    listing_records_in_pages,
    describing_a_repo,
);
