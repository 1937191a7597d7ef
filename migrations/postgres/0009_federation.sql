-- Federation: upstream OpenID providers (each owned by an organization), the accounts
-- linked to them, authorizations waiting for an upstream's answer, identities waiting to be
-- linked, and the sessions an upstream sign-in started (for logout in both directions).

CREATE TABLE upstreams (
    id                   TEXT PRIMARY KEY,
    alias                TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    org_id               TEXT NOT NULL REFERENCES organizations (id),
    issuer               TEXT NOT NULL,
    client_id            TEXT NOT NULL,
    client_auth          TEXT NOT NULL,
    client_secret        BYTEA,
    key_id               TEXT REFERENCES keys (id),
    scopes               TEXT NOT NULL DEFAULT '["openid"]',
    acr_values           TEXT NOT NULL DEFAULT '[]',
    claim_map            TEXT NOT NULL DEFAULT '{}',
    acr_map              TEXT NOT NULL DEFAULT '{}',
    max_ial              BIGINT NOT NULL DEFAULT 1,
    max_aal              BIGINT NOT NULL DEFAULT 1,
    jit                  BIGINT NOT NULL DEFAULT 1,
    email_domains        TEXT NOT NULL DEFAULT '[]',
    propagate_logout     BIGINT NOT NULL DEFAULT 1,
    status               TEXT NOT NULL DEFAULT 'active',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE federated_identities (
    upstream_id   TEXT NOT NULL REFERENCES upstreams (id),
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attributes    TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT,
    PRIMARY KEY (upstream_id, subject)
);
CREATE UNIQUE INDEX federated_identities_user ON federated_identities (user_id, upstream_id);

CREATE TABLE upstream_authorizations (
    state_hash    TEXT PRIMARY KEY,
    upstream_id   TEXT NOT NULL,
    browser_hash  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    continuation  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE federation_link_requests (
    id_hash      TEXT PRIMARY KEY,
    upstream_id  TEXT NOT NULL,
    subject      TEXT NOT NULL,
    identity     TEXT NOT NULL,
    continuation TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE federated_sessions (
    sid          TEXT PRIMARY KEY,
    upstream_id  TEXT NOT NULL,
    subject      TEXT NOT NULL,
    upstream_sid TEXT,
    id_token     TEXT,
    ial          BIGINT NOT NULL,
    aal          BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX federated_sessions_subject ON federated_sessions (upstream_id, subject);

CREATE TABLE federation_logouts (
    state_hash      TEXT PRIMARY KEY,
    return_to       TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
