//! `kizuna serve` as an operator and a browser meet it.

use crate::common;

use crate::common::{Kizuna, browser, database, hidden_field};
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE};

async fn create_admin(base: &str, link: &str, username: &str) -> reqwest::Response {
    let client = browser();
    let page = client
        .get(link)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf_token").expect("csrf field");
    let token = hidden_field(&html, "token").expect("token carried into the form");
    client
        .post(format!("{base}/admin/bootstrap"))
        .header(ACCEPT, "text/html")
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", token.as_str()),
            ("username", username),
            ("email", ""),
            ("password", "correct horse battery staple"),
            ("password_confirm", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fresh_start_creates_its_state_and_prints_a_one_time_bootstrap_link() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let data = k.data_dir();
    assert!(data.join("kizuna.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let link = server.bootstrap_link().expect("bootstrap link printed");
    assert!(link.starts_with(&server.base), "{link}");

    let created = create_admin(&server.base, &link, "mayor").await;
    assert_eq!(created.status(), 201);
    assert!(created.text().await.unwrap().contains("mayor"));

    // The link is single use.
    let reused = browser()
        .get(&link)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 410);
    assert_eq!(server.stop(), Some(0), "SIGTERM shuts down cleanly");

    let second = k.serve();
    assert!(second.bootstrap_link().is_none(), "{}", second.stdout());
    assert_eq!(
        reqwest::get(second.url("/readyz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_restart_before_anyone_used_the_link_prints_a_new_one() {
    let k = Kizuna::sqlite();
    let first = k.serve().bootstrap_link().unwrap();
    let server = k.serve();
    let second = server.bootstrap_link().unwrap();
    assert_ne!(first, second);
    assert_eq!(
        create_admin(&server.base, &second, "mayor").await.status(),
        201
    );
}

#[tokio::test]
async fn the_bootstrap_form_refuses_a_post_without_its_csrf_token() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let link = server.bootstrap_link().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let response = browser()
        .post(server.url("/admin/bootstrap"))
        .header(ACCEPT, "text/html")
        .header(ACCEPT_LANGUAGE, "en")
        .form(&[
            ("token", token),
            ("username", "mallory"),
            ("password", "correct horse battery staple"),
            ("password_confirm", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("did not come from this site")
    );
    let db = database(&k).await;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn replicas_on_one_database_serve_any_request() {
    let Some(pg) = kizuna_core::testing::postgres_url() else {
        return;
    };
    let fresh = kizuna_core::testing::fresh_postgres(&pg).await;
    let shared = common::TempDir::new("kizuna-shared-kek");
    let kek = shared.path().join("kek");
    std::fs::write(&kek, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n").unwrap();
    let url = fresh.url.clone();
    let a = Kizuna::on(fresh).env("KIZUNA_KEK_FILE", kek.to_str().unwrap());
    let b = Kizuna::sqlite()
        .env("KIZUNA_DATABASE_URL", &url)
        .env("KIZUNA_KEK_FILE", kek.to_str().unwrap());
    let server_a = a.serve();
    let server_b = b.serve();
    for server in [&server_a, &server_b] {
        let ready: serde_json::Value = reqwest::get(server.url("/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["database"], "postgres");
    }
    // A token printed by one replica is redeemed through the other.
    let link = server_a
        .bootstrap_link()
        .unwrap()
        .replace(&server_a.base, &server_b.base);
    assert_eq!(
        create_admin(&server_b.base, &link, "mayor").await.status(),
        201
    );
    assert!(b.ok(&["audit", "verify"]).starts_with("ok: "));
}

#[tokio::test]
async fn error_pages_and_json_logs_carry_the_request_id() {
    let k = Kizuna::sqlite().env("KIZUNA_LOG_FORMAT", "json");
    let server = k.serve();
    let response = reqwest::Client::new()
        .get(server.url("/no/such/page"))
        .header(ACCEPT, "text/html")
        .header(ACCEPT_LANGUAGE, "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.headers().contains_key("content-security-policy"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Page not found"), "{html}");
    assert!(html.contains(&id), "request id on the error page");

    let ja = reqwest::Client::new()
        .get(server.url("/no/such/page"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ja.contains("ページが見つかりません"), "Japanese by default");

    // The request's log line is JSON and names the same id (the log writer is a thread of
    // its own: wait for the line rather than for a fixed time).
    let find = |logs: &str| {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["span"]["request_id"] == id.as_str())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut logs = server.stderr();
    while find(&logs).is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        logs = server.stderr();
    }
    let line =
        find(&logs).unwrap_or_else(|| panic!("no JSON log line with request id {id}:\n{logs}"));
    assert_eq!(line["status"], 404);
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every line is JSON"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    assert_eq!(
        reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready: serde_json::Value = reqwest::get(server.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    reqwest::get(server.url("/nope")).await.unwrap();
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"kizuna_http_requests_total{method="GET",route="/readyz",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="unmatched",status="404""#));
    assert!(metrics.contains("kizuna_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("kizuna_db_pool_max_connections 16"));
}

#[tokio::test]
async fn the_language_switch_sets_a_cookie_and_only_returns_to_local_paths() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let client = browser();
    let switched = client
        .get(server.url("/lang/en?next=/admin/bootstrap"))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 303);
    assert_eq!(switched.headers()["location"], "/admin/bootstrap");
    let page = client
        .get(server.url("/admin/bootstrap"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Create the first administrator"), "{page}");
    // Whatever a browser could read as another host goes home instead: browsers drop tabs
    // and newlines from URLs and read a backslash as a slash.
    for next in [
        "//evil.example/",
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d%0a/evil.example",
        "/%5C/evil.example",
        "/%5Cevil.example",
        "/%20/evil.example",
        "/admin%09/x",
        "https://evil.example/",
        "evil.example",
    ] {
        let offsite = client
            .get(server.url(&format!("/lang/ja?next={next}")))
            .send()
            .await
            .unwrap();
        assert_eq!(offsite.headers()["location"], "/", "{next}");
    }
}

// Multi-threaded so the client's HTTP/2 connection can wind down while the test thread
// waits for the server to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_with_the_configured_certificate() {
    let k = Kizuna::sqlite();
    let cert = k.dir.path().join("tls.crt");
    let key = k.dir.path().join("tls.key");
    let status = std::process::Command::new("openssl")
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
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let k = k
        .env("KIZUNA_TLS_LISTEN", "127.0.0.1:0")
        .env("KIZUNA_TLS__CERT_FILE", cert.to_str().unwrap())
        .env("KIZUNA_TLS__KEY_FILE", key.to_str().unwrap());
    let server = k.serve();
    let https = server
        .stdout()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("listening:  https://")
                .map(str::to_string)
        })
        .expect("TLS address printed");
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let response = client
        .get(format!("https://{https}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("strict-transport-security"));
    // A client that does not trust the certificate cannot connect.
    assert!(
        reqwest::get(format!("https://{https}/healthz"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_port_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let failed = Kizuna::sqlite()
        .try_serve(&["--listen", &addr])
        .err()
        .expect("must not start");
    assert_eq!(failed.code, Some(1));
    assert!(failed.stderr.contains("already in use"), "{failed}");
    assert!(failed.stderr.contains(&addr), "{failed}");
}

#[tokio::test]
async fn an_unwritable_data_dir_is_reported() {
    let k = Kizuna::sqlite();
    let file = k.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let dir = file.join("data");
    let failed = k
        .try_serve(&["--data-dir", dir.to_str().unwrap()])
        .err()
        .expect("must not start");
    assert_eq!(failed.code, Some(1));
    assert!(failed.stderr.contains("data directory"), "{failed}");
}

#[tokio::test]
async fn an_unreachable_database_is_retried_then_reported() {
    let failed = Kizuna::sqlite()
        .env(
            "KIZUNA_DATABASE_URL",
            "postgres://kizuna:hunter2@127.0.0.1:1/kizuna",
        )
        .env("KIZUNA_DATABASE__CONNECT_TIMEOUT_SECS", "1")
        .try_serve(&[])
        .err()
        .expect("must not start");
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.stderr.contains("could not reach the database"),
        "{failed}"
    );
    assert!(
        failed.stderr.contains("database not reachable yet"),
        "retries are logged: {failed}"
    );
    assert!(
        !failed.stderr.contains("hunter2"),
        "password leaked: {failed}"
    );
}

/// A rolling upgrade: a replica of the previous release meets the schema a newer one
/// migrated. While the newer migrations only expanded, it serves (and says so); once one
/// contracted (`schema.readers_from`), it refuses to start and says why.
#[tokio::test]
async fn a_newer_schema_is_served_while_compatible_and_refused_once_it_contracted() {
    for k in Kizuna::each_backend().await {
        drop(k.serve());
        let db = database(&k).await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'future', TRUE, $1, 1)",
        )
        .bind(vec![0u8; 48])
        .execute(db.pool())
        .await
        .unwrap();
        let server = k.serve();
        let ready = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        let ready: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(ready["schema_version"], 99990101000000_i64, "{ready}");
        assert_eq!(ready["newer_compatible_schema"], true, "{ready}");
        assert!(
            server
                .stderr()
                .contains("newer than this binary and still compatible"),
            "{}",
            server.stderr()
        );
        // Another replica contracts the schema meanwhile: this one's readiness fails.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('schema.readers_from', '99990101000000')",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let ready = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 503);
        drop(server);
        db.close().await;
        let failed = k.try_serve(&[]).err().expect("must not start");
        assert_eq!(failed.code, Some(1));
        assert!(failed.stderr.contains("99990101000000"), "{failed}");
        assert!(failed.stderr.contains("newer release"), "{failed}");
    }
}

#[tokio::test]
async fn a_loose_kek_is_warned_about_and_a_wrong_one_refused() {
    let k = Kizuna::sqlite();
    drop(k.serve());
    let kek = k.data_dir().join("kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).unwrap();
        let server = k.serve();
        assert!(
            server.stderr().contains("readable by other users"),
            "{}",
            server.stderr()
        );
    }
    std::fs::write(&kek, "OTg3NjU0MzIxMDk4NzY1NDMyMTA5ODc2NTQzMjEwOTg=\n").unwrap();
    let failed = k
        .try_serve(&[])
        .err()
        .expect("must not start with a wrong KEK");
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.stderr.contains("does not match this database"),
        "{failed}"
    );

    std::fs::remove_file(&kek).unwrap();
    let failed = k
        .try_serve(&[])
        .err()
        .expect("must not start without its KEK");
    assert!(failed.stderr.contains("is missing"), "{failed}");
    assert!(!kek.exists(), "no new KEK over existing keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_page_offers_sign_in_and_shows_who_is_signed_in() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    k.resident("taro", "correct horse battery staple");
    let browser = common::Browser::new(&server.public);
    let anonymous = browser
        .http
        .get(server.url("/"))
        .header(ACCEPT_LANGUAGE, "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(anonymous.contains("href=\"/login?next=/\""), "{anonymous}");
    match browser
        .walk(
            &server.url("/login?next=/"),
            Some(("taro", "correct horse battery staple")),
            false,
        )
        .await
    {
        common::Landing::Page(200, html) => {
            assert!(html.contains("<strong>taro</strong>"), "{html}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_w3c_traceparent_becomes_the_request_id_in_logs_and_audit_entries() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let failed = reqwest::Client::new()
        .post(server.url("/token"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .basic_auth("no-such-client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    assert_eq!(failed.headers()["x-request-id"], trace);
    let db = database(&k).await;
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM audit_log WHERE action = 'client.authenticate'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    db.close().await;
    assert_eq!(
        recorded,
        vec![trace.to_string()],
        "the caller's trace names the audit entry"
    );

    // An explicit X-Request-Id wins; a malformed traceparent is ignored.
    let both = reqwest::Client::new()
        .get(server.url("/healthz"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .header("x-request-id", "proxy-42")
        .send()
        .await
        .unwrap();
    assert_eq!(both.headers()["x-request-id"], "proxy-42");
    let malformed = reqwest::Client::new()
        .get(server.url("/healthz"))
        .header(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    let id = malformed.headers()["x-request-id"].to_str().unwrap();
    assert!(!id.is_empty() && !id.starts_with("0000"), "{id}");
}

/// A listener on a free port that answers every connection with `answer` (or, when empty,
/// holds it open without a word); returns its address.
async fn canned_server(answer: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                if answer.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                } else {
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_only_when_readyz_answers_200() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let addr = server.base.trim_start_matches("http://").to_string();
    let ready = k.run(&["healthcheck", "--listen", &addr]);
    assert!(ready.status.success(), "{ready:?}");
    assert!(String::from_utf8_lossy(&ready.stdout).starts_with("ready: "));
    // The image's listen address, 0.0.0.0, is asked on loopback.
    let port = addr.rsplit(':').next().unwrap();
    let k = k.env("KIZUNA_LISTEN", &format!("0.0.0.0:{port}"));
    assert!(k.run(&["healthcheck"]).status.success());

    let not_ready = canned_server(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 55\r\n\r\n{\"status\":\"not_ready\",\"reason\":\"database unreachable\"}",
    )
    .await;
    let silent = canned_server("").await;
    let ssh = canned_server("SSH-2.0-OpenSSH_9.2\r\n").await;
    drop(server);
    let cases = [
        (addr.as_str(), 1, "cannot connect"),
        (
            not_ready.as_str(),
            1,
            "answered 503: {\"status\":\"not_ready\",\"reason\":\"database unreachable\"}",
        ),
        (silent.as_str(), 1, "did not answer within 1s"),
        (ssh.as_str(), 1, "not an HTTP answer"),
        ("127.0.0.1:0", 1, "no fixed port to check"),
        // A listen address that is no address is a configuration error, as for `serve`.
        ("localhost:8080", 2, "is not an address"),
    ];
    for (listen, code, reason) in cases {
        let out = k.run(&["healthcheck", "--listen", listen, "--timeout", "1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{listen}: {stderr}");
        assert!(stderr.contains(reason), "{listen}: {stderr}");
    }
}

#[tokio::test]
async fn a_server_on_the_test_clock_says_so_at_start_and_one_on_the_systems_does_not() {
    let warning = "KIZUNA_TEST_CLOCK_FILE is set";
    let tested = Kizuna::sqlite().serve();
    assert!(tested.stderr().contains(warning), "{}", tested.stderr());
    let production = Kizuna::sqlite().system_clock().serve();
    assert_eq!(
        reqwest::get(production.url("/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        !production.stderr().contains(warning),
        "{}",
        production.stderr()
    );
}
