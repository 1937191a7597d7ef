#!/usr/bin/env bash
# OCSP responses per second from Kizuna's pre-signed cache (POST and RFC 5019 GET) with wrk
# against the release binary, and from `openssl ocsp -port P -multi 2` serving a P-256 CA
# from an index file, under the same load on the same machine, with the same number of
# certificates and the same request mix.
#   cargo build --release && bench/ocsp.sh
# Environment: DURATION (s, default 20), CONNECTIONS (default 32), CERTS (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release/kizuna
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
CERTS=${CERTS:-64}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
# `openssl ocsp -multi` forks its workers: stop them with their parent.
cleanup() {
  for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }

# A wrk script that cycles through the request files listed in $1: POST bodies, or GET paths
# when $2 is "get" (prefix $3).
wrk_script() {
  local list=$1 mode=$2 prefix=${3:-} f
  f=$(mktemp --suffix .lua -p "$work")
  cat > "$f" <<LUA
local items = {}
for path in io.lines("$list") do
  local h = io.open(path, "rb"); items[#items + 1] = h:read("*all"); h:close()
end
local i = 0
request = function()
  i = i % #items + 1
  if "$mode" == "get" then
    return wrk.format("GET", "$prefix" .. items[i])
  end
  return wrk.format("POST", "$prefix", {["Content-Type"] = "application/ocsp-request"}, items[i])
end
LUA
  echo "$f"
}
load() { # $1 = base URL, $2 = wrk script; prints requests/s
  local out errors
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$2" "$1")
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  [ -n "$errors" ] && echo "  WARNING: $errors non-2xx responses" >&2
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}

# Kizuna: an install with CERTS device certificates.
k=$work/kizuna; mkdir -p "$k"
port=$(free_port)
export KIZUNA_DATA_DIR=$k/data KIZUNA_PUBLIC_URL=http://127.0.0.1:$port KIZUNA_LOG_LEVEL=warn
"$BIN" serve --listen "127.0.0.1:$port" >"$k/stdout" 2>"$k/stderr" &
pids+=($!); kpid=$!
wait_http "http://127.0.0.1:$port/readyz"
org=$("$BIN" org create --name Bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -o "$k/issuing.pem" "http://127.0.0.1:$port/pki/ca/issuing-1.pem"
: > "$k/post.list"; : > "$k/get.list"
for i in $(seq 1 "$CERTS"); do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$k/d$i.key" \
    -subj "/CN=d$i" -addext "subjectAltName=URI:urn:kizuna:device:$org:d$i" -out "$k/d$i.csr" 2>/dev/null
  "$BIN" cert issue --csr "$k/d$i.csr" --profile device --org "$org" > "$k/d$i.pem"
  openssl ocsp -issuer "$k/issuing.pem" -cert "$k/d$i.pem" -no_nonce -reqout "$k/d$i.req" >/dev/null
  echo "$k/d$i.req" >> "$k/post.list"
  base64 -w0 "$k/d$i.req" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g' > "$k/d$i.get"
  echo "$k/d$i.get" >> "$k/get.list"
done
# Let the responder sign the new certificates' responses ahead, then warm up.
sleep 1
wrk -t1 -c4 -d2s -s "$(wrk_script "$k/post.list" post /ocsp)" "http://127.0.0.1:$port" >/dev/null
kpost=$(load "http://127.0.0.1:$port" "$(wrk_script "$k/post.list" post /ocsp)")
kget=$(load "http://127.0.0.1:$port" "$(wrk_script "$k/get.list" get /ocsp/issuing-1/)")
krss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$kpid/status")
echo "kizuna (pre-signed cache, $CERTS certificates): POST $kpost responses/s, GET $kget responses/s (peak RSS ${krss} MB)"

# openssl ocsp: a P-256 CA, the same number of certificates, an index file.
o=$work/openssl; mkdir -p "$o"
openssl ecparam -genkey -name prime256v1 -noout -out "$o/ca.key"
openssl req -x509 -new -key "$o/ca.key" -subj "/CN=Bench OpenSSL CA" -days 30 -out "$o/ca.pem" 2>/dev/null
: > "$o/index.txt"; : > "$o/post.list"
expiry=$(date -u -d '+29 days' +%y%m%d%H%M%SZ)
for i in $(seq 1 "$CERTS"); do
  serial=$(printf '%032x' "$((0x1000 + i))")
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$o/d$i.key" \
    -subj "/CN=d$i" -out "$o/d$i.csr" 2>/dev/null
  openssl x509 -req -in "$o/d$i.csr" -CA "$o/ca.pem" -CAkey "$o/ca.key" -set_serial "0x$serial" \
    -days 29 -out "$o/d$i.pem" 2>/dev/null
  printf 'V\t%s\t\t%s\tunknown\t/CN=d%s\n' "$expiry" "${serial^^}" "$i" >> "$o/index.txt"
  openssl ocsp -issuer "$o/ca.pem" -cert "$o/d$i.pem" -no_nonce -reqout "$o/d$i.req" >/dev/null
  echo "$o/d$i.req" >> "$o/post.list"
done
oport=$(free_port)
openssl ocsp -port "$oport" -index "$o/index.txt" -CA "$o/ca.pem" -rsigner "$o/ca.pem" \
  -rkey "$o/ca.key" -multi 2 -nmin 60 >"$o/log" 2>&1 &
pids+=($!)
sleep 1
check=$(openssl ocsp -issuer "$o/ca.pem" -cert "$o/d1.pem" -url "http://127.0.0.1:$oport" -CAfile "$o/ca.pem" 2>&1)
echo "$check" | grep -q 'd1.pem: good' || { echo "openssl ocsp is not answering: $check" >&2; exit 1; }
opost=$(load "http://127.0.0.1:$oport" "$(wrk_script "$o/post.list" post /)")
echo "openssl ocsp -multi 2 (signs each response, $CERTS certificates): POST $opost responses/s"
python3 -c "print(f'ratio kizuna/openssl (POST): {$kpost / $opost:.1f}x')"
