-- Upstreams are edited from the console: a version counter lets a form loaded before
-- another edit be refused (and the newer version shown).
ALTER TABLE upstreams ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
