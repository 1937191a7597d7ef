-- Consent records (issue #18): what the person agreed to, for which purpose as shown then,
-- until when, and how; and each client's terms (its purpose, versioned so a changed purpose
-- asks again; its consent lifetime; the claims a person may decline).

CREATE TABLE consent_terms (
    client_id       TEXT PRIMARY KEY,
    purpose         TEXT NOT NULL,
    purpose_ja      TEXT,
    version         INTEGER NOT NULL,
    lifetime_days   INTEGER,
    optional_claims TEXT NOT NULL DEFAULT '[]',
    updated_at      INTEGER NOT NULL
);

-- purpose_version 0: given before the client had terms. expires_at NULL: given before
-- consents expired; such a consent counts until updated_at + the city's maximum lifetime.
ALTER TABLE consents ADD COLUMN purpose TEXT;
ALTER TABLE consents ADD COLUMN purpose_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consents ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';
ALTER TABLE consents ADD COLUMN declined TEXT NOT NULL DEFAULT '[]';
ALTER TABLE consents ADD COLUMN expires_at INTEGER;
ALTER TABLE consents ADD COLUMN given_by TEXT NOT NULL DEFAULT 'consent-page';

-- Consented linkage (RFC 8693 token exchange): a client offers to pass the resident's data
-- to another service (the target) for a purpose, within scopes of the target; the consent
-- page asks, and the resident's agreement is kept in consents.linkages as
-- "<target client id>#<offer version>".
CREATE TABLE consent_linkages (
    client_id        TEXT NOT NULL,
    target_client_id TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    purpose_ja       TEXT,
    scopes           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (client_id, target_client_id)
);
ALTER TABLE consents ADD COLUMN linkages TEXT NOT NULL DEFAULT '[]';
