-- Feed pages are keyset pages over ("sortAt", uri): index the tie-break too, so a page of a
-- boundary or of an author is one ordered index range.
DROP INDEX stratos_post_boundary_sort_at_idx;
CREATE INDEX stratos_post_boundary_page_idx ON stratos_post_boundary (boundary, "sortAt" DESC, uri DESC);
DROP INDEX stratos_post_creator_sort_at_idx;
CREATE INDEX stratos_post_creator_page_idx ON stratos_post (creator, "sortAt" DESC, uri DESC);
