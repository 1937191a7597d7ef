//! One authorization model for every management API, tried as an attacker would: a resident
//! who signs in to a client registered with management scopes, a city administrator's token
//! from too weak a sign-in, tokens of disabled clients and accounts.

mod common;

use base64::Engine;
use common::rp::Rp;
use common::{Browser, Kizuna, service_token};
use serde_json::{Value, json};

const PASSWORD: &str = "a resident's long passphrase";

/// A DER CSR for `dns_name`, base64 (the CA API takes PEM or base64 DER).
fn csr_for(k: &Kizuna, name: &str, dns_name: &str) -> String {
    let der = common::enroll::csr(
        &k.dir.path().join("csr"),
        name,
        &format!("/CN={dns_name}"),
        &[&format!("subjectAltName=DNS:{dns_name}")],
    );
    base64::engine::general_purpose::STANDARD.encode(der)
}

async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_signing_in_to_an_admin_client_gets_no_power_over_the_pki() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let water = k.json(&["org", "create", "--name", "Water", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        k.ok(&["org", "allow", &water, "--dns", "water.city.example"]);
        let admin = service_token(&k, &server.public, "kizuna:admin", None).await;
        let api = |path: &str| format!("{}/ca/api/v1{path}", server.public);
        let (status, issued) = call(
            reqwest::Method::POST,
            &api("/certificates"),
            &admin,
            Some(json!({"csr": csr_for(&k, "pump", "pump.water.city.example"), "profile": "service", "org_id": water})),
        )
        .await;
        assert_eq!(status, 201, "{issued}");
        let serial = issued["serial"].as_str().unwrap().to_string();

        // A client registered with management scopes; a resident signs in to it.
        k.resident("mallory", PASSWORD);
        let portal = Rp::register(
            &k,
            "portal",
            &[
                "--scope",
                "openid",
                "--scope",
                "kizuna:admin",
                "--scope",
                "kizuna:role:org-admin",
                "--scope",
                "kizuna:devices",
                "--scope",
                "kizuna:cert:service",
            ],
        );
        let browser = Browser::for_server(&k, &server);
        let url = portal.authorize_url(
            &server,
            "openid kizuna:admin kizuna:role:org-admin kizuna:devices kizuna:cert:service",
            &[],
        );
        let callback = browser.sign_in(&url, "mallory", PASSWORD).await;
        let tokens = portal.redeem(&server, &callback).await;
        let token = tokens["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        assert_eq!(
            tokens["scope"], "openid",
            "management scopes are dropped for an account without a role: {tokens}"
        );

        // With it: revoke the city's certificates, issue for another organization's names,
        // change the device registry, read the audit log. Each is refused.
        let attempts = [
            (
                reqwest::Method::POST,
                api("/revocations"),
                Some(json!({"org_id": water, "reason": "keyCompromise", "confirm": true})),
            ),
            (
                reqwest::Method::POST,
                api(&format!("/certificates/{serial}/revoke")),
                Some(json!({"reason": "keyCompromise"})),
            ),
            (
                reqwest::Method::POST,
                api("/certificates"),
                Some(
                    json!({"csr": csr_for(&k, "evil", "www.water.city.example"), "profile": "service", "org_id": water}),
                ),
            ),
            (
                reqwest::Method::POST,
                api("/devices"),
                Some(json!({"id": "rogue-1", "org_id": water, "model": "x"})),
            ),
            (
                reqwest::Method::POST,
                api("/enrollment-tokens"),
                Some(json!({"org_id": water, "profile": "device", "count": 1})),
            ),
            (reqwest::Method::GET, api("/certificates"), None),
            (
                reqwest::Method::GET,
                format!("{}/admin/api/v1/audit", server.public),
                None,
            ),
        ];
        for (method, url, body) in attempts {
            let (status, answer) = call(method.clone(), &url, &token, body).await;
            assert!(
                status == 401 || status == 403,
                "{method} {url} answered {status}: {answer}"
            );
        }
        let (_, shown) = call(
            reqwest::Method::GET,
            &api(&format!("/certificates/{serial}")),
            &admin,
            None,
        )
        .await;
        assert_eq!(shown["certificate"]["status"], "valid", "{shown}");
        let (_, devices) = call(reqwest::Method::GET, &api("/devices"), &admin, None).await;
        assert_eq!(devices, json!([]));
    }
}

