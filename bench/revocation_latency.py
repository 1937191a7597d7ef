#!/usr/bin/env python3
"""Time from `kizuna cert revoke` returning to the OCSP responder answering `revoked`, on two
replicas (`kizuna serve` A and B) sharing one PostgreSQL database. The revocation is made by
the CLI, a third process, so both replicas learn of it from the database.

    cargo build --release && python3 bench/revocation_latency.py

Environment: PG (PostgreSQL server URL, default postgres://postgres@127.0.0.1:5432/postgres),
ROUNDS (revocations, default 30).
"""

import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "kizuna")
PG = os.environ.get("PG", "postgres://postgres@127.0.0.1:5432/postgres")
ROUNDS = int(os.environ.get("ROUNDS", "30"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def der_read(data, pos):
    """(tag, content start, content end) of the DER element at pos."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + length


def children(data, start, end):
    out = []
    while start < end:
        tag, cs, ce = der_read(data, start)
        out.append((tag, cs, ce))
        start = ce
    return out


def cert_status(response):
    """'good', 'revoked' or 'unknown' from a successful OCSPResponse (one SingleResponse)."""
    _, s, e = der_read(response, 0)
    parts = children(response, s, e)
    if response[parts[0][1]] != 0:
        return "error"
    _, s, e = parts[1]  # [0] responseBytes
    _, s, e = der_read(response, s)  # ResponseBytes SEQUENCE
    octets = children(response, s, e)[1]  # OCTET STRING: BasicOCSPResponse
    _, s, e = der_read(response, octets[1])  # BasicOCSPResponse
    _, s, e = children(response, s, e)[0]  # tbsResponseData
    fields = children(response, s, e)
    if fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    responses = fields[2]
    single = children(response, responses[1], responses[2])[0]
    status_tag = children(response, single[1], single[2])[1][0]
    return {0x80: "good", 0xA1: "revoked", 0x82: "unknown"}.get(status_tag, hex(status_tag))


def ocsp_post(base, body):
    request = urllib.request.Request(
        base + "/ocsp", data=body, headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.read()


def run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, **kw)


def wait_ready(base):
    for _ in range(400):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{base} did not become ready")


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit("build first: cargo build --release")
    db = f"kizuna_bench_{os.getpid()}"
    server = PG.rsplit("/", 1)[0]
    subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {db}"], check=True)
    work = tempfile.mkdtemp(prefix="kizuna-revocation-")
    servers = []
    try:
        kek = os.path.join(work, "kek")
        with open(kek, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        os.chmod(kek, 0o600)
        env = dict(os.environ)
        env.update(
            KIZUNA_DATABASE_URL=f"{server}/{db}",
            KIZUNA_KEK_FILE=kek,
            KIZUNA_PUBLIC_URL="http://pki.city.example",
            KIZUNA_LOG_LEVEL="warn",
        )
        bases = []
        for name in ("a", "b"):
            port = free_port()
            replica_env = dict(env, KIZUNA_DATA_DIR=os.path.join(work, name))
            servers.append(
                subprocess.Popen(
                    [BIN, "serve", "--listen", f"127.0.0.1:{port}"],
                    env=replica_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
            wait_ready(bases[-1])
        cli_env = dict(env, KIZUNA_DATA_DIR=os.path.join(work, "cli"))
        org = json.loads(run([BIN, "org", "create", "--name", "Bench", "--json"], cli_env).stdout)["id"]
        with urllib.request.urlopen(bases[0] + "/pki/ca/issuing-1.pem") as r:
            issuing = os.path.join(work, "issuing.pem")
            with open(issuing, "wb") as f:
                f.write(r.read())
        certs = []
        for i in range(ROUNDS):
            key, csr, pem, req = (os.path.join(work, f"d{i}.{x}") for x in ("key", "csr", "pem", "req"))
            run(
                ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-subj", f"/CN=d{i}",
                 "-addext", f"subjectAltName=URI:urn:kizuna:device:{org}:d{i}", "-out", csr],
                cli_env,
            )
            with open(pem, "w") as f:
                f.write(run([BIN, "cert", "issue", "--csr", csr, "--profile", "device", "--org", org], cli_env).stdout)
            run(["openssl", "ocsp", "-issuer", issuing, "-cert", pem, "-no_nonce", "-reqout", req], cli_env)
            serial = run(["openssl", "x509", "-in", pem, "-noout", "-serial"], cli_env).stdout
            with open(req, "rb") as f:
                certs.append((serial.strip().split("=")[1].lower(), f.read()))
        # Both replicas answer good for every certificate before the clock starts.
        for serial, req in certs:
            for base in bases:
                deadline = time.monotonic() + 10
                while cert_status(ocsp_post(base, req)) != "good":
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{base} never answered good for {serial}")
                    time.sleep(0.01)
        latencies = {base: [] for base in bases}
        for serial, req in certs:
            run([BIN, "cert", "revoke", serial, "--reason", "keyCompromise"], cli_env)
            returned = time.monotonic()

            def watch(base):
                while True:
                    if cert_status(ocsp_post(base, req)) == "revoked":
                        latencies[base].append(time.monotonic() - returned)
                        return
                    if time.monotonic() - returned > 10:
                        latencies[base].append(float("inf"))
                        return
                    time.sleep(0.002)

            threads = [threading.Thread(target=watch, args=(b,)) for b in bases]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for label, base in zip(("replica A", "replica B"), bases):
            ms = sorted(x * 1000 for x in latencies[base])
            p90 = ms[int(len(ms) * 0.9) - 1]
            print(
                f"{label}: revoke returned -> OCSP 'revoked' over {len(ms)} revocations: "
                f"median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, max {ms[-1]:.0f} ms"
            )
    finally:
        for s in servers:
            s.terminate()
            s.wait()
        subprocess.run(["psql", PG, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=False)
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    sys.exit(main())
