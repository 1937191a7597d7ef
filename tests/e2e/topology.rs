//! The deployment topology of `deploy/compose/` run as processes (no container engine is
//! needed): a fresh PostgreSQL database and role made by the shipped `postgres-init.sh` SQL
//! (least privilege), two `kizuna serve` replicas on it sharing one KEK
//! file, and nginx running the shipped `deploy/compose/nginx.conf` with only its upstream
//! addresses, listen ports and certificate directory changed. Through nginx: a whole OpenID
//! Connect sign-in served by both replicas (one stopped half-way), an EST enrollment and a
//! re-enrollment whose client certificate nginx forwards, a client's own forwarded-certificate
//! header that nginx must not pass on, and OCSP over plain HTTP answering good, then revoked
//! after a revocation through the other replica.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::enroll::{DEVICE_SCRIPT, csr, read_tokens, self_signed, stderr, x509_field};
use crate::common::pki::{sh_ok, text};
use crate::common::{self, Browser, Kizuna, Landing, Server, free_port, query_param};
use crate::est::escaped;
use crate::oidc_flows::{
    CALLBACK, PASSWORD, assert_tokens, authorize_url, claims, sign_in_to_next_step, web_client,
};
use openidconnect::PkceCodeChallenge;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose/nginx.conf");

/// nginx as a foreground process in its own directory, stopped when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
    log: Arc<Mutex<String>>,
    https: u16,
    http: u16,
}

impl Nginx {
    /// Writes the shipped configuration with the replicas' addresses, the ports and the
    /// certificate directory put in, wraps it in a main file that keeps nginx's pid, logs and
    /// temporary files in `dir`, checks it (`nginx -t`) and starts nginx.
    fn start(bin: &Path, dir: &Path, replicas: [&str; 2], tls_dir: &Path) -> Nginx {
        let (https, http) = (free_port(), free_port());
        std::fs::create_dir_all(dir.join("temp")).unwrap();
        let site = dir.join("kizuna.conf");
        std::fs::write(&site, shipped_config(replicas, https, http, tls_dir)).unwrap();
        let d = dir.display();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("    {t}_temp_path {d}/temp/{t};\n"))
            .collect();
        let main = dir.join("nginx.conf");
        std::fs::write(
            &main,
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
                 http {{\n{temp}    include {};\n}}\n",
                site.display()
            ),
        )
        .unwrap();
        let args = |cmd: &mut Command| {
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&main)
                .arg("-e")
                .arg(dir.join("error.log"))
                .args(["-g", "daemon off;"]);
        };
        let mut check = Command::new(bin);
        args(&mut check);
        let checked = check.arg("-t").output().expect("nginx -t");
        assert!(
            checked.status.success(),
            "nginx -t refused the shipped configuration: {}\n{}",
            text(&checked),
            std::fs::read_to_string(&site).unwrap()
        );
        let mut cmd = Command::new(bin);
        args(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let log = common::collect(child.stdout.take().unwrap());
        let errors = common::collect(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [https, http] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                    "nginx did not start: {}\n{}",
                    errors.lock().unwrap(),
                    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Nginx {
            child,
            dir: dir.to_path_buf(),
            log,
            https,
            http,
        }
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https)
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// The replicas that finally answered the logged requests whose line contains `path`
    /// (the last of `$upstream_addr`, which lists every replica tried).
    fn served(&self, path: &str) -> Vec<String> {
        // nginx writes the access log line after the answer; give it a moment to arrive.
        std::thread::sleep(Duration::from_millis(100));
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains(path))
            .filter_map(|l| {
                let tried = l.split(" upstream=").nth(1)?.split(" rid=").next()?;
                Some(tried.rsplit(", ").next()?.to_string())
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("nginx in {} did not stop on SIGTERM", self.dir.display());
    }
}

/// `deploy/compose/nginx.conf` with the two upstream servers, the two listen ports and the
/// certificate directory replaced, on directive lines only. Each string must be there exactly
/// as often as the file is known to use it: a changed file fails here, not silently later.
fn shipped_config(replicas: [&str; 2], https: u16, http: u16, tls_dir: &Path) -> String {
    let shipped = std::fs::read_to_string(SHIPPED).unwrap();
    let tls = format!("{}/", tls_dir.display());
    let swaps = [
        (
            "server kizuna-1:8080 ",
            format!("server {} ", replicas[0]),
            1,
        ),
        (
            "server kizuna-2:8080 ",
            format!("server {} ", replicas[1]),
            1,
        ),
        (
            "listen 443 ssl;",
            format!("listen 127.0.0.1:{https} ssl;"),
            1,
        ),
        ("listen 80;", format!("listen 127.0.0.1:{http};"), 1),
        ("/etc/nginx/tls/", tls, 2),
    ];
    let mut found = [0; 5];
    let lines: Vec<String> = shipped
        .lines()
        .map(|line| {
            if line.trim_start().starts_with('#') {
                return line.to_string();
            }
            let mut line = line.to_string();
            for (n, (from, to, _)) in swaps.iter().enumerate() {
                found[n] += line.matches(from).count();
                line = line.replace(from, to);
            }
            line
        })
        .collect();
    for (n, (from, _, expected)) in swaps.iter().enumerate() {
        assert_eq!(
            found[n], *expected,
            "deploy/compose/nginx.conf: `{from}` on {expected} directive line(s)"
        );
    }
    lines.join("\n") + "\n"
}

/// 32 random bytes, base64: the KEK file both replicas read (what `kizuna kek create` makes).
fn shared_kek(dir: &Path) -> PathBuf {
    use base64::Engine;
    let path = dir.join("kek");
    let key = kizuna_core::secret::random_bytes::<32>();
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(key) + "\n",
    )
    .unwrap();
    path
}