/// Grants `role` in `scope` through the admin API with a city administrator's token.
async fn grant(server: &common::Server, city: &str, user_id: &str, role: &str, scope: &str) {
    let (status, answer) = call(
        reqwest::Method::POST,
        &server.url(&format!("/admin/api/v1/users/{user_id}/roles")),
        city,
        Some(json!({"role": role, "scope": scope, "granted": true})),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
}

/// Signs `user` in with password and authenticator app through `rp`; its access token.
async fn staff_token(k: &Kizuna, server: &common::Server, rp: &Rp, user: &str) -> Value {
    let browser = Browser::for_server(k, server);
    browser.sign_in_to_account(user, PASSWORD).await;
    browser.enroll_totp().await;
    let url = rp.authorize_url(server, "openid kizuna:admin", &[]);
    let callback = browser.sign_in(&url, user, PASSWORD).await;
    rp.redeem(server, &callback).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_administrators_token_from_a_password_and_code_sign_in_must_step_up() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let city = service_token(&k, &server.public, "kizuna:admin", None).await;
        let water = k.json(&["org", "create", "--name", "Water", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        k.ok(&["org", "create", "--name", "Streetlights"]);
        let mayor = k.resident("mayor", PASSWORD);
        let clerk = k.resident("clerk", PASSWORD);
        grant(
            &server,
            &city,
            mayor["id"].as_str().unwrap(),
            "city-admin",
            "*",
        )
        .await;
        grant(
            &server,
            &city,
            clerk["id"].as_str().unwrap(),
            "org-admin",
            &water,
        )
        .await;
        let tool = Rp::register(
            &k,
            "ops-tool",
            &["--scope", "openid", "--scope", "kizuna:admin"],
        );

        let mayor_tokens = staff_token(&k, &server, &tool, "mayor").await;
        assert_eq!(
            mayor_tokens["scope"], "openid kizuna:admin",
            "{mayor_tokens}"
        );
        let weak = mayor_tokens["access_token"].as_str().unwrap();
        for path in [
            "/admin/api/v1/users",
            "/ca/api/v1/certificates",
            "/ca/api/v1/devices",
        ] {
            let response = reqwest::Client::new()
                .get(server.url(path))
                .bearer_auth(weak)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{path}");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                challenge.contains("error=\"insufficient_user_authentication\"")
                    && challenge.contains("acr_values=\"urn:kizuna:aal:3\""),
                "{path}: {challenge}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "insufficient_user_authentication", "{path}");
        }

        // An organization administrator's roles need AAL2, which the same sign-in reaches;
        // their reach stays within their organization.
        let clerk_tokens = staff_token(&k, &server, &tool, "clerk").await;
        let clerk_token = clerk_tokens["access_token"].as_str().unwrap();
        let (status, listed) = call(
            reqwest::Method::GET,
            &server.url(&format!("/ca/api/v1/devices?org={water}")),
            clerk_token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{listed}");
        let (status, _) = call(
            reqwest::Method::GET,
            &server.url("/admin/api/v1/users"),
            clerk_token,
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, answer) = call(
            reqwest::Method::POST,
            &server.url("/ca/api/v1/revocations"),
            clerk_token,
            Some(json!({"org_id": "Streetlights", "reason": "keyCompromise"})),
        )
        .await;
        assert_eq!(
            status, 404,
            "another organization is out of reach: {answer}"
        );
    }
}

/// Asks introspection about `token` as the resource server `rs`.
async fn introspect(server: &common::Server, rs: &Rp, token: &str) -> Value {
    reqwest::Client::new()
        .post(server.url("/introspect"))
        .basic_auth(&rs.id, Some(&rs.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A `client_credentials` client with `scope`: (client id, access token).
async fn automation(k: &Kizuna, server: &common::Server, scope: &str) -> (String, String) {
    let client = k.json(&[
        "client",
        "create",
        "--name",
        "automation",
        "--grant-type",
        "client_credentials",
        "--scope",
        scope,
        "--json",
    ]);
    let id = client["client_id"].as_str().unwrap().to_string();
    let answer: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(&id, client["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (id, answer["access_token"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_disabled_or_deleted_client_or_account_stop_working_at_once() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let rs = Rp::register(&k, "resource-server", &["--scope", "openid"]);
        let (_, city) = automation(&k, &server, "kizuna:admin").await;
        let (disabled_id, disabled) = automation(&k, &server, "kizuna:admin").await;
        let (deleted_id, deleted) = automation(&k, &server, "kizuna:admin").await;
        for token in [&disabled, &deleted] {
            assert_eq!(introspect(&server, &rs, token).await["active"], true);
            let (status, _) = call(
                reqwest::Method::GET,
                &server.url("/ca/api/v1/certificates"),
                token,
                None,
            )
            .await;
            assert_eq!(status, 200);
        }
        let (status, answer) = call(
            reqwest::Method::POST,
            &server.url(&format!("/admin/api/v1/clients/{disabled_id}/disable")),
            &city,
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        k.ok(&["client", "delete", &deleted_id]);
        for token in [&disabled, &deleted] {
            assert_eq!(introspect(&server, &rs, token).await["active"], false);
            for path in [
                "/ca/api/v1/certificates",
                "/ca/api/v1/devices",
                "/admin/api/v1/users",
            ] {
                let (status, answer) =
                    call(reqwest::Method::GET, &server.url(path), token, None).await;
                assert_eq!(status, 401, "{path}: {answer}");
            }
        }

        // A person's access and refresh tokens end with their account.
        k.resident("hanako", PASSWORD);
        let app = Rp::register(&k, "app", &["--scope", "openid"]);
        let browser = Browser::for_server(&k, &server);
        let callback = browser
            .sign_in(
                &app.authorize_url(&server, "openid", &[]),
                "hanako",
                PASSWORD,
            )
            .await;
        let tokens = app.redeem(&server, &callback).await;
        let access = tokens["access_token"].as_str().unwrap();
        let refresh = tokens["refresh_token"].as_str().expect("a refresh token");
        assert_eq!(introspect(&server, &rs, access).await["active"], true);
        assert_eq!(introspect(&server, &rs, refresh).await["active"], true);
        k.ok(&["user", "disable", "hanako"]);
        assert_eq!(introspect(&server, &rs, access).await["active"], false);
        assert_eq!(introspect(&server, &rs, refresh).await["active"], false);
        let userinfo = reqwest::Client::new()
            .get(server.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(userinfo.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_rotation_never_extends_the_grant() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        k.resident("hanako", PASSWORD);
        let app = Rp::register(&k, "app", &["--scope", "openid"]);
        let browser = Browser::for_server(&k, &server);
        let callback = browser
            .sign_in(
                &app.authorize_url(&server, "openid", &[]),
                "hanako",
                PASSWORD,
            )
            .await;
        let tokens = app.redeem(&server, &callback).await;
        // The grant's lifetime is nearly over.
        let db = common::database(&k).await;
        let ends = kizuna_core::time::now_unix() + 30;
        sqlx::query("UPDATE grants SET expires_at = $1")
            .bind(ends)
            .execute(db.pool())
            .await
            .unwrap();
        let refresh = |token: String| {
            let app = &app;
            let server = &server;
            async move {
                let response = reqwest::Client::new()
                    .post(server.url("/token"))
                    .basic_auth(&app.id, Some(&app.secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        };
        let (status, rotated) = refresh(tokens["refresh_token"].as_str().unwrap().into()).await;
        assert_eq!(status, 200, "{rotated}");
        let next = rotated["refresh_token"].as_str().unwrap().to_string();
        let rs = Rp::register(&k, "resource-server", &["--scope", "openid"]);
        let shown = introspect(&server, &rs, &next).await;
        assert!(
            shown["exp"].as_i64().unwrap() <= ends,
            "{shown} beyond {ends}"
        );
        // Once the grant has ended, its refresh token is refused.
        sqlx::query("UPDATE grants SET expires_at = $1")
            .bind(kizuna_core::time::now_unix() - 1)
            .execute(db.pool())
            .await
            .unwrap();
        let (status, answer) = refresh(next).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "invalid_grant");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_administrator_cannot_repoint_an_admin_client_and_repointing_their_own_needs_approval()
 {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let water = k.json(&["org", "create", "--name", "Water", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        let city = service_token(&k, &server.public, "kizuna:admin", None).await;
        let org_admin =
            service_token(&k, &server.public, "kizuna:role:org-admin", Some(&water)).await;
        let clients = server.url("/admin/api/v1/clients");
        let register = |token: String, body: Value| {
            let clients = clients.clone();
            async move { call(reqwest::Method::POST, &clients, &token, Some(body)).await }
        };
        // A city administrator's client in the organization, with an admin scope.
        let (status, privileged) = register(
            city.clone(),
            json!({"client_name": "Auditing tool", "org_id": water, "redirect_uris": ["https://audit.water.example/cb"], "scope": "openid kizuna:role:auditor"}),
        )
        .await;
        assert_eq!(status, 201, "{privileged}");
        let id = privileged["client_id"].as_str().unwrap().to_string();
        let (status, answer) = call(
            reqwest::Method::PATCH,
            &format!("{clients}/{id}"),
            &org_admin,
            Some(json!({"redirect_uris": ["https://evil.example/cb"], "version": privileged["version"]})),
        )
        .await;
        assert_eq!(status, 403, "{answer}");
        let (status, answer) = call(
            reqwest::Method::POST,
            &format!("{clients}/{id}/rotate-secret"),
            &org_admin,
            None,
        )
        .await;
        assert_eq!(status, 403, "{answer}");
        let (_, shown) = call(
            reqwest::Method::GET,
            &format!("{clients}/{id}"),
            &city,
            None,
        )
        .await;
        assert_eq!(
            shown["redirect_uris"],
            json!(["https://audit.water.example/cb"]),
            "{shown}"
        );

        // The organization's own client, approved, then re-pointed: back to pending.
        let (status, own) = register(
            org_admin.clone(),
            json!({"client_name": "Water portal", "org_id": water, "redirect_uris": ["https://portal.water.example/cb"], "scope": "openid"}),
        )
        .await;
        assert_eq!(status, 201, "{own}");
        let own_id = own["client_id"].as_str().unwrap().to_string();
        let (status, approved) = call(
            reqwest::Method::POST,
            &format!("{clients}/{own_id}/approve"),
            &city,
            None,
        )
        .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(approved["status"], "active");
        let (status, edited) = call(
            reqwest::Method::PATCH,
            &format!("{clients}/{own_id}"),
            &org_admin,
            Some(json!({"redirect_uris": ["https://elsewhere.water.example/cb"], "version": approved["version"]})),
        )
        .await;
        assert_eq!(status, 200, "{edited}");
        assert_eq!(edited["status"], "pending", "{edited}");
        // A city administrator's own change keeps it active.
        let (_, approved) = call(
            reqwest::Method::POST,
            &format!("{clients}/{own_id}/approve"),
            &city,
            None,
        )
        .await;
        let (status, edited) = call(
            reqwest::Method::PATCH,
            &format!("{clients}/{own_id}"),
            &city,
            Some(json!({"redirect_uris": ["https://portal.water.example/cb"], "min_aal": 2, "version": approved["version"]})),
        )
        .await;
        assert_eq!(status, 200, "{edited}");
        assert_eq!(edited["status"], "active", "{edited}");
    }
}
