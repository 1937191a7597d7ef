//! The end-to-end test kit: runs the built `kizuna` binary in a fresh directory with a fresh
//! database (SQLite, or PostgreSQL from `KIZUNA_TEST_POSTGRES_URL`), and talks to it over HTTP.

pub mod acme;
pub mod enroll;
pub mod jpki;
pub mod pki;
pub mod rp;
pub mod saml_idp;
pub mod softhsm;
pub mod upstream;

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use kizuna_core::testing::{FreshDatabase, TempDir};

pub const BIN: &str = env!("CARGO_BIN_EXE_kizuna");

/// A kizuna installation: a working directory (holding `./kizuna-data`) and the environment
/// every command of the test runs with.
pub struct Kizuna {
    pub dir: TempDir,
    env: Vec<(String, String)>,
    pub db: Option<FreshDatabase>,
    /// The test CA certificate (PEM) when the install serves HTTPS.
    pub tls_root: Option<Vec<u8>>,
}

impl Kizuna {
    /// The zero-configuration install: SQLite under `./kizuna-data`, with a clock the test
    /// can move ([`Kizuna::clock`]).
    pub fn sqlite() -> Kizuna {
        let dir = TempDir::new("kizuna-e2e");
        let clock = dir.path().join("clock");
        std::fs::write(&clock, "0").unwrap();
        Kizuna {
            env: vec![(
                kizuna_core::time::TEST_CLOCK_FILE.into(),
                clock.display().to_string(),
            )],
            dir,
            db: None,
            tls_root: None,
        }
    }

    /// The clock every process of this install reads.
    pub fn clock(&self) -> Clock {
        Clock(Arc::new(self.dir.path().join("clock")))
    }

    /// An install on this fresh database (SQLite file or PostgreSQL database).
    pub fn on(db: FreshDatabase) -> Kizuna {
        let mut k = Kizuna::sqlite();
        k.env.push(("KIZUNA_DATABASE_URL".into(), db.url.clone()));
        k.db = Some(db);
        k
    }

    /// One install per backend: SQLite, and PostgreSQL when configured.
    pub async fn each_backend() -> Vec<Kizuna> {
        kizuna_core::testing::fresh_databases()
            .await
            .into_iter()
            .map(Kizuna::on)
            .collect()
    }

