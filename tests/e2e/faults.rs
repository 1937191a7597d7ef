//! Faults with nothing lost (issue #19): the database restarted under load. Kizuna runs on
//! a PostgreSQL of the test's own (initdb in a temporary directory, its own port), so
//! stopping it disturbs no other test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Browser, Kizuna, TempDir, free_port};

/// A PostgreSQL server of this test only.
struct PrivatePostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs a PostgreSQL program as the `postgres` account when this test runs as root (the
/// server refuses to run as root).
fn pg(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    };
    command
        .args(args)
        .output()
        .expect("run a PostgreSQL program")
}

impl PrivatePostgres {
    /// Creates and starts one, or says why it cannot (no PostgreSQL server programs here).
    fn start() -> Result<PrivatePostgres, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no /usr/lib/postgresql: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .ok_or("no initdb under /usr/lib/postgresql")?;
        let dir = TempDir::new("kizuna-private-pg");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let init = pg(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        if !init.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            ));
        }
        let server = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
        };
        server.up();
        Ok(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let out = pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let out = pg(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = pg(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_under_load_gives_503s_then_recovers_with_nothing_lost() {
    let postgres = match PrivatePostgres::start() {
        Ok(p) => p,
        Err(why) if !in_ci() => {
            eprintln!("skipped: a private PostgreSQL cannot be started here: {why}");
            return;
        }
        Err(why) => panic!("CI=true: a private PostgreSQL must start: {why}"),
    };
    let k = Kizuna::sqlite()
        .env("KIZUNA_DATABASE_URL", &postgres.url())
        .env("KIZUNA_CONSOLE__CITY_ADMIN_AAL", "2");
    let server = k.serve();
    // An administrator signed in to the console before the outage.
    let console = Browser::for_server(&k, &server);
    console
        .bootstrap_admin(&server, "city.admin", "a long city admin passphrase")
        .await;
    console.enroll_totp().await;
    console.sign_in_to_console().await;
    let client = k.json(&[
        "client",
        "create",
        "--name",
        "meter reader",
        "--grant-type",
        "client_credentials",
        "--scope",
        "meters:read",
        "--json",
    ]);
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let token_url = server.url("/token");

    // Load: four callers asking for tokens until told to stop; every answer counted.
    let stop = Arc::new(AtomicBool::new(false));
    let granted = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (http, url, id, secret) = (http.clone(), token_url.clone(), id.clone(), secret.clone());
        let (stop, granted, unavailable, other) = (
            stop.clone(),
            granted.clone(),
            unavailable.clone(),
            other.clone(),
        );
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = http
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status() == 503 => {
                        let retry = r.headers().contains_key("retry-after");
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        if body["error"] == "temporarily_unavailable" && retry {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                        } else {
                            other.lock().unwrap().push(format!("503 {body}"));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        other.lock().unwrap().push(format!("{status} {text}"));
                    }
                    Err(e) => other.lock().unwrap().push(format!("transport: {e}")),
                }
            }
        }));
    }
    let admin = crate::common::service_token(&k, &server.base, "kizuna:admin", None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        granted.load(Ordering::Relaxed) > 0,
        "tokens before the outage"
    );

    // The database goes away: refusals say so (503, Retry-After), readiness says so.
    postgres.down();
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without the database");
    let deadline = Instant::now() + Duration::from_secs(15);
    while unavailable.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        unavailable.load(Ordering::Relaxed) > 0,
        "503 temporarily_unavailable during the outage; other answers: {:?}",
        other.lock().unwrap()
    );

    // The management APIs say the same.
    for path in ["/admin/api/v1/dashboard", "/ca/api/v1/certificates"] {
        let answer = http
            .get(server.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503, "{path}");
        assert!(answer.headers().contains_key("retry-after"), "{path}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable", "{path}: {body}");
    }

    // So does the console, as a page that says what happened (in the reader's language),
    // not "check the input".
    for (lang, title, text) in [
        (
            "en",
            "Temporarily unavailable",
            "The database is unreachable",
        ),
        (
            "ja",
            "一時的に利用できません",
            "データベースに一時的に接続できません",
        ),
    ] {
        let page = console
            .http
            .get(server.url("/admin/users"))
            .header("accept", "text/html")
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
        assert_eq!(
            page.status(),
            503,
            "a console page during the outage ({lang})"
        );
        assert!(page.headers().contains_key("retry-after"), "{lang}");
        let html = page.text().await.unwrap();
        assert!(html.contains(title) && html.contains(text), "{html}");
        assert!(
            !html.contains("Check the input") && !html.contains("入力を確認"),
            "{html}"
        );
    }

    // It comes back: Kizuna recovers by itself, no restart.
    postgres.up();
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = granted.load(Ordering::Relaxed);
    while granted.load(Ordering::Relaxed) == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        granted.load(Ordering::Relaxed) > before,
        "tokens again after the database returned: {}",
        server.stderr()
    );
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        other.lock().unwrap().is_empty(),
        "every answer was a token or a clear 503: {:?}",
        other.lock().unwrap()
    );
    assert!(
        server.stderr().contains("database unavailable"),
        "a clear log line: {}",
        server.stderr()
    );

    // Nothing lost: every token answered was audited, and the chain is whole.
    drop(server);
    let audited = k.ok(&["audit", "export"]);
    let issued = audited
        .lines()
        .filter(|l| l.contains("\"token.issue\"") && l.contains(&format!("client:{id}")))
        .count();
    assert_eq!(
        issued,
        granted.load(Ordering::Relaxed),
        "each granted token has its audit entry, and no other"
    );
    assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
}

