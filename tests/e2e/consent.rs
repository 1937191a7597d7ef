//! Resident consent as a record (issue #18): a purpose shown and versioned, optional claims
//! the resident keeps back, an end the client sets and the resident may bring forward, and a
//! withdrawal the service hears of by back-channel logout. Driven through Kizuna's pages as
//! a browser would, the token endpoint as a relying party would, and the admin API.

use std::time::Duration;

use reqwest::header::ACCEPT;
use serde_json::{Value, json};

use crate::common::{Browser, Kizuna, Server, hidden_field, query_param, service_token};
use crate::oidc_flows::{
    CALLBACK, LOGOUT_EVENT, PASSWORD, Rp, api, authorize_url, claims, count, exchange_code,
    get_page, introspect, location, logout_receiver, post_token, sign_in_to_next_step, web_client,
};

/// The authorization request for `rp` asking for `openid profile email offline_access`.
fn sign_in_url(server: &Server, rp: &Rp, state: &str) -> String {
    authorize_url(
        server,
        &[
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", state),
        ],
    )
}

/// Answers the consent page at `consent` (a `/consent?req=…` path) ticking only the claims
/// in `kept` among the optional ones; returns the code the client receives.
async fn consent_keeping(b: &Browser, server: &Server, consent: &str, kept: &[&str]) -> String {
    let page = get_page(&b.http, &format!("{}{consent}", server.base)).await;
    let html = page.text().await.unwrap();
    let mut form = vec![
        (
            "csrf_token".to_string(),
            hidden_field(&html, "csrf_token").unwrap(),
        ),
        ("req".to_string(), hidden_field(&html, "req").unwrap()),
        ("decision".to_string(), "approve".to_string()),
    ];
    form.extend(kept.iter().map(|c| ("claim".to_string(), c.to_string())));
    let approved = b
        .http
        .post(format!("{}/consent", server.base))
        .header(ACCEPT, "text/html")
        .form(&form)
        .send()
        .await
        .unwrap();
    let resume = location(&approved);
    let callback = location(&get_page(&b.http, &format!("{}{resume}", server.base)).await);
    query_param(&url::Url::parse(&callback).unwrap(), "code").expect("a code")
}

