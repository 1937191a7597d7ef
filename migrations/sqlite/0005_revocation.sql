-- Revocation: a feed of certificate changes (replicas' OCSP caches and CRL generation follow
-- it), published CRLs, and delegated OCSP signers.

CREATE TABLE cert_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    ca_id      TEXT NOT NULL,
    serial     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE crls (
    ca_id       TEXT NOT NULL,
    shard       INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    source_seq  INTEGER NOT NULL,
    der         BLOB NOT NULL,
    PRIMARY KEY (ca_id, shard)
);

CREATE TABLE ocsp_signers (
    serial     TEXT PRIMARY KEY,
    ca_id      TEXT NOT NULL REFERENCES cas (id),
    key_id     TEXT NOT NULL REFERENCES keys (id),
    cert_der   BLOB NOT NULL,
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ocsp_signers_ca ON ocsp_signers (ca_id, not_after);
