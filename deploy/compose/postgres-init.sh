#!/bin/sh
# Runs once, when the postgres container initializes an empty data directory: a login role
# for Kizuna that is no superuser and may create nothing outside its own database, and that
# database, owned by it (Kizuna's migrations create its tables there). docs/ha.md has the
# same SQL for a PostgreSQL run apart.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v password="$(cat /run/secrets/kizuna_db_password)" <<'SQL'
CREATE ROLE kizuna LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE DATABASE kizuna OWNER kizuna;
REVOKE ALL ON DATABASE kizuna FROM PUBLIC;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname kizuna <<'SQL'
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO kizuna;
SQL
