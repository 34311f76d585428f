//! The AppView mapping: applied commits and enrollment events become rows of the AppView table
//! contract.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use stratos_projector::appview::{ViewChange, commit_changes, unenroll_change};
use stratos_schema::events::UnenrollEvent;
use support::{BOUNDARY, Projection, Writer};

#[test]
fn creates_updates_and_deletes_reach_the_views() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    let time = "2026-11-23T12:00:05.000Z".parse().unwrap();

    let first = writer.commit(&[("3l2aaaaaaaa22", Some("hello"))], &projection.blocks);
    let applied = projection.apply(&first).unwrap();
    let changes = commit_changes(&writer.did, &time, &applied.records);
    let [ViewChange::UpsertPost { post, boundaries }] = changes.as_slice() else {
        panic!("one upsert: {changes:?}");
    };
    assert_eq!(
        post.uri,
        format!("at://{}/zone.stratos.feed.post/3l2aaaaaaaa22", writer.did)
    );
    assert_eq!(post.text, "hello");
    assert_eq!(post.rkey, "3l2aaaaaaaa22");
    assert_eq!(post.created_at, "2026-11-23T12:00:00.000Z");
    assert_eq!(post.indexed_at, "2026-11-23T12:00:05.000Z");
    assert_eq!(boundaries, &[BOUNDARY.to_string()]);

    let second = writer.commit(&[("3l2aaaaaaaa22", None)], &projection.blocks);
    let applied = projection.apply(&second).unwrap();
    assert_eq!(
        commit_changes(&writer.did, &time, &applied.records),
        [ViewChange::DeletePost {
            uri: post.uri.clone()
        }]
    );
}

#[test]
fn purged_content_and_unenroll_leave_nothing_in_the_views() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    projection.state.data_key = None;
    let time = "2026-11-23T12:00:05.000Z".parse().unwrap();
    let event = writer.commit(&[("3l2aaaaaaaa22", Some("secret"))], &projection.blocks);
    let applied = projection.apply(&event).unwrap();
    assert!(matches!(
        commit_changes(&writer.did, &time, &applied.records).as_slice(),
        [ViewChange::DeletePost { .. }]
    ));
    let unenroll = UnenrollEvent {
        did: writer.did.clone(),
        time,
        purge: true,
    };
    assert_eq!(
        unenroll_change(&unenroll),
        ViewChange::RemoveActor {
            did: writer.did.to_string()
        }
    );
    // Without a purge the posts are withdrawn, to come back if the actor returns.
    let leaving = UnenrollEvent {
        purge: false,
        ..unenroll
    };
    assert_eq!(
        unenroll_change(&leaving),
        ViewChange::WithdrawActor {
            did: writer.did.to_string()
        }
    );
}
