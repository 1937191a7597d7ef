-- The chain is serialised by the audit_head row lock and ordered by seq; unique indexes on
-- the random prev_hash/hash values added only write cost.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_prev_hash_key;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_hash_key;
