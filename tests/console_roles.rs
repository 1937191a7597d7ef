//! The admin API's authorization table, role by role: each role (a `client_credentials`
//! token with a `kizuna:role:<role>` scope, confined to its client's organization) against
//! each action, allowed and refused; and the API's bad inputs (another organization's
//! device by URL, stale edits, huge search strings, revoking twice).

mod common;

use reqwest::Method;
use serde_json::{Value, json};

use common::pki::{csr, sh_ok};
use common::{Kizuna, Server, service_token};

/// Issues a device certificate for `name` in `org`; returns its serial (lower-case hex).
fn device_cert(k: &Kizuna, org: &str, name: &str) -> String {
    let dir = k.dir.path();
    csr(
        dir,
        name,
        "p256",
        &format!("/CN={name}"),
        &[&format!(
            "subjectAltName=URI:urn:kizuna:device:{org}:{name}"
        )],
    );
    let pem = k.ok(&[
        "cert",
        "issue",
        "--csr",
        &format!("{name}.csr"),
        "--profile",
        "device",
        "--org",
        org,
    ]);
    std::fs::write(dir.join(format!("{name}.pem")), &pem).unwrap();
    sh_ok(dir, &format!("openssl x509 -in {name}.pem -noout -serial"))
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

fn add_device(k: &Kizuna, org: &str, id: &str) {
    k.json(&[
        "device", "add", "--org", org, "--id", id, "--model", "LED-9", "--json",
    ]);
}

/// An action: its name, the request, and the roles allowed to make it.
type Case = (
    &'static str,
    Method,
    String,
    Option<Value>,
    &'static [&'static str],
);

struct Api<'a> {
    server: &'a Server,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/admin/api/v1{path}", self.server.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[tokio::test]
