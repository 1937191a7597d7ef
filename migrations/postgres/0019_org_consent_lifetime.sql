-- An organization's limit on how long its residents' consents to its services last (issue
-- #18): a consent ends at the soonest of the client's lifetime, this, and the city's maximum.
CREATE TABLE org_consent_lifetimes (
    org_id        TEXT PRIMARY KEY,
    lifetime_days BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
