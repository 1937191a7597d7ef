//! One authorization model for every management API, tried as an attacker would: a resident
//! who signs in to a client registered with management scopes, a city administrator's token
//! from too weak a sign-in, tokens of disabled clients and accounts.

use crate::common;

use crate::common::rp::Rp;
use crate::common::upstream::DiscoveryStub;
use crate::common::{Browser, Kizuna, service_token};
use base64::Engine;
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

// ---------------------------------------------------------------------------------------------
// The route matrix: every management route the admin API, the CA API and the device registry
// serve (read from their routers' source, so a new route joins by itself), tried by every
// kind of caller that must be refused.

/// Every (method, path) a router file serves: the path of each `.route(…)` and the method
/// routers up to the next one.
fn served(source: &str) -> Vec<(&'static str, String)> {
    let mut routes = Vec::new();
    for call in source.split(".route(").skip(1) {
        let Some(path) = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
        else {
            continue;
        };
        let handlers = call
            .split(".with_state(")
            .next()
            .and_then(|h| h.split(".layer(").next())
            .unwrap_or(call);
        for method in ["get", "post", "patch", "delete", "put"] {
            let called = |prefix: &str| handlers.contains(&format!("{prefix}{method}("));
            if called(" ") || called("(") || called(".") || called("::") {
                routes.push((method, path.to_string()));
            }
        }
    }
    routes
}

/// Routes anyone may call: CA certificates and the trust bundle, issued certificates, CRLs,
/// the CA hierarchy.
const PUBLIC: &[&str] = &[
    "/pki/ca/{file}",
    "/pki/trust-bundle.pem",
    "/pki/cert/{file}",
    "/pki/crl/{file}",
    "/pki/crl/{ca}/{file}",
    "/ca/api/v1/cas",
    "/admin/api/openapi.json",
];

/// What organization A holds, for the attackers to reach for.
struct Fixture {
    org: String,
    device: String,
    serial: String,
    token: String,
    audit: String,
    user: String,
    client: String,
    upstream: String,
    csr: String,
}

impl Fixture {
    /// The route's path with A's things in it; panics for a path parameter with no rule.
    fn path(&self, route: &str) -> String {
        let mut out = String::new();
        let mut previous = "";
        for segment in route.split('/').skip(1) {
            let value = match segment {
                "{id}" => match previous {
                    "devices" => &self.device,
                    "enrollment-tokens" => &self.token,
                    "audit" => &self.audit,
                    "users" => &self.user,
                    "clients" => &self.client,
                    "upstreams" => &self.upstream,
                    "orgs" => &self.org,
                    _ => panic!("{route}: no rule for {{id}} after {previous}: add one"),
                },
                "{serial}" => &self.serial,
                "{action}" => "retire",
                s if s.starts_with('{') => panic!("{route}: no rule for {s}: add one"),
                s => s,
            };
            out.push('/');
            out.push_str(value);
            previous = segment;
        }
        out
    }

