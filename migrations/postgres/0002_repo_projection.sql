-- The repo projection: each actor's head, repository blocks and records.
CREATE TABLE actor_head (
    did TEXT PRIMARY KEY,
    commit_cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    data_cid TEXT NOT NULL
);

-- Commit and MST node blocks (record blocks live with their records).
CREATE TABLE repo_block (
    did TEXT NOT NULL,
    cid TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (did, cid)
);

-- Records with their boundaries; `block` is NULL once the actor's content was purged.
CREATE TABLE record (
    did TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    cid TEXT NOT NULL,
    boundaries TEXT NOT NULL,
    block BYTEA,
    PRIMARY KEY (did, collection, rkey)
);
CREATE INDEX record_cid ON record (did, cid);
