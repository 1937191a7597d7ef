//! The admin console in a browser. Headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `tests/node/console.mjs`) signs in as the first city administrator
//! with a passkey (AAL3), adds an organization, a client and a device, enrolls the device over
//! EST with curl, revokes its certificate through the confirmation and reads the revocation
//! in the audit log; `openssl ocsp` then sees the certificate revoked. Screenshots of each
//! main page go to `target/test-artifacts/console/`. The console's bad inputs are driven with
//! a cookie-keeping HTTP client (TOTP second factor, city administrators admitted at AAL2):
//! posts without the CSRF token, HTML in fields, stale forms, another organization's device
//! by URL, huge searches and revoking twice.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::pki::{download_ca_certificates, sh};
use crate::common::{
    Browser, Kizuna, Landing, Server, chromium, free_port, hidden_field, node_peers, root_pem,
    service_token,
};

const ARTIFACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-artifacts/console");
const DEVICE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/est/device.sh");

fn ocsp_until_revoked(dir: &std::path::Path, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = sh(
            dir,
            &format!(
                "openssl ocsp -no_nonce -issuer issuing.pem -cert lamp-42/device.pem -url {base}/ocsp/issuing-1 -CAfile root.pem"
            ),
        );
        let answer = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if answer.contains(": revoked") || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_administrator_revokes_an_enrolled_device_from_the_console() {
    let (Some(node_dir), Some(chromium)) = (node_peers(), chromium()) else {
        return;
    };
    for k in Kizuna::each_backend().await {
        let port = free_port();
        let tls_port = free_port();
        // WebAuthn needs a domain (localhost); EST runs on the TLS listener, with the
        // certificate Kizuna issues itself for that host.
        let k = k
            .env("KIZUNA_PUBLIC_URL", &format!("http://localhost:{port}"))
            .env("KIZUNA_TLS_LISTEN", &format!("127.0.0.1:{tls_port}"));
        let server = k
            .try_serve(&["--listen", &format!("127.0.0.1:{port}")])
            .unwrap_or_else(|failed| panic!("{failed}"));
        let root = k.dir.path().join("root.pem");
        std::fs::write(&root, root_pem(&server).await).unwrap();
        let mut node = std::process::Command::new("node");
        node.arg(node_dir.join("console.mjs"))
            .current_dir(k.dir.path());
        for (key, value) in k.env_vars() {
            node.env(key, value);
        }
        let result = node
            .env("ISSUER", &server.public)
            .env(
                "BOOTSTRAP",
                server.bootstrap_link().expect("bootstrap link"),
            )
            .env(
                "EST",
                format!("https://localhost:{tls_port}/.well-known/est"),
            )
            .env("ROOT", &root)
            .env("DEVICE_SCRIPT", DEVICE_SCRIPT)
            .env("WORK", k.dir.path())
            .env("ARTIFACTS", ARTIFACTS)
            .env("CHROMIUM", &chromium)
            .output()
            .expect("run node");
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "the browser run failed:\n{stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&result.stderr),
            server.stderr()
        );
        let report: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let serial = report["serial"].as_str().unwrap();

        download_ca_certificates(&k, &server).await;
        let answer = ocsp_until_revoked(k.dir.path(), &server.base);
        assert!(answer.contains(": revoked"), "openssl ocsp: {answer}");
        assert!(answer.contains("Reason: keyCompromise"), "{answer}");
        let audit = k.ok(&["audit", "export"]);
        assert!(
            audit.contains(&format!("\"target\":\"cert:{serial}\"")),
            "the revocation is audited"
        );
        assert!(audit.contains("\"console.signin\""));
        assert!(k.ok(&["audit", "verify"]).starts_with("ok"));
        for shot in [
            "dashboard",
            "organizations",
            "clients",
            "devices",
            "certificate",
            "revoke-confirm",
            "audit",
            "user",
            "reviews",
            "upstreams",
        ] {
            assert!(
                std::path::Path::new(&format!("{ARTIFACTS}/{shot}.png")).is_file(),
                "{shot}.png"
            );
        }
        drop(server);
    }
}