async fn each_role_is_allowed_and_refused_as_the_table_says() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let base = server.base.clone();
        let a = k.json(&["org", "create", "--name", "Streetlights", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = k.json(&["org", "create", "--name", "Waterworks", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        add_device(&k, &a, "lamp-1");
        let serial = device_cert(&k, &a, "lamp-1");
        let resident = k.resident("hanako", "a perfectly long passphrase");
        let resident = resident["id"].as_str().unwrap().to_string();
        let api = Api {
            server: &server,
            http: reqwest::Client::new(),
        };

        let city = service_token(&k, &base, "kizuna:admin", None).await;
        let mut tokens = vec![("city-admin", city.clone())];
        for (role, org) in [
            ("org-admin", Some(a.as_str())),
            ("registrar", Some(a.as_str())),
            ("installer", Some(a.as_str())),
            ("auditor", None),
            ("helpdesk", None),
        ] {
            tokens.push((
                role,
                service_token(&k, &base, &format!("kizuna:role:{role}"), org).await,
            ));
        }

        // (name, method, path, body, roles allowed)
        let hold = json!({"serial": serial, "reason": "certificateHold"});
        let cases: Vec<Case> = vec![
            (
                "dashboard",
                Method::GET,
                "/dashboard".into(),
                None,
                &[
                    "city-admin",
                    "org-admin",
                    "registrar",
                    "installer",
                    "auditor",
                    "helpdesk",
                ],
            ),
            (
                "search devices",
                Method::GET,
                "/devices".into(),
                None,
                &["city-admin", "org-admin", "installer", "auditor"],
            ),
            (
                "view a device",
                Method::GET,
                "/devices/lamp-1".into(),
                None,
                &["city-admin", "org-admin", "installer", "auditor"],
            ),
            (
                "view a certificate",
                Method::GET,
                format!("/certificates/{serial}"),
                None,
                &["city-admin", "org-admin", "installer", "auditor"],
            ),
            (
                "register a device",
                Method::POST,
                "/devices".into(),
                Some(json!({"org_id": a, "model": "LED-9"})),
                &["city-admin", "org-admin", "installer"],
            ),
            (
                "create an enrollment token",
                Method::POST,
                "/enrollment-tokens".into(),
                Some(json!({"org_id": a})),
                &["city-admin", "org-admin", "installer"],
            ),
            (
                "suspend a certificate",
                Method::POST,
                "/revocations".into(),
                Some(hold.clone()),
                &["city-admin", "org-admin"],
            ),
            (
                "read the audit log",
                Method::GET,
                "/audit?action=cert.".into(),
                None,
                &["city-admin", "auditor"],
            ),
            (
                "verify the audit chain",
                Method::POST,
                "/audit/verify".into(),
                None,
                &["city-admin", "auditor"],
            ),
            (
                "search users",
                Method::GET,
                "/users".into(),
                None,
                &[
                    "city-admin",
                    "org-admin",
                    "registrar",
                    "auditor",
                    "helpdesk",
                ],
            ),
            (
                "view a resident",
                Method::GET,
                format!("/users/{resident}"),
                None,
                &["city-admin", "auditor", "helpdesk"],
            ),
            (
                "end a resident's sessions",
                Method::POST,
                format!("/users/{resident}/sessions/end"),
                None,
                &["city-admin", "helpdesk"],
            ),
            (
                "reset a resident's factors",
                Method::POST,
                format!("/users/{resident}/mfa-reset"),
                Some(json!({"reproofing_reference": "counter-2026-0042"})),
                &["city-admin", "helpdesk"],
            ),
            (
                "disable a resident",
                Method::POST,
                format!("/users/{resident}/disable"),
                None,
                &["city-admin"],
            ),
            (
                "list clients",
                Method::GET,
                "/clients".into(),
                None,
                &["city-admin", "org-admin", "auditor"],
            ),
            (
                "register a client",
                Method::POST,
                "/clients".into(),
                Some(
                    json!({"client_name": "Lamp portal", "org_id": a, "redirect_uris": ["https://lamps.example/cb"]}),
                ),
                &["city-admin", "org-admin"],
            ),
            (
                "list organizations",
                Method::GET,
                "/orgs".into(),
                None,
                &[
                    "city-admin",
                    "org-admin",
                    "registrar",
                    "installer",
                    "auditor",
                    "helpdesk",
                ],
            ),
            (
                "add an organization",
                Method::POST,
                "/orgs".into(),
                Some(json!({"name": "Hospital"})),
                &["city-admin"],
            ),
            (
                "review accounts",
                Method::GET,
                "/reviews?days=30".into(),
                None,
                &["city-admin", "org-admin", "auditor"],
            ),
        ];
        for (name, method, path, body, allowed) in &cases {
            for (role, token) in &tokens {
                let (status, answer) = api.call(token, method.clone(), path, body.clone()).await;
                if allowed.contains(role) {
                    assert!(
                        (200..300).contains(&status),
                        "{role} may {name}: {status} {answer}"
                    );
                } else {
                    assert!(
                        matches!(status, 403 | 404),
                        "{role} may not {name}: {status} {answer}"
                    );
                }
                // Undo what an allowed call changed, so the next role meets the same state.
                if (200..300).contains(&status) {
                    match *name {
                        "suspend a certificate" => {
                            let (s, _) = api
                                .call(
                                    &city,
                                    Method::POST,
                                    &format!("/certificates/{serial}/unhold"),
                                    None,
                                )
                                .await;
                            assert_eq!(s, 204);
                        }
                        "disable a resident" => {
                            let (s, _) = api
                                .call(
                                    &city,
                                    Method::POST,
                                    &format!("/users/{resident}/enable"),
                                    None,
                                )
                                .await;
                            assert_eq!(s, 200);
                        }
                        "add an organization" => {}
                        _ => {}
                    }
                }
            }
        }

        // A client an org-admin registers is pending until a city administrator approves it.
        let org_admin = &tokens[1].1;
        let (status, created) = api
            .call(org_admin, Method::POST, "/clients", Some(json!({"client_name": "Meter app", "org_id": a, "redirect_uris": ["https://meters.example/cb"]})))
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["status"], "pending");
        let id = created["client_id"].as_str().unwrap();
        let (status, _) = api
            .call(
                org_admin,
                Method::POST,
                &format!("/clients/{id}/approve"),
                None,
            )
            .await;
        assert_eq!(status, 403, "an org-admin cannot approve");
        let (status, _) = api
            .call(
                org_admin,
                Method::POST,
                &format!("/clients/{id}/enable"),
                None,
            )
            .await;
        assert_eq!(
            status, 409,
            "enabling a pending client does not skip the approval"
        );
        let (status, approved) = api
            .call(&city, Method::POST, &format!("/clients/{id}/approve"), None)
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(approved["status"], "active");
        let (_, audit) = api
            .call(
                &city,
                Method::GET,
                &format!("/audit?action=client.approve&target=client:{id}"),
                None,
            )
            .await;
        assert_eq!(
            audit.as_array().unwrap().len(),
            1,
            "the approval is audited"
        );
        // Nor can an org-admin give a client admin scopes.
        let (status, _) = api
            .call(org_admin, Method::POST, "/clients", Some(json!({"client_name": "Escalate", "org_id": a, "grant_types": ["client_credentials"], "scope": "kizuna:admin"})))
            .await;
        assert_eq!(status, 403);

        // Another organization's device, certificate and bulk revocation are out of reach.
        add_device(&k, &b, "pump-1");
        let foreign = device_cert(&k, &b, "pump-1");
        for path in [
            "/devices/pump-1".to_string(),
            format!("/certificates/{foreign}"),
        ] {
            let (status, answer) = api.call(org_admin, Method::GET, &path, None).await;
            assert_eq!(status, 404, "{path}: {answer}");
        }
        for body in [
            json!({"serial": foreign, "reason": "keyCompromise"}),
            json!({"device_id": "pump-1", "reason": "keyCompromise"}),
            json!({"org_id": b, "reason": "keyCompromise"}),
        ] {
            let (status, answer) = api
                .call(org_admin, Method::POST, "/revocations", Some(body.clone()))
                .await;
            assert_eq!(status, 404, "{body}: {answer}");
        }
        let (_, listed) = api
            .call(org_admin, Method::GET, "/certificates", None)
            .await;
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["org_id"] == a.as_str()),
            "{listed}"
        );
        let (_, cert) = api
            .call(
                &city,
                Method::GET,
                &format!("/certificates/{foreign}"),
                None,
            )
            .await;
        assert_eq!(
            cert["status"], "valid",
            "nothing of the other organization changed"
        );
        drop(server);
    }
}