/// A database and login role made by the shipped `deploy/compose/postgres-init.sh` SQL (the
/// least-privilege role docs/ha.md gives), under a unique test name, dropped with the value.
struct LeastPrivilegeDatabase {
    server_url: String,
    name: String,
    /// The replicas' URL: the role's own login, its own database.
    url: String,
}

impl LeastPrivilegeDatabase {
    async fn create(server_url: &str) -> LeastPrivilegeDatabase {
        let script = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/compose/postgres-init.sh"
        ))
        .unwrap();
        // The script's two SQL here-documents: one run in `postgres`, one in the new database.
        let blocks: Vec<&str> = script
            .split("<<'SQL'\n")
            .skip(1)
            .map(|b| b.split("\nSQL\n").next().unwrap())
            .collect();
        assert_eq!(blocks.len(), 2, "postgres-init.sh: two SQL blocks");
        let name = format!(
            "kizuna_test_{}_{}",
            kizuna_core::time::now_unix(),
            kizuna_core::secret::hex(&kizuna_core::secret::random_bytes::<6>())
        );
        let password = kizuna_core::secret::hex(&kizuna_core::secret::random_bytes::<16>());
        let sql = |block: &str| {
            block
                .replace("kizuna", &name)
                .replace(":'password'", &format!("'{password}'"))
        };
        let mut url = url::Url::parse(server_url).unwrap();
        let run = |url: String, sql: String| async move {
            let db = kizuna_core::db::Db::connect(&url, &Default::default())
                .await
                .unwrap();
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement)
                    .execute(db.pool())
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            db.close().await;
        };
        run(server_url.to_string(), sql(blocks[0])).await;
        url.set_path(&format!("/{name}"));
        run(url.to_string(), sql(blocks[1])).await;
        url.set_username(&name).unwrap();
        url.set_password(Some(&password)).unwrap();
        LeastPrivilegeDatabase {
            server_url: server_url.to_string(),
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for LeastPrivilegeDatabase {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // Drop runs outside any async context it can borrow: a short-lived runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(db) = kizuna_core::db::Db::connect(&server_url, &Default::default()).await
                {
                    for statement in [
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        format!("DROP ROLE IF EXISTS {name}"),
                    ] {
                        let _ = sqlx::query(&statement).execute(db.pool()).await;
                    }
                    db.close().await;
                }
            });
        })
        .join();
    }
}

