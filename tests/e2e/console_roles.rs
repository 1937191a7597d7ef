//! The admin API's authorization table, role by role: each role (a `client_credentials`
//! token with a `kizuna:role:<role>` scope, confined to its client's organization) against
//! each action, allowed and refused; and the API's bad inputs (another organization's
//! device by URL, stale edits, huge search strings, revoking twice).

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::pki::issue_device_certificate;
use crate::common::{Kizuna, Server, service_token};

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
        self.call_in(None, token, method, path, body).await
    }

    /// A call asking for its messages in `language` (`Accept-Language`).
    async fn call_in(
        &self,
        language: Option<&str>,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/admin/api/v1{path}", self.server.base))
            .bearer_auth(token);
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
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
        let serial = issue_device_certificate(&k, &a, "lamp-1");
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

        let portal = k.json(&[
            "client",
            "create",
            "--name",
            "Lamp portal",
            "--org",
            &a,
            "--redirect-uri",
            "https://lamps.example/cb",
            "--json",
        ])["client_id"]
            .as_str()
            .unwrap()
            .to_string();

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
                "view a client's identity assurance",
                Method::GET,
                format!("/clients/{portal}/assurance"),
                None,
                &["city-admin", "org-admin", "auditor"],
            ),
            (
                "view a client's quota",
                Method::GET,
                format!("/clients/{portal}/quota"),
                None,
                &["city-admin", "org-admin", "auditor"],
            ),
            (
                "set a client's quota",
                Method::PUT,
                format!("/clients/{portal}/quota"),
                Some(json!({"requests_per_minute": 600})),
                &["city-admin"],
            ),
            (
                "list upstream identity providers",
                Method::GET,
                "/upstreams".into(),
                None,
                &["city-admin", "org-admin", "auditor"],
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
        let foreign = issue_device_certificate(&k, &b, "pump-1");
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
    let serial = issue_device_certificate(&k, &org, "bus-7");
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
    let serial = issue_device_certificate(&k, &org, "meter-1");
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

/// The sign-in page, as a resident's browser gets it.
async fn sign_in_page(server: &Server) -> String {
    reqwest::Client::new()
        .get(server.url("/login"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn upstreams_are_vetted_before_they_are_offered_and_edited_within_each_role() {
    // Another Kizuna stands in for a hospital's OpenID provider: its discovery document is
    // what adding an upstream reads.
    let hospital_kizuna = Kizuna::sqlite();
    let hospital_op = hospital_kizuna.serve();
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let base = server.base.clone();
        let api = Api {
            server: &server,
            http: reqwest::Client::new(),
        };
        let a = k.json(&["org", "create", "--name", "Hospital", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = k.json(&["org", "create", "--name", "University", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        let city = service_token(&k, &base, "kizuna:admin", None).await;
        let org_admin = service_token(&k, &base, "kizuna:role:org-admin", Some(&a)).await;
        let other_admin = service_token(&k, &base, "kizuna:role:org-admin", Some(&b)).await;
        let auditor = service_token(&k, &base, "kizuna:role:auditor", None).await;
        let installer = service_token(&k, &base, "kizuna:role:installer", Some(&a)).await;
        let new = json!({
            "alias": "hospital",
            "name": "City Hospital staff",
            "org_id": a,
            "issuer": hospital_op.public,
            "client_id": "kizuna-city",
            "client_secret": "a secret the hospital gave us",
            "ceiling": {"max_ial": 2, "max_aal": 2},
            "email_domains": ["hospital.example"],
        });

        let (status, _) = api
            .call(&installer, Method::POST, "/upstreams", Some(new.clone()))
            .await;
        assert_eq!(status, 403, "an installer does not add upstreams");
        let (status, _) = api
            .call(&other_admin, Method::POST, "/upstreams", Some(new.clone()))
            .await;
        assert_eq!(status, 404, "nor an org-admin for another organization");

        let (status, added) = api
            .call(&org_admin, Method::POST, "/upstreams", Some(new.clone()))
            .await;
        assert_eq!(status, 201, "{added}");
        assert_eq!(added["status"], "pending", "{added}");
        assert_eq!(
            added["registration"]["redirect_uri"],
            format!("{}/federation/callback", server.public)
        );
        assert!(added["client_secret"].is_null(), "never shown back");
        assert!(
            !sign_in_page(&server).await.contains("City Hospital staff"),
            "a pending upstream is not offered"
        );
        let (_, dashboard) = api.call(&city, Method::GET, "/dashboard", None).await;
        assert_eq!(
            dashboard["pending"],
            json!([{"kind": "upstream", "id": "hospital", "name": "City Hospital staff", "org_id": a}]),
            "the city's dashboard lists what waits for approval"
        );
        let (_, dashboard) = api.call(&org_admin, Method::GET, "/dashboard", None).await;
        assert_eq!(dashboard["pending"], json!([]), "not the org-admin's");

        let (status, _) = api
            .call(
                &org_admin,
                Method::POST,
                "/upstreams/hospital/approve",
                None,
            )
            .await;
        assert_eq!(
            status, 403,
            "an org-admin cannot approve their own upstream"
        );
        let (status, approved) = api
            .call(&city, Method::POST, "/upstreams/hospital/approve", None)
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(approved["status"], "active");
        assert!(sign_in_page(&server).await.contains("City Hospital staff"));
        let (_, dashboard) = api.call(&city, Method::GET, "/dashboard", None).await;
        assert_eq!(dashboard["pending"], json!([]));
        let (_, audit) = api
            .call(&city, Method::GET, "/audit?action=upstream.approve", None)
            .await;
        assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
        let (status, _) = api
            .call(&city, Method::POST, "/upstreams/hospital/approve", None)
            .await;
        assert_eq!(status, 409, "approving twice");

        // Who sees it.
        for role in ["registrar", "helpdesk"] {
            let token = service_token(&k, &base, &format!("kizuna:role:{role}"), None).await;
            let (status, _) = api.call(&token, Method::GET, "/upstreams", None).await;
            assert_eq!(status, 403, "{role} does not see upstreams");
        }
        let (_, listed) = api.call(&auditor, Method::GET, "/upstreams", None).await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        let (_, listed) = api
            .call(&other_admin, Method::GET, "/upstreams", None)
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
        let (status, _) = api
            .call(&other_admin, Method::GET, "/upstreams/hospital", None)
            .await;
        assert_eq!(status, 404);

        // Edits: the organization's own settings by its admin; trust settings by the city;
        // a stale version refused with the current one.
        let (status, _) = api
            .call(
                &auditor,
                Method::PATCH,
                "/upstreams/hospital",
                Some(json!({"version": 1, "name": "Renamed"})),
            )
            .await;
        assert_eq!(status, 403, "an auditor changes nothing");
        let (status, answer) = api
            .call(
                &org_admin,
                Method::PATCH,
                "/upstreams/hospital",
                Some(json!({"version": 1, "ceiling": {"max_ial": 3, "max_aal": 3}})),
            )
            .await;
        assert_eq!(status, 403, "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("trust ceiling")
        );
        let (status, japanese) = api
            .call_in(
                Some("ja"),
                &org_admin,
                Method::PATCH,
                "/upstreams/hospital",
                Some(json!({"version": 1, "ceiling": {"max_ial": 3, "max_aal": 3}})),
            )
            .await;
        assert_eq!(
            (status, &japanese["error"]),
            (403, &answer["error"]),
            "the same code in Japanese: {japanese}"
        );
        assert_eq!(
            japanese["message"],
            "信頼の上限とメールドメインは、市の管理者が設定します。"
        );
        let (status, edited) = api
            .call(
                &org_admin,
                Method::PATCH,
                "/upstreams/hospital",
                Some(
                    json!({"version": 1, "name": "Hospital staff", "scopes": ["email", "profile"],
                    "claim_map": {"email": "mail", "name": "display_name"}}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{edited}");
        assert_eq!(edited["version"], 2);
        assert_eq!(edited["scopes"], json!(["openid", "email", "profile"]));
        assert_eq!(
            edited["claim_map"],
            json!({"email": "mail", "name": "display_name"})
        );
        let (status, stale) = api
            .call(
                &city,
                Method::PATCH,
                "/upstreams/hospital",
                Some(json!({"version": 1, "name": "Old copy"})),
            )
            .await;
        assert_eq!(status, 409, "{stale}");
        assert_eq!(stale["error"], "stale");
        assert_eq!(stale["current"]["name"], "Hospital staff");
        for bad in [
            json!({"version": 2, "claim_map": {"shoe_size": "shoe"}}),
            json!({"version": 2, "ceiling": {"max_ial": 4, "max_aal": 1}}),
            json!({"version": 2, "email_domains": ["not a domain"]}),
            json!({"version": 2, "name": ""}),
        ] {
            let (status, answer) = api
                .call(
                    &city,
                    Method::PATCH,
                    "/upstreams/hospital",
                    Some(bad.clone()),
                )
                .await;
            assert_eq!(status, 422, "{bad}: {answer}");
        }
        let (status, _) = api
            .call(
                &city,
                Method::PATCH,
                "/upstreams/hospital",
                Some(json!({"version": 2, "colour": "blue"})),
            )
            .await;
        assert_eq!(status, 400, "unknown fields are refused");

        // Disabling, and re-enabling by the org-admin, which sends it back to vetting.
        let (status, _) = api
            .call(
                &org_admin,
                Method::POST,
                "/upstreams/hospital/disable",
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert!(!sign_in_page(&server).await.contains("Hospital staff"));
        let (_, enabled) = api
            .call(&org_admin, Method::POST, "/upstreams/hospital/enable", None)
            .await;
        assert_eq!(enabled["status"], "pending", "{enabled}");
        let (status, _) = api
            .call(&city, Method::POST, "/upstreams/hospital/enable", None)
            .await;
        assert_eq!(status, 409, "a pending upstream is approved, not enabled");
        k.ok(&["upstream", "enable", "hospital"]);
        let listed = k.json(&["upstream", "list", "--json"]);
        assert_eq!(listed[0]["status"], "active", "the CLI approves too");
        let shown = k.json(&["upstream", "show", "hospital", "--json"]);
        assert_eq!(shown["name"], "Hospital staff");
        assert_eq!(
            shown["registration"]["redirect_uri"],
            format!("{}/federation/callback", server.public)
        );
        let text = k.ok(&["upstream", "show", "hospital"]);
        assert!(text.contains("back-channel logout URI"), "{text}");
        assert!(!k.run(&["upstream", "show", "nowhere"]).status.success());

        // Bad registrations change nothing.
        let unreachable = {
            let mut n = new.clone();
            n["alias"] = json!("nowhere");
            n["issuer"] = json!("http://127.0.0.1:9");
            n
        };
        let duplicate = new.clone();
        let bad_alias = {
            let mut n = new.clone();
            n["alias"] = json!("Not An Alias");
            n
        };
        let key_and_secret = {
            let mut n = new.clone();
            n["alias"] = json!("both");
            n["client_auth"] = json!("private_key_jwt");
            n
        };
        for (what, body, expected) in [
            ("unreachable issuer", unreachable, 422),
            ("taken alias", duplicate, 409),
            ("bad alias", bad_alias, 422),
            ("a secret with private_key_jwt", key_and_secret, 422),
        ] {
            let (status, answer) = api
                .call(&city, Method::POST, "/upstreams", Some(body))
                .await;
            assert_eq!(status, expected, "{what}: {answer}");
        }
        let (_, listed) = api.call(&city, Method::GET, "/upstreams", None).await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

        // private_key_jwt: Kizuna makes the key and shows what to register.
        let (status, jwt) = api
            .call(
                &city,
                Method::POST,
                "/upstreams",
                Some(json!({
                    "alias": "agency",
                    "name": "My Number card",
                    "org_id": "Hospital",
                    "issuer": hospital_op.public,
                    "client_id": "kizuna-city",
                    "client_auth": "private_key_jwt",
                    "key_algorithm": "rsa2048",
                })),
            )
            .await;
        assert_eq!(status, 201, "{jwt}");
        assert_eq!(jwt["status"], "active", "a city administrator's is active");
        assert_eq!(jwt["org_id"], a, "the organization may be named");
        assert_eq!(jwt["jwks"]["keys"][0]["kty"], "RSA");
        assert_eq!(
            jwt["registration"]["jwks_uri"],
            format!("{}/federation/agency/jwks", server.public)
        );
    }
}
