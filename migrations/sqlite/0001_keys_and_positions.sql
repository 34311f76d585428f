-- Key store: actor keys wrapped by the service master key (never in clear, never in the log).
CREATE TABLE actor_key (
    did TEXT NOT NULL,
    kind TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (did, kind)
);

-- Where each consumer of the commit log is, per partition: written in the same transaction as
-- the projection rows it produced.
CREATE TABLE consumer_position (
    consumer TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (consumer, partition_id)
);
