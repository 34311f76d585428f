-- Writes owed to users' PDSes (enrollment records and stubs), in log order per actor. The PDS
-- publisher fills it in the same transaction as its log position and empties it as the PDSes
-- accept the writes, so a PDS outage delays them and loses none.
CREATE TABLE pds_outbox (
    id BIGSERIAL PRIMARY KEY,
    did TEXT NOT NULL,
    method TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX pds_outbox_did ON pds_outbox (did, id);
