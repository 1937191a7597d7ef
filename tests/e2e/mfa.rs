//! Multi-factor sign-in end to end, on SQLite and PostgreSQL: TOTP as a second factor and
//! for step-up, the `acr`/`amr` an RP gets, `unmet_authentication_requirements`,
//! recovery codes, TOTP replay and brute force, the account page's rules (fresh
//! authentication, last factor), sessions, notifications, and the helpdesk reset.

use crate::common::rp::Rp;
use crate::common::{
    Browser, Kizuna, Landing, Server, TotpApp, database, hidden_field, query_param,
};
use serde_json::Value;

const PASSWORD: &str = "a perfectly long passphrase";

fn rp(k: &Kizuna, args: &[&str]) -> Rp {
    Rp::register(k, "Ward office", args)
}

fn authorize_url(server: &Server, rp: &Rp, extra: &[(&str, &str)]) -> String {
    rp.authorize_url(server, "openid", extra)
}

fn amr(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// A resident with a verified email address.
fn resident(k: &Kizuna, name: &str) -> String {
    let user = k.resident(name, PASSWORD);
    k.ok(&["user", "verify-email", name]);
    user["id"].as_str().unwrap().to_string()
}

async fn count(k: &Kizuna, sql: &str, bind: &str) -> i64 {
    let db = database(k).await;
    let n: i64 = sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    n
}

async fn outbox_kinds(k: &Kizuna, user_id: &str) -> Vec<String> {
    let db = database(k).await;
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM mail_outbox WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    db.close().await;
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_raises_the_sign_in_to_aal2_and_the_id_token_says_so() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let user_id = resident(&k, "taro");
        let ward = rp(&k, &["--min-aal", "2"]);
        let enrolled = Browser::new(&server.public);
        enrolled.sign_in_to_account("taro", PASSWORD).await;
        let app = enrolled.enroll_totp().await;

        // A new browser: the password, then the authenticator app, then the client.
        let browser = Browser::new(&server.public);
        *browser.totp.lock().unwrap() = Some(app.clone());
        let callback = browser
            .sign_in(&authorize_url(&server, &ward, &[]), "taro", PASSWORD)
            .await;
        let claims = ward.id_token_claims(&server, &callback).await;
        assert_eq!(claims["acr"], "urn:kizuna:aal:2");
        assert_eq!(amr(&claims), ["pwd", "otp", "mfa"]);
        assert_eq!(claims["sub"], user_id.as_str());

        // Enrolment and the sign-in from a new device were mailed (to the outbox: no relay).
        let kinds = outbox_kinds(&k, &user_id).await;
        assert!(kinds.contains(&"totp_added".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"new_device".to_string()), "{kinds:?}");
        let (_, page) = browser.page("/account").await;
        assert!(page.contains("pwd+otp"), "history shows the method");

        // Discovery publishes the levels and the claims parameter.
        let meta: Value = reqwest::get(format!(
            "{}/.well-known/openid-configuration",
            server.public
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        // The AAL values first; the IAL+AAL combinations follow (docs/assurance.md).
        assert_eq!(
            meta["acr_values_supported"].as_array().unwrap()[..3],
            serde_json::json!(["urn:kizuna:aal:1", "urn:kizuna:aal:2", "urn:kizuna:aal:3"])
                .as_array()
                .unwrap()[..]
        );
        assert_eq!(meta["claims_parameter_supported"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_asks_only_for_the_missing_factor() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        resident(&k, "hanako");
        let portal = rp(&k, &[]);
        let browser = Browser::new(&server.public);
        // Signed in with the password only (no factor yet), then an authenticator app added.
        browser.sign_in_to_account("hanako", PASSWORD).await;
        let app = browser.enroll_totp().await;

        // An AAL1 client signs in without a further factor.
        let plain = browser
            .sign_in(&authorize_url(&server, &portal, &[]), "hanako", PASSWORD)
            .await;
        assert_eq!(
            portal.id_token_claims(&server, &plain).await["acr"],
            "urn:kizuna:aal:1"
        );

        // acr_values asks for AAL2: straight to the second factor, no password page.
        let url = authorize_url(&server, &portal, &[("acr_values", "urn:kizuna:aal:2")]);
        let response = browser.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/login/mfa");
        let (status, page) = browser.page("/login/mfa").await;
        assert_eq!(status, 200);
        assert!(
            page.contains("value=\"totp\""),
            "the authenticator app is asked for"
        );
        assert!(
            !page.contains("name=\"password\""),
            "the password is not asked again"
        );
        let response = browser
            .post(
                "/login/mfa",
                "/login/mfa",
                &[("method", "totp"), ("code", &app.code())],
            )
            .await;
        assert_eq!(response.status(), 303);
        let callback = match browser
            .walk(
                &format!(
                    "{}{}",
                    server.public,
                    response.headers()["location"].to_str().unwrap()
                ),
                None,
                true,
            )
            .await
        {
            Landing::Redirect(to) => url::Url::parse(&to).unwrap(),
            Landing::Page(status, html) => panic!("stopped on a page ({status}): {html}"),
        };
        let claims = portal.id_token_claims(&server, &callback).await;
        assert_eq!(claims["acr"], "urn:kizuna:aal:2");
        assert_eq!(amr(&claims), ["pwd", "otp", "mfa"]);

        // The session is raised now: an essential acr claim is met without asking again.
        let essential = r#"{"id_token":{"acr":{"essential":true,"value":"urn:kizuna:aal:2"}}}"#;
        let again = match browser
            .walk(
                &authorize_url(&server, &portal, &[("claims", essential)]),
                None,
                true,
            )
            .await
        {
            Landing::Redirect(to) => url::Url::parse(&to).unwrap(),
            Landing::Page(status, html) => panic!("stopped on a page ({status}): {html}"),
        };
        assert_eq!(
            portal.id_token_claims(&server, &again).await["acr"],
            "urn:kizuna:aal:2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_no_factor_can_reach_answers_unmet_authentication_requirements() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        resident(&k, "jiro");
        let strict = rp(&k, &["--min-aal", "2"]);
        let portal = rp(&k, &[]);
        let browser = Browser::new(&server.public);
        // No second factor at all: the client hears why, with its state.
        let callback = browser
            .sign_in(&authorize_url(&server, &strict, &[]), "jiro", PASSWORD)
            .await;
        assert_eq!(
            query_param(&callback, "error").as_deref(),
            Some("unmet_authentication_requirements")
        );
        assert_eq!(query_param(&callback, "state").as_deref(), Some("st"));
        assert!(query_param(&callback, "code").is_none());

        // prompt=none cannot ask: login_required.
        let silent = browser
            .walk(
                &authorize_url(
                    &server,
                    &portal,
                    &[("prompt", "none"), ("acr_values", "urn:kizuna:aal:2")],
                ),
                None,
                true,
            )
            .await;
        match silent {
            Landing::Redirect(to) => {
                let to = url::Url::parse(&to).unwrap();
                assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));
            }
            other => panic!("{other:?}"),
        }

        // With an authenticator app, AAL3 (a hardware-bound passkey) is still out of reach.
        let enrolled = Browser::new(&server.public);
        enrolled.sign_in_to_account("jiro", PASSWORD).await;
        let app = enrolled.enroll_totp().await;
        let fresh = Browser::new(&server.public);
        *fresh.totp.lock().unwrap() = Some(app);
        let callback = fresh
            .sign_in(
                &authorize_url(&server, &portal, &[("acr_values", "urn:kizuna:aal:3")]),
                "jiro",
                PASSWORD,
            )
            .await;
        assert_eq!(
            query_param(&callback, "error").as_deref(),
            Some("unmet_authentication_requirements")
        );
    }
}

/// Signs a fresh browser in with the password up to the second-factor page.
async fn to_second_factor(server: &Server, rp: &Rp, user: &str) -> Browser {
    let browser = Browser::new(&server.public);
    match browser
        .walk(
            &authorize_url(server, rp, &[]),
            Some((user, PASSWORD)),
            true,
        )
        .await
    {
        Landing::Page(200, html) if html.contains("action=\"/login/mfa\"") => browser,
        other => panic!("expected the second-factor page: {other:?}"),
    }
}

async fn submit_code(browser: &Browser, method: &str, code: &str) -> reqwest::Response {
    browser
        .post(
            "/login/mfa",
            "/login/mfa",
            &[("method", method), ("code", code)],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_work_once_and_their_use_is_shown_and_mailed() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let user_id = resident(&k, "saburo");
        let portal = rp(&k, &[]);
        let owner = Browser::new(&server.public);
        owner.sign_in_to_account("saburo", PASSWORD).await;
        owner.enroll_totp().await;
        let response = owner.post("/account", "/account/recovery-codes", &[]).await;
        assert_eq!(response.status(), 200);
        let page = response.text().await.unwrap();
        let codes: Vec<String> = page
            .split("<code>")
            .skip(1)
            .map(|c| c[..c.find('<').unwrap()].to_string())
            .collect();
        assert_eq!(codes.len(), 10, "{page}");
        assert_eq!(count(&k, "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND code_hash LIKE '$argon2id$%'", &user_id).await, 10);

        let browser = to_second_factor(&server, &portal, "saburo").await;
        let used = submit_code(&browser, "recovery", &codes[3].to_uppercase()).await;
        assert_eq!(used.status(), 303, "a recovery code signs in");
        let (_, account) = browser.page("/account").await;
        assert!(
            account.contains("id=\"recovery-use-title\""),
            "the use is shown on the account page"
        );
        assert!(
            outbox_kinds(&k, &user_id)
                .await
                .contains(&"recovery_code_used".to_string())
        );

        // The same code again: refused, audited.
        let other = to_second_factor(&server, &portal, "saburo").await;
        let reused = submit_code(&other, "recovery", &codes[3]).await;
        assert_eq!(reused.status(), 401);
        assert_eq!(
            count(&k, "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'mfa.recovery.use' AND outcome = 'failure' AND details LIKE '%already used%'", &format!("user:{user_id}")).await,
            1
        );
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
                &user_id
            )
            .await,
            9
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_code_works_once_and_guessing_is_throttled_and_audited() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let user_id = resident(&k, "shiro");
        let portal = rp(&k, &[]);
        let owner = Browser::new(&server.public);
        owner.sign_in_to_account("shiro", PASSWORD).await;
        let app = owner.enroll_totp().await;

        // A code from the previous window, used once, then again.
        let previous = app.code_at(kizuna_core::time::now_unix().div_euclid(30) - 1);
        let first = to_second_factor(&server, &portal, "shiro").await;
        let replay_source = submit_code(&first, "totp", &previous).await;
        // The enrolment used this window's code, so the previous window's is already behind
        // the last used step: refused as a replay too.
        assert_eq!(replay_source.status(), 401);
        let fresh = TotpApp::new(app.seed.clone());
        let now_step = kizuna_core::time::now_unix().div_euclid(30);
        let ahead = fresh.code_at(now_step + 1);
        let second = to_second_factor(&server, &portal, "shiro").await;
        assert_eq!(
            submit_code(&second, "totp", &ahead).await.status(),
            303,
            "the next window's code works once"
        );
        let third = to_second_factor(&server, &portal, "shiro").await;
        assert_eq!(
            submit_code(&third, "totp", &ahead).await.status(),
            401,
            "and not twice"
        );
        let target = format!("user:{user_id}");
        assert!(count(&k, "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'mfa.totp.verify' AND details LIKE '%already used%'", &target).await >= 2);

        // Guessing: after mfa.code_max_failures (5) wrong codes, even a right one is refused.
        let guesser = to_second_factor(&server, &portal, "shiro").await;
        for guess in ["000000", "111111", "222222"] {
            assert_eq!(submit_code(&guesser, "totp", guess).await.status(), 401);
        }
        let throttled = submit_code(&guesser, "totp", &fresh.code_at(now_step + 1)).await;
        assert_eq!(throttled.status(), 429);
        assert!(throttled.text().await.unwrap().contains("role=\"alert\""));
        assert!(count(&k, "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'mfa.code' AND outcome = 'denied'", &target).await >= 1);
        // The server keeps serving.
        assert_eq!(
            reqwest::get(server.url("/healthz")).await.unwrap().status(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_need_a_fresh_sign_in_and_keep_the_last_required_factor() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let user_id = resident(&k, "goro");
        k.ok(&["user", "set-min-aal", "goro", "2"]);
        let browser = Browser::new(&server.public);
        browser.sign_in_to_account("goro", PASSWORD).await;
        browser.enroll_totp().await;

        // The only strong factor of an account that must use one cannot go.
        let refused = browser.post("/account", "/account/totp/remove", &[]).await;
        assert_eq!(refused.headers()["location"], "/account?error=last_factor");
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1",
                &user_id
            )
            .await,
            1
        );
        let (_, page) = browser.page("/account?error=last_factor").await;
        assert!(page.contains("role=\"alert\""));

        // An authentication older than five minutes: changes are refused until signing in again.
        let db = database(&k).await;
        sqlx::query("UPDATE sessions SET auth_time = auth_time - 600 WHERE user_id = $1")
            .bind(&user_id)
            .execute(db.pool())
            .await
            .unwrap();
        db.close().await;
        let stale = browser
            .post("/account", "/account/recovery-codes", &[])
            .await;
        assert_eq!(stale.headers()["location"], "/account?error=reauth");
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1",
                &user_id
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'mfa.totp.enroll'",
                &format!("user:{user_id}")
            )
            .await,
            1,
            "the enrolment is audited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_lists_sessions_and_ends_another_one() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    resident(&k, "rokuro");
    let phone = Browser::new(&server.public);
    phone.sign_in_to_account("rokuro", PASSWORD).await;
    let laptop = Browser::new(&server.public);
    laptop.sign_in_to_account("rokuro", PASSWORD).await;
    let (_, page) = laptop.page("/account").await;
    assert_eq!(page.matches("action=\"/account/sessions/end\"").count(), 2);
    // The other session is the one not marked as this device.
    let rows: Vec<&str> = page
        .split("<tr>")
        .filter(|r| r.contains("name=\"sid\""))
        .collect();
    let other = rows
        .iter()
        .find(|r| !r.contains("this device") && !r.contains("この端末"))
        .unwrap();
    let sid = hidden_field(other, "sid").unwrap();
    let ended = laptop
        .post("/account", "/account/sessions/end", &[("sid", &sid)])
        .await;
    assert_eq!(ended.headers()["location"], "/account?done=session_ended");
    let (status, _) = phone.page("/account").await;
    assert_eq!(status, 303, "the ended session is signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_reset_needs_a_reproofing_reference_and_is_audited() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let user_id = resident(&k, "shichiro");
        let browser = Browser::new(&server.public);
        browser.sign_in_to_account("shichiro", PASSWORD).await;
        browser.enroll_totp().await;
        let missing = k.run(&["user", "mfa-reset", "shichiro"]);
        assert!(!missing.status.success(), "the reference is required");
        let short = k.run(&["user", "mfa-reset", "shichiro", "--reproofing-ref", "x"]);
        assert!(!short.status.success());
        assert!(String::from_utf8_lossy(&short.stderr).contains("re-proofing reference"));
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1",
                &user_id
            )
            .await,
            1
        );
        let report = k.json(&[
            "user",
            "mfa-reset",
            "shichiro",
            "--reproofing-ref",
            "COUNTER-2026-0042",
            "--reason",
            "lost phone",
            "--json",
        ]);
        assert_eq!(report["totp"], 1);
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1",
                &user_id
            )
            .await,
            0
        );
        assert_eq!(
            count(&k, "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'mfa.reset' AND details LIKE '%COUNTER-2026-0042%'", &format!("user:{user_id}")).await,
            1
        );
        assert!(
            outbox_kinds(&k, &user_id)
                .await
                .contains(&"factors_reset".to_string())
        );
        let (status, _) = browser.page("/account").await;
        assert_eq!(status, 303, "its sessions ended");
    }
}

