-- Certificate authority: CA hierarchy, issued certificates, organizations' allowed names.

ALTER TABLE organizations ADD COLUMN allowed_names TEXT NOT NULL DEFAULT '{}';

CREATE TABLE cas (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    parent_id   TEXT,
    key_id      TEXT REFERENCES keys (id),
    cert_der    BYTEA,
    csr_der     BYTEA,
    status      TEXT NOT NULL,
    not_before  BIGINT,
    not_after   BIGINT,
    crl_number  BIGINT NOT NULL DEFAULT 0,
    crl_shards  BIGINT NOT NULL DEFAULT 16,
    created_at  BIGINT NOT NULL,
    UNIQUE (name, generation)
);

CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,
    ca_id             TEXT NOT NULL REFERENCES cas (id),
    subject           TEXT NOT NULL,
    sans              TEXT NOT NULL DEFAULT '[]',
    profile           TEXT NOT NULL,
    org_id            TEXT REFERENCES organizations (id),
    device_id         TEXT,
    key_sha256        TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'valid',
    revoked_at        BIGINT,
    revocation_reason TEXT,
    requested_by      TEXT NOT NULL,
    der               BYTEA NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX certificates_ca ON certificates (ca_id, status);
CREATE INDEX certificates_org ON certificates (org_id);
CREATE INDEX certificates_device ON certificates (device_id);
CREATE INDEX certificates_not_after ON certificates (not_after);
