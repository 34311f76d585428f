-- A repo projector batch in one call: the batch's net changes (ProjectionBatch), the
-- consumer's new positions and the outcome notifications, written by one statement. Called
-- outside an explicit transaction it is its own transaction, so a batch costs one round trip
-- instead of one per table. Every argument is a set of equal-length arrays, one per column.
-- The keys deleted and written in one table are disjoint (the batch nets them), except a
-- record's blob references, which are replaced: deleted first, then inserted.
-- Without statistics (autovacuum off, or behind a fast-growing table) the planner may take a
-- delete by a list of keys for a sequential scan that grows with the table; the function's
-- statements are planned without sequential scans.
CREATE FUNCTION stratos_write_repo_batch(
    removed_block_did TEXT[], removed_block_cid TEXT[],
    block_did TEXT[], block_cid TEXT[], block_bytes BYTEA[],
    removed_record_did TEXT[], removed_record_collection TEXT[], removed_record_rkey TEXT[],
    record_did TEXT[], record_collection TEXT[], record_rkey TEXT[], record_cid TEXT[],
    record_boundaries TEXT[], record_block BYTEA[],
    unref_did TEXT[], unref_collection TEXT[], unref_rkey TEXT[],
    ref_did TEXT[], ref_collection TEXT[], ref_rkey TEXT[], ref_cid TEXT[], ref_rev TEXT[],
    head_did TEXT[], head_commit TEXT[], head_rev TEXT[], head_data TEXT[],
    event_did TEXT[], event_seq BIGINT[], event_kind TEXT[], event_rev TEXT[],
    event_body BYTEA[],
    request_did TEXT[], request_key TEXT[], request_commit TEXT[], request_rev TEXT[],
    request_results TEXT[],
    rejected_partition INTEGER[], rejected_offset BIGINT[], rejected_did TEXT[],
    rejected_reason TEXT[],
    position_consumer TEXT, position_partition INTEGER[], position_offset BIGINT[],
    notify_channel TEXT, notify_payloads TEXT[]
) RETURNS VOID LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    DELETE FROM repo_block b USING unnest(removed_block_did, removed_block_cid) AS k(did, cid)
        WHERE b.did = k.did AND b.cid = k.cid;
    INSERT INTO repo_block (did, cid, bytes)
        SELECT * FROM unnest(block_did, block_cid, block_bytes)
        ON CONFLICT (did, cid) DO NOTHING;

    DELETE FROM record r
        USING unnest(removed_record_did, removed_record_collection, removed_record_rkey)
            AS k(did, collection, rkey)
        WHERE r.did = k.did AND r.collection = k.collection AND r.rkey = k.rkey;
    INSERT INTO record (did, collection, rkey, cid, boundaries, block)
        SELECT * FROM unnest(record_did, record_collection, record_rkey, record_cid,
            record_boundaries, record_block)
        ON CONFLICT (did, collection, rkey) DO UPDATE SET cid = excluded.cid,
            boundaries = excluded.boundaries, block = excluded.block;

    DELETE FROM record_blob r USING unnest(unref_did, unref_collection, unref_rkey)
            AS k(did, collection, rkey)
        WHERE r.did = k.did AND r.collection = k.collection AND r.rkey = k.rkey;
    -- A reference already there (a created record's, left by a repaired or older projection)
    -- is brought up to date rather than stopping the projector.
    INSERT INTO record_blob (did, collection, rkey, cid, rev)
        SELECT * FROM unnest(ref_did, ref_collection, ref_rkey, ref_cid, ref_rev)
        ON CONFLICT (did, collection, rkey, cid) DO UPDATE SET rev = excluded.rev;

    INSERT INTO actor_head (did, commit_cid, rev, data_cid)
        SELECT * FROM unnest(head_did, head_commit, head_rev, head_data)
        ON CONFLICT (did) DO UPDATE SET commit_cid = excluded.commit_cid, rev = excluded.rev,
            data_cid = excluded.data_cid;
    INSERT INTO actor_event (did, seq, event_type, rev, body)
        SELECT * FROM unnest(event_did, event_seq, event_kind, event_rev, event_body);

    INSERT INTO request (did, key, commit_cid, rev, results)
        SELECT * FROM unnest(request_did, request_key, request_commit, request_rev,
            request_results)
        ON CONFLICT (did, key) DO NOTHING;
    INSERT INTO rejected_event (partition_id, log_offset, did, reason)
        SELECT * FROM unnest(rejected_partition, rejected_offset, rejected_did, rejected_reason)
        ON CONFLICT (partition_id, log_offset) DO NOTHING;

    INSERT INTO consumer_position (consumer, partition_id, next_offset)
        SELECT position_consumer, p, o FROM unnest(position_partition, position_offset) AS t(p, o)
        ON CONFLICT (consumer, partition_id) DO UPDATE SET next_offset = excluded.next_offset;
    PERFORM pg_notify(notify_channel, payload) FROM unnest(notify_payloads) AS payload;
END
$$;
