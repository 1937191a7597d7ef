-- Release history (issue #18): each time a person's data left for a service — which claims,
-- under which scopes, how (`id_token`, `userinfo`, `introspection`, `token_exchange`) and
-- when — written in the transaction of the release itself and kept for
-- `oidc.release_retention_days`. `purpose` is the consent purpose in force, when known.
-- `audit_id` names the audit entry written with the release (none for introspection).
-- `token_ref` names the token an introspection answered about (its `jti`, or a refresh
-- token's hash): a resource server asking again about the same token learns nothing new,
-- so it is recorded once.
CREATE TABLE releases (
    id        TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    claims    TEXT NOT NULL,
    scopes    TEXT NOT NULL,
    purpose   TEXT,
    how       TEXT NOT NULL,
    at        BIGINT NOT NULL,
    audit_id  TEXT,
    token_ref TEXT
);
CREATE INDEX releases_user_at ON releases (user_id, at);
CREATE INDEX releases_client_at ON releases (client_id, at);
-- The retention purge deletes by age alone.
CREATE INDEX releases_at ON releases (at);
CREATE UNIQUE INDEX releases_client_token ON releases (client_id, token_ref);
