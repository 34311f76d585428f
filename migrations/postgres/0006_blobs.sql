-- Uploaded blobs: their bytes live sealed in the blob store, their metadata here.
CREATE TABLE blob (
    did TEXT NOT NULL,
    cid TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (did, cid)
);
