-- Enrollment: the device registry, one-time enrollment tokens, and ACME (accounts bound to
-- organizations by external account binding, nonces, orders, authorizations, challenges).

CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    model           TEXT NOT NULL DEFAULT '',
    hardware_serial TEXT,
    location        TEXT NOT NULL DEFAULT '',
    latitude        REAL,
    longitude       REAL,
    installer       TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'pending',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    enrolled_at     INTEGER,
    last_seen_at    INTEGER
);
CREATE INDEX devices_org ON devices (org_id, status);
CREATE UNIQUE INDEX devices_hardware_serial ON devices (org_id, hardware_serial)
    WHERE hardware_serial IS NOT NULL;

CREATE TABLE enrollment_tokens (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    profile         TEXT NOT NULL,
    device_id       TEXT REFERENCES devices (id),
    batch_id        TEXT,
    model           TEXT,
    subject_pattern TEXT NOT NULL DEFAULT '*',
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    used_device_id  TEXT,
    used_serial     TEXT,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens (org_id, created_at);
CREATE INDEX enrollment_tokens_batch ON enrollment_tokens (batch_id);

CREATE TABLE acme_eab_keys (
    kid           TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    hmac_key      BLOB NOT NULL,
    account_id    TEXT,
    expires_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE acme_accounts (
    id          TEXT PRIMARY KEY,
    jwk         TEXT NOT NULL,
    thumbprint  TEXT NOT NULL UNIQUE,
    org_id      TEXT REFERENCES organizations (id),
    eab_kid     TEXT,
    contact     TEXT NOT NULL DEFAULT '[]',
    status      TEXT NOT NULL DEFAULT 'valid',
    created_at  INTEGER NOT NULL
);

CREATE TABLE acme_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);

CREATE TABLE acme_orders (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES acme_accounts (id),
    status      TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    error       TEXT,
    cert_serial TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, created_at);

CREATE TABLE acme_authorizations (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES acme_orders (id),
    account_id TEXT NOT NULL,
    id_type    TEXT NOT NULL,
    id_value   TEXT NOT NULL,
    status     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX acme_authorizations_order ON acme_authorizations (order_id);

CREATE TABLE acme_challenges (
    id           TEXT PRIMARY KEY,
    authz_id     TEXT NOT NULL REFERENCES acme_authorizations (id),
    kind         TEXT NOT NULL,
    token        TEXT NOT NULL,
    status       TEXT NOT NULL,
    validated_at INTEGER,
    error        TEXT
);
CREATE INDEX acme_challenges_authz ON acme_challenges (authz_id);