/// Issues a device certificate through the CA API; its serial and PEM when acknowledged.
async fn issue_one(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    org: &str,
    csr: &str,
) -> Option<(String, String)> {
    let response = http
        .post(format!("{base}/ca/api/v1/certificates"))
        .bearer_auth(token)
        .json(&serde_json::json!({"csr": csr, "profile": "device", "org_id": org}))
        .send()
        .await
        .ok()?;
    if response.status() != 201 {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    Some((
        body["serial"].as_str()?.to_ascii_lowercase(),
        body["certificate_pem"].as_str()?.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_issuance_and_revocation_keeps_all_it_acknowledged() {
    let k = Kizuna::sqlite();
    let mut server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let org = k.json(&["org", "create", "--name", "Gates", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = crate::common::service_token(&k, &server.base, "kizuna:admin", None).await;
    let dir = k.dir.path().to_path_buf();
    let csrs: Vec<String> = (0..40)
        .map(|n| {
            let name = format!("gate-{n}");
            let path = crate::common::pki::csr(
                &dir,
                &name,
                "p256",
                &format!("/CN={name}"),
                &[&format!(
                    "subjectAltName=URI:{}",
                    server.device_uri(&org, &name)
                )],
            );
            std::fs::read_to_string(path).unwrap()
        })
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut first = Vec::new();
    for csr in &csrs[..20] {
        first.push(
            issue_one(&http, &server.base, &admin, &org, csr)
                .await
                .expect("issued before the crash"),
        );
    }

    // Revocations and issuances run while the process is killed; only what was answered
    // counts as acknowledged.
    let revoked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let issued = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let revoking = {
        let (http, base, admin, revoked) = (
            http.clone(),
            server.base.clone(),
            admin.clone(),
            revoked.clone(),
        );
        let serials: Vec<String> = first.iter().map(|(s, _)| s.clone()).collect();
        tokio::spawn(async move {
            for serial in serials {
                let answer = http
                    .post(format!("{base}/ca/api/v1/certificates/{serial}/revoke"))
                    .bearer_auth(&admin)
                    .json(&serde_json::json!({"reason": "keyCompromise"}))
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 200 => revoked.lock().unwrap().push(serial),
                    _ => break,
                }
            }
        })
    };
    let issuing = {
        let (http, base, admin, org, issued) = (
            http.clone(),
            server.base.clone(),
            admin.clone(),
            org.clone(),
            issued.clone(),
        );
        let csrs = csrs[20..].to_vec();
        tokio::spawn(async move {
            for csr in csrs {
                match issue_one(&http, &base, &admin, &org, &csr).await {
                    Some(done) => issued.lock().unwrap().push(done),
                    None => break,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while revoked.lock().unwrap().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    revoking.await.unwrap();
    issuing.await.unwrap();
    let revoked = revoked.lock().unwrap().clone();
    let issued = issued.lock().unwrap().clone();
    assert!(
        revoked.len() >= 5 && revoked.len() < 20,
        "killed mid-way: {} revocations acknowledged",
        revoked.len()
    );

    // Restarted: every acknowledged revocation is on OCSP and the CRL, every acknowledged
    // certificate is stored, no serial twice, the audit chain whole.
    let server = k.serve();
    crate::common::pki::download_ca_certificates(&k, &server).await;
    for (serial, pem) in first.iter().chain(issued.iter()) {
        std::fs::write(dir.join(format!("{serial}.pem")), pem).unwrap();
    }
    for serial in &revoked {
        let said = crate::common::pki::sh_ok(
            &dir,
            &format!(
                "openssl ocsp -no_nonce -issuer issuing.pem -cert {serial}.pem -url {}/ocsp -CAfile root.pem",
                server.base
            ),
        );
        assert!(said.contains(": revoked"), "{serial}: {said}");
    }
    k.ok(&["crl", "generate"]);
    let crl = reqwest::get(server.url("/pki/crl/issuing-1.crl"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.join("after.crl"), crl).unwrap();
    let listed =
        crate::common::pki::sh_ok(&dir, "openssl crl -inform DER -in after.crl -noout -text")
            .to_ascii_lowercase()
            .replace(':', "");
    for serial in &revoked {
        assert!(
            listed.contains(serial.trim_start_matches('0')),
            "{serial} on the CRL"
        );
    }
    let db = crate::common::database(&k).await;
    let (all, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT serial) FROM certificates")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(all, distinct, "no serial issued twice");
    for (serial, _) in &issued {
        let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE serial = $1")
            .bind(serial)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(found, 1, "acknowledged certificate {serial} is stored");
    }
    db.close().await;
    assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
}
