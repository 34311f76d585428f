-- Posts of actors who left without a purge, withdrawn from the views (and from every feed and
-- hydration) until the actor enrolls again, when they move back: the same rows as
-- stratos_post and stratos_post_boundary, outside the table contract.
CREATE TABLE stratos_post_withdrawn (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    rkey TEXT NOT NULL,
    creator TEXT NOT NULL,
    text TEXT NOT NULL,
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
    "indexedAt" TEXT NOT NULL
);
CREATE INDEX stratos_post_withdrawn_creator_idx ON stratos_post_withdrawn (creator);

CREATE TABLE stratos_post_boundary_withdrawn (
    uri TEXT NOT NULL,
    boundary TEXT NOT NULL,
    "sortAt" TEXT,
    PRIMARY KEY (uri, boundary)
);
