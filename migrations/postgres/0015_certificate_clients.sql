-- Certificates as OAuth client credentials (RFC 8705). Kept in step with
-- migrations/sqlite/0015_certificate_clients.sql.

-- When a certificate's status last changed (held, released, revoked): tokens bound to it
-- that were issued before then stay dead after a release.
ALTER TABLE certificates ADD COLUMN status_changed_at BIGINT;

-- A client's mutual-TLS registration: tls_client_auth's one subject DN or SAN to match
-- (JSON {"kind": "san_dns", "value": "..."}), and whether its access tokens are bound to its
-- certificate.
ALTER TABLE clients ADD COLUMN tls_client_auth TEXT;
ALTER TABLE clients ADD COLUMN certificate_bound BIGINT NOT NULL DEFAULT 0;

-- What certificates of an organization may ask for as clients of their own: scopes per
-- profile, and per device model ('' for every model).
CREATE TABLE certificate_client_scopes (
    org_id     TEXT NOT NULL REFERENCES organizations (id),
    profile    TEXT NOT NULL,
    model      TEXT NOT NULL DEFAULT '',
    scopes     TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, profile, model)
);
