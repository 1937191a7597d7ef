//! Upstream identity providers for the federation tests: panva's `oidc-provider` run from
//! `tests/node/upstream-op.mjs` on a loopback port, and a browser that follows a sign-in
//! across hosts (city service → Kizuna → upstream → Kizuna → city service).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{free_port, hidden_field};

/// An upstream that only publishes a discovery document and an empty key set on a loopback
/// port: what `kizuna upstream add` reads. Stopped when dropped.
pub struct DiscoveryStub {
    pub issuer: String,
    task: tokio::task::JoinHandle<()>,
}

impl DiscoveryStub {
    pub async fn start() -> DiscoveryStub {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(document) }),
            )
            .route("/jwks", get(|| async { axum::Json(json!({"keys": []})) }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DiscoveryStub { issuer, task }
    }
}

impl Drop for DiscoveryStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running `oidc-provider`, stopped when dropped.
pub struct NodeOp {
    child: Child,
    pub issuer: String,
}

impl NodeOp {
    /// Starts the provider with these client registrations and accounts (see the script).
    pub fn start(
        node_dir: &std::path::Path,
        clients: &serde_json::Value,
        accounts: &serde_json::Value,
    ) -> NodeOp {
        NodeOp::start_on(node_dir, free_port(), clients, accounts)
    }

    /// The same on a given port (to restart a provider under the same issuer).
    pub fn start_on(
        node_dir: &std::path::Path,
        port: u16,
        clients: &serde_json::Value,
        accounts: &serde_json::Value,
    ) -> NodeOp {
        NodeOp::start_shaped(node_dir, port, clients, accounts, &[])
    }

