-- Keys compare byte by byte (collation "C"), as ATProto orders them (record keys, CIDs, DIDs)
-- and as SQLite does: a database whose default collation follows a locale would otherwise
-- order record keys differently from the embedded mode, and every index comparison would go
-- through the locale's collation routines. Only indexes are rebuilt; rows are not rewritten.
ALTER TABLE actor_head ALTER COLUMN did TYPE TEXT COLLATE "C";
ALTER TABLE repo_block
    ALTER COLUMN did TYPE TEXT COLLATE "C",
    ALTER COLUMN cid TYPE TEXT COLLATE "C";
ALTER TABLE record
    ALTER COLUMN did TYPE TEXT COLLATE "C",
    ALTER COLUMN collection TYPE TEXT COLLATE "C",
    ALTER COLUMN rkey TYPE TEXT COLLATE "C",
    ALTER COLUMN cid TYPE TEXT COLLATE "C";
ALTER TABLE actor_event ALTER COLUMN did TYPE TEXT COLLATE "C";
ALTER TABLE rejected_event ALTER COLUMN did TYPE TEXT COLLATE "C";
ALTER TABLE request
    ALTER COLUMN did TYPE TEXT COLLATE "C",
    ALTER COLUMN key TYPE TEXT COLLATE "C";
ALTER TABLE record_blob
    ALTER COLUMN did TYPE TEXT COLLATE "C",
    ALTER COLUMN collection TYPE TEXT COLLATE "C",
    ALTER COLUMN rkey TYPE TEXT COLLATE "C",
    ALTER COLUMN cid TYPE TEXT COLLATE "C",
    ALTER COLUMN rev TYPE TEXT COLLATE "C";
