-- Per-actor event sequence, the source of `subscribeRecords` backfill: numbered in log order,
-- so a replay gives every event the same number again.
CREATE TABLE actor_event (
    did TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    rev TEXT,
    body BLOB NOT NULL,
    PRIMARY KEY (did, seq)
);

-- Events the repo projector refused, with the reason, by log position.
CREATE TABLE rejected_event (
    partition_id INTEGER NOT NULL,
    log_offset INTEGER NOT NULL,
    did TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (partition_id, log_offset)
);
CREATE INDEX rejected_event_did ON rejected_event (did);
