-- Revocation: a feed of certificate changes (replicas' OCSP caches and CRL generation follow
-- it), published CRLs, and delegated OCSP signers.

CREATE TABLE cert_changes (
    seq        BIGSERIAL PRIMARY KEY,
    ca_id      TEXT NOT NULL,
    serial     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE crls (
    ca_id       TEXT NOT NULL,
    shard       BIGINT NOT NULL,
    number      BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    source_seq  BIGINT NOT NULL,
    der         BYTEA NOT NULL,
    PRIMARY KEY (ca_id, shard)
);

CREATE TABLE ocsp_signers (
    serial     TEXT PRIMARY KEY,
    ca_id      TEXT NOT NULL REFERENCES cas (id),
    key_id     TEXT NOT NULL REFERENCES keys (id),
    cert_der   BYTEA NOT NULL,
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ocsp_signers_ca ON ocsp_signers (ca_id, not_after);