    /// The same, with extra settings of the script (`SCOPE_CLAIMS`, `ACR_VALUES`).
    pub fn start_shaped(
        node_dir: &std::path::Path,
        port: u16,
        clients: &serde_json::Value,
        accounts: &serde_json::Value,
        settings: &[(&str, serde_json::Value)],
    ) -> NodeOp {
        let mut command = Command::new("node");
        for (key, value) in settings {
            command.env(key, value.to_string());
        }
        let mut child = command
            .arg(node_dir.join("upstream-op.mjs"))
            .env("PORT", port.to_string())
            .env("CLIENTS", clients.to_string())
            .env("ACCOUNTS", accounts.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let stdout = super::collect(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stdout.lock().unwrap().contains("listening") {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                panic!("oidc-provider did not start: {}", stdout.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        NodeOp {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for NodeOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a walk across hosts ended.
#[derive(Debug)]
pub enum Arrival {
    /// The browser was sent to a URL starting with the walk's destination.
    Arrived(url::Url),
    /// It stopped on a page it has no answer for: the page's URL, status and body.
    Page(url::Url, u16, String),
}

/// A browser (cookies kept per host, redirects followed by hand) and what it answers with:
/// which upstream button to press on Kizuna's sign-in page, the login to give the upstream
/// `oidc-provider`, a username and password for a Kizuna password form, and whether to
/// submit a SAML IdP's HTTP-POST form (as its page's script would).
pub struct CrossBrowser {
    pub http: reqwest::Client,
    pub upstream: Option<String>,
    pub upstream_login: Option<String>,
    pub password_login: Option<(String, String)>,
    pub saml_post: bool,
}

impl Default for CrossBrowser {
    fn default() -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT_LANGUAGE,
            reqwest::header::HeaderValue::from_static("en"),
        );
        CrossBrowser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap(),
            upstream: None,
            upstream_login: None,
            password_login: None,
            saml_post: false,
        }
    }
}

impl CrossBrowser {
    async fn post(
        &self,
        url: &url::Url,
        action: &str,
        form: &[(String, String)],
    ) -> reqwest::Response {
        self.http
            .post(url.join(action).unwrap())
            .header("accept", "text/html")
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Follows `start` until the browser is sent to `destination`, answering sign-in,
    /// upstream-login, consent and upstream sign-out confirmation pages on the way.
    pub async fn walk(&self, start: &str, destination: &str) -> Arrival {
        let mut url = url::Url::parse(start).unwrap();
        for _ in 0..40 {
            if url.as_str().starts_with(destination) {
                return Arrival::Arrived(url);
            }
            let response = self
                .http
                .get(url.clone())
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let response = if (300..400).contains(&status) {
                response
            } else {
                let html = response.text().await.unwrap();
                let field = |name: &str| hidden_field(&html, name).unwrap_or_default();
                let path = url.path().to_string();
                if path.starts_with("/interaction/") && html.contains("name=\"login\"") {
                    let Some(login) = &self.upstream_login else {
                        return Arrival::Page(url, status, html);
                    };
                    self.post(&url, &path, &[("login".into(), login.clone())])
                        .await
                } else if html.contains("id=\"op.logoutForm\"") {
                    self.post(
                        &url,
                        "/session/end/confirm",
                        &[
                            ("xsrf".into(), field("xsrf")),
                            ("logout".into(), "yes".into()),
                        ],
                    )
                    .await
                } else if let Some(alias) = self
                    .upstream
                    .as_ref()
                    .filter(|a| html.contains(&format!("id=\"upstream-{a}\"")))
                {
                    self.post(
                        &url,
                        "/login/federated",
                        &[
                            ("csrf_token".into(), field("csrf_token")),
                            ("req".into(), field("req")),
                            ("next".into(), field("next")),
                            ("upstream".into(), alias.clone()),
                        ],
                    )
                    .await
                } else if path.starts_with("/login") && html.contains("name=\"password\"") {
                    let Some((user, password)) = &self.password_login else {
                        return Arrival::Page(url, status, html);
                    };
                    self.post(
                        &url,
                        "/login",
                        &[
                            ("csrf_token".into(), field("csrf_token")),
                            ("req".into(), field("req")),
                            ("next".into(), field("next")),
                            ("username".into(), user.clone()),
                            ("password".into(), password.clone()),
                        ],
                    )
                    .await
                } else if self.saml_post && html.contains("name=\"SAMLResponse\"") {
                    let (action, form) = saml_post_form(&html);
                    self.post(&url, &action, &form).await
                } else if path.starts_with("/consent") && status == 200 {
                    self.post(
                        &url,
                        "/consent",
                        &[
                            ("csrf_token".into(), field("csrf_token")),
                            ("req".into(), field("req")),
                            ("decision".into(), "approve".into()),
                        ],
                    )
                    .await
                } else {
                    return Arrival::Page(url, status, html);
                }
            };
            let status = response.status().as_u16();
            if !(300..400).contains(&status) {
                let at = response.url().clone();
                return Arrival::Page(at, status, response.text().await.unwrap());
            }
            // Relative to where the request went: a SAML form posts to another host.
            let location = response.headers()["location"].to_str().unwrap().to_string();
            url = response.url().join(&location).unwrap();
        }
        panic!("too many redirects from {start}");
    }

    /// Fetches a page (no redirects followed): status and body.
    pub async fn get(&self, url: &str) -> (u16, String) {
        let response = self
            .http
            .get(url)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Posts a form with the CSRF token of the page at `from`.
    pub async fn post_form(
        &self,
        from: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (_, html) = self.get(from).await;
        let mut form = vec![(
            "csrf_token".to_string(),
            hidden_field(&html, "csrf_token").expect("csrf token"),
        )];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.post(&url::Url::parse(from).unwrap(), action, &form)
            .await
    }
}

/// A SAML IdP's HTTP-POST binding page: where its form posts, and its fields.
pub fn saml_post_form(html: &str) -> (String, Vec<(String, String)>) {
    let start = html.find("action=\"").expect("a form action") + "action=\"".len();
    let end = html[start..].find('"').unwrap() + start;
    let action = html[start..end].replace("&amp;", "&");
    let mut form = vec![(
        "SAMLResponse".to_string(),
        hidden_field(html, "SAMLResponse").expect("a SAMLResponse"),
    )];
    if let Some(relay) = hidden_field(html, "RelayState") {
        form.push(("RelayState".to_string(), relay));
    }
    (action, form)
}