#[tokio::test]
async fn stale_edits_huge_searches_and_double_revocations_are_refused_clearly() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let city = service_token(&k, &server.base, "kizuna:admin", None).await;
    let org = k.json(&["org", "create", "--name", "Transit", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Two administrators edit the same client from the same copy: the second is refused with
    // the newer version.
    let (_, client) = api
        .call(
            &city,
            Method::POST,
            "/clients",
            Some(json!({"client_name": "Bus app", "redirect_uris": ["https://bus.example/cb"]})),
        )
        .await;
    let id = client["client_id"].as_str().unwrap();
    assert_eq!(client["version"], 0);
    let first = json!({"redirect_uris": ["https://bus.example/one"], "version": 0});
    let second = json!({"redirect_uris": ["https://bus.example/two"], "version": 0});
    let (status, edited) = api
        .call(&city, Method::PATCH, &format!("/clients/{id}"), Some(first))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["version"], 1);
    let (status, stale) = api
        .call(
            &city,
            Method::PATCH,
            &format!("/clients/{id}"),
            Some(second),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(stale["error"], "stale");
    assert_eq!(
        stale["current"]["redirect_uris"],
        json!(["https://bus.example/one"])
    );
    assert_eq!(stale["current"]["version"], 1);

    let (status, stale) = api
        .call(
            &city,
            Method::PATCH,
            &format!("/orgs/{org}"),
            Some(json!({"name": "Transit Bureau", "version": 0})),
        )
        .await;
    assert_eq!(status, 200, "{stale}");
    let (status, stale) = api
        .call(
            &city,
            Method::PATCH,
            &format!("/orgs/{org}"),
            Some(json!({"name": "Transit Dept", "version": 0})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(stale["current"]["name"], "Transit Bureau");

    // A huge search string is refused with a message, and the server keeps serving.
    let huge = "x".repeat(20_000);
    for path in [
        format!("/users?q={huge}"),
        format!("/devices?q={huge}"),
        format!("/certificates?q={huge}"),
    ] {
        let (status, answer) = api.call(&city, Method::GET, &path, None).await;
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("at most 256"),
            "{answer}"
        );
    }
    let (status, _) = api.call(&city, Method::GET, "/users?q=x", None).await;
    assert_eq!(status, 200);

    // Revoking a revoked certificate says so, and changes nothing.
    let serial = device_cert(&k, &org, "bus-7");
    let body = json!({"serial": serial, "reason": "keyCompromise"});
    let (status, report) = api
        .call(&city, Method::POST, "/revocations", Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["revoked"], json!([serial]));
    let (status, again) = api
        .call(&city, Method::POST, "/revocations", Some(body))
        .await;
    assert_eq!(status, 409, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already revoked"),
        "{again}"
    );
    let (status, _) = api
        .call(
            &city,
            Method::POST,
            "/revocations",
            Some(json!({"serial": serial, "device_id": "x", "reason": "keyCompromise"})),
        )
        .await;
    assert_eq!(status, 422, "two targets at once");

    // The OpenAPI document describes every route the API serves.
    let spec: Value = reqwest::get(format!("{}/admin/api/openapi.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/admin/api/v1/revocations",
        "/admin/api/v1/clients/{id}",
        "/admin/api/v1/audit/verify",
    ] {
        assert!(spec["paths"][path].is_object(), "{path}");
    }
    let (status, _) = api
        .call("not-a-token", Method::GET, "/dashboard", None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn enrollment_tokens_are_listed_without_secrets_and_voided_once() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let org = k.json(&["org", "create", "--name", "Parks", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let installer = service_token(&k, &server.base, "kizuna:role:installer", Some(&org)).await;
    let (status, created) = api
        .call(
            &installer,
            Method::POST,
            "/enrollment-tokens",
            Some(json!({"org_id": org})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["token"].as_str().unwrap();
    assert!(secret.starts_with("kzet_"));
    let id = created["id"].as_str().unwrap();
    let (_, listed) = api
        .call(
            &installer,
            Method::GET,
            &format!("/enrollment-tokens?org={org}"),
            None,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(secret),
        "the list never shows the token"
    );
    let auditor = service_token(&k, &server.base, "kizuna:role:auditor", None).await;
    let (status, _) = api
        .call(
            &auditor,
            Method::POST,
            &format!("/enrollment-tokens/{id}/void"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, voided) = api
        .call(
            &installer,
            Method::POST,
            &format!("/enrollment-tokens/{id}/void"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{voided}");
    let (status, again) = api
        .call(
            &installer,
            Method::POST,
            &format!("/enrollment-tokens/{id}/void"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{again}");
    let audit = k.ok(&["audit", "export"]);
    assert_eq!(audit.matches("\"enroll.token.void\"").count(), 1);
}

#[tokio::test]
async fn devices_suspend_and_resume_with_their_certificates_and_reviews_disable_in_bulk() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let org = k.json(&["org", "create", "--name", "Meters", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    add_device(&k, &org, "meter-1");
    let serial = device_cert(&k, &org, "meter-1");
    let org_admin = service_token(&k, &server.base, "kizuna:role:org-admin", Some(&org)).await;
    let (status, change) = api
        .call(&org_admin, Method::POST, "/devices/meter-1/suspend", None)
        .await;
    assert_eq!(status, 200, "{change}");
    assert_eq!(change["certificates"], json!([serial]));
    let (_, cert) = api
        .call(
            &org_admin,
            Method::GET,
            &format!("/certificates/{serial}"),
            None,
        )
        .await;
    assert_eq!(cert["status"], "hold");
    let (status, _) = api
        .call(&org_admin, Method::POST, "/devices/meter-1/resume", None)
        .await;
    assert_eq!(status, 200);
    let (_, cert) = api
        .call(
            &org_admin,
            Method::GET,
            &format!("/certificates/{serial}"),
            None,
        )
        .await;
    assert_eq!(cert["status"], "valid");

    // A bulk disable is all or nothing: one account out of reach refuses the whole batch.
    let city = service_token(&k, &server.base, "kizuna:admin", None).await;
    let mut ids = Vec::new();
    for name in ["idle.one", "idle.two"] {
        let (status, user) = api
            .call(
                &city,
                Method::POST,
                "/users",
                Some(json!({"username": name, "org_id": org})),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        ids.push(user["id"].as_str().unwrap().to_string());
    }
    let (_, outside) = api
        .call(
            &city,
            Method::POST,
            "/users",
            Some(json!({"username": "resident.x"})),
        )
        .await;
    let mut with_outsider = ids.clone();
    with_outsider.push(outside["id"].as_str().unwrap().to_string());
    let (status, _) = api
        .call(
            &org_admin,
            Method::POST,
            "/users/bulk-disable",
            Some(json!({"user_ids": with_outsider})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, review) = api
        .call(&org_admin, Method::GET, "/reviews?days=1", None)
        .await;
    assert_eq!(
        review["unused"].as_array().unwrap().len(),
        0,
        "just created: not unused for a day"
    );
    let (status, done) = api
        .call(
            &org_admin,
            Method::POST,
            "/users/bulk-disable",
            Some(json!({"user_ids": ids})),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["disabled"], 2);
    let (_, users) = api.call(&org_admin, Method::GET, "/users", None).await;
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["status"] == "disabled"),
        "{users}"
    );
    let (_, outsider) = api
        .call(
            &city,
            Method::GET,
            &format!("/users/{}", outside["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(outsider["user"]["status"], "active");
}
