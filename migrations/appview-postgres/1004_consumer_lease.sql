-- Which process may move a log consumer's positions. The holder also holds a session advisory
-- lock keyed by the schema and the consumer; each time the lease changes hands `epoch` grows,
-- and every batch checks it (`FOR SHARE`) in its transaction, so a process that lost the lease
-- can commit nothing more. Shared with the views' migrations when both live in one schema.
CREATE TABLE IF NOT EXISTS consumer_lease (
    consumer TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL
);
