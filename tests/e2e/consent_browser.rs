//! Resident consent in a browser (issue #18). Headless Chromium (Debian's `chromium`, driven
//! by playwright-core from `tests/node/consent.mjs`) signs a resident in for a service, keeps
//! the email address back on the consent page (also seen once in Japanese), and allows; the
//! test redeems the code as the service would. The same browser then ends the consent sooner
//! on the services page, finds the ID token release in the history and its CSV export, and
//! withdraws the consent: the service's refresh token stops working and the service hears of
//! it by back-channel logout. Screenshots go to `target/test-artifacts/consent/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::common::{Kizuna, Server, chromium, node_peers};
use crate::oidc_flows::{
    CALLBACK, LOGOUT_EVENT, PASSWORD, authorize_url, claims, exchange_code, introspect,
    logout_receiver, post_token, web_client,
};

const ARTIFACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-artifacts/consent");
const SERVICE: &str = "Childcare portal";
const PURPOSE: &str = "Reminders about your childcare applications";
const PURPOSE_JA: &str = "保育の申請に関するお知らせのため";

/// `consent.mjs` running: the JSON lines it reports, its stdin (a line lets it go on past the
/// code) and what it logged.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    reports: mpsc::UnboundedReceiver<String>,
    log: Arc<Mutex<String>>,
}

impl Script {
    fn start(mut node: Command) -> Script {
        let mut child = node
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        let (sender, reports) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with('{') && sender.send(line).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let mut stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Script {
            stdin: child.stdin.take(),
            child,
            reports,
            log,
        }
    }

    /// The next JSON line the script prints; a failed or silent browser run fails the test
    /// with the script's and the server's logs.
    async fn report(&mut self, server: &Server) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(180), self.reports.recv()).await;
        match line {
            Ok(Some(line)) => serde_json::from_str(&line).unwrap(),
            failed => {
                let _ = self.child.kill();
                let status = self.child.wait().ok();
                // The stderr reader ends with the child; give it a moment to take the rest.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "the browser run failed ({}; {status:?}):\n{}\nserver log:\n{}",
                    if failed.is_err() {
                        "timed out"
                    } else {
                        "ended"
                    },
                    self.log.lock().unwrap(),
                    server.stderr()
                );
            }
        }
    }

    fn go_on(&mut self) {
        let stdin = self.stdin.as_mut().expect("the script's stdin");
        writeln!(stdin, "redeemed").expect("tell the script to go on");
    }

    /// Waits for the script to finish; it must succeed.
    fn finish(mut self, server: &Server) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for node");
        assert!(
            status.success(),
            "the browser run failed ({status}):\n{}\nserver log:\n{}",
            self.log.lock().unwrap(),
            server.stderr()
        );
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // A test that failed half way: closing stdin makes the script close the browser.
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn day(unix: i64) -> String {
    kizuna_core::time::unix_to_rfc3339(unix)[..10].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_keeps_back_a_claim_ends_sooner_and_withdraws_a_consent_in_chromium() {
    let (Some(node_dir), Some(chromium)) = (node_peers(), chromium()) else {
        return;
    };
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let (endpoint, mut logouts) = logout_receiver().await;
        let rp = web_client(
            &k,
            SERVICE,
            &[
                "--grant-type",
                "authorization_code",
                "--grant-type",
                "refresh_token",
                "--backchannel-logout-uri",
                &endpoint,
            ],
        );
        k.ok(&[
            "client",
            "consent-terms",
            &rp.id,
            "--purpose",
            PURPOSE,
            "--purpose-ja",
            PURPOSE_JA,
            "--lifetime-days",
            "30",
            "--optional-claim",
            "email",
        ]);
        let user = k.resident("hanako", PASSWORD);
        let end_day = day(k.clock().now_unix() + 10 * 86_400);
        let authorize = authorize_url(
            &server,
            &[
                ("client_id", &rp.id),
                ("redirect_uri", CALLBACK),
                ("response_type", "code"),
                ("scope", "openid profile email"),
                ("state", "consent-browser"),
            ],
        );

        let mut node = Command::new("node");
        node.arg(node_dir.join("consent.mjs"))
            .current_dir(k.dir.path());
        for (key, value) in k.env_vars() {
            node.env(key, value);
        }
        node.env("ISSUER", &server.public)
            .env("AUTHORIZE_URL", &authorize)
            .env("CALLBACK", CALLBACK)
            .env("USERNAME", "hanako")
            .env("PASSWORD", PASSWORD)
            .env("SERVICE", SERVICE)
            .env("PURPOSE", PURPOSE)
            .env("PURPOSE_JA", PURPOSE_JA)
            .env("END_DAY", &end_day)
            .env("ARTIFACTS", ARTIFACTS)
            .env("CHROMIUM", &chromium);
        let mut script = Script::start(node);

        // The browser allowed, keeping the email address back: the service redeems the code.
        let code = script.report(&server).await["code"]
            .as_str()
            .expect("a code")
            .to_string();
        let response = exchange_code(&server, &rp, &code, CALLBACK, None).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        let id = claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["preferred_username"], "hanako", "{id}");
        assert!(id.get("email").is_none(), "kept back: {id}");
        let refresh_token = tokens["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_string();
        assert_eq!(
            introspect(&server, &rp, &refresh_token).await["active"],
            true,
            "in force before the withdrawal"
        );

        // The browser ends the consent sooner, reads the history and withdraws.
        script.go_on();
        let report = script.report(&server).await;
        script.finish(&server);
        assert!(
            report["until"].as_str().unwrap().starts_with(&end_day),
            "{report}"
        );
        assert!(
            report["csv_header"]
                .as_str()
                .unwrap()
                .starts_with("time,service"),
            "{report}"
        );
        assert!(
            report["csv_rows"].as_u64().is_some_and(|n| n >= 1),
            "{report}"
        );

        let refreshed = post_token(
            &server,
            Some(&rp),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
        let status = refreshed.status().as_u16();
        let answer: Value = refreshed.json().await.unwrap();
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_grant")),
            "{answer}"
        );
        let token = tokio::time::timeout(Duration::from_secs(10), logouts.recv())
            .await
            .expect("a logout token within seconds")
            .expect("receiver open");
        let c = claims(&token);
        assert_eq!(c["sub"], user["id"], "{c}");
        assert_eq!(c["aud"], rp.id.as_str(), "{c}");
        assert!(c["events"][LOGOUT_EVENT].is_object(), "{c}");
        assert!(
            c.get("sid").is_none(),
            "about the person, not one session: {c}"
        );

        for shot in ["consent", "consent-ja", "services", "services-withdrawn"] {
            assert!(
                std::path::Path::new(&format!("{ARTIFACTS}/{shot}.png")).is_file(),
                "{shot}.png"
            );
        }
    }
}