    /// The body an attacker sends to a changing route, aimed at organization A; panics for a
    /// route with no rule.
    fn body(&self, method: &str, route: &str) -> Option<Value> {
        let a = &self.org;
        let body = match (
            method,
            route
                .trim_start_matches("/admin/api/v1")
                .trim_start_matches("/ca/api/v1"),
        ) {
            ("post", "/devices") => json!({"id": "rogue", "org_id": a, "model": "x"}),
            ("post", "/revocations") if route.starts_with("/ca/") => {
                json!({"org_id": a, "reason": "keyCompromise", "confirm": true})
            }
            ("post", "/revocations") => json!({"org_id": a, "reason": "keyCompromise"}),
            ("post", "/enrollment-tokens") => json!({"org_id": a, "profile": "device"}),
            ("post", "/acme/eab") => json!({"org_id": a}),
            ("post", "/certificates") => {
                json!({"csr": self.csr, "profile": "service", "org_id": a})
            }
            ("post", "/certificates/{serial}/revoke") => json!({"reason": "keyCompromise"}),
            ("post", "/users") => {
                json!({"username": "rogue", "org_id": a, "password": "a rogue's long passphrase"})
            }
            ("post", "/users/{id}/password") => json!({"password": "a rogue's long passphrase"}),
            ("post", "/users/{id}/mfa-reset") => {
                json!({"reproofing_reference": "x", "reason": "lost"})
            }
            ("post", "/users/{id}/roles") => {
                json!({"role": "city-admin", "scope": "*", "granted": true})
            }
            ("post", "/users/bulk-disable") => json!({"user_ids": [self.user]}),
            ("post", "/users/{id}/proofing") => {
                json!({"document_type": "passport", "document_number": "1", "level": 2})
            }
            ("post", "/clients") => {
                json!({"client_name": "rogue", "org_id": a, "redirect_uris": ["https://evil.example/cb"], "scope": "openid kizuna:admin"})
            }
            ("patch", "/clients/{id}") => {
                json!({"redirect_uris": ["https://evil.example/cb"], "version": 1})
            }
            ("put", "/clients/{id}/assurance") => {
                json!({"min_ial": 0, "verified_claims": [], "proofing_providers": []})
            }
            ("put", "/clients/{id}/quota") => json!({"requests_per_minute": 1}),
            ("put", "/clients/{id}/linkages") => {
                json!({"target_client_id": self.client, "purpose": "x", "scopes": ["openid"]})
            }
            ("put", "/clients/{id}/consent-terms") => {
                json!({"purpose": "Something else entirely", "lifetime_days": 1})
            }
            ("post", "/upstreams") => {
                json!({"alias": "rogue", "name": "Rogue", "org_id": a, "issuer": "http://127.0.0.1:9", "client_id": "x"})
            }
            ("patch", "/upstreams/{id}") => json!({"version": 1, "name": "Evil"}),
            ("post", "/orgs") => json!({"name": "Rogue"}),
            ("patch", "/orgs/{id}") => json!({"name": "Evil", "version": 1}),
            ("put", "/orgs/{id}/consent-lifetime") => json!({"lifetime_days": 1}),
            ("put", "/orgs/{id}/client-scopes") => {
                json!({"profile": "device", "scopes": ["city:everything"]})
            }
            // Changes that take no body.
            ("post", r)
                if [
                    "/devices/{id}/suspend",
                    "/devices/{id}/resume",
                    "/devices/{id}/retire",
                    "/devices/{id}/{action}",
                    "/certificates/{serial}/unhold",
                    "/enrollment-tokens/{id}/void",
                    "/audit/verify",
                    "/users/{id}/disable",
                    "/users/{id}/enable",
                    "/users/{id}/sessions/end",
                    "/clients/{id}/rotate-secret",
                    "/clients/{id}/approve",
                    "/clients/{id}/disable",
                    "/clients/{id}/enable",
                    "/upstreams/{id}/approve",
                    "/upstreams/{id}/disable",
                    "/upstreams/{id}/enable",
                    "/orgs/{id}/disable",
                    "/orgs/{id}/enable",
                ]
                .contains(&r) =>
            {
                return None;
            }
            ("delete", "/clients/{id}") => return None,
            ("get", _) => return None,
            _ => panic!("{method} {route}: no attacker rule: add one"),
        };
        Some(body)
    }

    /// True when an answer names something of organization A.
    fn leaks(&self, body: &str) -> bool {
        [
            &self.org,
            &self.device,
            &self.serial,
            &self.user,
            &self.client,
            &self.upstream,
        ]
        .iter()
        .any(|id| body.contains(id.as_str()))
    }
}

