//! `subscribeRecords` over real WebSockets: backfill then live without gap or duplicate,
//! reconnection with a cursor, many concurrent subscribers, every kind of op, a backfill of
//! many pages, the service stream with its enroll and unenroll events, the domain filter, and
//! the error frames.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use stratos_query::subscribe::{SubscribeLimits, decode_frame};
use stratos_schema::Ipld;
use support::{APPVIEW, GENERAL, System, WRITERS};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(system: &System, query: &str, caller: Option<&str>) -> Socket {
    let mut request = system.subscribe_url(query).into_client_request().unwrap();
    if let Some(caller) = caller {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {caller}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next frame as (type, body); `("error", body)` for an error frame, `None` when closed.
async fn next_frame(socket: &mut Socket) -> Option<(String, Ipld)> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("no frame within 20 s")?;
        match message.ok()? {
            Message::Binary(bytes) => {
                let (header, body) = decode_frame(&bytes).expect("a well-formed frame");
                let Ipld::Map(header) = header else {
                    panic!("header is not a map")
                };
                let kind = match (header.get("op"), header.get("t")) {
                    (Some(Ipld::Integer(-1)), _) => "error".to_string(),
                    (_, Some(Ipld::String(t))) => t.clone(),
                    other => panic!("bad header {other:?}"),
                };
                return Some((kind, body));
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

fn field<'a>(body: &'a Ipld, name: &str) -> &'a Ipld {
    match body {
        Ipld::Map(map) => map.get(name).unwrap_or(&Ipld::Null),
        _ => &Ipld::Null,
    }
}

fn seq(body: &Ipld) -> i128 {
    match field(body, "seq") {
        Ipld::Integer(n) => *n,
        other => panic!("no seq: {other:?}"),
    }
}

fn text(body: &Ipld, name: &str) -> String {
    match field(body, name) {
        Ipld::String(s) => s.clone(),
        other => panic!("{name} is not a string: {other:?}"),
    }
}

/// Collects `count` `#commit` frames; returns their sequence numbers.
async fn commits(socket: &mut Socket, count: usize) -> Vec<i128> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let (kind, body) = next_frame(socket).await.expect("the stream ended early");
        assert_eq!(kind, "#commit", "{body:?}");
        seen.push(seq(&body));
    }
    seen
}

async fn backfill_then_live(system: System) {
    let alice = system.enroll("alice", &["general", "writers"]).await;
    for i in 0..5 {
        system
            .post(&alice, &format!("before {i}"), &[GENERAL])
            .await;
    }
    let latest = system.store.seq_range(&alice).await.unwrap().unwrap().1 as i128;
    let mut socket = connect(&system, &format!("did={alice}"), Some(&alice)).await;
    let backfill = commits(&mut socket, latest as usize).await;
    assert_eq!(backfill, (1..=latest).collect::<Vec<_>>());

    // Live: each write arrives once, in order, with its record.
    for i in 0..5 {
        system.post(&alice, &format!("live {i}"), &[GENERAL]).await;
    }
    let mut live = Vec::new();
    for _ in 0..5 {
        let (kind, body) = next_frame(&mut socket).await.unwrap();
        assert_eq!(kind, "#commit");
        let ops = ops(&body);
        assert_eq!(text(&ops[0], "action"), "create");
        assert!(text(field(&ops[0], "record"), "text").starts_with("live"));
        live.push(seq(&body));
    }
    assert_eq!(live, ((latest + 1)..=(latest + 5)).collect::<Vec<_>>());
    drop(socket);

    // Reconnect after seq `latest + 2`: the rest, then live again.
    let cursor = latest + 2;
    let mut socket = connect(
        &system,
        &format!("did={alice}&cursor={cursor}"),
        Some(APPVIEW),
    )
    .await;
    assert_eq!(
        commits(&mut socket, 3).await,
        ((cursor + 1)..=(latest + 5)).collect::<Vec<_>>()
    );
    system.post(&alice, "after reconnect", &[WRITERS]).await;
    assert_eq!(commits(&mut socket, 1).await, [latest + 6]);

    // The domain filter: only events with a record in that boundary.
    let mut filtered = connect(
        &system,
        &format!("did={alice}&domain={}", urlencode(WRITERS)),
        Some(APPVIEW),
    )
    .await;
    assert_eq!(commits(&mut filtered, 1).await, [latest + 6]);
    system.finish().await;
}

