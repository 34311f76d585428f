//! The repo projector's arbiter: chains apply, forks and forgeries are rejected with reasons.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use stratos_projector::arbiter::{
    RecordChange, Rejection, decide_commit, decide_commit_signed_here,
};
use stratos_schema::Cid;
use stratos_schema::commit::SignedHere;
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use support::{BOUNDARY, Projection, Writer};

#[test]
fn a_chain_of_creates_updates_and_deletes_applies() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    let first = writer.commit(
        &[
            ("3l2aaaaaaaa22", Some("one")),
            ("3l2bbbbbbbb22", Some("two")),
        ],
        &projection.blocks,
    );
    let applied = projection.apply(&first).unwrap();
    assert_eq!(applied.records.len(), 2);
    assert!(
        matches!(&applied.records[0], RecordChange::Put { block: Some(b), boundaries, .. }
        if boundaries == &[BOUNDARY.to_string()] && b.windows(3).any(|w| w == b"one"))
    );

    let second = writer.commit(
        &[
            ("3l2aaaaaaaa22", Some("one, edited")),
            ("3l2bbbbbbbb22", None),
        ],
        &projection.blocks,
    );
    let applied = projection.apply(&second).unwrap();
    let [
        RecordChange::Put { cid: updated, .. },
        RecordChange::Delete { prev: deleted, .. },
    ] = applied.records.as_slice()
    else {
        panic!("an update and a delete: {:?}", applied.records);
    };
    // The delete names the record it removes, and the old commit is removed.
    let first_records: Vec<Cid> = first.ops.iter().filter_map(|op| op.cid).collect();
    assert!(first_records.contains(deleted));
    assert!(applied.removed_blocks.contains(&first.slice.commit));
    assert_ne!(updated, &first_records[0]);
    assert_eq!(
        projection.state.head.as_ref().unwrap().commit,
        second.slice.commit
    );

    // Every node of the head's tree is still stored: garbage collection kept what is reachable.
    let tree = Mst::load(&projection.blocks, writer.tree.root_cid()).unwrap();
    assert_eq!(tree.entries(&projection.blocks).unwrap().len(), 1);
    tree.node_blocks(&projection.blocks).unwrap();
}

#[test]
fn of_two_commits_on_the_same_head_exactly_one_applies() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    let base = writer.commit(&[("3l2aaaaaaaa22", Some("base"))], &projection.blocks);
    projection.apply(&base).unwrap();
    let mut rival = writer.clone();
    let ours = writer.commit(&[("3l2bbbbbbbb22", Some("ours"))], &projection.blocks);
    let theirs = rival.commit(&[("3l2ccccccccc2", Some("theirs"))], &projection.blocks);
    projection.apply(&ours).unwrap();
    assert!(matches!(
        projection.apply(&theirs),
        Err(Rejection::NotOnHead { .. })
    ));
    // Redelivery of an applied commit is rejected too: it no longer builds on the head.
    assert!(matches!(
        projection.apply(&ours),
        Err(Rejection::NotOnHead { .. })
    ));
}

