-- Enrolled actors as the repo projector learned them from `#enrollment`, `#boundaries` and
-- `#unenroll`: the service-level enrollment state (and the source of the service stream).
CREATE TABLE enrollment (
    did TEXT PRIMARY KEY,
    -- The actor's repository key, as a did:key.
    signing_key TEXT NOT NULL,
    -- Qualified boundaries, newline-separated.
    boundaries TEXT NOT NULL,
    service_endpoint TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    active BOOLEAN NOT NULL
);
CREATE INDEX enrollment_active ON enrollment (did) WHERE active;