/// The `ops` of a `#commit` body.
fn ops(body: &Ipld) -> Vec<Ipld> {
    match field(body, "ops") {
        Ipld::List(ops) => ops.clone(),
        other => panic!("no ops: {other:?}"),
    }
}

/// Collects `#commit` frames up to and including sequence number `last`.
async fn commits_through(socket: &mut Socket, last: i128) -> Vec<Ipld> {
    let mut bodies: Vec<Ipld> = Vec::new();
    while bodies.last().is_none_or(|body| seq(body) < last) {
        let (kind, body) = next_frame(socket).await.expect("the stream ended early");
        assert_eq!(kind, "#commit", "{body:?}");
        bodies.push(body);
    }
    bodies
}

/// A post in one boundary, as JSON.
fn post_value(text: &str, boundary: &str) -> serde_json::Value {
    json!({
        "$type": "zone.stratos.feed.post",
        "text": text,
        "boundary": {"values": [{"value": boundary}]},
        "createdAt": "2026-11-28T12:00:00.000Z",
    })
}

/// Each kind of op on the actor stream, read back in pages of two events: one frame per
/// `applyWrites` with all its ops, updates with their record (and the boundaries they leave),
/// deletes with the boundaries the record had and no record, so that a domain filter keeps
/// every op that concerns its boundary.
async fn every_kind_of_op_in_pages(system: System) {
    const POSTS: &str = "zone.stratos.feed.post";
    let alice = system.enroll("alice", &["general", "writers"]).await;
    let (first, _) = system.post(&alice, "first", &[GENERAL]).await;
    let first_rkey = first.rsplit('/').next().unwrap().to_string();
    let write = async |nsid: &str, input: serde_json::Value| {
        let (status, body) = system.call_post(Some(&alice), nsid, &input).await;
        assert_eq!(status, 200, "{nsid}: {body}");
    };
    write(
        "com.atproto.repo.applyWrites",
        json!({"repo": alice, "writes": [
            {"$type": "com.atproto.repo.applyWrites#create", "collection": POSTS,
             "rkey": "3l2aaaaaaaa22", "value": post_value("in writers", WRITERS)},
            {"$type": "com.atproto.repo.applyWrites#create", "collection": POSTS,
             "rkey": "3l2aaaaaaaa23", "value": post_value("in writers too", WRITERS)},
        ]}),
    )
    .await;
    write(
        "com.atproto.repo.putRecord",
        json!({"repo": alice, "collection": POSTS, "rkey": first_rkey,
               "record": post_value("edited", GENERAL)}),
    )
    .await;
    write(
        "com.atproto.repo.deleteRecord",
        json!({"repo": alice, "collection": POSTS, "rkey": "3l2aaaaaaaa22"}),
    )
    .await;
    write(
        "com.atproto.repo.putRecord",
        json!({"repo": alice, "collection": POSTS, "rkey": "3l2aaaaaaaa23",
               "record": post_value("moved", GENERAL)}),
    )
    .await;
    for i in 0..2 {
        system.post(&alice, &format!("after {i}"), &[GENERAL]).await;
    }
    let latest = system.store.seq_range(&alice).await.unwrap().unwrap().1 as i128;

    let mut socket = connect(&system, &format!("did={alice}"), Some(&alice)).await;
    let bodies = commits_through(&mut socket, latest).await;
    let seqs: Vec<i128> = bodies.iter().map(seq).collect();
    assert_eq!(
        seqs,
        (1..=latest).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let summary: Vec<Vec<(String, String)>> = bodies
        .iter()
        .map(|body| {
            ops(body)
                .iter()
                .map(|op| (text(op, "action"), text(op, "path")))
                .collect()
        })
        .collect();
    let path = |rkey: &str| format!("{POSTS}/{rkey}");
    assert_eq!(
        summary[..5],
        [
            vec![("create".to_string(), path(&first_rkey))],
            vec![
                ("create".to_string(), path("3l2aaaaaaaa22")),
                ("create".to_string(), path("3l2aaaaaaaa23")),
            ],
            vec![("update".to_string(), path(&first_rkey))],
            vec![("delete".to_string(), path("3l2aaaaaaaa22"))],
            vec![("update".to_string(), path("3l2aaaaaaaa23"))],
        ]
    );
    assert_eq!(summary.len(), 7);
    // A record is carried while it is current: the first version of the edited post and the
    // deleted post have their CID but no record any more.
    let created = &ops(&bodies[0])[0];
    assert!(
        matches!(field(created, "cid"), Ipld::Link(_)),
        "{created:?}"
    );
    assert_eq!(field(created, "record"), &Ipld::Null);
    let batch = ops(&bodies[1]);
    assert_eq!(field(&batch[0], "record"), &Ipld::Null);
    assert_eq!(field(&batch[1], "record"), &Ipld::Null);
    let updated = &ops(&bodies[2])[0];
    assert_eq!(text(field(updated, "record"), "text"), "edited");
    assert_eq!(
        field(updated, "prevBoundaries"),
        &Ipld::Null,
        "the same boundaries"
    );
    let moved = &ops(&bodies[4])[0];
    assert_eq!(text(field(moved, "record"), "text"), "moved");
    let list = |value: &str| Ipld::List(vec![Ipld::String(value.into())]);
    assert_eq!(field(moved, "boundaries"), &list(GENERAL));
    assert_eq!(field(moved, "prevBoundaries"), &list(WRITERS));
    let deleted = &ops(&bodies[3])[0];
    assert_eq!(field(deleted, "cid"), &Ipld::Null, "{deleted:?}");
    assert_eq!(field(deleted, "record"), &Ipld::Null);

    // Filtered on `writers`: the batch that created two posts there, the deletion of one and
    // the update that moved the other out.
    let mut filtered = connect(
        &system,
        &format!("did={alice}&domain={}", urlencode(WRITERS)),
        Some(APPVIEW),
    )
    .await;
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(seq(&next_frame(&mut filtered).await.expect("a frame").1));
    }
    assert_eq!(kept, [seq(&bodies[1]), seq(&bodies[3]), seq(&bodies[4])]);
    system.post(&alice, "live in writers", &[WRITERS]).await;
    let (kind, live) = next_frame(&mut filtered).await.unwrap();
    assert_eq!((kind.as_str(), seq(&live)), ("#commit", latest + 1));
    system.finish().await;
}

