-- The admin console: its sign-ins in progress (OIDC authorization requests to Kizuna
-- itself), its sessions, and version counters that let a form refuse an edit made on a
-- stale copy.
CREATE TABLE console_logins (
    state_hash    TEXT PRIMARY KEY,
    code_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    next_path     TEXT NOT NULL,
    aal           BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid        TEXT NOT NULL,
    aal        BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

ALTER TABLE clients ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
