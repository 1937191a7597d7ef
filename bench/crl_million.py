#!/usr/bin/env python3
"""Generating and publishing CRLs for an issuing CA with 1,000,000 revoked certificates:
`kizuna crl generate --issuer issuing-1` (the full CRL and its 16 partitions, signed and
stored), timed, with its peak RSS, on SQLite and on PostgreSQL; then the published full CRL
is downloaded and parsed by `openssl crl`.

    cargo build --release && python3 bench/crl_million.py

Environment: ENTRIES (default 1000000), PG (PostgreSQL server URL, default
postgres://postgres@127.0.0.1:5432/postgres; empty to skip), BACKENDS (default
sqlite,postgres).
"""

import os
import re
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "kizuna")
ENTRIES = int(os.environ.get("ENTRIES", "1000000"))
PG = os.environ.get("PG", "postgres://postgres@127.0.0.1:5432/postgres")
BACKENDS = os.environ.get("BACKENDS", "sqlite,postgres").split(",")

# Revoked rows, made by the database itself: serials are 16 random-looking bytes.
SQLITE_FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
INSERT INTO certificates (serial, ca_id, subject, sans, profile, key_sha256, not_before,
    not_after, status, revoked_at, revocation_reason, requested_by, der, created_at)
SELECT lower(hex(randomblob(16))), 'issuing-1', 'CN=bench', '[]', 'device', '', {now},
    {now} + 31536000, 'revoked', {now} - (i % 86400), 'keyCompromise', 'bench', x'00', {now}
FROM n
"""
POSTGRES_FILL = """
INSERT INTO certificates (serial, ca_id, subject, sans, profile, key_sha256, not_before,
    not_after, status, revoked_at, revocation_reason, requested_by, der, created_at)
SELECT md5(i::text || random()::text), 'issuing-1', 'CN=bench', '[]', 'device', '', {now},
    {now} + 31536000, 'revoked', {now} - (i % 86400), 'keyCompromise', 'bench', '\\x00', {now}
FROM generate_series(1, {count}) AS i
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(label, env, fill):
    # The hierarchy (root, issuing CA, OCSP signer) as a first start makes it.
    subprocess.run([BIN, "ca", "init"], env=env, check=True, capture_output=True)
    started = time.monotonic()
    fill()
    filled = time.monotonic() - started
    timed = subprocess.run(
        ["/usr/bin/time", "-v", BIN, "crl", "generate", "--issuer", "issuing-1"],
        env=env, check=True, capture_output=True, text=True,
    )
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", timed.stderr)
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timed.stderr).group(1)) // 1024
    cpu = sum(
        float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", timed.stderr).group(1))
        for kind in ("User", "System")
    )
    print(f"{label}: {ENTRIES} revoked rows inserted in {filled:.1f} s")
    print(f"{label}: crl generate {seconds:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss} MB -- {timed.stdout.strip()}")
    # Published: any replica serves the stored bytes.
    port = free_port()
    server = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pki/crl/issuing-1.crl") as r:
            body = r.read()
        fetched = time.monotonic() - started
        parsed = subprocess.run(
            ["openssl", "crl", "-inform", "DER", "-noout", "-text"],
            input=body, check=True, capture_output=True,
        ).stdout.count(b"Serial Number:")
        print(f"{label}: GET full CRL {len(body) / 1e6:.1f} MB in {fetched * 1000:.0f} ms; openssl crl lists {parsed} entries")
    finally:
        server.terminate()
        server.wait()


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit("build first: cargo build --release")
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="kizuna-crl-") as work:
        env = dict(os.environ, KIZUNA_DATA_DIR=work, KIZUNA_LOG_LEVEL="warn")
        env.pop("KIZUNA_DATABASE_URL", None)

        def fill_sqlite():
            con = sqlite3.connect(os.path.join(work, "kizuna.db"))
            con.execute(SQLITE_FILL.format(count=ENTRIES, now=now))
            con.commit()
            con.close()

        if "sqlite" in BACKENDS:
            measure("sqlite", env, fill_sqlite)
    if PG and "postgres" in BACKENDS:
        db = f"kizuna_bench_{os.getpid()}"
        subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {db}"], check=True)
        url = f"{PG.rsplit('/', 1)[0]}/{db}"
        try:
            with tempfile.TemporaryDirectory(prefix="kizuna-crl-") as work:
                env = dict(os.environ, KIZUNA_DATA_DIR=work, KIZUNA_DATABASE_URL=url, KIZUNA_LOG_LEVEL="warn")

                def fill_postgres():
                    # The worst case: generation right after a mass revocation, before
                    # autovacuum has gathered statistics or set the visibility map (it is
                    # kept off the table for the run, and nothing vacuums by hand).
                    subprocess.run(["psql", url, "-qc", "ALTER TABLE certificates SET (autovacuum_enabled = false)"], check=True)
                    subprocess.run(["psql", url, "-qc", POSTGRES_FILL.format(count=ENTRIES, now=now)], check=True)

                measure("postgres", env, fill_postgres)
        finally:
            subprocess.run(["psql", PG, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=False)


if __name__ == "__main__":
    main()
