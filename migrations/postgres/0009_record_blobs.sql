-- The blobs each record refers to, kept by the repo projector with the records: who may read a
-- blob follows from who may see a record referring to it (getBlob), and `rev` is the revision
-- that wrote the reference (listBlobs `since`). Records projected before this table existed
-- are indexed by a replay.
CREATE TABLE record_blob (
    did TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    PRIMARY KEY (did, collection, rkey, cid)
);
CREATE INDEX record_blob_by_cid ON record_blob (did, cid);
CREATE INDEX record_blob_by_rev ON record_blob (did, rev);