    /// The system's clock, as in production, instead of the test clock (whose offset file
    /// every process reads at each "now"): for benchmarks, which never move time.
    pub fn system_clock(mut self) -> Kizuna {
        self.env
            .retain(|(key, _)| key != kizuna_core::time::TEST_CLOCK_FILE);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Kizuna {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Serves HTTPS on a free port with a certificate for 127.0.0.1 (made with openssl),
    /// and makes that the public URL, as a production install would be.
    pub fn tls(mut self) -> Kizuna {
        let cert = self.dir.path().join("tls.crt");
        let key = self.dir.path().join("tls.key");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .args([
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        self.tls_root = Some(std::fs::read(&cert).unwrap());
        self.env("KIZUNA_TLS_LISTEN", &format!("127.0.0.1:{port}"))
            .env("KIZUNA_TLS__CERT_FILE", cert.to_str().unwrap())
            .env("KIZUNA_TLS__KEY_FILE", key.to_str().unwrap())
            .env("KIZUNA_PUBLIC_URL", &format!("https://127.0.0.1:{port}"))
    }

    /// Serves HTTPS on a free port with the certificate Kizuna issues itself (no certificate
    /// files), and makes that the public URL.
    pub fn tls_self(self) -> Kizuna {
        let port = free_port();
        self.env("KIZUNA_TLS_LISTEN", &format!("127.0.0.1:{port}"))
            .env("KIZUNA_PUBLIC_URL", &format!("https://127.0.0.1:{port}"))
    }

    /// An HTTP client builder that trusts this install's TLS certificate.
    pub fn http(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        match &self.tls_root {
            Some(pem) => builder.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap()),
            None => builder,
        }
    }

    /// The environment every command of this install runs with.
    pub fn env_vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("kizuna-data")
    }

    /// A `kizuna` command in this install's directory and environment (no other KIZUNA_*
    /// variables leak in from the test runner).
    pub fn command(&self, args: &[&str]) -> Command {
        // A benchmark may run another build in alternating rounds (an A/B comparison).
        let bin = std::env::var("BENCH_KIZUNA_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut cmd = Command::new(bin);
        cmd.args(args).current_dir(self.dir.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("KIZUNA_") {
                cmd.env_remove(key);
            }
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kizuna")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kizuna {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Starts `kizuna serve` on a free port and waits until it is ready.
    pub fn serve(&self) -> Server {
        match self.try_serve(&[]) {
            Ok(server) => server,
            Err(failed) => panic!("kizuna serve did not start: {failed}"),
        }
    }

    /// Starts `kizuna serve` with extra arguments; on failure returns what it printed.
    pub fn try_serve(&self, extra: &[&str]) -> Result<Server, Failed> {
        let mut args = vec!["serve"];
        args.extend(extra);
        self.try_serve_command(&args)
    }

    /// Starts a serving command (`serve`, `ocsp serve`) on a free port unless `--listen` is
    /// given, and waits until it listens.
    pub fn try_serve_command(&self, command: &[&str]) -> Result<Server, Failed> {
        let mut args: Vec<&str> = command.to_vec();
        if !command.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kizuna serve");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listening = stdout.lock().unwrap().lines().find_map(|l| {
                l.trim()
                    .strip_prefix("listening:  http://")
                    .map(str::to_string)
            });
            if let Some(base) = listening {
                let public = stdout
                    .lock()
                    .unwrap()
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("public URL: ").map(str::to_string))
                    .unwrap_or_else(|| format!("http://{base}"));
                return Ok(Server {
                    child,
                    base: format!("http://{base}"),
                    public,
                    stdout,
                    stderr,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(Failed {
                    code: status.code(),
                    stdout: stdout.lock().unwrap().clone(),
                    stderr: stderr.lock().unwrap().clone(),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "kizuna serve did not become ready: {}",
                    stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Collects a child's output as it comes. Each read's complete lines are added at once,
/// so text the child wrote in one go (the server's start-up banner) is seen whole.
pub fn collect(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                let lines: Vec<u8> = pending.drain(..=end).collect();
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&lines));
            }
        }
        sink.lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&pending));
    });
    buffer
}

/// What a server that failed to start printed.
#[derive(Debug)]
pub struct Failed {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// An access token from `client_credentials` for a new client with `scope` (and owning
/// organization `org`, id or name).
pub async fn service_token(k: &Kizuna, base: &str, scope: &str, org: Option<&str>) -> String {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "automation",
        "--grant-type",
        "client_credentials",
        "--scope",
        scope,
        "--json",
    ];
    if let Some(org) = org {
        args.extend(["--org", org]);
    }
    let client = k.json(&args);
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["access_token"].as_str().unwrap().to_string()
}

/// A free TCP port on 127.0.0.1 (for a listener started just after).
///
/// The port is drawn at random from below the kernel's ephemeral range. A port the kernel
/// hands out for `:0` comes from that range, and so do the local ports of every outgoing
/// connection the tests running in parallel open (to PostgreSQL, to servers): one of those
/// could take the port between this check and the listener's bind ("Address already in use").
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000u16.min(ephemeral_from / 2);
    let span = u32::from(ephemeral_from - low);
    loop {
        let draw = kizuna_core::secret::random_bytes::<4>();
        let port = low + (u32::from_le_bytes(draw) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The root CA certificate (PEM) of a running install, fetched from its public downloads.
pub async fn root_pem(server: &Server) -> String {
    let cas: serde_json::Value = reqwest::get(server.url("/ca/api/v1/cas"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let root = cas
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "root" && c["status"] == "active")
        .expect("an active root CA");
    reqwest::get(server.url(&format!("/pki/ca/{}.pem", root["id"].as_str().unwrap())))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A running server, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    /// The plain-HTTP address.
    pub base: String,
    /// The public URL (HTTPS when the install serves TLS).
    pub public: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// The server process's id (benchmarks sample its CPU and memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The SPIFFE ID this server certifies for a device (trust domain: the public host).
    pub fn device_uri(&self, org: &str, device: &str) -> String {
        kizuna_ca::device_name::DeviceName {
            org: org.into(),
            device: device.into(),
        }
        .spiffe_id(&kizuna_ca::device_name::default_trust_domain(&self.public))
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The one-time bootstrap link the server printed, if any.
    pub fn bootstrap_link(&self) -> Option<String> {
        self.stdout().lines().find_map(|l| {
            l.trim()
                .contains("/admin/bootstrap?token=")
                .then(|| l.trim().to_string())
        })
    }

    /// Stops the server with SIGTERM and waits; returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    /// Kills the process at once (SIGKILL): no shutdown, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// An HTTP client that keeps cookies (like a browser) and does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of a hidden form field in a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// Connects to an install's database directly (to tamper with it in a test).
pub async fn database(k: &Kizuna) -> kizuna_core::db::Db {
    let url = match &k.db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/kizuna.db", k.data_dir().display()),
    };
    kizuna_core::db::Db::connect(&url, &Default::default())
        .await
        .expect("connect to the install's database")
}

impl Kizuna {
    /// Runs a command that must succeed, feeding `input` on standard input.
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kizuna");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kizuna {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a `--json` command and parses its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }

    /// Creates a resident account with a password.
    pub fn resident(&self, username: &str, password: &str) -> serde_json::Value {
        let out = self.ok_stdin(
            &[
                "user",
                "create",
                "--username",
                username,
                "--email",
                &format!("{username}@city.example.jp"),
                "--name",
                "Taro Yamada",
                "--password-stdin",
                "--json",
            ],
            password,
        );
        serde_json::from_str(&out).unwrap()
    }
}

/// A browser that signs in and consents through Kizuna's pages.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    /// The authenticator app the walk answers `/login/mfa` with, once enrolled.
    pub totp: Mutex<Option<Arc<TotpApp>>>,
    /// The install's clock, when the browser was made for one.
    pub clock: Option<Clock>,
}

/// Where a walk through the pages ended.
#[derive(Debug)]
pub enum Landing {
    /// Redirected outside Kizuna (to the relying party).
    Redirect(String),
    /// A page that could not be walked past (status and body).
    Page(u16, String),
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser::with_client(browser(), base)
    }

    /// A browser over this HTTP client (which must keep cookies and not follow redirects).
    pub fn with_client(http: reqwest::Client, base: &str) -> Browser {
        Browser {
            http,
            base: base.to_string(),
            totp: Mutex::new(None),
            clock: None,
        }
    }

    /// A browser for this install's public URL (trusting its test certificate).
    pub fn for_server(k: &Kizuna, server: &Server) -> Browser {
        Browser {
            clock: Some(k.clock()),
            ..Browser::with_client(
                k.http()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
                &server.public,
            )
        }
    }

    fn absolute(&self, location: &str) -> Option<String> {
        if location.starts_with('/') {
            Some(format!("{}{location}", self.base))
        } else if location.starts_with(&self.base) {
            Some(location.to_string())
        } else {
            None
        }
    }

    /// Follows redirects from `url`, signing in as `login` with `password` and answering
    /// consent with `consent`, until the browser leaves Kizuna or stops on a page.
    pub async fn walk(&self, url: &str, login: Option<(&str, &str)>, consent: bool) -> Landing {
        let mut next = url.to_string();
        for _ in 0..20 {
            let response = self
                .http
                .get(&next)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response.headers()["location"].to_str().unwrap().to_string();
                match self.absolute(&location) {
                    Some(url) => next = url,
                    None => return Landing::Redirect(location),
                }
                continue;
            }
            let html = response.text().await.unwrap();
            let path = next.trim_start_matches(&self.base).to_string();
            let csrf = hidden_field(&html, "csrf_token");
            let response = if path.starts_with("/login")
                && status == 200
                && html.contains("name=\"password\"")
            {
                let Some((user, password)) = login else {
                    return Landing::Page(status, html);
                };
                self.http
                    .post(format!("{}/login", self.base))
                    .header("accept", "text/html")
                    .form(&[
                        ("csrf_token", csrf.unwrap_or_default()),
                        ("req", hidden_field(&html, "req").unwrap_or_default()),
                        ("next", hidden_field(&html, "next").unwrap_or_default()),
                        ("username", user.to_string()),
                        ("password", password.to_string()),
                    ])
                    .send()
                    .await
                    .unwrap()
            } else if path.starts_with("/login/mfa") && html.contains("value=\"totp\"") {
                let Some(app) = self.totp.lock().unwrap().clone() else {
                    return Landing::Page(status, html);
                };
                self.http
                    .post(format!("{}/login/mfa", self.base))
                    .header("accept", "text/html")
                    .form(&[
                        ("csrf_token", csrf.unwrap_or_default()),
                        ("method", "totp".into()),
                        ("code", app.code()),
                    ])
                    .send()
                    .await
                    .unwrap()
            } else if path.starts_with("/consent") && status == 200 {
                self.http
                    .post(format!("{}/consent", self.base))
                    .header("accept", "text/html")
                    .form(&[
                        ("csrf_token", csrf.unwrap_or_default()),
                        ("req", hidden_field(&html, "req").unwrap_or_default()),
                        (
                            "decision",
                            if consent { "approve" } else { "deny" }.to_string(),
                        ),
                    ])
                    .send()
                    .await
                    .unwrap()
            } else {
                return Landing::Page(status, html);
            };
            let status = response.status().as_u16();
            if !(300..400).contains(&status) {
                return Landing::Page(status, response.text().await.unwrap());
            }
            let location = response.headers()["location"].to_str().unwrap().to_string();
            match self.absolute(&location) {
                Some(url) => next = url,
                None => return Landing::Redirect(location),
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Fetches a page of this server: status and body (no redirects followed).
    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Posts a form to this server with the CSRF token of the page at `from`.
    pub async fn post(
        &self,
        from: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (_, html) = self.page(from).await;
        let mut form: Vec<(String, String)> = vec![(
            "csrf_token".into(),
            hidden_field(&html, "csrf_token").expect("csrf token on the page"),
        )];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.http
            .post(format!("{}{action}", self.base))
            .header("accept", "text/html")
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Posts one of a page's own forms: the action `page/action`, the CSRF token from `page`.
    pub async fn post_action(
        &self,
        page: &str,
        action: &str,
        fields: Vec<(&str, &str)>,
    ) -> reqwest::Response {
        self.post(page, &format!("{page}/{action}"), &fields).await
    }

    /// Signs in on Kizuna's own pages (not for a client) and lands on the account page.
    pub async fn sign_in_to_account(&self, user: &str, password: &str) {
        match self
            .walk(
                &format!("{}/login?next=/account", self.base),
                Some((user, password)),
                true,
            )
            .await
        {
            Landing::Page(200, html) if html.contains("id=\"sessions-title\"") => {}
            other => panic!("did not reach the account page: {other:?}"),
        }
    }

    /// Sets up an authenticator app on the account page (signed in recently); the walk
    /// answers second-factor pages with it from now on.
    pub async fn enroll_totp(&self) -> Arc<TotpApp> {
        let (status, html) = self.page("/account/totp/new").await;
        assert_eq!(status, 200, "{html}");
        let app = Arc::new(TotpApp::from_page(&html).on(self.clock.clone()));
        let response = self
            .post(
                "/account/totp/new",
                "/account/totp",
                &[("code", &app.code())],
            )
            .await;
        assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
        *self.totp.lock().unwrap() = Some(app.clone());
        app
    }

    /// Creates the first city administrator from the server's bootstrap link and signs in
    /// to the account page with the password.
    pub async fn bootstrap_admin(&self, server: &Server, username: &str, password: &str) {
        let link = server
            .bootstrap_link()
            .expect("a bootstrap link on a fresh install");
        let from = &link[link.find("/admin/bootstrap").unwrap()..];
        let token = from.split("token=").nth(1).unwrap().to_string();
        let response = self
            .post(
                from,
                "/admin/bootstrap",
                &[
                    ("token", &token),
                    ("username", username),
                    ("password", password),
                    ("password_confirm", password),
                ],
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        self.sign_in_to_account(username, password).await;
    }

    /// Signs in to the admin console (after an authenticator app is enrolled, for the
    /// second factor it asks); returns the dashboard.
    pub async fn sign_in_to_console(&self) -> String {
        match self.walk(&format!("{}/admin", self.base), None, true).await {
            Landing::Page(200, html) if html.contains("id=\"counts\"") => html,
            other => panic!("did not reach the console dashboard: {other:?}"),
        }
    }

    /// Walks to the relying party; panics on a page.
    pub async fn sign_in(&self, url: &str, user: &str, password: &str) -> url::Url {
        match self.walk(url, Some((user, password)), true).await {
            Landing::Redirect(to) => url::Url::parse(&to).unwrap(),
            Landing::Page(status, html) => panic!("stopped on a page ({status}):\n{html}"),
        }
    }
}

/// A query parameter of a URL.
pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The directory of the npm test peers (`tests/node`), when installed. In CI a missing
/// install is a failure; elsewhere the test says why it is skipped.
pub fn node_peers() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let installed = dir.join("node_modules").is_dir()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if installed {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("node and tests/node/node_modules are required in CI (scripts/test installs them)");
    }
    eprintln!(
        "note: skipped: node packages are not installed (run scripts/test, or npm ci in tests/node)"
    );
    None
}

/// An install's clock: the offset (seconds) in the file its processes read through
/// `KIZUNA_TEST_CLOCK_FILE`. Tests move it instead of sleeping.
#[derive(Debug, Clone)]
pub struct Clock(Arc<std::path::PathBuf>);

impl Clock {
    pub fn offset(&self) -> i64 {
        std::fs::read_to_string(&*self.0)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Now on the install's clock.
    pub fn now_unix(&self) -> i64 {
        kizuna_core::time::now_unix() + self.offset()
    }

    /// Moves the install's clock forward (written whole, then renamed into place, so a
    /// process never reads half an offset).
    pub fn advance(&self, secs: i64) {
        let next = self.0.with_extension("next");
        std::fs::write(&next, (self.offset() + secs).to_string()).unwrap();
        std::fs::rename(&next, &*self.0).unwrap();
    }
}

/// An authenticator app: the seed read off the enrollment page, and codes that never repeat
/// a time step (Kizuna refuses a code used before in its window).
pub struct TotpApp {
    pub seed: Vec<u8>,
    last_step: Mutex<i64>,
    /// The install's clock, moved on to the next window instead of waiting for it.
    clock: Option<Clock>,
}

impl TotpApp {
    pub fn from_page(html: &str) -> TotpApp {
        let marker = "id=\"totp-secret\">";
        let start = html.find(marker).expect("the TOTP secret on the page") + marker.len();
        let end = html[start..].find('<').unwrap() + start;
        TotpApp::new(kizuna_idp::mfa::totp::decode_base32(&html[start..end]).expect("base32 seed"))
    }

    pub fn new(seed: Vec<u8>) -> TotpApp {
        TotpApp {
            seed,
            last_step: Mutex::new(0),
            clock: None,
        }
    }

    /// The same app, reading (and moving) the install's clock.
    pub fn on(mut self, clock: Option<Clock>) -> TotpApp {
        self.clock = clock;
        self
    }

    /// The code for a time step.
    pub fn code_at(&self, step: i64) -> String {
        format!(
            "{:06}",
            kizuna_idp::mfa::totp::hotp(&self.seed, step as u64)
        )
    }

    /// A code not used before: this step's, or the next (accepted one step ahead), or,
    /// when both were used, the next after waiting for its window.
    pub fn code(&self) -> String {
        let mut last = self.last_step.lock().unwrap();
        let unix = match &self.clock {
            Some(clock) => clock.now_unix(),
            None => kizuna_core::time::now_unix(),
        };
        let now = unix.div_euclid(30);
        let step = (*last + 1).max(now);
        if step > now + 1 {
            let wait = ((step - 1) * 30 - unix).max(0) + 1;
            match &self.clock {
                Some(clock) => clock.advance(wait),
                None => std::thread::sleep(Duration::from_secs(wait as u64)),
            }
        }
        *last = step;
        self.code_at(step)
    }
}

/// Debian's Chromium for the browser tests, when installed. In CI a missing browser is a
/// failure; elsewhere the test says why it is skipped.
pub fn chromium() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("/usr/bin/chromium is required in CI (scripts/test installs it)");
    }
    eprintln!("note: skipped: chromium is not installed (run scripts/test)");
    None
}

/// nginx, for the deployment topology test, when installed (Debian's, or one on PATH). In CI
/// a missing nginx is a failure; elsewhere the test says why it is skipped.
pub fn nginx() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"));
    if let Some(path) = [std::path::PathBuf::from("/usr/sbin/nginx")]
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
    {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("nginx is required in CI (scripts/test installs it)");
    }
    eprintln!("note: skipped: nginx is not installed (run scripts/test)");
    None
}

/// Sends a POST whose headers declare `length` bytes of form body, without sending the body,
/// and returns the status and body of the server's answer.
pub async fn declared_oversize_post(base: &str, path: &str, length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\ngrant_type=client_credentials"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}
