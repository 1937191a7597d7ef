-- Kept in step with migrations/postgres/0014_crl_storage.sql, which stores CRLs out of line
-- without compression. SQLite stores blobs as they are: nothing to change.
SELECT 1;
