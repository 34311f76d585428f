-- The AppView table contract (spec §10.1), written by the AppView projector. Version numbers of
-- this folder start at 1001 so the views can share a database with the repo projection.
CREATE TABLE stratos_post (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL DEFAULT '',
    rkey TEXT NOT NULL DEFAULT '',
    creator TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    "replyRoot" TEXT,
    "replyRootCid" TEXT,
    "replyParent" TEXT,
    "replyParentCid" TEXT,
    embed TEXT,
    facets TEXT,
    labels TEXT,
    langs TEXT,
    tags TEXT,
    "createdAt" TEXT NOT NULL,
    "indexedAt" TEXT NOT NULL,
    "sortAt" TEXT GENERATED ALWAYS AS (LEAST("createdAt", "indexedAt")) STORED
);
CREATE INDEX stratos_post_sort_at_idx ON stratos_post ("sortAt" DESC);
CREATE INDEX stratos_post_creator_sort_at_idx ON stratos_post (creator, "sortAt" DESC);

-- One row per post and boundary. "sortAt" (nullable, beside the contract's two columns) copies
-- the post's so a viewer's timeline can merge per-boundary ordered index scans.
CREATE TABLE stratos_post_boundary (
    uri TEXT NOT NULL,
    boundary TEXT NOT NULL,
    "sortAt" TEXT,
    PRIMARY KEY (uri, boundary)
);
CREATE INDEX stratos_post_boundary_idx ON stratos_post_boundary (boundary, uri);
CREATE INDEX stratos_post_boundary_sort_at_idx ON stratos_post_boundary (boundary, "sortAt" DESC);

CREATE TABLE stratos_enrollment (
    did TEXT PRIMARY KEY,
    "serviceUrl" TEXT,
    "enrolledAt" TEXT,
    "lastChecked" TEXT,
    -- JSON array of qualified boundary strings.
    boundaries TEXT
);

-- Per-actor stream cursors, for AppViews that index from `subscribeRecords` instead.
CREATE TABLE stratos_sync_cursor (
    did TEXT PRIMARY KEY,
    seq INTEGER NOT NULL DEFAULT 0,
    "updatedAt" TEXT
);

-- Where the AppView projector is in each partition of the log (same transaction as its rows).
CREATE TABLE stratos_view_position (
    partition_id INTEGER PRIMARY KEY,
    next_offset BIGINT NOT NULL
);
