-- OAuth authorizations waiting for their callback, sealed with the master key (they hold the
-- PKCE verifier and the DPoP key). Sessions themselves live in actor_key (kind 'oauth-session').
CREATE TABLE oauth_pending (
    state TEXT PRIMARY KEY,
    wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
