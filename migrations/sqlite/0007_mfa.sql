-- Multi-factor authentication: passkeys (WebAuthn), TOTP, recovery codes, ceremony state,
-- pending second-factor sign-ins, known devices, the mail outbox, and the assurance policy
-- of accounts and clients.

-- The lowest authentication assurance level (1-3) the account must reach (0: no own rule).
ALTER TABLE users ADD COLUMN min_aal INTEGER NOT NULL DEFAULT 0;
-- The lowest authentication assurance level the client requires at every sign-in.
ALTER TABLE clients ADD COLUMN min_aal INTEGER NOT NULL DEFAULT 0;

CREATE TABLE webauthn_credentials (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    passkey         TEXT NOT NULL,
    hardware_bound  INTEGER NOT NULL DEFAULT 0,
    attested        INTEGER NOT NULL DEFAULT 0,
    aaguid          TEXT,
    possibly_cloned INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE totp_credentials (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       BLOB NOT NULL,
    confirmed    INTEGER NOT NULL DEFAULT 0,
    last_step    INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_id    TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_id)
);

CREATE TABLE mfa_pending (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid        TEXT,
    amr        TEXT NOT NULL DEFAULT '[]',
    req        TEXT,
    next       TEXT,
    target_aal INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE known_devices (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_hash TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);

CREATE TABLE mail_outbox (
    id           TEXT PRIMARY KEY,
    user_id      TEXT REFERENCES users (id) ON DELETE SET NULL,
    recipient    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    sent_at      INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt);
CREATE INDEX mail_outbox_user ON mail_outbox (user_id, created_at);
