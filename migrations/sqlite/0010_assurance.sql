-- Identity assurance: proofing records (one per proofing event; the current level is the
-- best live one), JPKI identities bound to one account, proofing attempts in flight
-- (signature challenges, eKYC transactions), vendor result ids seen (replay), the
-- assurance settings of clients, and the claims request kept with codes and grants.

CREATE TABLE identity_proofing (
    id                   TEXT PRIMARY KEY,
    user_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider             TEXT NOT NULL,
    trust_framework      TEXT NOT NULL,
    level                INTEGER NOT NULL,
    claimed_level        INTEGER NOT NULL,
    evidence_type        TEXT NOT NULL,
    evidence_method      TEXT,
    evidence_issuer      TEXT,
    evidence_document    TEXT,
    evidence_number_hash TEXT,
    evidence_time        INTEGER NOT NULL,
    verified_claims      TEXT NOT NULL,
    verifier_kind        TEXT NOT NULL,
    verifier_id          TEXT NOT NULL,
    verified_at          INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    superseded_at        INTEGER,
    superseded_reason    TEXT
);
CREATE INDEX identity_proofing_user ON identity_proofing (user_id, superseded_at);

CREATE TABLE identity_bindings (
    identifier_hash TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX identity_bindings_user ON identity_bindings (user_id);

CREATE TABLE proofing_attempts (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    challenge  TEXT,
    req        TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE proofing_result_ids (
    provider   TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (provider, jti)
);

CREATE TABLE client_assurance (
    client_id          TEXT PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    min_ial            INTEGER NOT NULL DEFAULT 0,
    verified_claims    TEXT NOT NULL DEFAULT '[]',
    proofing_providers TEXT NOT NULL DEFAULT '[]',
    updated_at         INTEGER NOT NULL
);

ALTER TABLE authorization_codes ADD COLUMN claims TEXT;
ALTER TABLE grants ADD COLUMN claims TEXT;