/// An install that admits city administrators at AAL2 (TOTP), with its administrator signed
/// in to the console.
async fn console() -> (Kizuna, Server, Browser) {
    let k = Kizuna::sqlite().env("KIZUNA_CONSOLE__CITY_ADMIN_AAL", "2");
    let server = k.serve();
    let browser = Browser::for_server(&k, &server);
    browser
        .bootstrap_admin(&server, "city.admin", "a long city admin passphrase")
        .await;
    browser.enroll_totp().await;
    browser.sign_in_to_console().await;
    (k, server, browser)
}

async fn form_post(browser: &Browser, action: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let response = browser
        .http
        .post(format!("{}{action}", browser.base))
        .header("accept", "text/html")
        .form(fields)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_console_needs_a_sign_in_and_sends_strict_security_headers() {
    let (_k, server, browser) = console().await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = anonymous
        .get(server.url("/admin/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/admin/login?next=%2Fadmin%2Fdevices")
    );
    let response = browser
        .http
        .get(server.url("/admin"))
        .header("accept-language", "ja")
        .send()
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("ダッシュボード") && html.contains("<html lang=\"ja\">"),
        "Japanese by Accept-Language"
    );
    assert!(!html.contains("<script"), "no script at all");
}

#[tokio::test]
async fn admin_with_a_trailing_slash_reaches_the_console_like_admin() {
    let (k, server, signed_in) = console().await;
    let anonymous = Browser::for_server(&k, &server);
    // One canonical URL: a permanent redirect that keeps the method and the query.
    let response = anonymous
        .http
        .get(format!("{}/admin/?lang=en", anonymous.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "/admin?lang=en");
    for path in ["/admin", "/admin/"] {
        let url = format!("{}{path}", anonymous.base);
        match anonymous.walk(&url, None, true).await {
            Landing::Page(200, html) if html.contains("name=\"password\"") => {}
            other => panic!("{path} signed out did not end at the sign-in page: {other:?}"),
        }
        let url = format!("{}{path}", signed_in.base);
        match signed_in.walk(&url, None, true).await {
            Landing::Page(200, html) if html.contains("id=\"counts\"") => {}
            other => panic!("{path} signed in did not reach the dashboard: {other:?}"),
        }
    }
}

#[tokio::test]
async fn console_posts_without_the_csrf_token_are_refused_and_change_nothing() {
    let (k, _server, browser) = console().await;
    for (action, fields) in [
        ("/admin/orgs", vec![("name", "Forged")]),
        (
            "/admin/orgs",
            vec![("name", "Forged"), ("csrf_token", "not-the-token")],
        ),
        (
            "/admin/revoke",
            vec![("org", "x"), ("reason", "keyCompromise")],
        ),
        ("/admin/logout", vec![]),
    ] {
        let (status, html) = form_post(&browser, action, &fields).await;
        assert_eq!(status, 403, "{action}: {html}");
        assert!(
            html.contains("did not come from this site")
                || html.contains("このサイトから送信されていません"),
            "{html}"
        );
    }
    let orgs = k.json(&["org", "list", "--json"]);
    assert!(orgs.as_array().unwrap().is_empty(), "{orgs}");
    browser.sign_in_to_console().await;
}

#[tokio::test]
async fn html_and_script_in_fields_are_shown_as_text() {
    let (_k, _server, browser) = console().await;
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let response = browser
        .post(
            "/admin/orgs",
            "/admin/orgs",
            &[("name", evil), ("kind", "other")],
        )
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let response = browser
        .post(
            "/admin/clients",
            "/admin/clients",
            &[
                ("client_name", evil),
                ("redirect_uris", "https://x.example/cb"),
                ("min_aal", "0"),
            ],
        )
        .await;
    assert_eq!(response.status(), 201);
    let (_, audit) = browser.page("/admin/audit?action=org.create").await;
    let marker = "href=\"/admin/audit/";
    let table = audit.find("id=\"entries\"").unwrap();
    let start = table + audit[table..].find(marker).expect("the org.create entry") + marker.len();
    let entry = format!(
        "/admin/audit/{}",
        &audit[start..start + audit[start..].find('"').unwrap()]
    );
    for path in ["/admin/orgs", "/admin/clients", entry.as_str()] {
        let (status, html) = browser.page(path).await;
        assert_eq!(status, 200);
        assert!(
            !html.contains("<script>alert") && !html.contains("<img src=x"),
            "{path}: {html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || html.contains("&#60;script&#62;"),
            "{path} shows the text"
        );
    }
}

#[tokio::test]
async fn a_stale_form_is_refused_and_shows_the_newer_version() {
    let (k, _server, browser) = console().await;
    let org = k.json(&["org", "create", "--name", "Parks", "--json"]);
    let path = format!("/admin/orgs/{}", org["id"].as_str().unwrap());
    let (_, loaded) = browser.page(&path).await;
    let csrf = hidden_field(&loaded, "csrf_token").unwrap();
    let version = hidden_field(&loaded, "version").unwrap();
    assert_eq!(version, "0");
    let edit = |name: &'static str| {
        let (csrf, version) = (csrf.clone(), version.clone());
        let browser = &browser;
        let path = path.clone();
        async move {
            form_post(
                browser,
                &path,
                &[
                    ("csrf_token", &csrf),
                    ("version", &version),
                    ("name", name),
                    ("kind", "other"),
                ],
            )
            .await
        }
    };
    let (status, _) = edit("Parks and Gardens").await;
    assert_eq!(status, 303);
    // The second editor loaded the page before the first saved.
    let (status, html) = edit("Parks Department").await;
    assert_eq!(status, 409);
    assert!(html.contains("ほかの方が変更しました"), "{html}");
    assert!(
        html.contains("Parks and Gardens"),
        "the newer version is shown"
    );
    assert_eq!(
        hidden_field(&html, "version").as_deref(),
        Some("1"),
        "and can be edited from there"
    );
    let (_, page) = browser.page(&path).await;
    assert!(
        !page.contains("Parks Department"),
        "the stale edit was not saved"
    );

    let response = browser
        .post(
            "/admin/clients",
            "/admin/clients",
            &[
                ("client_name", "Library"),
                ("redirect_uris", "https://library.example/cb"),
                ("min_aal", "0"),
            ],
        )
        .await;
    let html = response.text().await.unwrap();
    let id_marker = "href=\"/admin/clients/";
    let start = html.find(id_marker).unwrap() + id_marker.len();
    let client_id = &html[start..start + html[start..].find('"').unwrap()];
    let path = format!("/admin/clients/{client_id}");
    let (_, loaded) = browser.page(&path).await;
    let csrf = hidden_field(&loaded, "csrf_token").unwrap();
    for (uri, expected) in [
        ("https://library.example/one", 303),
        ("https://library.example/two", 409),
    ] {
        let (status, html) = form_post(
            &browser,
            &path,
            &[
                ("csrf_token", &csrf),
                ("version", "0"),
                ("redirect_uris", uri),
                ("min_aal", "0"),
            ],
        )
        .await;
        assert_eq!(status, expected, "{html}");
        if expected == 409 {
            assert!(
                html.contains("https://library.example/one"),
                "the newer redirect URI is shown"
            );
        }
    }
}

