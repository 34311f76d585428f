//! The AppView views: the table contract of spec §10.1 (`stratos_post`, `stratos_post_boundary`,
//! `stratos_enrollment`, `stratos_sync_cursor`), in a database of their own or beside the repo
//! projection (`migrations/appview-postgres`, `migrations/appview-sqlite`). A Postgres schema is
//! chosen with the URL, e.g. `postgres://…/db?options=-c%20search_path%3Dappview`.

use sqlx::{QueryBuilder, Row};

use crate::digest::{Table, digest_tables};
use crate::store::{Pool, ROWS_PER_STATEMENT, StoreError, StoreTx, column, on, on_tx, sql};

/// The written columns of `stratos_post` (all but the generated `"sortAt"`), as in
/// `stratos_post_withdrawn`.
macro_rules! post_columns {
    () => {
        "uri, cid, rkey, creator, text, \"replyRoot\", \"replyRootCid\", \"replyParent\", \
         \"replyParentCid\", embed, facets, labels, langs, tags, \"createdAt\", \"indexedAt\""
    };
}

/// The head of an insert into `stratos_post` (its rows follow: a `VALUES` list or arrays).
macro_rules! insert_posts {
    () => {
        concat!("INSERT INTO stratos_post (", post_columns!(), ") ")
    };
}

/// Removes an actor from the views: its posts, their boundary rows and its enrollment row (the
/// actor is each statement's one parameter).
const DELETE_ACTOR: &[&str] = &[
    "DELETE FROM stratos_post_boundary WHERE uri IN (SELECT uri FROM stratos_post WHERE creator = ?)",
    "DELETE FROM stratos_post WHERE creator = ?",
    "DELETE FROM stratos_enrollment WHERE did = ?",
];

/// Removes an actor's withdrawn posts and their boundary rows (the actor is each statement's
/// one parameter).
const DELETE_WITHDRAWN: &[&str] = &[
    "DELETE FROM stratos_post_boundary_withdrawn WHERE uri IN \
     (SELECT uri FROM stratos_post_withdrawn WHERE creator = ?)",
    "DELETE FROM stratos_post_withdrawn WHERE creator = ?",
];

/// The end of that insert: a post already there is replaced.
macro_rules! posts_on_conflict {
    () => {
        " ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, rkey = excluded.rkey, \
         creator = excluded.creator, text = excluded.text, \"replyRoot\" = excluded.\"replyRoot\", \
         \"replyRootCid\" = excluded.\"replyRootCid\", \"replyParent\" = excluded.\"replyParent\", \
         \"replyParentCid\" = excluded.\"replyParentCid\", embed = excluded.embed, \
         facets = excluded.facets, labels = excluded.labels, langs = excluded.langs, \
         tags = excluded.tags, \"createdAt\" = excluded.\"createdAt\", \
         \"indexedAt\" = excluded.\"indexedAt\""
    };
}

/// The head of an insert into `stratos_post_boundary`.
macro_rules! insert_boundaries {
    () => {
        "INSERT INTO stratos_post_boundary (uri, boundary, \"sortAt\") "
    };
}

/// The end of that insert: a row already there stays.
macro_rules! boundaries_on_conflict {
    () => {
        " ON CONFLICT (uri, boundary) DO NOTHING"
    };
}

