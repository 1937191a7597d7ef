-- CRL generation reads a CA's revoked and held certificates in serial order from this index
-- alone (it covers every column the generator reads and filters on).
CREATE INDEX certificates_revoked ON certificates (ca_id, serial, not_after, revoked_at, revocation_reason, status)
    WHERE status IN ('revoked', 'hold');

-- Responders re-read recent status changes by time; CRL generation asks for the newest
-- status change of each CA.
CREATE INDEX cert_changes_kind_time ON cert_changes (kind, created_at);
CREATE INDEX cert_changes_kind_ca ON cert_changes (kind, ca_id, seq);

-- Installation-wide values the server records for CLI commands (its public URL).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