async fn fixture(k: &Kizuna, server: &common::Server, city: &str) -> Fixture {
    let org = k.json(&["org", "create", "--name", "Water", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    k.ok(&["org", "allow", &org, "--dns", "water.city.example"]);
    k.ok(&["org", "create", "--name", "Parks"]);
    let api = |path: &str| server.url(path);
    let post = |path: &str, body: Value| {
        let url = api(path);
        let city = city.to_string();
        async move {
            let (status, answer) = call(reqwest::Method::POST, &url, &city, Some(body)).await;
            assert!((200..300).contains(&status), "{url}: {status} {answer}");
            answer
        }
    };
    let device = post(
        "/admin/api/v1/devices",
        json!({"id": "pump-1", "org_id": org, "model": "P-3"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let csr = csr_for(k, "pump-api", "api.water.city.example");
    let serial = post(
        "/ca/api/v1/certificates",
        json!({"csr": csr, "profile": "service", "org_id": org}),
    )
    .await["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let token = post(
        "/admin/api/v1/enrollment-tokens",
        json!({"org_id": org, "profile": "device"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let user = post(
        "/admin/api/v1/users",
        json!({"username": "water-clerk", "org_id": org, "password": PASSWORD}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let client = post("/admin/api/v1/clients", json!({"client_name": "Water portal", "org_id": org, "redirect_uris": ["https://portal.water.example/cb"]})).await["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stub = DiscoveryStub::start().await;
    let issuer = &stub.issuer;
    let upstream = post("/admin/api/v1/upstreams", json!({"alias": "waterworks", "name": "Waterworks", "org_id": org, "issuer": issuer, "client_id": "kizuna", "client_secret": "a long enough upstream secret"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, entries) = call(
        reqwest::Method::GET,
        &api("/admin/api/v1/audit"),
        city,
        None,
    )
    .await;
    let audit = entries
        .as_array()
        .and_then(|e| e.first())
        .map(|e| e["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("audit entries: {entries}"));
    Fixture {
        org,
        device,
        serial,
        token,
        audit,
        user,
        client,
        upstream,
        csr: csr_for(k, "rogue", "www.water.city.example"),
    }
}

/// What organization A holds, as a city administrator sees it.
async fn snapshot(server: &common::Server, city: &str, f: &Fixture) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        format!("/admin/api/v1/devices?org={}", f.org),
        format!("/admin/api/v1/certificates?org={}", f.org),
        format!("/admin/api/v1/enrollment-tokens?org={}", f.org),
        format!("/admin/api/v1/users/{}", f.user),
        format!("/admin/api/v1/clients/{}", f.client),
        format!("/admin/api/v1/upstreams/{}", f.upstream),
        format!("/admin/api/v1/orgs/{}", f.org),
        "/admin/api/v1/orgs".to_string(),
        "/admin/api/v1/clients".to_string(),
        format!("/ca/api/v1/devices?org={}", f.org),
    ] {
        let (status, body) = call(reqwest::Method::GET, &server.url(&path), city, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push(body);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_management_route_refuses_every_caller_it_must() {
    let routes: Vec<(&str, String)> = [
        served(include_str!("../../admin-ui/src/api/mod.rs")),
        served(include_str!("../../ca/src/http.rs")),
        served(include_str!("../../ca/src/registry_http.rs")),
    ]
    .concat()
    .into_iter()
    .filter(|(_, path)| !PUBLIC.contains(&path.as_str()))
    .collect();
    assert!(routes.len() > 60, "{routes:?}");
    for k in Kizuna::each_backend().await {
        // Staff may sign in with a password alone here, so a city administrator's AAL1
        // token can be made; the management APIs must still refuse it.
        let k = k.env("KIZUNA_MFA__STAFF_MIN_AAL", "0");
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let (_, city) = automation(&k, &server, "kizuna:admin").await;
        let f = fixture(&k, &server, &city).await;
        let parks = k
            .json(&["org", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "Parks")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();

        // The callers.
        let mut attackers: Vec<(String, Option<String>)> = vec![("no token".into(), None)];
        let tool = Rp::register(
            &k,
            "ops-tool",
            &["--scope", "openid", "--scope", "kizuna:admin"],
        );
        k.resident("mallory", PASSWORD);
        let weak_mayor = k.resident("weak-mayor", PASSWORD);
        grant(
            &server,
            &city,
            weak_mayor["id"].as_str().unwrap(),
            "city-admin",
            "*",
        )
        .await;
        for (who, user) in [
            ("a resident", "mallory"),
            ("an AAL1 city administrator", "weak-mayor"),
        ] {
            let browser = Browser::for_server(&k, &server);
            let callback = browser
                .sign_in(
                    &tool.authorize_url(&server, "openid kizuna:admin", &[]),
                    user,
                    PASSWORD,
                )
                .await;
            let tokens = tool.redeem(&server, &callback).await;
            attackers.push((
                who.into(),
                Some(tokens["access_token"].as_str().unwrap().into()),
            ));
        }
        for scope in [
            "kizuna:role:org-admin",
            "kizuna:role:registrar",
            "kizuna:role:installer",
            "kizuna:role:auditor",
            "kizuna:role:helpdesk",
            "kizuna:devices",
            "kizuna:cert:revoke",
            "kizuna:cert:service",
        ] {
            let client = k.json(&[
                "client",
                "create",
                "--name",
                scope,
                "--grant-type",
                "client_credentials",
                "--scope",
                scope,
                "--org",
                &parks,
                "--json",
            ]);
            let answer: Value = reqwest::Client::new()
                .post(server.url("/token"))
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
            attackers.push((
                format!("{scope} of another organization"),
                Some(answer["access_token"].as_str().unwrap().into()),
            ));
        }
        let (gone_id, gone) = automation(&k, &server, "kizuna:admin").await;
        let (status, _) = call(
            reqwest::Method::POST,
            &server.url(&format!("/admin/api/v1/clients/{gone_id}/disable")),
            &city,
            None,
        )
        .await;
        assert_eq!(status, 200);
        attackers.push(("a disabled client".into(), Some(gone)));

        let before = snapshot(&server, &city, &f).await;
        let http = reqwest::Client::new();
        for (method, route) in &routes {
            let mut url = server.url(&f.path(route));
            let body = f.body(method, route);
            // The city administrator reaches every read (the requests are well formed); reads
            // that take an organization name A, as a caller fishing for it would.
            if *method == "get" {
                let fishing = format!("{url}?org={}", f.org);
                let (status, _) = call(reqwest::Method::GET, &fishing, &city, None).await;
                if status != 400 {
                    url = fishing;
                }
                let (status, answer) = call(reqwest::Method::GET, &url, &city, None).await;
                assert_eq!(status, 200, "city: GET {url}: {answer}");
            }
            for (who, token) in &attackers {
                let mut request = http.request(method.to_uppercase().parse().unwrap(), &url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text: String = response.text().await.unwrap().chars().take(400).collect();
                let must_be_401 = matches!(
                    who.as_str(),
                    "no token" | "a disabled client" | "an AAL1 city administrator"
                );
                if must_be_401 {
                    assert_eq!(status, 401, "{who}: {method} {route}: {text}");
                    if who == "an AAL1 city administrator" {
                        assert!(
                            text.contains("insufficient_user_authentication"),
                            "{route}: {text}"
                        );
                    }
                } else if *method == "get" && status == 200 {
                    // A listing within the caller's own reach: nothing of A in it.
                    assert!(
                        !f.leaks(&text),
                        "{who}: GET {route} shows organization A: {text}"
                    );
                } else {
                    assert!(
                        [401, 403, 404].contains(&status),
                        "{who}: {method} {route} answered {status}: {text}"
                    );
                }
            }
        }
        assert_eq!(
            snapshot(&server, &city, &f).await,
            before,
            "nothing of organization A changed"
        );
    }
}