/// The service stream announces an unenrollment (without service or boundaries), a
/// re-enrollment with its new boundaries, and an operator's boundary change.
async fn the_service_stream_follows_enrollment_changes(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let mut socket = connect(&system, "syncToken=shared-sync-secret", None).await;
    let (kind, body) = next_frame(&mut socket).await.unwrap();
    assert_eq!(
        (kind.as_str(), text(&body, "did")),
        ("#enrollment", alice.clone())
    );

    let did = alice.parse().unwrap();
    system.commands.unenroll(&did, false).await.unwrap();
    let (kind, body) = next_frame(&mut socket).await.unwrap();
    assert_eq!(kind, "#enrollment");
    assert_eq!(text(&body, "did"), alice);
    assert_eq!(text(&body, "action"), "unenroll");
    assert_eq!(field(&body, "service"), &Ipld::Null);
    assert_eq!(field(&body, "boundaries"), &Ipld::Null);

    system.enroll("alice", &["writers"]).await;
    let (kind, body) = next_frame(&mut socket).await.unwrap();
    assert_eq!(kind, "#enrollment");
    assert_eq!(text(&body, "action"), "enroll");
    assert_eq!(text(&body, "service"), "https://stratos.example.com");
    assert_eq!(
        field(&body, "boundaries"),
        &Ipld::List(vec![Ipld::String(WRITERS.into())])
    );

    // An operator's boundary change is announced too, with the whole new set.
    let both = [GENERAL.to_string(), WRITERS.to_string()];
    system.commands.set_boundaries(&did, &both).await.unwrap();
    let (kind, body) = next_frame(&mut socket).await.unwrap();
    assert_eq!(
        (kind.as_str(), text(&body, "action").as_str()),
        ("#enrollment", "enroll")
    );
    assert_eq!(
        field(&body, "boundaries"),
        &Ipld::List(both.iter().cloned().map(Ipld::String).collect())
    );

    // A subscriber arriving now replays the active enrollment only.
    let mut later = connect(&system, "syncToken=shared-sync-secret", None).await;
    let (_, body) = next_frame(&mut later).await.unwrap();
    assert_eq!(text(&body, "action"), "enroll");
    assert_eq!(field(&body, "service"), &Ipld::Null, "a replayed entry");
    system.finish().await;
}