/// One `stratos_post` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PostRow {
    /// `at://{did}/zone.stratos.feed.post/{rkey}`.
    pub uri: String,
    /// The record CID.
    pub cid: String,
    /// The record key.
    pub rkey: String,
    /// The author's DID.
    pub creator: String,
    /// The post text (empty when absent).
    pub text: String,
    /// `reply.root.uri`.
    #[sqlx(rename = "replyRoot")]
    pub reply_root: Option<String>,
    /// `reply.root.cid`.
    #[sqlx(rename = "replyRootCid")]
    pub reply_root_cid: Option<String>,
    /// `reply.parent.uri`.
    #[sqlx(rename = "replyParent")]
    pub reply_parent: Option<String>,
    /// `reply.parent.cid`.
    #[sqlx(rename = "replyParentCid")]
    pub reply_parent_cid: Option<String>,
    /// `embed` as JSON text.
    pub embed: Option<String>,
    /// `facets` as JSON text.
    pub facets: Option<String>,
    /// `labels` as JSON text.
    pub labels: Option<String>,
    /// `langs`, comma-joined.
    pub langs: Option<String>,
    /// `tags`, comma-joined.
    pub tags: Option<String>,
    /// The record's `createdAt` (or the event time when missing).
    #[sqlx(rename = "createdAt")]
    pub created_at: String,
    /// When the post was indexed: the event time, so a replay reproduces it.
    #[sqlx(rename = "indexedAt")]
    pub indexed_at: String,
}

/// One `stratos_enrollment` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRow {
    /// The actor.
    pub did: String,
    /// The Stratos service URL.
    pub service_url: Option<String>,
    /// When the actor enrolled.
    pub enrolled_at: Option<String>,
    /// The actor's qualified boundaries.
    pub boundaries: Vec<String>,
}

/// The columns of `stratos_post` (and of `stratos_post_withdrawn`) in a digest.
const POST_DIGEST_COLUMNS: &[(&str, bool)] = &[
    ("uri", false),
    ("cid", false),
    ("rkey", false),
    ("creator", false),
    ("text", false),
    ("\"replyRoot\"", false),
    ("\"replyRootCid\"", false),
    ("\"replyParent\"", false),
    ("\"replyParentCid\"", false),
    ("embed", false),
    ("facets", false),
    ("labels", false),
    ("langs", false),
    ("tags", false),
    ("\"createdAt\"", false),
    ("\"indexedAt\"", false),
];

/// The columns of `stratos_post_boundary` (and of its withdrawn twin) in a digest.
const BOUNDARY_DIGEST_COLUMNS: &[(&str, bool)] =
    &[("uri", false), ("boundary", false), ("\"sortAt\"", false)];

/// The views' tables for [`Views::digest`], columns in key order (quoted names as in SQL).
const VIEW_TABLES: &[Table] = &[
    Table {
        name: "stratos_post",
        columns: POST_DIGEST_COLUMNS,
        order: "uri",
    },
    Table {
        name: "stratos_post_boundary",
        columns: BOUNDARY_DIGEST_COLUMNS,
        order: "uri, boundary",
    },
    Table {
        name: "stratos_post_withdrawn",
        columns: POST_DIGEST_COLUMNS,
        order: "uri",
    },
    Table {
        name: "stratos_post_boundary_withdrawn",
        columns: BOUNDARY_DIGEST_COLUMNS,
        order: "uri, boundary",
    },
    Table {
        name: "stratos_enrollment",
        columns: &[
            ("did", false),
            ("\"serviceUrl\"", false),
            ("\"enrolledAt\"", false),
            ("boundaries", false),
        ],
        order: "did",
    },
];

/// A `stratos_enrollment` row as the database returns it.
type StoredEnrollmentRow = (String, Option<String>, Option<String>, Option<String>);

/// Where the AppView views live when no database is named for them: with the projections on
/// Postgres (or an in-memory SQLite database); beside a SQLite projections file, in a file of
/// their own named after it (`data/stratos.sqlite` → `data/stratos-views.sqlite`), so that the
/// repo and AppView projectors do not take turns at one file's write lock.
pub fn default_views_url(database_url: &str) -> String {
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return database_url.to_string();
    };
    if rest.starts_with(":memory:") {
        return database_url.to_string();
    }
    let (prefix, rest) = match rest.strip_prefix("//") {
        Some(rest) => ("sqlite://", rest),
        None => ("sqlite:", rest),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = std::path::Path::new(path);
    let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
        return database_url.to_string();
    };
    let name = match path.extension().and_then(|extension| extension.to_str()) {
        Some(extension) => format!("{stem}-views.{extension}"),
        None => format!("{stem}-views"),
    };
    let views = path.with_file_name(name);
    let query = query.map(|query| format!("?{query}")).unwrap_or_default();
    format!("{prefix}{}{query}", views.display())
}

