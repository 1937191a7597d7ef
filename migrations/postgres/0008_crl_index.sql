-- CRL generation reads a CA's revoked and held certificates in serial order from this index
-- alone (it covers every column the generator reads).
CREATE INDEX certificates_revoked ON certificates (ca_id, serial, not_after, revoked_at, revocation_reason)
    WHERE status IN ('revoked', 'hold');
