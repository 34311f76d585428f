//! The AppView projector's mapping: from applied log events to rows of the AppView table
//! contract (spec §10.1: `stratos_post`, `stratos_post_boundary`, `stratos_enrollment`).
//!
//! Pure: the projector runner writes these changes in the same transaction as its position.

use stratos_schema::Ipld;
use stratos_schema::data::decode_ipld;
use stratos_schema::events::{BoundariesEvent, EnrollmentEvent, UnenrollEvent};
use stratos_schema::lexicon::POST_COLLECTION;
use stratos_schema::syntax::{Datetime, Did};

use stratos_store::PostRow;

use crate::arbiter::RecordChange;

/// A change to the AppView views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewChange {
    /// Insert or replace a post and replace its boundary rows.
    UpsertPost {
        /// The row.
        post: Box<PostRow>,
        /// Its qualified boundaries (`stratos_post_boundary`).
        boundaries: Vec<String>,
    },
    /// Remove a post and its boundary rows.
    DeletePost {
        /// The post's URI.
        uri: String,
    },
    /// Insert or replace an actor's enrollment row.
    UpsertEnrollment {
        /// The actor.
        did: String,
        /// The Stratos service URL.
        service_url: Option<String>,
        /// When the actor enrolled (kept on boundary changes).
        enrolled_at: Option<String>,
        /// The actor's boundaries.
        boundaries: Vec<String>,
        /// An enrollment (not a boundary change): the posts withdrawn when the actor last
        /// left come back.
        restore_posts: bool,
    },
    /// Remove the actor's enrollment row and withdraw its posts from every view, to come back
    /// if the actor enrolls again.
    WithdrawActor {
        /// The actor.
        did: String,
    },
    /// Remove the actor's enrollment row and every one of its posts, withdrawn ones included.
    RemoveActor {
        /// The actor.
        did: String,
    },
}

/// The view changes of the record changes of an applied `#commit` (or `#import`). Posts whose
/// content is unavailable (purged actor) are removed rather than shown empty.
pub fn commit_changes(did: &Did, time: &Datetime, records: &[RecordChange]) -> Vec<ViewChange> {
    let prefix = format!("{POST_COLLECTION}/");
    records
        .iter()
        .filter_map(|change| match change {
            RecordChange::Put {
                path,
                cid,
                boundaries,
                block,
                ..
            } => {
                let rkey = path.strip_prefix(&prefix)?;
                let uri = format!("at://{did}/{path}");
                let Some(record) = block.as_deref().and_then(|b| decode_ipld(b).ok()) else {
                    return Some(ViewChange::DeletePost { uri });
                };
                Some(ViewChange::UpsertPost {
                    post: Box::new(post_row(did, rkey, uri, cid.to_string(), &record, time)),
                    boundaries: boundaries.clone(),
                })
            }
            RecordChange::Delete { path, .. } => {
                path.strip_prefix(&prefix)?;
                Some(ViewChange::DeletePost {
                    uri: format!("at://{did}/{path}"),
                })
            }
        })
        .collect()
}

/// The view change of an `#enrollment`.
pub fn enrollment_change(event: &EnrollmentEvent) -> ViewChange {
    ViewChange::UpsertEnrollment {
        did: event.did.to_string(),
        service_url: Some(event.service_endpoint.clone()),
        enrolled_at: Some(event.time.to_string()),
        boundaries: event.boundaries.clone(),
        restore_posts: true,
    }
}

/// The view change of a `#boundaries` event (URL and enrollment time are kept).
pub fn boundaries_change(event: &BoundariesEvent) -> ViewChange {
    ViewChange::UpsertEnrollment {
        did: event.did.to_string(),
        service_url: None,
        enrolled_at: None,
        boundaries: event.boundaries.clone(),
        restore_posts: false,
    }
}

/// The view change of an `#unenroll`: the actor disappears from every view; without a purge
/// its posts are withdrawn, to come back with the actor.
pub fn unenroll_change(event: &UnenrollEvent) -> ViewChange {
    let did = event.did.to_string();
    match event.purge {
        true => ViewChange::RemoveActor { did },
        false => ViewChange::WithdrawActor { did },
    }
}

fn post_row(
    did: &Did,
    rkey: &str,
    uri: String,
    cid: String,
    record: &Ipld,
    time: &Datetime,
) -> PostRow {
    let field = |name: &str| match record {
        Ipld::Map(map) => map.get(name),
        _ => None,
    };
    let text = |value: Option<&Ipld>| match value {
        Some(Ipld::String(s)) => Some(s.clone()),
        _ => None,
    };
    let json = |name: &str| field(name).map(|v| stratos_schema::data::ipld_to_json(v).to_string());
    let joined = |name: &str| match field(name) {
        Some(Ipld::List(items)) => Some(
            items
                .iter()
                .filter_map(|i| text(Some(i)))
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    };
    let strong_ref = |which: &str| {
        let Some(Ipld::Map(reply)) = field("reply") else {
            return None;
        };
        let Some(Ipld::Map(reference)) = reply.get(which) else {
            return None;
        };
        Some((text(reference.get("uri"))?, text(reference.get("cid"))?))
    };
    let (reply_root, reply_root_cid) = strong_ref("root").unzip();
    let (reply_parent, reply_parent_cid) = strong_ref("parent").unzip();
    PostRow {
        uri,
        cid,
        rkey: rkey.to_string(),
        creator: did.to_string(),
        text: text(field("text")).unwrap_or_default(),
        reply_root,
        reply_root_cid,
        reply_parent,
        reply_parent_cid,
        embed: json("embed"),
        facets: json("facets"),
        labels: json("labels"),
        langs: joined("langs"),
        tags: joined("tags"),
        created_at: text(field("createdAt")).unwrap_or_else(|| time.to_string()),
        indexed_at: time.to_string(),
    }
}