fn serve_on(k: &Kizuna, addr: &str) -> Server {
    k.try_serve(&["--listen", addr])
        .unwrap_or_else(|failed| panic!("replica on {addr} did not start: {failed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_the_shipped_nginx_sign_in_enroll_and_answer_ocsp() {
    let Some(nginx_bin) = common::nginx() else {
        return;
    };
    let Some(pg) = kizuna_core::testing::postgres_url() else {
        eprintln!("note: skipped: the topology runs on PostgreSQL only");
        return;
    };
    // The database and role the operator checklist creates: no superuser, owner of its own
    // database only. Both replicas migrate and serve on it.
    let database = LeastPrivilegeDatabase::create(&pg).await;
    let work = common::TempDir::new("kizuna-topology");
    let dir = work.path();
    let tls_dir = dir.join("tls");
    // nginx's server certificate, as an operator would make one for a first try.
    self_signed(
        &tls_dir,
        "server",
        "/CN=127.0.0.1",
        &[
            "subjectAltName=IP:127.0.0.1",
            "basicConstraints=critical,CA:FALSE",
            "extendedKeyUsage=serverAuth",
        ],
    );
    std::fs::rename(tls_dir.join("server.pem"), tls_dir.join("server.crt")).unwrap();
    let server_cert = tls_dir.join("server.crt");

    let (port_a, port_b) = (free_port(), free_port());
    let replicas = [format!("127.0.0.1:{port_a}"), format!("127.0.0.1:{port_b}")];
    let nginx = Nginx::start(
        &nginx_bin,
        &dir.join("nginx"),
        [&replicas[0], &replicas[1]],
        &tls_dir,
    );
    let kek = shared_kek(dir);
    let mut k = Kizuna::sqlite()
        .env("KIZUNA_DATABASE_URL", &database.url)
        .env("KIZUNA_KEK_FILE", kek.to_str().unwrap())
        .env("KIZUNA_PUBLIC_URL", &nginx.https_url(""))
        .env("KIZUNA_CA__PKI_URL", &nginx.http_url(""))
        .env("KIZUNA_TLS__TRUSTED_PROXIES", "127.0.0.1")
        .env("KIZUNA_TLS__CLIENT_CERT_HEADER", "x-forwarded-client-cert");
    k.tls_root = Some(std::fs::read(&server_cert).unwrap());
    // The first replica migrates and creates the CAs; the second finds them.
    let a = serve_on(&k, &replicas[0]);
    let b = serve_on(&k, &replicas[1]);

    // Plain HTTP carries only /pki and /ocsp; the rest is sent to HTTPS.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = plain
        .get(nginx.http_url("/authorize?client_id=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 301);
    assert_eq!(
        redirected.headers()["location"],
        "https://127.0.0.1/authorize?client_id=x"
    );

    // Metrics stay inside: nginx does not pass /metrics on.
    let https = k.http().build().unwrap();
    let metrics = https.get(nginx.https_url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 404);
    assert_eq!(reqwest::get(b.url("/metrics")).await.unwrap().status(), 200);

    // --- A sign-in through nginx, begun while both replicas serve, finished on the second
    // after the first is stopped.
    let rp = web_client(&k, "Library", &[]);
    let taro = k.resident("taro", PASSWORD);
    let browser = Browser::for_server(&k, &a);
    assert_eq!(
        browser.base,
        nginx.https_url(""),
        "pages are on nginx's URL"
    );
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = authorize_url(
        &a,
        &[
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "st-topology"),
            ("nonce", "n-topology"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let next = sign_in_to_next_step(&browser, &url, "taro").await;
    let before_stop: Vec<String> = ["/authorize", "/login"]
        .iter()
        .flat_map(|p| nginx.served(p))
        .collect();
    for replica in &replicas {
        assert!(
            before_stop.contains(replica),
            "both replicas served the first sign-in steps (round robin): {before_stop:?}\n{}",
            nginx.log.lock().unwrap()
        );
    }
    assert_eq!(a.stop(), Some(0), "replica A stops cleanly");
    let callback = if next.starts_with('/') {
        match browser
            .walk(&format!("{}{next}", browser.base), None, true)
            .await
        {
            Landing::Redirect(to) => url::Url::parse(&to).unwrap(),
            Landing::Page(status, html) => panic!("stopped on a page ({status}):\n{html}"),
        }
    } else {
        url::Url::parse(&next).unwrap()
    };
    assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some("st-topology")
    );
    let code = query_param(&callback, "code").expect("a code");
    let tokens = assert_tokens(
        https
            .post(nginx.https_url("/token"))
            .basic_auth(&rp.id, Some(&rp.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier.secret()),
            ])
            .send()
            .await
            .unwrap(),
        "code exchange through nginx",
    )
    .await;
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["iss"], nginx.https_url(""));
    assert_eq!(id_token["sub"], taro["id"]);
    assert_eq!(id_token["nonce"], "n-topology");
    assert_eq!(
        nginx.served("/token"),
        vec![replicas[1].clone()],
        "with the first replica stopped, the second answered the token request"
    );
    let userinfo: serde_json::Value = https
        .get(nginx.https_url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], taro["id"], "{userinfo}");

    // The first replica comes back on its address; nginx sends to it again.
    let a = serve_on(&k, &replicas[0]);

    // --- EST through nginx: enrollment with a token, re-enrollment with the certificate
    // nginx forwards in X-Forwarded-Client-Cert.
    let device = enroll_through(&k, &nginx, &server_cert, dir).await;
    let pem = std::fs::read_to_string(device.join("device.pem")).unwrap();
    let first_serial = x509_field(&device.join("device.pem"), "-serial");
    forged_certificate_headers_are_not_believed(&nginx, &server_cert, &b, &device, &pem).await;
    let renewed = device_script(&nginx, &server_cert, "reenroll", &device, &[]);
    assert!(
        renewed.status.success(),
        "simplereenroll through nginx with the client certificate: {}",
        stderr(&renewed)
    );
    let cert = device.join("device.pem");
    let serial = x509_field(&cert, "-serial");
    assert_ne!(
        serial, first_serial,
        "re-enrollment issued a new certificate"
    );
    let reenroll_line = nginx
        .log
        .lock()
        .unwrap()
        .lines()
        .filter(|l| l.contains("/simplereenroll") && l.contains("\" 200 "))
        .count();
    assert_eq!(reenroll_line, 1, "{}", nginx.log.lock().unwrap());

    // --- OCSP and the CRL over plain HTTP through nginx, at the URLs in the certificate.
    let ocsp_url = x509_field(&cert, "-ocsp_uri");
    assert!(
        ocsp_url.starts_with(&nginx.http_url("/ocsp")),
        "the certificate points OCSP at nginx's plain-HTTP port: {ocsp_url}"
    );
    for (id, file) in [("root-1", "root.pem"), ("issuing-1", "issuing.pem")] {
        let body = plain
            .get(nginx.http_url(&format!("/pki/ca/{id}.pem")))
            .send()
            .await
            .unwrap();
        assert_eq!(body.status(), 200, "/pki/ca/{id}.pem over plain HTTP");
        std::fs::write(device.join(file), body.text().await.unwrap()).unwrap();
    }
    let crl_url = x509_field(&cert, "-ext=crlDistributionPoints")
        .lines()
        .find_map(|l| l.trim().strip_prefix("URI:").map(str::to_string))
        .expect("a CRL distribution point");
    assert!(
        crl_url.starts_with(&nginx.http_url("/pki/crl/")),
        "{crl_url}"
    );
    let crl = plain.get(&crl_url).send().await.unwrap();
    assert_eq!(crl.status(), 200, "{crl_url}");
    assert_eq!(crl.bytes().await.unwrap().first(), Some(&0x30), "a DER CRL");

    let ocsp = |url: &str| {
        sh_ok(
            &device,
            &format!(
                "openssl ocsp -no_nonce -issuer issuing.pem -cert device.pem -CAfile root.pem -url {url}"
            ),
        )
    };
    let good = ocsp(&ocsp_url);
    assert!(
        good.contains("Response verify OK") && good.contains("device.pem: good"),
        "{good}"
    );
    // Revoked through the replica that did not give that answer, straight at its address.
    let answered = nginx
        .served("/ocsp")
        .pop()
        .expect("the OCSP request logged");
    let other = if answered == replicas[0] { &b } else { &a };
    let admin = common::service_token(&k, &other.base, "kizuna:admin", None).await;
    let serial_hex = serial.trim_start_matches("serial=").to_ascii_lowercase();
    let revoked = reqwest::Client::new()
        .post(other.url(&format!("/ca/api/v1/certificates/{serial_hex}/revoke")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "{}", revoked.text().await.unwrap());
    // Every replica answers revoked within a second (the change feed); through nginx,
    // whichever replica it picks, the answer is the same.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut answer = ocsp(&ocsp_url);
    while !answer.contains("device.pem: revoked") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        answer = ocsp(&ocsp_url);
    }
    assert!(answer.contains("Reason: keyCompromise"), "{answer}");
    for _ in 0..2 {
        let again = ocsp(&ocsp_url);
        assert!(again.contains("device.pem: revoked"), "{again}");
    }
    for replica in [&a, &b] {
        let direct = ocsp(&replica.url("/ocsp/issuing-1"));
        assert!(direct.contains("device.pem: revoked"), "{direct}");
    }
}

/// Runs the device's EST script against nginx's HTTPS URL, trusting nginx's certificate.
fn device_script(
    nginx: &Nginx,
    server_cert: &Path,
    cmd: &str,
    device: &Path,
    args: &[&str],
) -> std::process::Output {
    Command::new("bash")
        .arg(DEVICE_SCRIPT)
        .arg(cmd)
        .arg(nginx.https_url("/.well-known/est"))
        .arg(server_cert)
        .arg(device)
        .args(args)
        .output()
        .expect("run the device script")
}

/// Registers device sl-0042 and enrolls it through nginx with a one-time token; returns the
/// device's directory (device.pem, device.key).
async fn enroll_through(k: &Kizuna, nginx: &Nginx, server_cert: &Path, dir: &Path) -> PathBuf {
    k.ok(&["org", "create", "--name", "Streetlights"]);
    k.ok(&[
        "device",
        "add",
        "--org",
        "Streetlights",
        "--id",
        "sl-0042",
        "--serial",
        "SN-0042",
    ]);
    let csv = dir.join("tokens.csv");
    k.ok(&[
        "enroll",
        "tokens",
        "--org",
        "Streetlights",
        "--profile",
        "device",
        "--device",
        "sl-0042",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let token = read_tokens(&csv).remove(0);
    let device = dir.join("sl-0042");
    let enrolled = device_script(
        nginx,
        server_cert,
        "enroll",
        &device,
        &[&token, "/CN=sl-0042/serialNumber=SN-0042"],
    );
    assert!(
        enrolled.status.success(),
        "simpleenroll through nginx: {}",
        stderr(&enrolled)
    );
    device
}

/// A client that sends the device's certificate in the header itself, without presenting
/// it in TLS, is not re-enrolled: nginx replaces the header (with nothing, as no certificate
/// came in TLS). Over plain HTTP nginx does not pass EST on at all. The same header sent
/// straight to a replica from the trusted address is believed, which is why nginx must
/// overwrite it: that control shows the refusals come from nginx, not from the header's form.
async fn forged_certificate_headers_are_not_believed(
    nginx: &Nginx,
    server_cert: &Path,
    replica: &Server,
    device: &Path,
    pem: &str,
) {
    use base64::Engine;
    let der = csr(device, "forged", "/CN=sl-0042", &[]);
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(server_cert).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let send = |url: String, header: &'static str, value: String| {
        https
            .post(url)
            .header("content-type", "application/pkcs10")
            .header(header, value)
            .body(body.clone())
    };
    for (header, value) in [
        ("X-Forwarded-Client-Cert", escaped(pem)),
        ("x-forwarded-client-cert", escaped(pem)),
        (
            "X-Forwarded-Client-Cert",
            format!("Hash=00;Cert=\"{}\"", escaped(pem)),
        ),
    ] {
        let answer = send(
            nginx.https_url("/.well-known/est/simplereenroll"),
            header,
            value.clone(),
        )
        .send()
        .await
        .unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert_eq!(status, 401, "{header}: {value:.40}… through nginx: {text}");
        assert!(text.contains("presented in TLS"), "{text}");

        let plain = send(
            nginx.http_url("/.well-known/est/simplereenroll"),
            header,
            value,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(plain.status(), 301, "EST is not served over plain HTTP");
    }
    let control = reqwest::Client::new()
        .post(replica.url("/.well-known/est/simplereenroll"))
        .header("content-type", "application/pkcs10")
        .header("x-forwarded-client-cert", escaped(pem))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        control.status(),
        200,
        "from the trusted address the header is believed: {}",
        control.text().await.unwrap()
    );
}

/// The value of `key: value` on a line of compose.yaml (the first such line).
fn compose_value<'a>(compose: &'a str, key: &str) -> &'a str {
    compose
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("compose.yaml has no {key}"))
}

