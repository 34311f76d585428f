//! `zone.stratos.feed.getTimeline`, `getAuthorFeed` and `getPosts`: boundary-filtered post
//! feeds for clients and AppViews. Pages come from the AppView views' per-boundary indexes
//! (newest first, keyset cursors); the posts themselves come from the repo projection and
//! pass the access rule again.

use std::collections::HashMap;

use serde_json::{Value, json};
use stratos_schema::syntax::Did;
use stratos_store::{FeedCursor, FeedItem, Views};
use stratos_xrpc::XrpcError;
use warp::http::StatusCode;

use crate::Queries;
use crate::hydrate::Hydrated;
use crate::viewer::{Viewer, internal};

/// The largest feed page.
pub const MAX_FEED_LIMIT: u32 = 100;
/// The feed page size when none is asked for.
pub const DEFAULT_FEED_LIMIT: u32 = 50;
/// The most URIs one `getPosts` call takes.
pub const MAX_GET_POSTS: usize = 100;

/// A parsed feed cursor parameter.
pub fn cursor_param(value: Option<&str>) -> Result<Option<FeedCursor>, XrpcError> {
    value
        .map(|text| {
            FeedCursor::decode(text).ok_or_else(|| XrpcError::invalid_request("malformed cursor"))
        })
        .transpose()
}

fn need_viewer(viewer: &Viewer) -> Result<(&str, &[String]), XrpcError> {
    match viewer {
        Viewer::Actor { did, boundaries } => Ok((did, boundaries)),
        Viewer::Service => Err(XrpcError::invalid_request(
            "a service must name the viewer it reads for (viewer)",
        )),
        Viewer::Anonymous => Err(XrpcError::auth_required("Authentication required")),
    }
}

impl Queries {
    fn feed_views(&self) -> Result<&Views, XrpcError> {
        self.views().ok_or_else(|| {
            XrpcError::new(
                StatusCode::NOT_IMPLEMENTED,
                "MethodNotImplemented",
                "feeds need the AppView views, which this service is not connected to",
            )
        })
    }

    /// `zone.stratos.feed.getTimeline`: the posts the viewer may see, newest first; with
    /// `boundary`, only that one of the viewer's boundaries.
    pub async fn timeline(
        &self,
        viewer: &Viewer,
        boundary: Option<&str>,
        limit: u32,
        cursor: Option<&FeedCursor>,
    ) -> Result<Value, XrpcError> {
        let (did, boundaries) = need_viewer(viewer)?;
        let views = self.feed_views()?;
        let page = match boundary {
            None => {
                views
                    .timeline_page(Some(did), boundaries, cursor, limit)
                    .await
            }
            Some(boundary) => {
                let held: Vec<String> = boundaries
                    .iter()
                    .filter(|b| *b == boundary)
                    .cloned()
                    .collect();
                views.timeline_page(None, &held, cursor, limit).await
            }
        }
        .map_err(internal)?;
        self.feed(viewer, page, limit).await
    }

    /// `zone.stratos.feed.getAuthorFeed`: an author's posts the viewer may see; with
    /// `boundary`, only those in it.
    pub async fn author_feed(
        &self,
        viewer: &Viewer,
        author: &Did,
        boundary: Option<&str>,
        limit: u32,
        cursor: Option<&FeedCursor>,
    ) -> Result<Value, XrpcError> {
        let sees_all = match viewer {
            Viewer::Service => true,
            Viewer::Actor { did, .. } => did == author.as_str(),
            Viewer::Anonymous => return Err(XrpcError::auth_required("Authentication required")),
        };
        let held: Vec<String> = match viewer {
            Viewer::Actor { boundaries, .. } => boundaries
                .iter()
                .filter(|b| boundary.is_none_or(|wanted| *b == wanted))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let only: Vec<String> = boundary.map(str::to_string).into_iter().collect();
        let filter = match (sees_all, boundary) {
            (true, None) => None,
            (true, Some(_)) => Some(only.as_slice()),
            (false, _) => Some(held.as_slice()),
        };
        let page = self
            .feed_views()?
            .author_page(author.as_str(), filter, cursor, limit)
            .await
            .map_err(internal)?;
        self.feed(viewer, page, limit).await
    }

    /// `zone.stratos.feed.getPosts`: posts by URI; those the viewer may not see are left out.
    pub async fn get_posts(&self, viewer: &Viewer, uris: &[String]) -> Result<Value, XrpcError> {
        if *viewer == Viewer::Anonymous {
            return Err(XrpcError::auth_required("Authentication required"));
        }
        if uris.len() > MAX_GET_POSTS {
            return Err(XrpcError::invalid_request(format!(
                "at most {MAX_GET_POSTS} uris"
            )));
        }
        let posts = self.post_views(viewer, uris).await?;
        Ok(json!({"posts": posts}))
    }

    async fn feed(
        &self,
        viewer: &Viewer,
        page: Vec<FeedItem>,
        limit: u32,
    ) -> Result<Value, XrpcError> {
        let cursor = match page.len() == limit as usize {
            true => page.last().map(|item| item.cursor().encode()),
            false => None,
        };
        let uris: Vec<String> = page.into_iter().map(|item| item.uri).collect();
        let posts = self.post_views(viewer, &uris).await?;
        let mut output = json!({
            "feed": posts.into_iter().map(|post| json!({"post": post})).collect::<Vec<_>>(),
        });
        if let Some(cursor) = cursor {
            output["cursor"] = json!(cursor);
        }
        Ok(output)
    }

    /// Post views of `uris` in order, leaving out what is gone or hidden from the viewer.
    async fn post_views(&self, viewer: &Viewer, uris: &[String]) -> Result<Vec<Value>, XrpcError> {
        let rows = self.feed_views()?.posts(uris).await.map_err(internal)?;
        let indexed: HashMap<String, String> = rows
            .into_iter()
            .map(|row| (row.uri, row.indexed_at))
            .collect();
        let wanted: Vec<(String, Option<String>)> =
            uris.iter().map(|uri| (uri.clone(), None)).collect();
        let hydrated = self.hydrate(viewer, &wanted).await?;
        Ok(uris
            .iter()
            .zip(hydrated)
            .filter_map(|(uri, result)| match result {
                Hydrated::Record(view) => Some(post_view(uri, view, indexed.get(uri))),
                _ => None,
            })
            .collect())
    }
}

/// `{"uri", "cid", "author": {"did"}, "record", "boundaries", "indexedAt"}`.
fn post_view(uri: &str, view: Value, indexed_at: Option<&String>) -> Value {
    let author = uri
        .strip_prefix("at://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let boundaries: Vec<Value> = view["value"]["boundary"]["values"]
        .as_array()
        .map(|values| values.iter().map(|v| v["value"].clone()).collect())
        .unwrap_or_default();
    json!({
        "uri": uri,
        "cid": view["cid"],
        "author": {"did": author},
        "record": view["value"],
        "boundaries": boundaries,
        "indexedAt": indexed_at,
    })
}