fn urlencode(text: &str) -> String {
    text.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
}

async fn many_subscribers_see_every_event_once(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    system.post(&alice, "first", &[GENERAL]).await;
    let mut sockets = Vec::new();
    for _ in 0..200 {
        sockets.push(connect(&system, &format!("did={alice}"), Some(APPVIEW)).await);
    }
    let writer = {
        let base = system.base.clone();
        let alice = alice.clone();
        let client = system.client.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let response = client
                    .post(format!("{base}/xrpc/com.atproto.repo.createRecord"))
                    .bearer_auth(&alice)
                    .json(&serde_json::json!({
                        "repo": alice,
                        "collection": "zone.stratos.feed.post",
                        "record": {
                            "$type": "zone.stratos.feed.post",
                            "text": format!("while subscribed {i}"),
                            "boundary": {"values": [{"value": GENERAL}]},
                            "createdAt": "2026-11-28T12:00:00.000Z",
                        },
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
            }
        })
    };
    writer.await.unwrap();
    let latest = system.store.seq_range(&alice).await.unwrap().unwrap().1 as i128;
    let expected: Vec<i128> = (1..=latest).collect();
    let results = futures::future::join_all(
        sockets
            .iter_mut()
            .map(|socket| commits(socket, latest as usize)),
    )
    .await;
    for seen in results {
        assert_eq!(seen, expected);
    }
    system.finish().await;
}

async fn stream_errors_and_the_service_stream(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    system.post(&alice, "hello", &[GENERAL]).await;

    let error_of = |frame: Option<(String, Ipld)>| {
        let (kind, body) = frame.expect("an error frame");
        assert_eq!(kind, "error", "{body:?}");
        text(&body, "error")
    };
    let mut socket = connect(&system, &format!("did={alice}&cursor=999"), Some(&alice)).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "FutureCursor");
    assert!(
        next_frame(&mut socket).await.is_none(),
        "closed after the error"
    );
    let mut socket = connect(&system, "did=did:plc:nobody", Some(APPVIEW)).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "NotFound");
    let mut socket = connect(&system, &format!("did={alice}"), None).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "AuthRequired");
    let mut socket = connect(&system, &format!("did={alice}"), Some(&bob)).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "AuthRequired");
    let mut socket = connect(&system, "", Some(&alice)).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "AuthRequired");
    let mut socket = connect(&system, &format!("did={alice}&cursor=-1"), Some(&alice)).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "InvalidRequest");

    // The service stream, with the shared sync token: enrollments, then changes.
    let mut socket = connect(&system, "syncToken=shared-sync-secret", None).await;
    let mut enrolled = Vec::new();
    for _ in 0..2 {
        let (kind, body) = next_frame(&mut socket).await.unwrap();
        assert_eq!(kind, "#enrollment");
        assert_eq!(text(&body, "action"), "enroll");
        enrolled.push(text(&body, "did"));
    }
    enrolled.sort();
    assert_eq!(enrolled, [alice.clone(), bob.clone()]);
    let carol = system.enroll("carol", &["writers"]).await;
    let (kind, body) = next_frame(&mut socket).await.unwrap();
    assert_eq!((kind.as_str(), text(&body, "did")), ("#enrollment", carol));
    // A wrong shared token is a bad service token.
    let mut socket = connect(&system, "syncToken=guess", None).await;
    assert_eq!(error_of(next_frame(&mut socket).await), "AuthRequired");

    // Keepalive: the client answers pings (tungstenite does so by itself) and stays open.
    let latest = system.store.seq_range(&alice).await.unwrap().unwrap().1;
    let mut socket = connect(&system, &format!("did={alice}"), Some(&alice)).await;
    commits(&mut socket, latest as usize).await;
    socket.send(Message::Ping(vec![1].into())).await.unwrap();
    system.finish().await;
}

on_both_backends!(
    backfill_then_live,
    many_subscribers_see_every_event_once,
    stream_errors_and_the_service_stream,
    the_service_stream_follows_enrollment_changes,
);

on_both_backends!(
    limits = SubscribeLimits { batch: 2, ..SubscribeLimits::default() };
    every_kind_of_op_in_pages,
);
