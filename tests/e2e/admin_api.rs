//! The admin JSON API: token-protected (scope `kizuna:admin`), every change audited with the
//! caller as actor.

use crate::common::{Browser, Kizuna, hidden_field, query_param, service_token};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_manages_clients_and_accounts_with_an_admin_token() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let token = service_token(&k, &server.public, "kizuna:admin", None).await;
        let http = reqwest::Client::new();
        let api = |path: &str| format!("{}/admin/api/v1{path}", server.public);

        let created = http
            .post(api("/clients"))
            .bearer_auth(&token)
            .json(&json!({"client_name": "Waste collection", "redirect_uris": ["https://waste.city.example/cb"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        let id = created["client_id"].as_str().unwrap().to_string();
        assert!(
            created["client_secret"].as_str().unwrap().len() >= 43,
            "256-bit secret shown once"
        );
        let listed: Value = http
            .get(api("/clients"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["client_id"] == id.as_str())
        );
        let secret = created["client_secret"].as_str().unwrap();
        assert!(
            !listed.to_string().contains(secret),
            "secrets are never listed"
        );

        let user = http
            .post(api("/users"))
            .bearer_auth(&token)
            .json(&json!({"username": "jiro", "email": "jiro@city.example.jp", "password": "another long passphrase"}))
            .send()
            .await
            .unwrap();
        assert_eq!(user.status(), 201);
        let user: Value = user.json().await.unwrap();
        let disabled = http
            .post(api(&format!(
                "/users/{}/disable",
                user["id"].as_str().unwrap()
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(disabled.status(), 200);
        assert_eq!(
            http.delete(api(&format!("/clients/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        assert_eq!(
            http.get(api(&format!("/clients/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );

        let audit = k.ok(&["audit", "export"]);
        let actions: Vec<Value> = audit
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let create = actions
            .iter()
            .find(|e| e["action"] == "client.create" && e["target"] == format!("client:{id}"))
            .unwrap();
        assert_eq!(create["actor_kind"], "client");
        assert!(actions.iter().any(|e| e["action"] == "user.disable"));
        assert!(actions.iter().any(|e| e["action"] == "client.delete"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_missing_weak_or_malformed_requests() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let http = reqwest::Client::new();
    let api = format!("{}/admin/api/v1/clients", server.public);
    let none = http.get(&api).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    assert_eq!(
        http.get(&api)
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let weak = service_token(&k, &server.public, "sensors:read", None).await;
    let refused = http.get(&api).bearer_auth(&weak).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );

    let token = service_token(&k, &server.public, "kizuna:admin", None).await;
    let garbage = http
        .post(&api)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let unknown = http
        .post(&api)
        .bearer_auth(&token)
        .json(&json!({"client_name": "x", "is_admin": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400, "unknown fields are refused");
    let bad_uri = http
        .post(&api)
        .bearer_auth(&token)
        .json(&json!({"client_name": "x", "redirect_uris": ["http://evil.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_uri.status(), 422);
    assert!(bad_uri.text().await.unwrap().contains("https"));
    let clients: Value = http
        .get(&api)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        clients.as_array().unwrap().len(),
        3,
        "nothing was created by the refused requests (two automation clients and the console's own)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_city_administrator_may_use_the_api_and_a_resident_may_not() {
    // This city accepts a second factor for its administrators (console.city_admin_aal = 2);
    // tests/authorization.rs holds the default, which sends such a token to step up.
    let k = Kizuna::sqlite().env("KIZUNA_CONSOLE__CITY_ADMIN_AAL", "2");
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    // The first administrator, through the bootstrap link.
    let link = server.bootstrap_link().unwrap();
    let browser = Browser::new(&server.public);
    let page = browser
        .http
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let created = browser
        .http
        .post(format!("{}/admin/bootstrap", server.public))
        .form(&[
            ("csrf_token", hidden_field(&page, "csrf_token").unwrap()),
            ("token", hidden_field(&page, "token").unwrap()),
            ("username", "mayor".into()),
            ("password", "the mayor's long passphrase".into()),
            ("password_confirm", "the mayor's long passphrase".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    k.resident("hanako", "a resident's long passphrase");
    let console = k.json(&[
        "client",
        "create",
        "--name",
        "console",
        "--redirect-uri",
        "http://127.0.0.1:9/cb",
        "--scope",
        "openid",
        "--scope",
        "kizuna:admin",
        "--no-consent",
        "--json",
    ]);
    let id = console["client_id"].as_str().unwrap();
    let secret = console["client_secret"].as_str().unwrap();
    for (user, password, expected) in [
        ("mayor", "the mayor's long passphrase", 200),
        ("hanako", "a resident's long passphrase", 403),
    ] {
        let browser = Browser::new(&server.public);
        if user == "mayor" {
            // Staff accounts must reach AAL2 (mfa.staff_min_aal): a second factor first.
            browser.sign_in_to_account(user, password).await;
            browser.enroll_totp().await;
        }
        let url = format!(
            "{}/authorize?response_type=code&client_id={id}&redirect_uri=http://127.0.0.1:9/cb&scope=openid%20kizuna:admin&state=s",
            server.public
        );
        let callback = browser.sign_in(&url, user, password).await;
        let tokens: Value = reqwest::Client::new()
            .post(format!("{}/token", server.public))
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &query_param(&callback, "code").unwrap()),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = reqwest::Client::new()
            .get(format!("{}/admin/api/v1/users", server.public))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected, "{user}");
    }
}

/// A refused call's status and body, asking for its message in `language` (none: no
/// `Accept-Language` at all).
async fn refused(request: reqwest::RequestBuilder, language: Option<&str>) -> (u16, Value) {
    let request = match language {
        Some(language) => request.header("accept-language", language),
        None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_code_and_say_the_message_in_the_language_asked_for() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let org = k.json(&["org", "create", "--name", "Streetlights", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let city = service_token(&k, &server.public, "kizuna:admin", None).await;
    let org_admin = service_token(&k, &server.public, "kizuna:role:org-admin", Some(&org)).await;
    let http = reqwest::Client::new();
    let clients = format!("{}/admin/api/v1/clients", server.public);

    // A refusal the console writes itself: English without Accept-Language, Japanese when
    // asked for (also as the preferred of several), the same code, and no detail.
    let admin_scopes = json!({"client_name": "Lamp robot", "org_id": org,
        "redirect_uris": ["https://lamps.example/cb"], "scope": "kizuna:admin"});
    let ask = |language| {
        refused(
            http.post(&clients)
                .bearer_auth(&org_admin)
                .json(&admin_scopes),
            language,
        )
    };
    let (status, english) = ask(None).await;
    assert_eq!(
        (status, english["error"].as_str()),
        (403, Some("forbidden")),
        "{english}"
    );
    assert_eq!(
        english["message"],
        "only city administrators register clients with admin scopes"
    );
    assert!(english.get("detail").is_none(), "{english}");
    for language in ["ja", "en;q=0.5, ja-JP"] {
        let (status, japanese) = ask(Some(language)).await;
        assert_eq!(
            (status, japanese["error"].as_str()),
            (403, Some("forbidden")),
            "{japanese}"
        );
        assert_eq!(
            japanese["message"],
            "管理用スコープを持つクライアントを登録できるのは、市の管理者だけです。"
        );
    }

    // A validation failure of the domain: its sentence in the language asked for, and the
    // domain's own text as `detail`.
    let bad_uri = json!({"client_name": "x", "redirect_uris": ["http://evil.example/cb"]});
    let ask = |language| {
        refused(
            http.post(&clients).bearer_auth(&city).json(&bad_uri),
            language,
        )
    };
    let (status, english) = ask(Some("en")).await;
    assert_eq!(
        (status, english["error"].as_str()),
        (422, Some("invalid_request")),
        "{english}"
    );
    assert_eq!(english["message"], "The client registration is not valid.");
    let detail = english["detail"].as_str().unwrap();
    assert!(detail.contains("https"), "{english}");
    let (status, japanese) = ask(Some("ja")).await;
    assert_eq!(
        (status, japanese["error"].as_str()),
        (422, Some("invalid_request")),
        "{japanese}"
    );
    assert_eq!(
        japanese["message"],
        "クライアントの登録内容が正しくありません。"
    );
    assert_eq!(japanese["detail"], detail, "the domain's text as it is");

    // Without a token: the same code and challenge in either language.
    for (language, message) in [
        (None, "a bearer access token is required"),
        (
            Some("ja"),
            "アクセストークン（ベアラートークン）が必要です。",
        ),
    ] {
        let mut request = http.get(&clients);
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["message"], message);
    }
}