async fn tokens_for(server: &Server, rp: &Rp, code: &str) -> Value {
    let response = exchange_code(server, rp, code, CALLBACK, None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh(server: &Server, rp: &Rp, token: &str) -> (u16, Value) {
    let response = post_token(
        server,
        Some(rp),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// What the services page shows about one service, for checks.
async fn services_page(b: &Browser) -> String {
    let (status, html) = b.page("/account/services").await;
    assert_eq!(status, 200, "{html}");
    html
}

fn day(unix: i64) -> String {
    kizuna_core::time::unix_to_rfc3339(unix)[..10].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_has_a_purpose_an_end_and_optional_claims_the_resident_keeps_back() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(
            &k,
            "Childcare portal",
            &[
                "--grant-type",
                "authorization_code",
                "--grant-type",
                "refresh_token",
            ],
        );
        let terms = k.json(&[
            "client",
            "consent-terms",
            &rp.id,
            "--purpose",
            "Reminders about your childcare applications",
            "--purpose-ja",
            "保育の申請に関するお知らせのため",
            "--lifetime-days",
            "30",
            "--optional-claim",
            "email",
            "--json",
        ]);
        assert_eq!(terms["version"], 1, "{terms}");
        // Longer than the city allows, or a claim Kizuna never releases: refused.
        for bad in [
            &["--lifetime-days", "4000"][..],
            &["--optional-claim", "phone_number"][..],
        ] {
            let mut args = vec!["client", "consent-terms", &rp.id, "--purpose", "x"];
            args.extend_from_slice(bad);
            assert!(!k.run(&args).status.success(), "{bad:?}");
        }
        let user = k.resident("hanako", PASSWORD);
        let user_id = user["id"].as_str().unwrap();

        // The consent page says why, what goes, what may be kept back, and until when.
        let b = crate::oidc_flows::browser(&server);
        let consent = sign_in_to_next_step(&b, &sign_in_url(&server, &rp, "one"), "hanako").await;
        assert!(consent.starts_with("/consent?req="), "{consent}");
        let (_, html) = b.page(&consent).await;
        assert!(
            html.contains("Reminders about your childcare applications"),
            "{html}"
        );
        assert!(html.contains("name=\"claim\" value=\"email\""), "{html}");
        let now = k.clock().now_unix();
        assert!(html.contains(&day(now + 30 * 86_400)), "the end: {html}");
        let ja = b
            .http
            .get(format!("{}{consent}", server.base))
            .header(ACCEPT, "text/html")
            .header("accept-language", "ja")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(ja.contains("保育の申請に関するお知らせのため"), "{ja}");

        // Kept back: email. It is in neither the ID token nor UserInfo.
        let code = consent_keeping(&b, &server, &consent, &[]).await;
        let tokens = tokens_for(&server, &rp, &code).await;
        let id = claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["preferred_username"], "hanako", "{id}");
        assert!(id.get("email").is_none(), "declined: {id}");
        assert!(
            id.get("email_verified").is_none(),
            "whether it is verified goes with the address: {id}"
        );
        let info: Value = api()
            .get(format!("{}/userinfo", server.base))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(info.get("email").is_none(), "{info}");
        assert_eq!(info["preferred_username"], "hanako");
        let recorded = count(
            &k,
            &format!(
                "SELECT COUNT(*) FROM consents WHERE user_id = '{user_id}' AND declined LIKE '%email%' \
                 AND purpose_version = 1 AND given_by = 'consent-page/2' AND expires_at IS NOT NULL"
            ),
        )
        .await;
        assert_eq!(recorded, 1, "the record says what was agreed and how");

        // The services page shows the purpose, what was kept back and the end; the end
        // can be brought forward, never pushed back.
        let html = services_page(&b).await;
        assert!(html.contains("Reminders about your childcare applications"));
        assert!(html.contains("Kept back: Your email address"), "{html}");
        let later = b
            .post(
                "/account/services",
                "/account/services/expiry",
                &[("client_id", &rp.id), ("until", &day(now + 60 * 86_400))],
            )
            .await;
        assert_eq!(later.status(), 400, "never later");
        let past = b
            .post(
                "/account/services",
                "/account/services/expiry",
                &[("client_id", &rp.id), ("until", &day(now - 86_400))],
            )
            .await;
        assert_eq!(past.status(), 400, "never in the past");
        for garbled in ["", "next week", "2026-13-45", "2026-12-01T00:00:00Z"] {
            let answer = b
                .post(
                    "/account/services",
                    "/account/services/expiry",
                    &[("client_id", &rp.id), ("until", garbled)],
                )
                .await;
            assert_eq!(answer.status(), 400, "{garbled:?}");
        }
        let sooner = b
            .post(
                "/account/services",
                "/account/services/expiry",
                &[("client_id", &rp.id), ("until", &day(now + 10 * 86_400))],
            )
            .await;
        assert_eq!(location(&sooner), "/account/services?done=shortened");
        assert!(services_page(&b).await.contains(&day(now + 10 * 86_400)));

        // Ten days on, the consent has ended: the refresh token stops working and the next
        // sign-in asks again.
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
        let (status, _) = refresh(&server, &rp, &refresh_token).await;
        assert_eq!(status, 200, "still in force");
        k.clock().advance(10 * 86_400 + 60);
        let (status, answer) = refresh(&server, &rp, &refresh_token).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let again = sign_in_to_next_step(&b, &sign_in_url(&server, &rp, "two"), "hanako").await;
        assert!(again.starts_with("/consent?req="), "asks again: {again}");

        // Given again, then the purpose changes: every resident is asked again, and the
        // grants made under the old purpose stop refreshing.
        let code = consent_keeping(&b, &server, &again, &["email"]).await;
        let tokens = tokens_for(&server, &rp, &code).await;
        assert_eq!(
            claims(tokens["id_token"].as_str().unwrap())["email"],
            "hanako@city.example.jp",
            "kept this time"
        );
        let city = service_token(&k, &server.base, "kizuna:admin", None).await;
        let changed: Value = api()
            .put(server.url(&format!("/admin/api/v1/clients/{}/consent-terms", rp.id)))
            .bearer_auth(&city)
            .json(&json!({"purpose": "Reminders and surveys", "lifetime_days": 30}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(changed["version"], 2, "{changed}");
        let (status, _) = refresh(&server, &rp, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400, "consent to the old purpose ended");
        let again = location(&get_page(&b.http, &sign_in_url(&server, &rp, "three")).await);
        assert!(again.starts_with("/consent?req="), "{again}");
        let (_, html) = b.page(&again).await;
        assert!(html.contains("Reminders and surveys"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_ends_the_tokens_and_tells_the_service_by_back_channel_logout() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let (endpoint, mut received) = logout_receiver().await;
        let rp = web_client(
            &k,
            "Library",
            &[
                "--grant-type",
                "authorization_code",
                "--grant-type",
                "refresh_token",
                "--backchannel-logout-uri",
                &endpoint,
            ],
        );
        let user = k.resident("taro", PASSWORD);
        let b = crate::oidc_flows::browser(&server);
        let consent = sign_in_to_next_step(&b, &sign_in_url(&server, &rp, "one"), "taro").await;
        let code = consent_keeping(&b, &server, &consent, &[]).await;
        let tokens = tokens_for(&server, &rp, &code).await;
        let withdrawn = b
            .post(
                "/account/services",
                "/account/services/withdraw",
                &[("client_id", &rp.id)],
            )
            .await;
        assert_eq!(location(&withdrawn), "/account/services?done=withdrawn");
        let token = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a logout token within seconds")
            .expect("receiver open");
        let c = claims(&token);
        assert_eq!(c["sub"], user["id"], "{c}");
        assert_eq!(c["aud"], rp.id.as_str());
        assert!(c["events"][LOGOUT_EVENT].is_object(), "{c}");
        assert!(c.get("sid").is_none(), "about the person, not one session");
        for t in ["access_token", "refresh_token"] {
            assert_eq!(
                introspect(&server, &rp, tokens[t].as_str().unwrap()).await["active"],
                false,
                "{t}"
            );
        }
        let (status, _) = refresh(&server, &rp, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400);
        let entry = count(
            &k,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'consent.withdraw' AND details LIKE '%\"backchannel_logout\":true%'",
        )
        .await;
        assert_eq!(entry, 1, "audited, with the client told");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_administrator_can_give_or_extend_a_residents_consent() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &[]);
    k.resident("taro", PASSWORD);
    let b = crate::oidc_flows::browser(&server);
    let consent = sign_in_to_next_step(&b, &sign_in_url(&server, &rp, "one"), "taro").await;
    consent_keeping(&b, &server, &consent, &[]).await;
    let before = count(&k, "SELECT COUNT(*) FROM consents").await;
    // No route of the admin API, the CA API or the registry writes consents: the routers'
    // sources name none (the route matrix in authorization.rs covers what they do serve).
    for router in [
        include_str!("../../admin-ui/src/api/mod.rs"),
        include_str!("../../ca/src/http.rs"),
        include_str!("../../ca/src/registry_http.rs"),
    ] {
        for route in router.split(".route(").skip(1) {
            let path = route.split('"').nth(1).unwrap_or_default();
            assert!(
                !path.contains("consent\"") && !path.ends_with("/consents"),
                "{path}"
            );
        }
    }
    // A city administrator changing the client's terms never extends a consent: a changed
    // lifetime applies to consents given afterwards, and the resident is not asked on their
    // behalf.
    let city = service_token(&k, &server.base, "kizuna:admin", None).await;
    let status = api()
        .put(server.url(&format!("/admin/api/v1/clients/{}/consent-terms", rp.id)))
        .bearer_auth(&city)
        .json(&json!({"purpose": "Lending", "lifetime_days": 3650}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 422, "beyond the city's maximum");
    // The CLI has no command that writes a consent either.
    let help = k.ok(&["--help"]);
    assert!(!help.to_lowercase().contains("consent "), "{help}");
    assert_eq!(count(&k, "SELECT COUNT(*) FROM consents").await, before);
    let ends: i64 = count(&k, "SELECT MAX(expires_at) FROM consents").await;
    assert!(ends <= k.clock().now_unix() + 365 * 86_400);
}

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The portal exchanges `subject` for a token to `audience` (RFC 8693), with `scope` if given.
async fn exchange(
    server: &Server,
    portal: &Rp,
    subject: &str,
    audience: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("audience", audience),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = post_token(server, Some(portal), &form).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_obtains_a_providers_token_only_within_the_residents_consent() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let hospital = web_client(
            &k,
            "Hospital records",
            &["--scope", "records:read", "--scope", "records:write"],
        );
        let portal = web_client(
            &k,
            "Health portal",
            &[
                "--grant-type",
                "authorization_code",
                "--grant-type",
                "token_exchange",
            ],
        );
        let library = web_client(&k, "Library", &[]);
        // A scope the provider does not have cannot be offered.
        assert!(
            !k.run(&[
                "client",
                "linkage",
                &portal.id,
                "--to",
                &hospital.id,
                "--purpose",
                "x",
                "--scope",
                "payroll:read",
            ])
            .status
            .success()
        );
        k.ok(&[
            "client",
            "linkage",
            &portal.id,
            "--to",
            &hospital.id,
            "--purpose",
            "Show your test results in the portal",
            "--scope",
            "records:read",
        ]);
        k.resident("taro", PASSWORD);
        let b = crate::oidc_flows::browser(&server);

        // The consent page asks for the linkage separately; left unticked, no exchange.
        let consent = sign_in_to_next_step(&b, &sign_in_url(&server, &portal, "one"), "taro").await;
        let (_, html) = b.page(&consent).await;
        assert!(
            html.contains(
                "This service may obtain records:read from Hospital records, for: Show your test results in the portal"
            ),
            "{html}"
        );
        let code = consent_keeping(&b, &server, &consent, &[]).await;
        let unlinked = tokens_for(&server, &portal, &code).await;
        let subject = unlinked["access_token"].as_str().unwrap();
        let (status, answer) = exchange(&server, &portal, subject, &hospital.id, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_grant")),
            "{answer}"
        );

        // Asked again (prompt=consent) and ticked: the exchange works, within it.
        let again = authorize_url(
            &server,
            &[
                ("client_id", &portal.id),
                ("redirect_uri", CALLBACK),
                ("response_type", "code"),
                ("scope", "openid profile email"),
                ("prompt", "consent"),
            ],
        );
        let consent = location(&get_page(&b.http, &again).await);
        let page = get_page(&b.http, &format!("{}{consent}", server.base)).await;
        let html = page.text().await.unwrap();
        let approved = b
            .http
            .post(format!("{}/consent", server.base))
            .header(ACCEPT, "text/html")
            .form(&[
                ("csrf_token", hidden_field(&html, "csrf_token").unwrap()),
                ("req", hidden_field(&html, "req").unwrap()),
                ("decision", "approve".into()),
                ("linkage", hospital.id.clone()),
            ])
            .send()
            .await
            .unwrap();
        let resume = location(&approved);
        let callback = location(&get_page(&b.http, &format!("{}{resume}", server.base)).await);
        let code = query_param(&url::Url::parse(&callback).unwrap(), "code").unwrap();
        let linked = tokens_for(&server, &portal, &code).await;
        let subject = linked["access_token"].as_str().unwrap();
        let (status, answer) = exchange(&server, &portal, subject, &hospital.id, None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["issued_token_type"], ACCESS_TOKEN_TYPE);
        assert_eq!(answer["scope"], "records:read");
        let exchanged = answer["access_token"].as_str().unwrap().to_string();
        let c = claims(&exchanged);
        assert_eq!(c["aud"], hospital.id.as_str(), "{c}");
        assert_eq!(c["act"]["sub"], portal.id.as_str(), "{c}");
        assert!(c["exp"].as_i64() <= claims(subject)["exp"].as_i64());
        // The provider checks it by introspection: active, for it, and who acts.
        let seen = introspect(&server, &hospital, &exchanged).await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["act"]["sub"], portal.id.as_str());

        // Malformed requests: the RFC 8693 errors, nothing issued.
        for (form, error) in [
            (
                vec![
                    ("grant_type", EXCHANGE),
                    ("subject_token", subject),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                ],
                "invalid_target",
            ),
            (
                vec![
                    ("grant_type", EXCHANGE),
                    ("subject_token", subject),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:id_token",
                    ),
                    ("audience", &hospital.id),
                ],
                "invalid_request",
            ),
            (
                vec![
                    ("grant_type", EXCHANGE),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("audience", &hospital.id),
                ],
                "invalid_request",
            ),
            (
                vec![
                    ("grant_type", EXCHANGE),
                    ("subject_token", "not.a.token"),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("audience", &hospital.id),
                ],
                "invalid_grant",
            ),
        ] {
            let response = post_token(&server, Some(&portal), &form).await;
            assert_eq!(response.status(), 400, "{form:?}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["error"], error, "{form:?}: {answer}");
        }

        // Outside the consent: more scopes, another service, or a token exchanged again.
        let (status, answer) = exchange(
            &server,
            &portal,
            subject,
            &hospital.id,
            Some("records:write"),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_scope"))
        );
        let (status, answer) = exchange(&server, &portal, subject, &library.id, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let (status, answer) = exchange(&server, &portal, &exchanged, &hospital.id, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // Another client cannot exchange the portal's token.
        let (status, _) = exchange(&server, &library, subject, &hospital.id, None).await;
        assert_eq!(status, 400);

        // Audited, and in the resident's history under the provider.
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'token.exchange'"
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &k,
                &format!(
                    "SELECT COUNT(*) FROM releases WHERE how = 'token_exchange' AND client_id = '{}'",
                    hospital.id
                )
            )
            .await,
            1
        );

        // Withdrawn: the exchanged token ends, and no new exchange.
        let withdrawn = b
            .post(
                "/account/services",
                "/account/services/withdraw",
                &[("client_id", &portal.id)],
            )
            .await;
        assert_eq!(location(&withdrawn), "/account/services?done=withdrawn");
        assert_eq!(
            introspect(&server, &hospital, &exchanged).await["active"],
            false
        );
        let (status, _) = exchange(&server, &portal, subject, &hospital.id, None).await;
        assert_eq!(status, 400);

        // Discovery says the grant exists.
        let discovery: Value = api()
            .get(format!("{}/.well-known/openid-configuration", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            discovery["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(EXCHANGE))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_limits_how_long_consents_to_its_services_last() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let org = k.json(&["org", "create", "--name", "Childcare", "--json"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        let rp = web_client(&k, "Childcare portal", &["--org", &org]);
        k.ok(&[
            "client",
            "consent-terms",
            &rp.id,
            "--purpose",
            "Reminders",
            "--lifetime-days",
            "30",
        ]);
        // Beyond the city's maximum: refused, from the CLI and the admin API alike.
        assert!(
            !k.run(&["org", "consent-lifetime", &org, "--days", "4000"])
                .status
                .success()
        );
        let org_admin = service_token(&k, &server.base, "kizuna:role:org-admin", Some(&org)).await;
        let status = api()
            .put(server.url(&format!("/admin/api/v1/orgs/{org}/consent-lifetime")))
            .bearer_auth(&org_admin)
            .json(&json!({"lifetime_days": 4000}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 422);
        // The organization's administrator sets ten days: sooner than the client's thirty.
        let set: Value = api()
            .put(server.url(&format!("/admin/api/v1/orgs/{org}/consent-lifetime")))
            .bearer_auth(&org_admin)
            .json(&json!({"lifetime_days": 10}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(set["lifetime_days"], 10, "{set}");

        k.resident("taro", PASSWORD);
        let b = crate::oidc_flows::browser(&server);
        let consent = sign_in_to_next_step(&b, &sign_in_url(&server, &rp, "one"), "taro").await;
        let (_, html) = b.page(&consent).await;
        let now = k.clock().now_unix();
        assert!(html.contains(&day(now + 10 * 86_400)), "ten days: {html}");
        consent_keeping(&b, &server, &consent, &[]).await;
        let ends = count(&k, "SELECT MAX(expires_at) FROM consents").await;
        assert!(
            (now + 10 * 86_400..=now + 10 * 86_400 + 60).contains(&ends),
            "{ends} vs {now}"
        );
        // Cleared, the client's own thirty days apply to consents given afterwards.
        k.ok(&["org", "consent-lifetime", &org, "--clear"]);
        let (_, html) = b
            .page(&location(
                &get_page(
                    &b.http,
                    &authorize_url(
                        &server,
                        &[
                            ("client_id", &rp.id),
                            ("redirect_uri", CALLBACK),
                            ("response_type", "code"),
                            ("scope", "openid profile"),
                            ("prompt", "consent"),
                        ],
                    ),
                )
                .await,
            ))
            .await;
        assert!(
            html.contains(&day(now + 30 * 86_400)),
            "thirty days: {html}"
        );
    }
}
