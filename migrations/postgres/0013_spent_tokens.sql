-- Service-auth tokens already used (issuer and jti), until they expire: a token spent at one
-- instance of a service is refused at every other.
CREATE TABLE spent_token (
    token TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX spent_token_expires_at ON spent_token (expires_at);
