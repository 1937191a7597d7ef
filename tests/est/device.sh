#!/usr/bin/env bash
# What a device (or its installer's tool) runs to enroll over EST (RFC 7030) with nothing but
# curl and openssl. The end-to-end tests drive this script; docs/enrollment.md explains it.
#
#   device.sh cacerts   EST_BASE ROOT_PEM OUT_DIR
#       fetch the CA certificates (trusting ROOT_PEM, obtained out of band) into OUT_DIR/ca.pem
#   device.sh enroll    EST_BASE ROOT_PEM OUT_DIR TOKEN SUBJECT
#       new P-256 key, CSR with SUBJECT (e.g. "/CN=sl-0042/serialNumber=SN-0042"),
#       simpleenroll with the one-time token; writes OUT_DIR/device.key and device.pem
#   device.sh reenroll  EST_BASE ROOT_PEM OUT_DIR
#       new key, simplereenroll authenticated by the current device.pem/device.key in TLS
#   device.sh idevid    EST_BASE ROOT_PEM OUT_DIR IDEVID_PEM IDEVID_KEY SUBJECT
#       simpleenroll authenticated by a manufacturer certificate instead of a token
#
# EST_BASE is https://HOST:PORT/.well-known/est (add /LABEL for a profile). Exit status 0 on
# success; otherwise the server's status and reason are printed on stderr.
set -euo pipefail
cmd=$1 base=$2 root=$3 dir=$4
mkdir -p "$dir"

post() { # $1 = operation, $2 = CSR (DER file), rest = curl options; writes $dir/response
  local op=$1 csr=$2; shift 2
  base64 -w 64 "$csr" > "$dir/request.b64"
  local status
  status=$(curl -sS --cacert "$root" -o "$dir/response" -w '%{http_code}' \
    -H 'Content-Type: application/pkcs10' --data-binary @"$dir/request.b64" "$@" "$base/$op")
  if [ "$status" != 200 ]; then
    echo "$op: HTTP $status: $(cat "$dir/response")" >&2
    return 1
  fi
}

certs_of() { # base64 PKCS#7 certs-only → PEM certificates
  base64 -d "$1" | openssl pkcs7 -inform DER -print_certs | sed -n '/^-----BEGIN/,/^-----END/p'
}

new_csr() { # $1 = subject; writes $dir/next.key and $dir/request.der
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/next.key" -subj "$1" -outform DER -out "$dir/request.der" 2>/dev/null
}

case "$cmd" in
  cacerts)
    curl -sSf --cacert "$root" -o "$dir/cacerts.b64" "$base/cacerts"
    certs_of "$dir/cacerts.b64" > "$dir/ca.pem"
    ;;
  enroll)
    new_csr "$6"
    post simpleenroll "$dir/request.der" -u "device:$5"
    certs_of "$dir/response" > "$dir/device.pem"
    mv "$dir/next.key" "$dir/device.key"
    ;;
  reenroll)
    subject=$(openssl x509 -in "$dir/device.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
    new_csr "$subject"
    post simplereenroll "$dir/request.der" --cert "$dir/device.pem" --key "$dir/device.key"
    certs_of "$dir/response" > "$dir/device.pem"
    mv "$dir/next.key" "$dir/device.key"
    ;;
  idevid)
    new_csr "$7"
    post simpleenroll "$dir/request.der" --cert "$5" --key "$6"
    certs_of "$dir/response" > "$dir/device.pem"
    mv "$dir/next.key" "$dir/device.key"
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
