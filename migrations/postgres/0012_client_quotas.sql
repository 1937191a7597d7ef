-- Per-client request quotas (requests per minute at the token, PAR, introspection, revocation,
-- device authorization and UserInfo endpoints); clients without a row are not limited.
CREATE TABLE client_quotas (
    client_id           TEXT PRIMARY KEY,
    requests_per_minute BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
