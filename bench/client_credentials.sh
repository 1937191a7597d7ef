#!/usr/bin/env bash
# client_credentials grants per second with wrk against the release binary — on SQLite and on
# PostgreSQL, audit events included — and against panva's oidc-provider (npm, in-memory
# defaults) under the same load on the same machine.
#   cargo build --release && (cd tests/node && npm ci) && bench/client_credentials.sh
# Environment: DURATION (s, default 20), CONNECTIONS (default 32), PG (PostgreSQL server URL,
# default postgres://postgres@127.0.0.1:5432/postgres; empty to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release/kizuna
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
PG=${PG-postgres://postgres@127.0.0.1:5432/postgres}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }
lua() { # $1 = Basic credentials
  local f; f=$(mktemp --suffix .lua)
  printf 'wrk.method="POST"\nwrk.body="grant_type=client_credentials&scope=api%%3Aread"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"\nwrk.headers["Authorization"]="Basic %s"\n' "$1" > "$f"
  echo "$f"
}
load() { # $1 = URL, $2 = lua file; prints requests/s (non-2xx are counted and reported)
  local out; out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$2" "$1")
  local errors; errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  [ -n "$errors" ] && echo "  WARNING: $errors non-2xx responses" >&2
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}

kizuna() { # $1 = label, $2 = database URL or empty for SQLite
  local dir port; dir=$(mktemp -d); port=$(free_port)
  export KIZUNA_DATA_DIR=$dir KIZUNA_PUBLIC_URL=http://127.0.0.1:$port KIZUNA_LOG_LEVEL=${LOG_LEVEL:-info}
  if [ -n "$2" ]; then export KIZUNA_DATABASE_URL=$2; else unset KIZUNA_DATABASE_URL; fi
  local created id secret
  created=$("$BIN" client create --name bench --grant-type client_credentials --scope api:read --json)
  id=$(echo "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
  secret=$(echo "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
  "$BIN" serve --listen "127.0.0.1:$port" >"$dir/stdout" 2>"$dir/stderr" &
  local pid=$!
  wait_http "http://127.0.0.1:$port/readyz"
  local script; script=$(lua "$(printf '%s:%s' "$id" "$secret" | base64 -w0)")
  local rate; rate=$(load "http://127.0.0.1:$port/token" "$script")
  local rss; rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true
  local issued; issued=$("$BIN" audit export 2>/dev/null | grep -c '"grant_type":"client_credentials"' || true)
  local chain; chain=$("$BIN" audit verify)
  echo "kizuna $1: $rate grants/s (peak RSS ${rss} MB; $issued token.issue audit events; audit verify: $chain)"
  rm -rf "$dir" "$script"
}

kizuna sqlite ""
if [ -n "$PG" ] && pg_isready -h 127.0.0.1 -q; then
  db=kizuna_bench_$$
  psql "$PG" -qc "CREATE DATABASE $db"
  kizuna postgres "${PG%/*}/$db"
  psql "$PG" -qc "DROP DATABASE $db WITH (FORCE)"
fi

if [ -d tests/node/node_modules/oidc-provider ]; then
  port=$(free_port)
  PORT=$port node tests/node/provider-client-credentials.mjs >/dev/null 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$port/.well-known/openid-configuration"
  script=$(lua "$(printf 'svc:bench-secret-bench-secret-bench-secret-00' | base64 -w0)")
  rate=$(load "http://127.0.0.1:$port/token" "$script")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "oidc-provider (in-memory): $rate grants/s"
  rm -f "$script"
fi
