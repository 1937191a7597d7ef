-- The audit log's index on target alone is the leading column of (target, action, at),
-- which serves every lookup by target as well: one index less to maintain per entry.
DROP INDEX IF EXISTS audit_log_target;