/// An administrator of organization `org` (TOTP second factor), signed in to the console.
async fn org_admin_console(k: &Kizuna, server: &Server, org: &str) -> Browser {
    let city = service_token(k, &server.base, "kizuna:admin", None).await;
    let http = reqwest::Client::new();
    let user: serde_json::Value = http
        .post(server.url("/admin/api/v1/users"))
        .bearer_auth(&city)
        .json(&serde_json::json!({"username": "lamp.manager", "password": "a long org admin passphrase"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let granted = http
        .post(server.url(&format!(
            "/admin/api/v1/users/{}/roles",
            user["id"].as_str().unwrap()
        )))
        .bearer_auth(&city)
        .json(&serde_json::json!({"role": "org-admin", "scope": org}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 204);
    let browser = Browser::for_server(k, server);
    browser
        .sign_in_to_account("lamp.manager", "a long org admin passphrase")
        .await;
    browser.enroll_totp().await;
    browser.sign_in_to_console().await;
    browser
}

#[tokio::test]
async fn an_org_admin_cannot_reach_another_organizations_device_by_url() {
    let (k, server, _admin) = console().await;
    let a = k.json(&["org", "create", "--name", "Streetlights", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = k.json(&["org", "create", "--name", "Waterworks", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    k.json(&[
        "device", "add", "--org", &a, "--id", "lamp-1", "--model", "LED-9", "--json",
    ]);
    k.json(&[
        "device", "add", "--org", &b, "--id", "pump-1", "--model", "P-2", "--json",
    ]);
    let browser = org_admin_console(&k, &server, &a).await;
    let (status, _) = browser.page("/admin/devices/lamp-1").await;
    assert_eq!(status, 200);
    for path in [
        "/admin/devices/pump-1",
        "/admin/revoke?device=pump-1&reason=keyCompromise",
        &format!("/admin/revoke?org={b}&reason=keyCompromise"),
    ] {
        let (status, html) = browser.page(path).await;
        assert_eq!(status, 404, "{path}: {html}");
        assert!(!html.contains("P-2"), "nothing of the device is shown");
    }
    let (_, list) = browser.page("/admin/devices").await;
    assert!(list.contains("lamp-1") && !list.contains("pump-1"));
    let (status, _) = browser.page("/admin/audit").await;
    assert_eq!(status, 403, "an org-admin does not read the audit log");
}

#[tokio::test]
async fn an_org_admin_lets_its_devices_act_as_clients_from_the_org_page_and_the_api() {
    let (k, server, _admin) = console().await;
    let a = k.json(&["org", "create", "--name", "Streetlights", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = k.json(&["org", "create", "--name", "Waterworks", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = org_admin_console(&k, &server, &a).await;
    let page = format!("/admin/orgs/{a}");
    let (status, html) = browser.page(&page).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"certificate-clients\""), "{html}");
    let saved = browser
        .post_action(
            &page,
            "client-scopes",
            vec![
                ("profile", "device"),
                ("model", "LED-9"),
                ("scopes", "lights:dim lights:read"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    let (_, html) = browser.page(&page).await;
    assert!(html.contains("LED-9") && html.contains("lights:dim lights:read"));
    // A management scope is refused with why, and nothing is stored.
    let refused = browser
        .post_action(
            &page,
            "client-scopes",
            vec![("profile", "device"), ("scopes", "kizuna:admin")],
        )
        .await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("management scope"));
    // Another organization's page gives no form and takes no rule.
    let other = browser
        .post(
            &page,
            &format!("/admin/orgs/{b}/client-scopes"),
            &[("profile", "device"), ("scopes", "water:open")],
        )
        .await;
    assert_eq!(other.status(), 404);

    // The admin API reads and changes the same rules; an empty list removes one.
    let org_admin =
        crate::common::service_token(&k, &server.base, "kizuna:role:org-admin", Some(&a)).await;
    let api = |method: reqwest::Method, body: Option<serde_json::Value>| {
        let mut request = reqwest::Client::new()
            .request(
                method,
                server.url(&format!("/admin/api/v1/orgs/{a}/client-scopes")),
            )
            .bearer_auth(&org_admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, rules) = api(reqwest::Method::GET, None).await;
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules[0]["model"], "LED-9");
    assert_eq!(
        rules[0]["scopes"],
        serde_json::json!(["lights:dim", "lights:read"])
    );
    let (status, answer) = api(
        reqwest::Method::PUT,
        Some(serde_json::json!({"profile": "no-such-profile", "scopes": ["x"]})),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"], "invalid_request");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-profile")
    );
    let (status, rules) = api(
        reqwest::Method::PUT,
        Some(serde_json::json!({"profile": "device", "model": "LED-9", "scopes": []})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rules, serde_json::json!([]));
    assert!(
        k.ok(&["audit", "export"])
            .lines()
            .filter(|l| l.contains("\"cert_client.scopes\""))
            .count()
            == 2,
        "each change is audited; the refused ones are not changes"
    );
}

/// A console page fetched (or, with `form`, posted) asking for Japanese.
async fn in_japanese(
    browser: &Browser,
    path: &str,
    form: Option<&[(&str, &str)]>,
) -> (u16, String) {
    let url = format!("{}{path}", browser.base);
    let request = match form {
        Some(fields) => browser.http.post(url).form(fields),
        None => browser.http.get(url),
    };
    let response = request
        .header("accept", "text/html")
        .header("accept-language", "ja")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_japanese_console_page_says_refusals_and_validation_failures_in_japanese() {
    let (k, server, admin) = console().await;
    let (status, html) = in_japanese(&admin, "/admin/orgs?done=created", None).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("作成しました。") && !html.contains("Created."),
        "the notice: {html}"
    );

    // A validation failure of the domain: a redirect URI without https. The sentence is
    // Japanese; the domain's own text follows on its own line.
    let (_, page) = in_japanese(&admin, "/admin/clients", None).await;
    let csrf = hidden_field(&page, "csrf_token").unwrap();
    let (status, html) = in_japanese(
        &admin,
        "/admin/clients",
        Some(&[
            ("csrf_token", &csrf),
            ("client_name", "Lamp portal"),
            ("redirect_uris", "http://lamps.example/cb"),
            ("min_aal", "0"),
        ]),
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("<html lang=\"ja\">"), "{html}");
    assert!(
        html.contains("入力を確認してください")
            && html.contains("クライアントの登録内容が正しくありません。"),
        "{html}"
    );
    let detail = html
        .split("id=\"error-detail\">")
        .nth(1)
        .expect("the detail line");
    assert!(
        detail[..detail.find('<').unwrap()].contains("https"),
        "{html}"
    );
    for english in ["Check the input", "The client registration is not valid."] {
        assert!(!html.contains(english), "{english:?} in {html}");
    }

    // A refusal the console writes itself: an organization administrator editing a client
    // that carries admin scopes.
    let org = k.json(&["org", "create", "--name", "Streetlights", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let robot = k.json(&[
        "client",
        "create",
        "--name",
        "Lamp robot",
        "--grant-type",
        "client_credentials",
        "--scope",
        "kizuna:role:installer",
        "--org",
        &org,
        "--json",
    ])["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lamps = org_admin_console(&k, &server, &org).await;
    let path = format!("/admin/clients/{robot}");
    let (status, page) = in_japanese(&lamps, &path, None).await;
    assert_eq!(status, 200, "{page}");
    let (csrf, version) = (
        hidden_field(&page, "csrf_token").unwrap(),
        hidden_field(&page, "version").unwrap(),
    );
    let (status, html) = in_japanese(
        &lamps,
        &path,
        Some(&[
            ("csrf_token", &csrf),
            ("version", &version),
            ("redirect_uris", "https://lamps.example/cb"),
            ("min_aal", "0"),
        ]),
    )
    .await;
    assert_eq!(status, 403, "{html}");
    assert!(
        html.contains("できません")
            && html.contains("管理用スコープを持つクライアントは、市の管理者だけが変更できます。"),
        "{html}"
    );
    assert!(!html.contains("error-detail"), "no domain text: {html}");
    for english in [
        "Not allowed",
        "a client with admin scopes is changed by city administrators only",
    ] {
        assert!(!html.contains(english), "{english:?} in {html}");
    }
}

#[tokio::test]
async fn huge_searches_and_revoking_twice_get_a_clear_message() {
    let (k, server, browser) = console().await;
    let huge = "%41".repeat(5_000);
    for path in [
        format!("/admin/users?q={huge}"),
        format!("/admin/devices?q={huge}"),
        format!("/admin/audit?action={huge}"),
    ] {
        let (status, html) = browser.page(&path).await;
        assert_eq!(status, 422, "{html}");
        assert!(html.contains("256 文字以内で入力してください"), "{html}");
    }
    let org = k.json(&["org", "create", "--name", "Transit", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = k.dir.path();
    common::pki::csr(
        dir,
        "bus-1",
        "p256",
        "/CN=bus-1",
        &[&format!("subjectAltName=URI:urn:kizuna:device:{org}:bus-1")],
    );
    let pem = k.ok(&[
        "cert",
        "issue",
        "--csr",
        "bus-1.csr",
        "--profile",
        "device",
        "--org",
        &org,
    ]);
    std::fs::write(dir.join("bus-1.pem"), pem).unwrap();
    let serial = common::pki::sh_ok(dir, "openssl x509 -in bus-1.pem -noout -serial")
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let confirm = format!("/admin/revoke?serial={serial}&reason=superseded");
    let (status, html) = browser.page(&confirm).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&serial) && html.contains("confirm-revoke"),
        "{html}"
    );
    let csrf = hidden_field(&html, "csrf_token").unwrap();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("serial", serial.as_str()),
        ("reason", "superseded"),
        ("expected", "1"),
    ];
    let (status, _) = form_post(&browser, "/admin/revoke", &fields).await;
    assert_eq!(status, 303);
    let (status, html) = form_post(
        &browser,
        "/admin/revoke",
        &[
            ("csrf_token", &csrf),
            ("serial", &serial),
            ("reason", "superseded"),
        ],
    )
    .await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("すべて失効済みです"), "{html}");
    let (status, html) = browser.page(&confirm).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"error\"") && !html.contains("confirm-revoke"),
        "no button to revoke again: {html}"
    );
    let (status, _) = browser.page("/admin").await;
    assert_eq!(status, 200, "the server keeps serving");
    drop(server);
}

#[tokio::test]
async fn an_identity_provider_is_added_and_edited_and_a_counter_check_recorded_from_the_pages() {
    let (k, server, browser) = console().await;
    let hospital_kizuna = Kizuna::sqlite();
    let hospital_op = hospital_kizuna.serve();
    let org = k.json(&["org", "create", "--name", "Hospital", "--json"]);
    let org_id = org["id"].as_str().unwrap();

    let (status, html) = browser.page("/admin/upstreams").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("href=\"/admin/upstreams\""),
        "in the navigation"
    );
    let response = browser
        .post(
            "/admin/upstreams",
            "/admin/upstreams",
            &[
                ("alias", "hospital"),
                ("name", "<b>Hospital</b> staff"),
                ("org_id", org_id),
                ("issuer", &hospital_op.public),
                ("client_id", "kizuna-city"),
                ("client_auth", "client_secret_basic"),
                ("key_algorithm", "p256"),
                ("client_secret", "the hospital's secret"),
                ("scopes", "openid email"),
                ("acr_values", ""),
                ("claim_map", "email=mail\nname=display_name"),
                ("acr_map", "urn:hospital:mfa=2:1"),
                ("max_ial", "2"),
                ("max_aal", "2"),
                ("jit", "false"),
                ("email_domains", "Hospital.example"),
                ("propagate_logout", "true"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(
        response.headers()["location"],
        "/admin/upstreams/hospital?done=created"
    );
    let (_, page) = browser.page("/admin/upstreams/hospital").await;
    assert!(
        !page.contains("<b>Hospital") && page.contains("Hospital&#60;/b&#62; staff"),
        "the name is shown as text"
    );
    assert!(page.contains(&format!("{}/federation/callback", server.public)));
    assert!(page.contains("IAL2 / AAL2") && page.contains("hospital.example"));
    assert!(page.contains("urn:hospital:mfa=2:1"), "{page}");
    assert!(!page.contains("the hospital&#x27;s secret") && !page.contains("hospital's secret"));
    let listed = k.json(&["upstream", "list", "--json"]);
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["jit"], false);
    let (_, org_page) = browser.page(&format!("/admin/orgs/{org_id}")).await;
    assert!(
        org_page.contains("href=\"/admin/upstreams/hospital\""),
        "the organization's page lists its identity providers"
    );

    // Two editors loaded version 0; the second is refused and shown the first's edit.
    let csrf = hidden_field(&page, "csrf_token").unwrap();
    assert_eq!(hidden_field(&page, "version").as_deref(), Some("0"));
    let edit = |name: &'static str| {
        let csrf = csrf.clone();
        let browser = &browser;
        async move {
            form_post(
                browser,
                "/admin/upstreams/hospital",
                &[
                    ("csrf_token", &csrf),
                    ("version", "0"),
                    ("name", name),
                    ("scopes", "openid email profile"),
                    ("acr_values", ""),
                    ("claim_map", "email=mail"),
                    ("acr_map", ""),
                    ("jit", "true"),
                    ("propagate_logout", "true"),
                    ("client_secret", ""),
                    ("max_ial", "2"),
                    ("max_aal", "2"),
                    ("email_domains", "hospital.example"),
                ],
            )
            .await
        }
    };
    assert_eq!(edit("Hospital staff").await.0, 303);
    let (status, html) = edit("Stale copy").await;
    assert_eq!(status, 409);
    assert!(html.contains("Hospital staff") && html.contains("ほかの方が変更しました"));
    assert_eq!(hidden_field(&html, "version").as_deref(), Some("1"));
    let (status, html) = form_post(
        &browser,
        "/admin/upstreams/hospital",
        &[
            ("csrf_token", &csrf),
            ("version", "1"),
            ("name", "Hospital staff"),
            ("scopes", "openid"),
            ("claim_map", "shoe_size=shoe"),
            ("max_ial", "2"),
            ("max_aal", "2"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("shoe_size"), "the message names the bad line");

    let response = browser
        .post(
            "/admin/upstreams/hospital",
            "/admin/upstreams/hospital/disable",
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        k.json(&["upstream", "list", "--json"])[0]["status"],
        "disabled"
    );

    // A registrar's check at the counter, from the user page.
    let resident = k.resident("hanako", "a perfectly long passphrase");
    let path = format!("/admin/users/{}", resident["id"].as_str().unwrap());
    let (_, page) = browser.page(&path).await;
    assert!(page.contains("id=\"counter-check\""), "{page}");
    let check = |number: &'static str, birthdate: &'static str| {
        browser.post_action(
            &path,
            "proofing",
            vec![
                ("document_type", "idcard"),
                ("document_number", number),
                ("issuer", "Kizuna City"),
                ("level", "3"),
                ("family_name", "山田"),
                ("given_name", "花子"),
                ("birthdate", birthdate),
            ],
        )
    };
    let refused = check("AB1234567", "1990-13-45").await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("birthdate"));
    let recorded = check("AB1234567", "1990-04-01").await;
    assert_eq!(recorded.status(), 303);
    let (_, page) = browser.page(&path).await;
    assert!(page.contains("IAL3 (counter)"), "{page}");
    assert!(
        !page.contains("AB1234567"),
        "the document number is not shown"
    );

    // The helpdesk's reset of this IAL3 account names that check, not free text.
    let marker = ["<dt>Proofing record</dt><dd>", "<dt>身元確認記録</dt><dd>"]
        .into_iter()
        .find(|m| page.contains(m))
        .unwrap_or_else(|| panic!("the record on the page: {page}"));
    let start = page.find(marker).unwrap() + marker.len();
    let record_id = page[start..].split(' ').next().unwrap().to_string();
    let reset = |reference| {
        browser.post_action(
            &path,
            "reset-factors",
            vec![
                ("reproofing_reference", reference),
                ("reason", "lost phone"),
            ],
        )
    };
    let refused = reset("desk visit 12").await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("proven at IAL3"));
    assert_eq!(reset(&record_id).await.status(), 303);
}

#[tokio::test]
async fn a_client_is_given_a_required_identity_level_from_its_page() {
    let (k, server, browser) = console().await;
    let client = k.json(&[
        "client",
        "create",
        "--name",
        "Childcare benefits",
        "--redirect-uri",
        "https://childcare.example/cb",
        "--json",
    ]);
    let path = format!("/admin/clients/{}", client["client_id"].as_str().unwrap());
    let (_, page) = browser.page(&path).await;
    assert!(page.contains("id=\"client-assurance\""), "{page}");
    let save = |claims: &'static str| {
        browser.post_action(
            &path,
            "assurance",
            vec![
                ("min_ial", "2"),
                ("verified_claims", claims),
                ("proofing_providers", "counter"),
            ],
        )
    };
    let refused = save("family_name shoe_size").await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("shoe_size"));
    assert_eq!(save("family_name given_name").await.status(), 303);
    let (_, page) = browser.page(&path).await;
    assert!(page.contains("IAL2") && page.contains("family_name given_name"));
    // The same settings through the admin API.
    let token = service_token(&k, &server.base, "kizuna:role:auditor", None).await;
    let shown: serde_json::Value = reqwest::Client::new()
        .get(server.url(&format!(
            "/admin/api/v1/clients/{}/assurance",
            client["client_id"].as_str().unwrap()
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"min_ial": 2, "verified_claims": ["family_name", "given_name"], "proofing_providers": ["counter"]})
    );

    // Its request quota, from the same page.
    let quota = |value: &'static str| {
        browser.post_action(&path, "quota", vec![("requests_per_minute", value)])
    };
    assert_eq!(quota("many").await.status(), 422);
    assert_eq!(quota("0").await.status(), 422);
    assert_eq!(quota("120").await.status(), 303);
    let (_, page) = browser.page(&path).await;
    assert!(page.contains("<dd>120</dd>"), "{page}");
    assert_eq!(quota("").await.status(), 303);
    let (_, page) = browser.page(&path).await;
    assert!(!page.contains("<dd>120</dd>"), "the limit is removed");
}

#[tokio::test]
async fn a_saml_identity_provider_is_added_by_its_metadata_url_and_its_page_shows_the_sp() {
    let (k, server, browser) = console().await;
    let idp = crate::common::saml_idp::SamlIdp::start();
    let org = k.json(&["org", "create", "--name", "University", "--json"]);
    let response = browser
        .post(
            "/admin/upstreams",
            "/admin/upstreams",
            &[
                ("alias", "uni"),
                ("name", "City University"),
                ("org_id", org["id"].as_str().unwrap()),
                ("issuer", ""),
                ("client_id", ""),
                ("saml_metadata_url", &idp.metadata_url),
                ("client_auth", "client_secret_basic"),
                ("key_algorithm", "p256"),
                ("client_secret", ""),
                ("scopes", "openid email profile"),
                ("acr_values", ""),
                ("claim_map", "groups=eduPersonAffiliation"),
                ("acr_map", ""),
                ("max_ial", "1"),
                ("max_aal", "1"),
                ("jit", "true"),
                ("email_domains", "uni.example.jp"),
                ("propagate_logout", "true"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let (_, page) = browser.page("/admin/upstreams/uni").await;
    assert!(
        page.contains(&idp.metadata_url),
        "the IdP's entity id: {page}"
    );
    assert!(
        page.contains(&format!("{}/federation/saml/uni/acs", server.public))
            && page.contains("SPメタデータURL"),
        "{page}"
    );
    assert!(
        page.contains("&#60;md:SPSSODescriptor") || page.contains("&lt;md:SPSSODescriptor"),
        "the SP metadata, shown as text: {page}"
    );
    assert!(
        !page.contains("federation/callback"),
        "no OpenID registration values"
    );
    let listed = k.json(&["upstream", "list", "--json"]);
    assert_eq!(listed[0]["client_auth"], "saml", "{listed}");
    assert_eq!(listed[0]["scopes"], serde_json::json!([]), "{listed}");
}
