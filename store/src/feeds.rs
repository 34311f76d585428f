//! Feed pages over the AppView views: newest first by `("sortAt", uri)`, one keyset page at a
//! time. A viewer's timeline merges one ordered index range per boundary (and one of the
//! viewer's own posts) in a single statement that stops once the page is full, so its cost
//! follows the page size, not the number of posts (on Postgres, which merges the ordered
//! ranges, hardly the number of boundaries either).

use sqlx::QueryBuilder;

use crate::store::{StoreError, on};
use crate::views::{PostRow, Views};

/// Where a feed page starts: strictly older than this post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor {
    /// The `sortAt` of the last post of the previous page.
    pub sort_at: String,
    /// Its URI (the tie-break).
    pub uri: String,
}

impl FeedCursor {
    /// `<sortAt>::<uri>`, the cursor clients send back.
    pub fn encode(&self) -> String {
        format!("{}::{}", self.sort_at, self.uri)
    }

    /// Parses [`FeedCursor::encode`]'s form.
    pub fn decode(text: &str) -> Option<Self> {
        let (sort_at, uri) = text.split_once("::")?;
        (!sort_at.is_empty() && uri.starts_with("at://")).then(|| Self {
            sort_at: sort_at.to_string(),
            uri: uri.to_string(),
        })
    }
}

/// One post of a feed page: its URI and ordering key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FeedItem {
    /// The post.
    pub uri: String,
    /// Its `sortAt`.
    #[sqlx(rename = "s")]
    pub sort_at: String,
}

impl FeedItem {
    /// The cursor that continues after this post.
    pub fn cursor(&self) -> FeedCursor {
        FeedCursor {
            sort_at: self.sort_at.clone(),
            uri: self.uri.clone(),
        }
    }
}

/// The most boundaries one timeline query merges.
pub const MAX_TIMELINE_BOUNDARIES: usize = 256;

/// Appends ` AND ("sortAt", uri) < (cursor)` written portably.
fn push_before<DB: sqlx::Database>(query: &mut QueryBuilder<DB>, cursor: Option<&FeedCursor>)
where
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(cursor) = cursor {
        query
            .push(" AND (\"sortAt\" < ")
            .push_bind(cursor.sort_at.clone())
            .push(" OR (\"sortAt\" = ")
            .push_bind(cursor.sort_at.clone())
            .push(" AND uri < ")
            .push_bind(cursor.uri.clone())
            .push("))");
    }
}

impl Views {
    /// A page of the posts in any of `boundaries` or written by `viewer`, newest first.
    ///
    /// The statement merges the already ordered index ranges (at most `limit` rows of each: a
    /// range holds a post once) and stops after `fetch` rows; a post in several of the viewer's
    /// boundaries comes once per boundary and is kept once, so when duplicates leave the page
    /// short the statement runs again with a larger `fetch`.
    pub async fn timeline_page(
        &self,
        viewer: Option<&str>,
        boundaries: &[String],
        before: Option<&FeedCursor>,
        limit: u32,
    ) -> Result<Vec<FeedItem>, StoreError> {
        let boundaries = &boundaries[..boundaries.len().min(MAX_TIMELINE_BOUNDARIES)];
        let ranges = boundaries.len() + usize::from(viewer.is_some());
        let limit = limit as usize;
        if ranges == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let enough = limit * ranges;
        let mut fetch = (limit + limit / 4 + 1).min(enough);
        loop {
            let rows = self
                .merged_ranges(viewer, boundaries, before, fetch.min(limit), fetch)
                .await?;
            let exhausted = rows.len() < fetch || fetch == enough;
            let mut seen = std::collections::HashSet::new();
            let page: Vec<FeedItem> = rows
                .into_iter()
                .filter(|item| seen.insert(item.uri.clone()))
                .take(limit)
                .collect();
            if page.len() == limit || exhausted {
                return Ok(page);
            }
            fetch = (fetch * 2).min(enough);
        }
    }