#[test]
fn forged_unknown_and_unenrolled_are_rejected() {
    let mut writer = Writer::new();
    let projection = Projection::for_writer(&writer);
    let event = writer.commit(&[("3l2aaaaaaaa22", Some("hello"))], &projection.blocks);

    assert_eq!(
        decide_commit(None, &event, &projection.blocks),
        Err(Rejection::UnknownActor)
    );
    let mut unenrolled = projection.state.clone();
    unenrolled.enrolled = false;
    assert_eq!(
        decide_commit(Some(&unenrolled), &event, &projection.blocks),
        Err(Rejection::NotEnrolled)
    );
    let mut other_key = projection.state.clone();
    other_key.signing_key = Keypair::generate(KeyAlgorithm::P256).public_key();
    assert_eq!(
        decide_commit(Some(&other_key), &event, &projection.blocks),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn a_commit_signed_here_is_checked_against_the_actors_key() {
    let signed_here = SignedHere::default();
    let mut writer = Writer::new();
    writer.signed_here = Some(signed_here.clone());
    let projection = Projection::for_writer(&writer);
    let event = writer.commit(&[("3l2aaaaaaaa22", Some("hello"))], &projection.blocks);
    let mut other_key = projection.state.clone();
    other_key.signing_key = Keypair::generate(KeyAlgorithm::P256).public_key();
    assert_eq!(
        decide_commit_signed_here(
            Some(&other_key),
            &event,
            &projection.blocks,
            Some(&signed_here)
        ),
        Err(Rejection::BadSignature),
        "signed here, but not with the actor's key"
    );
    let applied = decide_commit_signed_here(
        Some(&projection.state),
        &event,
        &projection.blocks,
        Some(&signed_here),
    );
    assert_eq!(
        applied,
        decide_commit(Some(&projection.state), &event, &projection.blocks)
    );
    assert!(applied.is_ok());
}

/// A commit the command side of this process built is applied with the tree change it
/// remembered (no tree is rebuilt, so the head's nodes are not even read), to the same result as
/// the long way.
#[test]
fn a_commit_built_here_applies_as_built() {
    let signed_here = SignedHere::default();
    let mut writer = Writer::new();
    writer.signed_here = Some(signed_here.clone());
    let mut projection = Projection::for_writer(&writer);
    let rkey = |i: usize| {
        let letters = b"abcdefghijklmnopqrstuvwxyz";
        format!(
            "3l2{}{}aaaaaa22",
            letters[i / 26] as char,
            letters[i % 26] as char
        )
    };
    let rounds: [Vec<(String, Option<&str>)>; 3] = [
        (0..60).map(|i| (rkey(i), Some("first"))).collect(),
        (0..60)
            .step_by(7)
            .map(|i| (rkey(i), Some("edited")))
            .collect(),
        (0..60).step_by(5).map(|i| (rkey(i), None)).collect(),
    ];
    for writes in rounds {
        let writes: Vec<(&str, Option<&str>)> = writes
            .iter()
            .map(|(rkey, text)| (rkey.as_str(), *text))
            .collect();
        let event = writer.commit(&writes, &projection.blocks);
        let as_built = decide_commit_signed_here(
            Some(&projection.state),
            &event,
            &stratos_schema::blocks::BlockMap::new(),
            Some(&signed_here),
        )
        .unwrap();
        // The entry is used once: the same commit is now checked the long way.
        let the_long_way = decide_commit_signed_here(
            Some(&projection.state),
            &event,
            &projection.blocks,
            Some(&signed_here),
        )
        .unwrap();
        assert_eq!(as_built, the_long_way);
        assert!(!as_built.removed_blocks.is_empty());
        projection.apply(&event).unwrap();
    }
}

#[test]
fn ops_that_do_not_match_the_tree_are_rejected() {
    let mut writer = Writer::new();
    let projection = Projection::for_writer(&writer);
    let event = writer.commit(
        &[("3l2aaaaaaaa22", Some("a")), ("3l2bbbbbbbb22", Some("b"))],
        &projection.blocks,
    );
    let mut dropped = event.clone();
    dropped.ops.pop();
    assert!(matches!(
        decide_commit(Some(&projection.state), &dropped, &projection.blocks),
        Err(Rejection::OpsMismatch(_))
    ));
    let mut unsealed = event.clone();
    unsealed.records.clear();
    assert!(matches!(
        decide_commit(Some(&projection.state), &unsealed, &projection.blocks),
        Err(Rejection::BadRecord(_))
    ));
}

#[test]
fn a_purged_actor_replays_without_content() {
    let mut writer = Writer::new();
    let mut projection = Projection::for_writer(&writer);
    projection.state.data_key = None;
    let event = writer.commit(&[("3l2aaaaaaaa22", Some("secret"))], &projection.blocks);
    let applied = projection.apply(&event).unwrap();
    assert!(matches!(
        &applied.records[0],
        RecordChange::Put { block: None, .. }
    ));
}
