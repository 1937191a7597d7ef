-- Counting what happened to one target lately (the tokens bound to a certificate, when a
-- revocation ends them or a device page shows them) reads this index only.
CREATE INDEX audit_log_target_action_at ON audit_log (target, action, at);