    /// The first `fetch` rows, newest first, of the first `per_range` rows of each boundary
    /// range and of the viewer's own posts, duplicates included.
    async fn merged_ranges(
        &self,
        viewer: Option<&str>,
        boundaries: &[String],
        before: Option<&FeedCursor>,
        per_range: usize,
        fetch: usize,
    ) -> Result<Vec<FeedItem>, StoreError> {
        let (per_range, fetch) = (per_range as i64, fetch as i64);
        Ok(on!(&self.pool, db => {
            let mut query = QueryBuilder::new("SELECT uri, s FROM (");
            let mut first = true;
            for (index, boundary) in boundaries.iter().enumerate() {
                if !first {
                    query.push(" UNION ALL ");
                }
                first = false;
                query
                    .push("SELECT * FROM (SELECT uri, \"sortAt\" AS s FROM stratos_post_boundary WHERE boundary = ")
                    .push_bind(boundary.clone());
                push_before(&mut query, before);
                query
                    .push(" ORDER BY \"sortAt\" DESC, uri DESC LIMIT ")
                    .push_bind(per_range)
                    .push(format!(") AS b{index}"));
            }
            if let Some(viewer) = viewer {
                if !first {
                    query.push(" UNION ALL ");
                }
                query
                    .push("SELECT * FROM (SELECT uri, \"sortAt\" AS s FROM stratos_post WHERE creator = ")
                    .push_bind(viewer.to_string());
                push_before(&mut query, before);
                query
                    .push(" ORDER BY \"sortAt\" DESC, uri DESC LIMIT ")
                    .push_bind(per_range)
                    .push(") AS own");
            }
            query
                .push(") AS merged ORDER BY s DESC, uri DESC LIMIT ")
                .push_bind(fetch);
            query.build_query_as::<FeedItem>().fetch_all(db).await?
        }))
    }

    /// A page of `author`'s posts, newest first: all of them, or with `boundaries`, those in
    /// at least one of them.
    pub async fn author_page(
        &self,
        author: &str,
        boundaries: Option<&[String]>,
        before: Option<&FeedCursor>,
        limit: u32,
    ) -> Result<Vec<FeedItem>, StoreError> {
        if boundaries.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        Ok(on!(&self.pool, db => {
            let mut query =
                QueryBuilder::new("SELECT uri, \"sortAt\" AS s FROM stratos_post p WHERE creator = ");
            query.push_bind(author.to_string());
            if let Some(boundaries) = boundaries {
                query.push(
                    " AND EXISTS (SELECT 1 FROM stratos_post_boundary b WHERE b.uri = p.uri \
                     AND b.boundary IN (",
                );
                let mut separated = query.separated(", ");
                for boundary in boundaries {
                    separated.push_bind(boundary.clone());
                }
                query.push("))");
            }
            push_before(&mut query, before);
            query
                .push(" ORDER BY \"sortAt\" DESC, uri DESC LIMIT ")
                .push_bind(i64::from(limit));
            query.build_query_as::<FeedItem>().fetch_all(db).await?
        }))
    }

    /// The posts with these URIs that exist, in no set order.
    pub async fn posts(&self, uris: &[String]) -> Result<Vec<PostRow>, StoreError> {
        if uris.is_empty() {
            return Ok(Vec::new());
        }
        Ok(on!(&self.pool, db => {
            let mut query = QueryBuilder::new(
                "SELECT uri, cid, rkey, creator, text, \"replyRoot\", \"replyRootCid\", \
                 \"replyParent\", \"replyParentCid\", embed, facets, labels, langs, tags, \
                 \"createdAt\", \"indexedAt\" FROM stratos_post WHERE uri IN (",
            );
            let mut separated = query.separated(", ");
            for uri in uris {
                separated.push_bind(uri.clone());
            }
            query.push(")");
            query.build_query_as::<PostRow>().fetch_all(db).await?
        }))
    }
}
