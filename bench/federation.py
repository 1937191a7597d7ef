#!/usr/bin/env python3
"""Brokered sign-ins per second, end to end: a city service's browser goes to Kizuna's
/authorize, presses "Sign in with City Hospital", signs in at panva's oidc-provider
(tests/node/upstream-op.mjs), comes back through Kizuna's callback (code exchange with
client_secret_basic, ID token checks, UserInfo, account resolution) and the service redeems
Kizuna's code for tokens. Every sign-in is a fresh browser (no session at either provider).

    cargo build --release && (cd tests/node && npm ci) && bench/federation.py

Environment: DURATION (s, default 20), BROWSERS (concurrent browsers, default 16),
DATABASE_URL (empty: SQLite in a temporary directory), BENCH_BIN (the binary; default
the release build under CARGO_TARGET_DIR or target/).
"""

import base64, hashlib, json, os, re, secrets, socket, subprocess, sys, tempfile, threading, time
import urllib.parse

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "kizuna"))
DURATION = float(os.environ.get("DURATION", "20"))
BROWSERS = int(os.environ.get("BROWSERS", "16"))
CALLBACK = "http://127.0.0.1:9/callback"
SECRET = "bench-upstream-secret-bench-upstream-secret"


def browser():
    """A fresh cookie jar that talks to loopback directly (never through a proxy)."""
    s = requests.Session()
    s.trust_env = False
    return s


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url):
    for _ in range(400):
        try:
            if browser().get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    sys.exit(f"{url} did not answer")


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def field(html, name):
    m = re.search(f'name="{name}" value="([^"]*)"', html)
    return m.group(1) if m else ""


def sign_in(kizuna, client_id, client_secret):
    """One brokered sign-in in a fresh browser; raises on any unexpected answer."""
    s = browser()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = kizuna + "/authorize?" + urllib.parse.urlencode({
        "client_id": client_id, "redirect_uri": CALLBACK, "response_type": "code",
        "scope": "openid email profile", "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
        "code_challenge_method": "S256"})
    for _ in range(20):
        if url.startswith(CALLBACK):
            code = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["code"][0]
            r = s.post(kizuna + "/token", auth=(client_id, client_secret), data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                "code_verifier": verifier})
            assert r.ok and "id_token" in r.json(), r.text
            return
        r = s.get(url, allow_redirects=False, headers={"accept": "text/html"})
        if r.status_code in (302, 303):
            url = urllib.parse.urljoin(url, r.headers["location"])
            continue
        path = urllib.parse.urlparse(url).path
        if path.startswith("/interaction/"):
            r = s.post(url, data={"login": "hanako"}, allow_redirects=False)
        elif 'id="upstream-hospital"' in r.text:
            r = s.post(kizuna + "/login/federated", allow_redirects=False, headers={"accept": "text/html"}, data={
                "csrf_token": field(r.text, "csrf_token"), "req": field(r.text, "req"),
                "next": field(r.text, "next"), "upstream": "hospital"})
        else:
            raise RuntimeError(f"stopped at {url} ({r.status_code}): {r.text[:300]}")
        assert r.status_code in (302, 303), f"{url}: {r.status_code} {r.text[:300]}"
        url = urllib.parse.urljoin(url, r.headers["location"])
    raise RuntimeError("too many redirects")


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"build first: cargo build --release ({BIN})")
    data = tempfile.mkdtemp()
    kport, oport = free_port(), free_port()
    kizuna = f"http://127.0.0.1:{kport}"
    env = dict(os.environ, KIZUNA_DATA_DIR=data, KIZUNA_PUBLIC_URL=kizuna, KIZUNA_LOG_LEVEL="warn")
    if os.environ.get("DATABASE_URL"):
        env["KIZUNA_DATABASE_URL"] = os.environ["DATABASE_URL"]
    run = lambda *args, stdin=None: subprocess.run([BIN, *args], env=env, input=stdin, capture_output=True, text=True, check=True).stdout
    server = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{kport}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(kizuna + "/readyz")
    op_env = dict(os.environ, PORT=str(oport), CLIENTS=json.dumps([{
        "client_id": "kizuna", "client_secret": SECRET, "redirect_uris": [kizuna + "/federation/callback"],
        "response_types": ["code"], "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic"}]),
        ACCOUNTS=json.dumps({"hanako": {"claims": {"email": "hanako@hospital.example.jp", "email_verified": True,
                                                  "name": "Hanako Sato"}, "acr": "aal2", "amr": ["pwd", "otp"]}}))
    op = subprocess.Popen(["node", os.path.join(ROOT, "tests/node/upstream-op.mjs")], env=op_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{oport}/.well-known/openid-configuration")
        run("org", "create", "--name", "Hospital", "--kind", "service-provider")
        run("upstream", "add", "--alias", "hospital", "--name", "City Hospital", "--org", "Hospital",
            "--issuer", f"http://127.0.0.1:{oport}", "--client-id", "kizuna", "--client-secret-stdin",
            "--scope", "email", "--scope", "profile", "--acr-value", "aal2", "--acr-map", "aal2=2",
            "--max-aal", "2", stdin=SECRET)
        client = json.loads(run("client", "create", "--name", "bench", "--redirect-uri", CALLBACK, "--no-consent", "--json"))
        cid, csecret = client["client_id"], client["client_secret"]
        sign_in(kizuna, cid, csecret)  # provisions the account; the rest sign in to it
        done, errors, lock = [0], [], threading.Lock()
        deadline = time.time() + DURATION

        def run_browser():
            while time.time() < deadline:
                try:
                    sign_in(kizuna, cid, csecret)
                    with lock:
                        done[0] += 1
                except Exception as e:  # counted and reported, never silently dropped
                    with lock:
                        errors.append(str(e)[:200])

        threads = [threading.Thread(target=run_browser) for _ in range(BROWSERS)]
        cpu_before = cpu_seconds(server.pid), cpu_seconds(op.pid)
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        kizuna_cpu = (cpu_seconds(server.pid) - cpu_before[0]) / max(done[0], 1) * 1000
        op_cpu = (cpu_seconds(op.pid) - cpu_before[1]) / max(done[0], 1) * 1000
        rss = next(int(l.split()[1]) // 1024 for l in open(f"/proc/{server.pid}/status") if l.startswith("VmHWM"))
        backend = "postgres" if os.environ.get("DATABASE_URL") else "sqlite"
        logins = run("audit", "export").count('"action":"federation.login"')
        chain = run("audit", "verify").strip()
        print(f"kizuna {backend}: {done[0] / elapsed:.1f} brokered sign-ins/s ({done[0]} in {elapsed:.1f} s, "
              f"{BROWSERS} browsers, {len(errors)} errors; CPU per sign-in: Kizuna {kizuna_cpu:.1f} ms, oidc-provider "
              f"{op_cpu:.1f} ms; peak RSS {rss} MB; {logins} federation.login audit events; {chain})")
        if errors:
            print("first error:", errors[0])
    finally:
        server.terminate()
        op.terminate()
        server.wait()
        op.wait()


if __name__ == "__main__":
    main()