/// Python's aiosmtpd (PyPI, not written here) as the SMTP relay, when installed.
fn smtp_relay(port: u16) -> Option<std::process::Child> {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("aiosmtpd is required in CI (scripts/test installs it)");
        }
        eprintln!("note: skipped: aiosmtpd is not installed (run scripts/test)");
        return None;
    }
    let child = std::process::Command::new("python3")
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Debugging",
            "-l",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_mail_goes_out_through_the_smtp_relay() {
    let port = crate::common::free_port();
    let Some(mut relay) = smtp_relay(port) else {
        return;
    };
    let k = Kizuna::sqlite()
        .env("KIZUNA_MAIL__RELAY", "127.0.0.1")
        .env("KIZUNA_MAIL__PORT", &port.to_string())
        .env("KIZUNA_MAIL__SECURITY", "none")
        .env(
            "KIZUNA_MAIL__FROM",
            "Kizuna City <no-reply@city.example.jp>",
        );
    let server = k.serve();
    let user_id = resident(&k, "hachiro");
    let browser = Browser::new(&server.public);
    browser.sign_in_to_account("hachiro", PASSWORD).await;
    browser.enroll_totp().await;
    let mut sent = 0;
    for _ in 0..100 {
        sent = count(&k, "SELECT COUNT(*) FROM mail_outbox WHERE user_id = $1 AND kind = 'totp_added' AND status = 'sent'", &user_id).await;
        if sent == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(sent, 1, "delivered by the background task");
    relay.kill().unwrap();
    let mut received = String::new();
    std::io::Read::read_to_string(&mut relay.stdout.take().unwrap(), &mut received).unwrap();
    let _ = relay.wait();
    assert!(received.contains("hachiro@city.example.jp"), "{received}");
    assert!(received.contains("no-reply@city.example.jp"), "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_device_for_an_aal2_client_asks_for_the_second_factor() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    resident(&k, "kuro");
    let kiosk = k.json(&[
        "client",
        "create",
        "--name",
        "Kiosk",
        "--public",
        "--grant-type",
        "device_code",
        "--min-aal",
        "2",
        "--no-consent",
        "--json",
    ]);
    let started: Value = reqwest::Client::new()
        .post(format!("{}/device_authorization", server.public))
        .form(&[
            ("client_id", kiosk["client_id"].as_str().unwrap()),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = started["user_code"].as_str().unwrap();
    let browser = Browser::new(&server.public);
    browser.sign_in_to_account("kuro", PASSWORD).await;
    let app = browser.enroll_totp().await;
    let page = format!("/device?user_code={code}");
    let (status, html) = browser.page(&page).await;
    assert_eq!(status, 200, "{html}");
    let approve = browser
        .post(
            &page,
            "/device/decision",
            &[("user_code", code), ("decision", "approve")],
        )
        .await;
    assert_eq!(
        approve.headers()["location"],
        "/login/mfa",
        "the password session is stepped up first"
    );
    let stepped = browser
        .post(
            "/login/mfa",
            "/login/mfa",
            &[("method", "totp"), ("code", &app.code())],
        )
        .await;
    let back = stepped.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with("/device?user_code="), "{back}");
    let approved = browser
        .post(
            &back,
            "/device/decision",
            &[("user_code", code), ("decision", "approve")],
        )
        .await;
    assert_eq!(approved.status(), 200);
    assert!(approved.text().await.unwrap().contains("role=\"status\""));
}
