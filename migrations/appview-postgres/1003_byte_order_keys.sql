-- Post URIs, authors and boundaries compare byte by byte (collation "C"), as in the embedded
-- mode's SQLite views: pages of a feed keep one order whatever the database's default
-- collation, and index comparisons skip the locale's collation routines. The timestamps keep
-- the default collation ("sortAt" of stratos_post is generated from them, and a timeline
-- merges both tables' "sortAt"). Only indexes are rebuilt; rows are not rewritten.
ALTER TABLE stratos_post
    ALTER COLUMN uri TYPE TEXT COLLATE "C",
    ALTER COLUMN creator TYPE TEXT COLLATE "C";
ALTER TABLE stratos_post_boundary
    ALTER COLUMN uri TYPE TEXT COLLATE "C",
    ALTER COLUMN boundary TYPE TEXT COLLATE "C";
