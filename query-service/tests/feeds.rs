//! Feeds over HTTP: a viewer's timeline holds exactly the posts of their boundaries and their
//! own, newest first, in keyset pages; an author feed and getPosts apply the same rule.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{APPVIEW, GENERAL, System, WRITERS, error_name};

const TIMELINE: &str = "zone.stratos.feed.getTimeline";
const AUTHOR_FEED: &str = "zone.stratos.feed.getAuthorFeed";
const GET_POSTS: &str = "zone.stratos.feed.getPosts";

fn uris(body: &Value) -> Vec<String> {
    body["feed"]
        .as_array()
        .unwrap_or_else(|| panic!("no feed in {body}"))
        .iter()
        .map(|item| item["post"]["uri"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of a feed, following cursors.
async fn all_pages(
    system: &System,
    viewer: &str,
    nsid: &str,
    extra: &[(&str, &str)],
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<(&str, &str)> = extra.to_vec();
        query.push(("limit", "3"));
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let (status, body) = system.call(Some(viewer), nsid, &query).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(uris(&body));
        match body["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return seen,
        }
    }
}

async fn timelines_follow_boundaries(system: System) {
    let alice = system.enroll("alice", &["general", "writers"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let carol = system.enroll("carol", &["writers"]).await;
    // Written in this order, so newest first is the reverse.
    let mut written = Vec::new();
    for (author, text, boundary) in [
        (&alice, "a1 general", GENERAL),
        (&bob, "b1 general", GENERAL),
        (&alice, "a2 writers", WRITERS),
        (&carol, "c1 writers", WRITERS),
        (&alice, "a3 general", GENERAL),
        (&bob, "b2 general", GENERAL),
        (&alice, "a4 both", GENERAL),
    ] {
        let (uri, _) = system.post(author, text, &[boundary]).await;
        written.push((text, uri));
    }
    system.views_caught_up().await;
    let newest_first = |filter: &dyn Fn(&str) -> bool| -> Vec<String> {
        written
            .iter()
            .rev()
            .filter(|(text, _)| filter(text))
            .map(|(_, uri)| uri.clone())
            .collect()
    };
    let bob_sees = newest_first(&|t| t.contains("general") || t.contains("both"));
    assert_eq!(all_pages(&system, &bob, TIMELINE, &[]).await, bob_sees);
    let carol_sees = newest_first(&|t| t.contains("writers"));
    assert_eq!(all_pages(&system, &carol, TIMELINE, &[]).await, carol_sees);
    assert_eq!(
        all_pages(&system, &alice, TIMELINE, &[]).await,
        newest_first(&|_| true)
    );
    // One boundary of the viewer's, or nothing for a boundary they do not hold.
    assert_eq!(
        all_pages(&system, &alice, TIMELINE, &[("boundary", WRITERS)]).await,
        carol_sees
    );
    assert!(
        all_pages(&system, &bob, TIMELINE, &[("boundary", WRITERS)])
            .await
            .is_empty()
    );
    // An AppView reads a viewer's timeline for them.
    assert_eq!(
        all_pages(&system, APPVIEW, TIMELINE, &[("viewer", &bob)]).await,
        bob_sees
    );

    // Author feeds: what the viewer may see of one author.
    let alice_for_bob = newest_first(&|t| t.starts_with('a') && !t.contains("writers"));
    assert_eq!(
        all_pages(&system, &bob, AUTHOR_FEED, &[("actor", &alice)]).await,
        alice_for_bob
    );
    assert_eq!(
        all_pages(&system, &alice, AUTHOR_FEED, &[("actor", &alice)]).await,
        newest_first(&|t| t.starts_with('a'))
    );

    // getPosts leaves out what the viewer may not see.
    let wanted: Vec<&str> = written.iter().map(|(_, uri)| uri.as_str()).collect();
    let query: Vec<(&str, &str)> = wanted.iter().map(|uri| ("uris", *uri)).collect();
    let (status, body) = system.call(Some(&carol), GET_POSTS, &query).await;
    assert_eq!(status, 200, "{body}");
    let posts: Vec<&str> = body["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["uri"].as_str().unwrap())
        .collect();
    let carol_oldest_first: Vec<String> = carol_sees.iter().rev().cloned().collect();
    assert_eq!(posts, carol_oldest_first);
    let post = &body["posts"][0];
    assert_eq!(post["author"]["did"], json!(alice));
    assert_eq!(post["boundaries"], json!([WRITERS]));
    assert_eq!(post["record"]["text"], json!("a2 writers"));

    // Feeds need a viewer; cursors must be ours.
    let (status, body) = system.call(None, TIMELINE, &[]).await;
    assert_eq!((status, error_name(&body)), (401, "AuthRequired"));
    let (status, body) = system
        .call(Some(&bob), TIMELINE, &[("cursor", "yesterday")])
        .await;
    assert_eq!((status, error_name(&body)), (400, "InvalidRequest"));
    system.finish().await;
}

/// An author who leaves (content kept) leaves the feeds, and is back in them on returning.
async fn a_returning_author_is_back_in_the_feeds(system: System) {
    let alice = system.enroll("alice", &["general"]).await;
    let bob = system.enroll("bob", &["general"]).await;
    let (post, _) = system.post(&alice, "before leaving", &[GENERAL]).await;
    system.views_caught_up().await;
    let feeds = async || {
        (
            all_pages(&system, &bob, TIMELINE, &[]).await,
            all_pages(&system, &bob, AUTHOR_FEED, &[("actor", &alice)]).await,
        )
    };
    assert_eq!(feeds().await, (vec![post.clone()], vec![post.clone()]));
    system
        .commands
        .unenroll(&alice.parse().unwrap(), false)
        .await
        .unwrap();
    system.views_caught_up().await;
    assert_eq!(feeds().await, (vec![], vec![]));
    system.enroll("alice", &["general"]).await;
    system.views_caught_up().await;
    assert_eq!(feeds().await, (vec![post.clone()], vec![post]));
    system.finish().await;
}

on_both_backends!(
    timelines_follow_boundaries,
    a_returning_author_is_back_in_the_feeds
);