/// The AppView views' database.
#[derive(Clone)]
pub struct Views {
    pub(crate) pool: Pool,
}

/// A transaction on the views: rows and the projector's position become visible together.
pub struct ViewsTx(pub(crate) StoreTx);

impl Views {
    /// Connects to `postgres://…` or `sqlite://path` and runs the views' migrations (they share
    /// the migration table with the repo projection when both live in one database).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = crate::store::open_pool(url).await?;
        crate::migrations::run(&pool, crate::Schema::Views).await?;
        Ok(Self { pool })
    }

    /// Closes every connection (waiting for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn backend(&self) -> crate::Backend {
        self.pool.backend()
    }

    /// Where the AppView projector will read next in `partition`.
    pub async fn position(&self, partition: u32) -> Result<Option<u64>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT next_offset FROM stratos_view_position WHERE partition_id = ?",
        );
        let offset: Option<i64> = on!(&self.pool, db => {
            sqlx::query(query)
                .bind(partition as i32)
                .fetch_optional(db)
                .await?
                .map(|row| row.get(0))
        });
        Ok(offset.map(|o| o as u64))
    }

    /// A post by URI.
    pub async fn post(&self, uri: &str) -> Result<Option<PostRow>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT uri, cid, rkey, creator, text, \"replyRoot\", \"replyRootCid\", \
             \"replyParent\", \"replyParentCid\", embed, facets, labels, langs, tags, \
             \"createdAt\", \"indexedAt\" FROM stratos_post WHERE uri = ?",
        );
        Ok(on!(&self.pool, db => sqlx::query_as(query).bind(uri).fetch_optional(db).await?))
    }

    /// The URIs of an author's posts, newest first.
    pub async fn post_uris_by(&self, creator: &str) -> Result<Vec<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT uri FROM stratos_post WHERE creator = ? ORDER BY \"sortAt\" DESC, uri",
        );
        Ok(on!(&self.pool, db => {
            sqlx::query_scalar(query).bind(creator).fetch_all(db).await?
        }))
    }

    /// A post's boundaries, sorted.
    pub async fn post_boundaries(&self, uri: &str) -> Result<Vec<String>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT boundary FROM stratos_post_boundary WHERE uri = ? ORDER BY boundary",
        );
        Ok(on!(&self.pool, db => sqlx::query_scalar(query).bind(uri).fetch_all(db).await?))
    }

    /// An actor's enrollment row.
    pub async fn enrollment(&self, did: &str) -> Result<Option<EnrollmentRow>, StoreError> {
        let query = sql(
            self.backend(),
            "SELECT did, \"serviceUrl\", \"enrolledAt\", boundaries FROM stratos_enrollment \
             WHERE did = ?",
        );
        let row: Option<StoredEnrollmentRow> =
            on!(&self.pool, db => sqlx::query_as(query).bind(did).fetch_optional(db).await?);
        Ok(row.map(
            |(did, service_url, enrolled_at, boundaries)| EnrollmentRow {
                did,
                service_url,
                enrolled_at,
                boundaries: boundaries
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .unwrap_or_default(),
            },
        ))
    }

    /// Reclaims dead rows and refreshes the planner's statistics of the post tables, as
    /// autovacuum does on a live database (`VACUUM (ANALYZE)` on Postgres, `ANALYZE` on SQLite).
    pub async fn vacuum(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query("VACUUM (ANALYZE) stratos_post, stratos_post_boundary")
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool, ..) => {
                sqlx::query("ANALYZE").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// SHA-256 over every post, boundary and enrollment row in key order, as lowercase hex.
    pub async fn digest(&self) -> Result<String, StoreError> {
        digest_tables(&self.pool, VIEW_TABLES).await
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<ViewsTx, StoreError> {
        Ok(ViewsTx(crate::store::begin_on(&self.pool).await?))
    }
}

impl ViewsTx {
    /// Inserts or replaces a post and replaces its boundary rows.
    pub async fn upsert_post(
        &mut self,
        post: &PostRow,
        boundaries: &[String],
    ) -> Result<(), StoreError> {
        self.upsert_posts(&[(post, boundaries)]).await
    }

    /// Inserts or replaces posts and replaces their boundary rows, a few statements for the
    /// whole slice (on Postgres three, one array per column); of two entries for one URI the
    /// later wins.
    pub async fn upsert_posts(
        &mut self,
        posts: &[(&PostRow, &[String])],
    ) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut latest: Vec<(&PostRow, &[String])> = posts
            .iter()
            .rev()
            .filter(|(post, _)| seen.insert(post.uri.as_str()))
            .copied()
            .collect();
        latest.reverse();
        let tx = match &mut self.0 {
            StoreTx::Postgres(tx) => return upsert_posts_postgres(tx, &latest).await,
            StoreTx::Sqlite(tx, _) => tx,
        };
        for chunk in latest.chunks(ROWS_PER_STATEMENT) {
            let mut upsert = QueryBuilder::new(insert_posts!());
            upsert.push_values(chunk, |mut row, (post, _)| {
                row.push_bind(&post.uri)
                    .push_bind(&post.cid)
                    .push_bind(&post.rkey)
                    .push_bind(&post.creator)
                    .push_bind(&post.text)
                    .push_bind(&post.reply_root)
                    .push_bind(&post.reply_root_cid)
                    .push_bind(&post.reply_parent)
                    .push_bind(&post.reply_parent_cid)
                    .push_bind(&post.embed)
                    .push_bind(&post.facets)
                    .push_bind(&post.labels)
                    .push_bind(&post.langs)
                    .push_bind(&post.tags)
                    .push_bind(&post.created_at)
                    .push_bind(&post.indexed_at);
            });
            upsert.push(posts_on_conflict!());
            upsert.build().execute(&mut **tx).await?;
            let mut clear = QueryBuilder::new("DELETE FROM stratos_post_boundary WHERE uri IN (");
            let mut uris = clear.separated(", ");
            for (post, _) in chunk {
                uris.push_bind(&post.uri);
            }
            clear.push(")");
            clear.build().execute(&mut **tx).await?;
            let rows = boundary_rows(chunk);
            for rows in rows.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(insert_boundaries!());
                insert.push_values(rows, |mut row, (uri, boundary, sort_at)| {
                    row.push_bind(*uri).push_bind(*boundary).push_bind(*sort_at);
                });
                insert.push(boundaries_on_conflict!());
                insert.build().execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// Removes a post and its boundary rows.
    pub async fn delete_post(&mut self, uri: &str) -> Result<(), StoreError> {
        let backend = self.0.backend();
        on_tx!(&mut self.0, tx => {
            sqlx::query(sql(backend, "DELETE FROM stratos_post_boundary WHERE uri = ?"))
                .bind(uri)
                .execute(&mut **tx)
                .await?;
            sqlx::query(sql(backend, "DELETE FROM stratos_post WHERE uri = ?"))
                .bind(uri)
                .execute(&mut **tx)
                .await?;
        });
        Ok(())
    }

    /// Inserts or updates an enrollment row; `None` fields keep their stored values.
    pub async fn upsert_enrollment(&mut self, row: &EnrollmentRow) -> Result<(), StoreError> {
        let backend = self.0.backend();
        let boundaries = serde_json::to_string(&row.boundaries)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_tx!(&mut self.0, tx => {
            sqlx::query(sql(
                backend,
                "INSERT INTO stratos_enrollment (did, \"serviceUrl\", \"enrolledAt\", boundaries) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (did) DO UPDATE SET \
                 \"serviceUrl\" = COALESCE(excluded.\"serviceUrl\", stratos_enrollment.\"serviceUrl\"), \
                 \"enrolledAt\" = COALESCE(excluded.\"enrolledAt\", stratos_enrollment.\"enrolledAt\"), \
                 boundaries = excluded.boundaries",
            ))
            .bind(&row.did)
            .bind(&row.service_url)
            .bind(&row.enrolled_at)
            .bind(boundaries)
            .execute(&mut **tx)
            .await?;
        });
        Ok(())
    }

    /// Removes an actor's enrollment row and every one of its posts with their boundary rows,
    /// withdrawn ones included.
    pub async fn remove_actor(&mut self, did: &str) -> Result<(), StoreError> {
        self.run_for_actor(did, DELETE_WITHDRAWN).await?;
        self.run_for_actor(did, DELETE_ACTOR).await
    }

    /// Removes an actor's enrollment row and withdraws its posts from the views
    /// (`stratos_post_withdrawn`, `stratos_post_boundary_withdrawn`) until
    /// [`ViewsTx::restore_posts`] brings them back.
    pub async fn withdraw_actor(&mut self, did: &str) -> Result<(), StoreError> {
        self.run_for_actor(
            did,
            &[
                concat!(
                    "INSERT INTO stratos_post_withdrawn (",
                    post_columns!(),
                    ") SELECT ",
                    post_columns!(),
                    " FROM stratos_post WHERE creator = ? ON CONFLICT (uri) DO NOTHING"
                ),
                "INSERT INTO stratos_post_boundary_withdrawn (uri, boundary, \"sortAt\") \
                 SELECT uri, boundary, \"sortAt\" FROM stratos_post_boundary WHERE uri IN \
                 (SELECT uri FROM stratos_post WHERE creator = ?) \
                 ON CONFLICT (uri, boundary) DO NOTHING",
            ],
        )
        .await?;
        self.run_for_actor(did, DELETE_ACTOR).await
    }

    /// Brings back the posts withdrawn when the actor left (none if it never did).
    pub async fn restore_posts(&mut self, did: &str) -> Result<(), StoreError> {
        self.run_for_actor(
            did,
            &[
                concat!(
                    insert_posts!(),
                    "SELECT ",
                    post_columns!(),
                    " FROM stratos_post_withdrawn WHERE creator = ? ON CONFLICT (uri) DO NOTHING"
                ),
                concat!(
                    insert_boundaries!(),
                    "SELECT uri, boundary, \"sortAt\" FROM stratos_post_boundary_withdrawn \
                     WHERE uri IN (SELECT uri FROM stratos_post_withdrawn WHERE creator = ?)",
                    boundaries_on_conflict!()
                ),
            ],
        )
        .await?;
        self.run_for_actor(did, DELETE_WITHDRAWN).await
    }

    /// Runs each statement with `did` as its one parameter.
    async fn run_for_actor(
        &mut self,
        did: &str,
        statements: &[&'static str],
    ) -> Result<(), StoreError> {
        let backend = self.0.backend();
        for statement in statements {
            on_tx!(&mut self.0, tx => {
                sqlx::query(sql(backend, statement))
                    .bind(did)
                    .execute(&mut **tx)
                    .await?;
            });
        }
        Ok(())
    }

    /// Records that the AppView projector will next read `next_offset` of `partition`.
    pub async fn set_position(
        &mut self,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), StoreError> {
        self.set_positions(&[(partition, next_offset)]).await
    }

    /// Records where the AppView projector will next read in each `(partition, next_offset)`,
    /// in one statement.
    pub async fn set_positions(&mut self, positions: &[(u32, u64)]) -> Result<(), StoreError> {
        for chunk in positions.chunks(ROWS_PER_STATEMENT) {
            on_tx!(&mut self.0, tx => {
                let mut query =
                    QueryBuilder::new("INSERT INTO stratos_view_position (partition_id, next_offset) ");
                query.push_values(chunk, |mut row, (partition, next_offset)| {
                    row.push_bind(*partition as i32).push_bind(*next_offset as i64);
                });
                query.push(
                    " ON CONFLICT (partition_id) DO UPDATE SET next_offset = excluded.next_offset",
                );
                query.build().execute(&mut **tx).await?;
            });
        }
        Ok(())
    }

    /// Makes everything written visible.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await
    }
}

/// The `stratos_post_boundary` rows of `posts`: URI, boundary, the post's `sortAt`.
fn boundary_rows<'a>(posts: &[(&'a PostRow, &'a [String])]) -> Vec<(&'a str, &'a str, &'a str)> {
    posts
        .iter()
        .flat_map(|(post, boundaries)| {
            let sort_at = std::cmp::min(&post.created_at, &post.indexed_at);
            boundaries
                .iter()
                .map(move |b| (post.uri.as_str(), b.as_str(), sort_at.as_str()))
        })
        .collect()
}

/// [`ViewsTx::upsert_posts`] on Postgres: three statements whatever the number of posts, one
/// array per column (so each is prepared once), for posts with distinct URIs.
async fn upsert_posts_postgres(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    posts: &[(&PostRow, &[String])],
) -> Result<(), StoreError> {
    if posts.is_empty() {
        return Ok(());
    }
    let text = |field: fn(&PostRow) -> &str| -> Vec<&str> {
        posts.iter().map(|(post, _)| field(post)).collect()
    };
    let optional = |field: fn(&PostRow) -> Option<&str>| -> Vec<Option<&str>> {
        posts.iter().map(|(post, _)| field(post)).collect()
    };
    let upsert = concat!(
        insert_posts!(),
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
         $13::text[], $14::text[], $15::text[], $16::text[])",
        posts_on_conflict!()
    );
    let uris = text(|post| &post.uri);
    sqlx::query(upsert)
        .bind(&uris)
        .bind(text(|post| &post.cid))
        .bind(text(|post| &post.rkey))
        .bind(text(|post| &post.creator))
        .bind(text(|post| &post.text))
        .bind(optional(|post| post.reply_root.as_deref()))
        .bind(optional(|post| post.reply_root_cid.as_deref()))
        .bind(optional(|post| post.reply_parent.as_deref()))
        .bind(optional(|post| post.reply_parent_cid.as_deref()))
        .bind(optional(|post| post.embed.as_deref()))
        .bind(optional(|post| post.facets.as_deref()))
        .bind(optional(|post| post.labels.as_deref()))
        .bind(optional(|post| post.langs.as_deref()))
        .bind(optional(|post| post.tags.as_deref()))
        .bind(text(|post| &post.created_at))
        .bind(text(|post| &post.indexed_at))
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM stratos_post_boundary WHERE uri = ANY($1::text[])")
        .bind(&uris)
        .execute(&mut **tx)
        .await?;
    let rows = boundary_rows(posts);
    sqlx::query(concat!(
        insert_boundaries!(),
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        boundaries_on_conflict!()
    ))
    .bind(column(&rows, |(uri, _, _)| *uri))
    .bind(column(&rows, |(_, boundary, _)| *boundary))
    .bind(column(&rows, |(_, _, sort_at)| *sort_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_views_url;

    #[test]
    fn views_default_to_a_file_beside_a_sqlite_projection() {
        for (projections, views) in [
            (
                "sqlite://data/stratos.sqlite",
                "sqlite://data/stratos-views.sqlite",
            ),
            (
                "sqlite:///var/lib/stratos/db?mode=rwc",
                "sqlite:///var/lib/stratos/db-views?mode=rwc",
            ),
            ("sqlite:stratos.db", "sqlite:stratos-views.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            (
                "postgres://stratos@db/stratos",
                "postgres://stratos@db/stratos",
            ),
        ] {
            assert_eq!(default_views_url(projections), views, "{projections}");
        }
    }
}
