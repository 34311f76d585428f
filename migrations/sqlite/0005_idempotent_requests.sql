-- Answers to idempotent client requests (`Idempotency-Key`), written by the repo projector
-- with the commit that answers them. `key` is the SHA-256 of the client's key.
CREATE TABLE request (
    did TEXT NOT NULL,
    key TEXT NOT NULL,
    commit_cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    -- JSON array of {uri, cid} in request order.
    results TEXT NOT NULL,
    PRIMARY KEY (did, key)
);
