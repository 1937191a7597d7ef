//! A SAML 2.0 identity provider for the SAML federation tests: pysaml2 run from
//! `tests/saml/idp.py` on a loopback port (its endpoints and `/control` fields are in
//! `tests/saml/README.md`), in the project's virtual environment that `scripts/test` makes.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{collect, free_port};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The virtual environment's Python, which has pysaml2 when `scripts/test` has run.
pub fn python() -> PathBuf {
    let python = Path::new(ROOT).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, which makes the virtual environment with pysaml2 \
         and installs xmlsec1 for the SAML identity provider peer",
        python.display()
    );
    python
}

/// A running identity provider, stopped when dropped. Its entityID is its metadata URL.
pub struct SamlIdp {
    child: Child,
    /// Closed on drop: the peer stops when its standard input ends.
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// `<base_url>/metadata`, also the entityID.
    pub metadata_url: String,
}

impl SamlIdp {
    /// Starts the peer on a free port and waits until it answers.
    pub fn start() -> SamlIdp {
        let port = free_port();
        let mut child = Command::new(python())
            .arg("tests/saml/idp.py")
            .args(["--port", &port.to_string()])
            .current_dir(ROOT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run .venv/bin/python (scripts/test makes it)");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let base_url = format!("http://127.0.0.1:{port}");
        let ready = format!("READY {base_url}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stdout.lock().unwrap().contains(&ready) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the SAML identity provider peer did not start ({}); scripts/test installs \
                     what it needs (pysaml2 in .venv, Debian's xmlsec1). Its output:\n{}{}",
                    exited.map_or("no READY line in 30 s".into(), |s| s.to_string()),
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        SamlIdp {
            stdin: child.stdin.take(),
            child,
            stderr,
            http: reqwest::Client::new(),
            metadata_url: format!("{base_url}/metadata"),
            base_url,
        }
    }

    /// What the peer logged so far (requests, and the reason of each 400).
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Changes how the next messages are made (fields in tests/saml/README.md); answers the
    /// settings in force.
    pub async fn control(&self, settings: serde_json::Value) -> serde_json::Value {
        let request = self
            .http
            .post(format!("{}/control", self.base_url))
            .json(&settings);
        serde_json::from_str(&self.call(request).await).unwrap()
    }

    /// The last SAML Response the peer made, as XML (before base64), to tamper with.
    pub async fn last_response(&self) -> String {
        self.get("/last-response").await
    }

    /// The LogoutRequests and LogoutResponses the peer received at `/slo`.
    pub async fn logouts(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/logouts").await).unwrap()
    }

    /// The AuthnRequests the peer received at `/sso` (id, issuer, acs_url, signature_verified).
    pub async fn authn_requests(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/authn-requests").await).unwrap()
    }

    /// A signed IdP-initiated LogoutRequest to the SP: the URL for the browser to GET.
    pub async fn initiate_logout(&self, name_id: &str, session_index: &str) -> String {
        let request = self
            .http
            .post(format!("{}/initiate-logout", self.base_url))
            .json(&serde_json::json!({"name_id": name_id, "session_index": session_index}));
        let answer: serde_json::Value = serde_json::from_str(&self.call(request).await).unwrap();
        answer["url"].as_str().expect("url").to_string()
    }

    async fn get(&self, path: &str) -> String {
        self.call(self.http.get(format!("{}{path}", self.base_url)))
            .await
    }

    /// Sends a request to the peer; anything but 200 fails the test with the peer's reason.
    async fn call(&self, request: reqwest::RequestBuilder) -> String {
        let response = request.send().await.expect("reach the SAML peer");
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "SAML peer answered {status}: {body}");
        body
    }
}

impl Drop for SamlIdp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