/// compose.yaml cannot run here (no container engine), so what it says is checked against
/// the files it names: the nginx.conf that the process test runs, the Dockerfile, and the
/// settings in docs/configuration.md.
#[test]
fn the_compose_file_agrees_with_nginx_conf_the_dockerfile_and_the_docs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose");
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let nginx = std::fs::read_to_string(SHIPPED).unwrap();
    let documented = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();

    // Every KIZUNA_* setting is a documented one.
    let settings: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().split_once(": ").map(|(k, _)| k))
        .filter(|k| k.starts_with("KIZUNA_"))
        .collect();
    assert!(settings.len() >= 8, "{settings:?}");
    for name in settings {
        assert!(documented.contains(&format!("`{name}`")), "{name}");
    }
    // nginx's fixed address is the one trusted proxy; the header nginx sets is the one read.
    assert_eq!(
        compose_value(&compose, "ipv4_address"),
        compose_value(&compose, "KIZUNA_TLS__TRUSTED_PROXIES")
    );
    let header = compose_value(&compose, "KIZUNA_TLS__CLIENT_CERT_HEADER");
    assert!(
        nginx.to_ascii_lowercase().contains(&format!(
            "proxy_set_header {header} $ssl_client_escaped_cert;"
        )),
        "{header}"
    );
    // The upstream servers are the replica services on the port they listen on.
    let port = compose_value(&compose, "KIZUNA_LISTEN")
        .rsplit(':')
        .next()
        .unwrap();
    for service in ["kizuna-1", "kizuna-2"] {
        assert!(compose.contains(&format!("\n  {service}:\n")), "{service}");
        assert!(
            nginx.contains(&format!("server {service}:{port} ")),
            "{service}"
        );
    }
    // The mounts put nginx.conf and the certificates where nginx.conf expects them.
    assert!(compose.contains("./nginx.conf:/etc/nginx/conf.d/default.conf:ro"));
    assert!(compose.contains("./tls:/etc/nginx/tls:ro"));
    for file in ["server.crt", "server.key"] {
        assert!(nginx.contains(&format!("/etc/nginx/tls/{file};")), "{file}");
        assert!(
            readme.contains(&format!("tls/{file}")),
            "README makes {file}"
        );
    }
    // The image is built from the Dockerfile in the repository, and the init script exists.
    assert_eq!(compose_value(&compose, "dockerfile"), "deploy/Dockerfile");
    assert!(dir.join("../Dockerfile").is_file());
    assert!(dir.join("postgres-init.sh").is_file());
    // Every secret file compose mounts is one the README says how to make.
    let secrets: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("file: ./"))
        .collect();
    assert_eq!(secrets.len(), 4, "{secrets:?}");
    for secret in secrets {
        assert!(
            readme.contains(&format!("> {secret}")) || readme.contains(&format!("--out {secret}")),
            "{secret}"
        );
    }
}
