#!/usr/bin/env python3
"""Time from spawning `kizuna serve` to a 200 from /readyz, and idle RSS, for cold and warm starts: run `cargo build --release`, then `python3 bench/startup.py [--binary PATH] [--runs N]`."""

import argparse
import http.client
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY_TARGET_MS = 200.0
RSS_TARGET_MIB = 40.0


def free_port() -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    """The caller's environment without KIZUNA_* settings, so only the flags configure it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KIZUNA_")}


def readyz_status(port: int) -> int | None:
    """The status of GET /readyz, or None when nothing answers yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except (ConnectionError, OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def one_start(binary: Path, workdir: Path, idle: float, timeout: float) -> tuple[float, int]:
    """Starts the server on `workdir/data`; returns (ms to ready, idle RSS in KiB)."""
    port = free_port()
    log_path = workdir / "server.log"
    with open(log_path, "ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(workdir / "data"),
            ],
            cwd=workdir,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        while True:
            if readyz_status(port) == 200:
                ready_ms = (time.perf_counter() - started) * 1000.0
                break
            if proc.poll() is not None:
                raise RuntimeError(
                    f"kizuna exited with {proc.returncode} before /readyz answered 200:\n"
                    + tail(log_path)
                )
            if time.perf_counter() - started > timeout:
                raise RuntimeError(
                    f"/readyz did not answer 200 within {timeout} s:\n" + tail(log_path)
                )
            time.sleep(0.001)
        time.sleep(idle)
        rss = vm_rss_kib(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                print(f"warning: kizuna ignored SIGTERM for 15 s; killed (log {log_path})", file=sys.stderr)
    if proc.returncode != 0:
        print(
            f"warning: kizuna exited with {proc.returncode} after SIGTERM:\n{tail(log_path)}",
            file=sys.stderr,
        )
    return ready_ms, rss


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summary(phase: str, ready: list[float], rss_kib: list[int]) -> str:
    rss_mib = [k / 1024.0 for k in rss_kib]
    return (
        f"startup phase={phase} runs={len(ready)}"
        f" ready_ms_median={statistics.median(ready):.1f}"
        f" ready_ms_p90={p90(ready):.1f}"
        f" ready_ms_min={min(ready):.1f}"
        f" ready_ms_max={max(ready):.1f}"
        f" rss_mib_median={statistics.median(rss_mib):.1f}"
        f" rss_mib_max={max(rss_mib):.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--binary",
        type=Path,
        default=REPO / "target" / "release" / "kizuna",
        help="the kizuna binary (default: target/release/kizuna; build it with `cargo build --release`)",
    )
    parser.add_argument("--runs", type=int, default=20, help="cold+warm pairs (default 20)")
    parser.add_argument("--idle", type=float, default=1.0, help="seconds idle before reading RSS")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for /readyz")
    args = parser.parse_args()

    binary = args.binary.resolve()
    if not os.access(binary, os.X_OK):
        print(
            f"{binary} not found or not executable: run `cargo build --release` first",
            file=sys.stderr,
        )
        return 2

    results: dict[str, tuple[list[float], list[int]]] = {"cold": ([], []), "warm": ([], [])}
    for run in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix="kizuna-startup-"))
        try:
            # Cold: an empty data dir (creates the database, runs migrations, makes the KEK);
            # warm: the same data dir again.
            for phase in ("cold", "warm"):
                ready, rss = one_start(binary, workdir, args.idle, args.timeout)
                results[phase][0].append(ready)
                results[phase][1].append(rss)
                print(
                    f"run {run + 1}/{args.runs} {phase}: ready {ready:.1f} ms, rss {rss / 1024:.1f} MiB",
                    file=sys.stderr,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    for phase, (ready, rss) in results.items():
        print(summary(phase, ready, rss))
    cold_ready = statistics.median(results["cold"][0])
    worst_rss = max(statistics.median(rss) for _, rss in results.values()) / 1024.0
    print(
        f"target cold ready median <= {READY_TARGET_MS:.0f} ms: "
        f"{'met' if cold_ready <= READY_TARGET_MS else 'NOT met'} ({cold_ready:.1f} ms)"
    )
    print(
        f"target idle rss median <= {RSS_TARGET_MIB:.0f} MiB: "
        f"{'met' if worst_rss <= RSS_TARGET_MIB else 'NOT met'} ({worst_rss:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
