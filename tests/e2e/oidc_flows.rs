//! The OpenID provider's refusals and secondary flows, end to end against `kizuna serve`:
//! authorization requests that must not redirect and those whose errors go back to the client,
//! the token endpoint's errors (code replay, expiry, PKCE, client authentication, bodies),
//! private_key_jwt assertions, CSRF on the pages, client credentials, the device grant, PAR,
//! consent, account lockout, key rotation, and back-channel logout.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::{Browser, Kizuna, Server, database, hidden_field, query_param};
use kizuna_core::custody::{Kek, KeyAlgorithm, KeyBackend, KeyHandle, SoftwareBackend};
use kizuna_core::jose::{self, Jws};
use openidconnect::PkceCodeChallenge;
use reqwest::header::{
    ACCEPT, ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION,
    SET_COOKIE, WWW_AUTHENTICATE,
};
use serde_json::{Value, json};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const CALLBACK: &str = "http://127.0.0.1:9/callback";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub(crate) const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

// ---------------------------------------------------------------------------------------------
// Helpers

/// A registered relying party and its secret (empty for public and private_key_jwt clients).
pub(crate) struct Rp {
    pub(crate) id: String,
    pub(crate) secret: String,
}

/// `kizuna client create --name NAME ARGS... --json`.
fn client(k: &Kizuna, name: &str, args: &[&str]) -> Rp {
    let mut all = vec!["client", "create", "--name", name];
    all.extend_from_slice(args);
    all.push("--json");
    let created = k.json(&all);
    Rp {
        id: created["client_id"]
            .as_str()
            .expect("client_id")
            .to_string(),
        secret: created["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// A confidential client (client_secret_basic) for the authorization code flow.
pub(crate) fn web_client(k: &Kizuna, name: &str, args: &[&str]) -> Rp {
    let mut all = vec!["--redirect-uri", CALLBACK];
    all.extend_from_slice(args);
    client(k, name, &all)
}

/// An HTTP client for API calls: no cookies, no redirects followed.
pub(crate) fn api() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser (cookies, no redirects followed) that prefers English pages.
pub(crate) fn browser(server: &Server) -> Browser {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("en"));
    Browser::with_client(
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap(),
        &server.public,
    )
}

fn pairs<'a>(owned: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

pub(crate) fn authorize_url(server: &Server, params: &[(&str, &str)]) -> String {
    url::Url::parse_with_params(&format!("{}/authorize", server.public), params)
        .unwrap()
        .to_string()
}

/// A page request from a browser.
pub(crate) async fn get_page(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.get(url)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
}

pub(crate) fn location(response: &reqwest::Response) -> String {
    assert!(
        response.status().is_redirection(),
        "expected a redirect, got {} from {}",
        response.status(),
        response.url()
    );
    response.headers()[LOCATION].to_str().unwrap().to_string()
}

fn is_html(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// An error page for the person (400, HTML) that does not send the browser anywhere.
async fn assert_error_page(response: reqwest::Response, case: &str) -> String {
    assert_eq!(response.status(), 400, "{case}");
    assert!(
        response.headers().get(LOCATION).is_none(),
        "{case}: an untrusted request must never redirect ({:?})",
        response.headers().get(LOCATION)
    );
    assert!(is_html(&response), "{case}: an HTML page");
    response.text().await.unwrap()
}

/// A redirect to the client's callback carrying `error`, the original `state` and `iss`, and
/// no code.
fn assert_error_redirect(
    server: &Server,
    response: &reqwest::Response,
    error: &str,
    state: &str,
    case: &str,
) {
    let to = location(response);
    assert!(to.starts_with(CALLBACK), "{case}: back to the client: {to}");
    let to = url::Url::parse(&to).unwrap();
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some(error),
        "{case}: {to}"
    );
    assert_eq!(query_param(&to, "state").as_deref(), Some(state), "{case}");
    assert_eq!(
        query_param(&to, "iss").as_deref(),
        Some(server.public.as_str()),
        "{case}: RFC 9207 iss"
    );
    assert!(query_param(&to, "code").is_none(), "{case}: no code");
}

/// An OAuth JSON error (RFC 6749 §5.2) with the status and code, issuing nothing.
async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str, case: &str) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    assert_eq!(
        response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{case}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{case}: {body}");
    for issued in ["access_token", "refresh_token", "id_token", "device_code"] {
        assert!(
            body.get(issued).is_none(),
            "{case}: {issued} issued: {body}"
        );
    }
}

/// A successful token response (RFC 6749 §5.1).
pub(crate) async fn assert_tokens(response: reqwest::Response, case: &str) -> Value {
    let status = response.status();
    let no_store = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        == Some("no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{case}: {body}");
    assert!(no_store, "{case}: token responses are not cached");
    assert_eq!(body["token_type"], "Bearer", "{case}: {body}");
    assert!(body["access_token"].is_string(), "{case}: {body}");
    body
}

pub(crate) async fn post_token(
    server: &Server,
    basic: Option<&Rp>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = api().post(format!("{}/token", server.base)).form(form);
    if let Some(rp) = basic {
        request = request.basic_auth(&rp.id, Some(&rp.secret));
    }
    request.send().await.unwrap()
}

pub(crate) async fn exchange_code(
    server: &Server,
    rp: &Rp,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    post_token(server, Some(rp), &form).await
}

/// Introspection (RFC 7662) by a confidential client.
pub(crate) async fn introspect(server: &Server, caller: &Rp, token: &str) -> Value {
    let response = api()
        .post(format!("{}/introspect", server.base))
        .basic_auth(&caller.id, Some(&caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn client_credentials(server: &Server, rp: &Rp) -> Value {
    assert_tokens(
        post_token(server, Some(rp), &[("grant_type", "client_credentials")]).await,
        "client credentials",
    )
    .await
}

/// A `client_credentials` request authenticated by a `private_key_jwt` assertion.
async fn present_assertion(server: &Server, rp: &Rp, assertion: String) -> reqwest::Response {
    post_token(
        server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &rp.id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await
}

pub(crate) async fn jwks(server: &Server) -> Value {
    api()
        .get(format!("{}/jwks", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) fn claims(token: &str) -> Value {
    Jws::parse(token).unwrap().claims().unwrap()
}

/// Signs a resident in through the pages with PKCE and returns the authorization code.
async fn code_for(
    browser: &Browser,
    server: &Server,
    rp: &Rp,
    user: &str,
    challenge: &PkceCodeChallenge,
) -> String {
    let url = authorize_url(
        server,
        &[
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let callback = browser.sign_in(&url, user, PASSWORD).await;
    assert_eq!(query_param(&callback, "state").as_deref(), Some("st-1"));
    query_param(&callback, "code").expect("code")
}

/// Gets the sign-in page at `login_path`, then submits it; returns the answer to the post.
pub(crate) async fn submit_login(
    browser: &Browser,
    login_path: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let page = get_page(&browser.http, &format!("{}{login_path}", browser.base)).await;
    assert_eq!(page.status(), 200, "sign-in page {login_path}");
    let html = page.text().await.unwrap();
    browser
        .http
        .post(format!("{}/login", browser.base))
        .header(ACCEPT, "text/html")
        .form(&[
            (
                "csrf_token",
                hidden_field(&html, "csrf_token").expect("csrf"),
            ),
            ("req", hidden_field(&html, "req").unwrap_or_default()),
            ("next", hidden_field(&html, "next").unwrap_or_default()),
            ("username", user.to_string()),
            ("password", password.to_string()),
        ])
        .send()
        .await
        .unwrap()
}

/// From an authorization URL, signs in at the pages and follows the browser back to
/// `/authorize/resume`; returns where that sends the browser (consent page or the client).
pub(crate) async fn sign_in_to_next_step(browser: &Browser, url: &str, user: &str) -> String {
    let login = location(&get_page(&browser.http, url).await);
    assert!(login.starts_with("/login?req="), "{login}");
    let resume = location(&submit_login(browser, &login, user, PASSWORD).await);
    assert!(resume.starts_with("/authorize/resume?req="), "{resume}");
    location(&get_page(&browser.http, &format!("{}{resume}", browser.base)).await)
}

pub(crate) async fn count(k: &Kizuna, sql: &str) -> i64 {
    let db = database(k).await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap();
    db.close().await;
    n
}

/// Runs an UPDATE with `$1` = ten seconds ago and `$2` = `key`; exactly one row must change.
async fn backdate(k: &Kizuna, sql: &str, key: &str) {
    let db = database(k).await;
    let changed = sqlx::query(sql)
        .bind(kizuna_core::time::now_unix() - 10)
        .bind(key)
        .execute(db.pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "{sql}");
    db.close().await;
}

// ---------------------------------------------------------------------------------------------
// The authorization endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_trusted_redirect_uri_get_an_error_page_never_a_redirect() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &[]);
    let http = api();
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "unknown client_id",
            vec![
                ("client_id", "no-such-client"),
                ("redirect_uri", CALLBACK),
                ("response_type", "code"),
                ("state", "s"),
            ],
        ),
        (
            "missing client_id",
            vec![
                ("redirect_uri", CALLBACK),
                ("response_type", "code"),
                ("state", "s"),
            ],
        ),
        (
            "missing redirect_uri",
            vec![
                ("client_id", &rp.id),
                ("response_type", "code"),
                ("state", "s"),
            ],
        ),
        (
            "unregistered redirect_uri",
            vec![
                ("client_id", &rp.id),
                ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
                ("response_type", "code"),
                ("state", "s"),
            ],
        ),
        (
            "unregistered redirect_uri with another error too",
            vec![
                ("client_id", &rp.id),
                ("redirect_uri", "https://attacker.example/cb"),
                ("response_type", "token"),
                ("state", "s"),
            ],
        ),
    ];
    for (case, params) in &cases {
        let response = get_page(&http, &authorize_url(&server, params)).await;
        assert_error_page(response, case).await;
    }
    assert_eq!(count(&k, "SELECT COUNT(*) FROM auth_requests").await, 0);
    assert_eq!(
        count(&k, "SELECT COUNT(*) FROM authorization_codes").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_authorization_requests_go_back_to_the_client_with_the_error_and_state() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let confidential = web_client(&k, "Library", &["--scope", "openid", "--scope", "profile"]);
    let public = web_client(&k, "Library app", &["--public"]);
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let long_nonce = "n".repeat(3000);
    let http = api();
    let base = |rp: &Rp| -> Vec<(&'static str, String)> {
        vec![
            ("client_id", rp.id.clone()),
            ("redirect_uri", CALLBACK.to_string()),
            ("state", "xyz-123".to_string()),
        ]
    };
    let with = |rp: &Rp, extra: &[(&'static str, &str)]| {
        let mut params = base(rp);
        params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        params
    };
    let cases = [
        (
            "response_type=token",
            with(
                &confidential,
                &[("response_type", "token"), ("scope", "openid")],
            ),
            "unsupported_response_type",
        ),
        (
            "response_type=code id_token",
            with(
                &confidential,
                &[("response_type", "code id_token"), ("scope", "openid")],
            ),
            "unsupported_response_type",
        ),
        (
            "code_challenge_method=plain",
            with(
                &confidential,
                &[
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "plain"),
                ],
            ),
            "invalid_request",
        ),
        (
            "public client without PKCE",
            with(&public, &[("response_type", "code"), ("scope", "openid")]),
            "invalid_request",
        ),
        (
            "scope the client is not registered for",
            with(
                &confidential,
                &[("response_type", "code"), ("scope", "openid email")],
            ),
            "invalid_scope",
        ),
        (
            "oversize nonce",
            with(
                &confidential,
                &[
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("nonce", &long_nonce),
                ],
            ),
            "invalid_request",
        ),
        (
            "repeated response_type",
            with(
                &confidential,
                &[
                    ("response_type", "code"),
                    ("response_type", "code"),
                    ("scope", "openid"),
                ],
            ),
            "invalid_request",
        ),
        (
            "repeated scope",
            with(
                &confidential,
                &[
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("scope", "profile"),
                ],
            ),
            "invalid_request",
        ),
    ];
    for (case, params, error) in &cases {
        let response = get_page(&http, &authorize_url(&server, &pairs(params))).await;
        assert_error_redirect(&server, &response, error, "xyz-123", case);
    }
    assert_eq!(count(&k, "SELECT COUNT(*) FROM auth_requests").await, 0);
    assert_eq!(
        count(&k, "SELECT COUNT(*) FROM authorization_codes").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_none_without_a_session_answers_login_required() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &[]);
    let url = authorize_url(
        &server,
        &[
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "quiet-1"),
            ("prompt", "none"),
        ],
    );
    let response = get_page(&browser(&server).http, &url).await;
    assert_error_redirect(
        &server,
        &response,
        "login_required",
        "quiet-1",
        "prompt=none",
    );
    assert_eq!(
        count(&k, "SELECT COUNT(*) FROM authorization_codes").await,
        0
    );
}

// ---------------------------------------------------------------------------------------------
// The token endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_it_issued() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(&k, "Library", &[]);
        k.resident("taro", PASSWORD);
        let b = browser(&server);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;
        let tokens = assert_tokens(
            exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
            "first exchange",
        )
        .await;
        let access = tokens["access_token"].as_str().unwrap();
        let refresh = tokens["refresh_token"].as_str().expect("refresh token");
        assert!(tokens["id_token"].is_string());
        assert_eq!(introspect(&server, &rp, access).await["active"], true);

        let replay = exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await;
        assert_oauth_error(replay, 400, "invalid_grant", "code used twice").await;
        assert_eq!(
            introspect(&server, &rp, access).await,
            json!({"active": false}),
            "the replay revokes the access token of the first exchange"
        );
        assert_eq!(
            introspect(&server, &rp, refresh).await,
            json!({"active": false}),
            "and its refresh token"
        );
        let refreshed = post_token(
            &server,
            Some(&rp),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
        assert_oauth_error(refreshed, 400, "invalid_grant", "refresh after replay").await;
        assert!(
            k.ok(&["audit", "export"])
                .contains("\"action\":\"token.code_replay\"")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_foreign_and_unverified_codes_are_invalid_grants() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(&k, "Library", &[]);
        let other = web_client(&k, "Museum", &[]);
        k.resident("taro", PASSWORD);
        let b = browser(&server);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;

        let foreign =
            exchange_code(&server, &other, &code, CALLBACK, Some(verifier.secret())).await;
        assert_oauth_error(foreign, 400, "invalid_grant", "code of another client").await;
        let missing = exchange_code(&server, &rp, &code, CALLBACK, None).await;
        assert_oauth_error(missing, 400, "invalid_grant", "no code_verifier").await;
        let (_, wrong_verifier) = PkceCodeChallenge::new_random_sha256();
        let wrong =
            exchange_code(&server, &rp, &code, CALLBACK, Some(wrong_verifier.secret())).await;
        assert_oauth_error(wrong, 400, "invalid_grant", "wrong code_verifier").await;
        let elsewhere = exchange_code(
            &server,
            &rp,
            &code,
            "http://127.0.0.1:9/other",
            Some(verifier.secret()),
        )
        .await;
        assert_oauth_error(elsewhere, 400, "invalid_grant", "another redirect_uri").await;
        assert_eq!(count(&k, "SELECT COUNT(*) FROM grants").await, 0);

        // A second code (the browser is signed in now), expired in the database.
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;
        backdate(
            &k,
            "UPDATE authorization_codes SET expires_at = $1 WHERE code_hash = $2",
            &kizuna_core::secret::token_hash(&code),
        )
        .await;
        let expired = exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await;
        assert_oauth_error(expired, 400, "invalid_grant", "expired code").await;
        assert_eq!(count(&k, "SELECT COUNT(*) FROM grants").await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_bad_credentials_grant_types_and_bodies() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &[]);

    let wrong = Rp {
        id: rp.id.clone(),
        secret: "not-the-secret".into(),
    };
    let response = post_token(
        &server,
        Some(&wrong),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        challenge.as_deref().is_some_and(|c| c.starts_with("Basic")),
        "RFC 6749 §5.2: 401 with a Basic challenge, got {challenge:?}"
    );
    assert_oauth_error(response, 401, "invalid_client", "wrong client secret").await;

    let unknown = post_token(&server, Some(&rp), &[("grant_type", "password")]).await;
    assert_oauth_error(
        unknown,
        400,
        "unsupported_grant_type",
        "grant_type=password",
    )
    .await;
    let missing = post_token(&server, Some(&rp), &[("code", "x")]).await;
    assert_oauth_error(missing, 400, "invalid_request", "no grant_type").await;
    let not_registered =
        post_token(&server, Some(&rp), &[("grant_type", "client_credentials")]).await;
    assert_oauth_error(
        not_registered,
        400,
        "unauthorized_client",
        "a grant the client is not registered for",
    )
    .await;

    let json_body = api()
        .post(format!("{}/token", server.base))
        .basic_auth(&rp.id, Some(&rp.secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json_body, 400, "invalid_request", "a JSON body").await;

    // A body declared larger than the limit is refused from its Content-Length, before the
    // server reads it (a client still writing then sees the connection close).
    let (status, body) = common::declared_oversize_post(&server.base, "/token", 2 << 20).await;
    assert_eq!(status, 413, "a 2 MB body: {body}");
    assert!(!body.contains("access_token"));

    let health = api()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the server still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_assertions_are_verified_and_single_use() {
    let backend = SoftwareBackend::new(Kek::from_bytes(&[5u8; 32]));
    let key_pair = |id: &str| {
        let (public, material) = backend.generate(id, KeyAlgorithm::P256).unwrap();
        let signer = backend.load(id, KeyAlgorithm::P256, &material).unwrap();
        (KeyHandle::new(id.into(), public.clone(), signer), public)
    };
    let (key, public) = key_pair("k");
    let (stranger, _) = key_pair("other");
    let mut jwk = public.jwk();
    jwk["kid"] = json!("kid1");
    let jwk_set = json!({"keys": [jwk]});

    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let file = k.dir.path().join("sensor-jwks.json");
        std::fs::write(&file, jwk_set.to_string()).unwrap();
        let rp = client(
            &k,
            "Air quality sensor",
            &[
                "--grant-type",
                "client_credentials",
                "--jwks-file",
                file.to_str().unwrap(),
            ],
        );
        assert!(
            rp.secret.is_empty(),
            "private_key_jwt clients get no secret"
        );
        let token_url = format!("{}/token", server.public);
        let sign = |signer: &KeyHandle, overrides: Value| {
            let now = kizuna_core::time::now_unix();
            let mut claims = json!({
                "iss": rp.id, "sub": rp.id, "aud": server.public,
                "iat": now, "exp": now + 60, "jti": kizuna_core::secret::new_id(),
            });
            for (name, value) in overrides.as_object().unwrap() {
                claims[name] = value.clone();
            }
            jose::sign(signer, "kid1", None, &claims).unwrap()
        };

        let valid = sign(&key, json!({}));
        let tokens = assert_tokens(
            present_assertion(&server, &rp, valid.clone()).await,
            "a valid assertion",
        )
        .await;
        assert_eq!(
            claims(tokens["access_token"].as_str().unwrap())["sub"],
            rp.id
        );

        let now = kizuna_core::time::now_unix();
        let unsigned = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            sign(&key, json!({})).split('.').nth(1).unwrap()
        );
        let refused = [
            ("the same assertion again (jti replay)", valid),
            (
                "another audience",
                sign(&key, json!({"aud": "https://other.example/token"})),
            ),
            // The audience is the issuer as one string (the 2025 audience injection
            // advisory): not the endpoint URL, not a list that holds the issuer.
            (
                "the token endpoint as audience",
                sign(&key, json!({"aud": token_url})),
            ),
            (
                "a list holding the issuer",
                sign(
                    &key,
                    json!({"aud": [server.public, "https://other.example"]}),
                ),
            ),
            (
                "expired",
                sign(&key, json!({"iat": now - 400, "exp": now - 300})),
            ),
            ("alg none", unsigned),
            (
                "a key not in the client's JWK Set",
                sign(&stranger, json!({})),
            ),
        ];
        for (case, assertion) in refused {
            assert_oauth_error(
                present_assertion(&server, &rp, assertion).await,
                401,
                "invalid_client",
                case,
            )
            .await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_posts_without_the_csrf_token_are_refused() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &[]);
    k.resident("taro", PASSWORD);
    let b = browser(&server);

    // Sign-in: the browser has the CSRF cookie, the post lacks (or forges) the field.
    let page = get_page(&b.http, &format!("{}/login", server.base)).await;
    assert_eq!(page.status(), 200);
    for (case, token) in [
        ("no csrf_token", None),
        ("a forged csrf_token", Some("forged")),
    ] {
        let mut form = vec![("username", "taro"), ("password", PASSWORD), ("next", "/")];
        if let Some(token) = token {
            form.push(("csrf_token", token));
        }
        let response = b
            .http
            .post(format!("{}/login", server.base))
            .header(ACCEPT, "text/html")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "POST /login with {case}");
        assert!(
            !response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("kizuna_session=")),
            "{case}: no session cookie"
        );
    }
    assert_eq!(count(&k, "SELECT COUNT(*) FROM sessions").await, 0);

    // Consent: signed in, on the consent page, answered without the token.
    let url = authorize_url(
        &server,
        &[
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
        ],
    );
    let consent = sign_in_to_next_step(&b, &url, "taro").await;
    assert!(consent.starts_with("/consent?req="), "{consent}");
    let page = get_page(&b.http, &format!("{}{consent}", server.base)).await;
    let html = page.text().await.unwrap();
    let req = hidden_field(&html, "req").expect("req");
    let response = b
        .http
        .post(format!("{}/consent", server.base))
        .header(ACCEPT, "text/html")
        .form(&[("req", req.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "POST /consent without csrf_token");
    assert_eq!(count(&k, "SELECT COUNT(*) FROM consents").await, 0);
    assert_eq!(
        count(&k, "SELECT COUNT(*) FROM authorization_codes").await,
        0
    );

    // Sign-out confirmation: refused, and the session stays.
    let response = b
        .http
        .post(format!("{}/logout/confirm", server.base))
        .header(ACCEPT, "text/html")
        .form(&[("state", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "POST /logout/confirm without csrf_token"
    );
    assert_eq!(
        count(&k, "SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_asked_once_per_scope_set_and_a_denial_returns_access_denied() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(&k, "Library", &[]);
        k.resident("taro", PASSWORD);
        let url = |scope: &str, state: &str| {
            authorize_url(
                &server,
                &[
                    ("client_id", &rp.id),
                    ("redirect_uri", CALLBACK),
                    ("response_type", "code"),
                    ("scope", scope),
                    ("state", state),
                ],
            )
        };

        // First sign-in: the consent page.
        let first = browser(&server);
        let consent = sign_in_to_next_step(&first, &url("openid profile", "one"), "taro").await;
        assert!(consent.starts_with("/consent?req="), "{consent}");
        let page = get_page(&first.http, &format!("{}{consent}", server.base)).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("Library"), "the page names the service");
        let approved = first
            .http
            .post(format!("{}/consent", server.base))
            .header(ACCEPT, "text/html")
            .form(&[
                ("csrf_token", hidden_field(&html, "csrf_token").unwrap()),
                ("req", hidden_field(&html, "req").unwrap()),
                ("decision", "approve".into()),
            ])
            .send()
            .await
            .unwrap();
        let resume = location(&approved);
        let callback = location(&get_page(&first.http, &format!("{}{resume}", server.base)).await);
        let callback = url::Url::parse(&callback).unwrap();
        assert_eq!(query_param(&callback, "state").as_deref(), Some("one"));
        assert!(query_param(&callback, "code").is_some());

        // A second sign-in (another browser) for the same scopes: no consent page.
        let second = browser(&server);
        let to = sign_in_to_next_step(&second, &url("openid profile", "two"), "taro").await;
        assert!(to.starts_with(CALLBACK), "consent is remembered: {to}");
        let to = url::Url::parse(&to).unwrap();
        assert_eq!(query_param(&to, "state").as_deref(), Some("two"));
        assert!(query_param(&to, "code").is_some());

        // More scopes ask again; declining goes back with access_denied.
        let consent =
            location(&get_page(&second.http, &url("openid profile email", "three")).await);
        assert!(
            consent.starts_with("/consent?req="),
            "new scopes: {consent}"
        );
        let html = get_page(&second.http, &format!("{}{consent}", server.base))
            .await
            .text()
            .await
            .unwrap();
        let form = [
            ("csrf_token", hidden_field(&html, "csrf_token").unwrap()),
            ("req", hidden_field(&html, "req").unwrap()),
            ("decision", "deny".into()),
        ];
        let denied = second
            .http
            .post(format!("{}/consent", server.base))
            .header(ACCEPT, "text/html")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_error_redirect(&server, &denied, "access_denied", "three", "consent denied");
        // The declined request is finished: approving it afterwards issues nothing.
        let mut again = form.clone();
        again[2].1 = "approve".into();
        let late = second
            .http
            .post(format!("{}/consent", server.base))
            .header(ACCEPT, "text/html")
            .form(&again)
            .send()
            .await
            .unwrap();
        assert_eq!(
            late.status(),
            400,
            "a declined request cannot be approved later"
        );
        // Without consent, prompt=none cannot proceed either.
        let quiet = format!("{}&prompt=none", url("openid profile email", "four"));
        let response = get_page(&second.http, &quiet).await;
        assert_error_redirect(
            &server,
            &response,
            "consent_required",
            "four",
            "prompt=none",
        );
        assert_eq!(
            count(&k, "SELECT COUNT(*) FROM authorization_codes").await,
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_account_and_are_audited() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let user = k.resident("taro", PASSWORD);
        let b = browser(&server);
        for attempt in 1..=5 {
            let response = submit_login(&b, "/login", "taro", "wrong password").await;
            assert_eq!(response.status(), 401, "wrong password #{attempt}");
            let html = response.text().await.unwrap();
            if attempt < 5 {
                assert!(html.contains("not correct"), "#{attempt}: {html}");
            }
        }
        let response = submit_login(&b, "/login", "taro", PASSWORD).await;
        assert_eq!(
            response.status(),
            401,
            "locked: even the right password fails"
        );
        assert!(
            !response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("kizuna_session=")),
            "no session"
        );
        // A locked account answers as an unknown one does, so the page cannot tell which
        // accounts exist.
        let error = |html: &str| {
            let start = html.find("id=\"login-error\">").expect("an error message");
            html[start..].split("</p>").next().unwrap().to_string()
        };
        let locked = error(&response.text().await.unwrap());
        let unknown = submit_login(&b, "/login", "nobody-at-all", PASSWORD).await;
        assert_eq!(unknown.status(), 401);
        assert_eq!(locked, error(&unknown.text().await.unwrap()));
        assert_eq!(count(&k, "SELECT COUNT(*) FROM sessions").await, 0);

        let target = format!("user:{}", user["id"].as_str().unwrap());
        let failures = k
            .ok(&["audit", "export"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["action"] == "login" && e["target"] == target.as_str())
            .map(|e| e["outcome"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert_eq!(failures, vec!["failure"; 6], "every attempt is audited");
    }
}

// ---------------------------------------------------------------------------------------------
// Client credentials

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_issue_a_bearer_token_for_the_client_itself() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = client(&k, "Traffic feed", &["--grant-type", "client_credentials"]);
        assert!(!rp.secret.is_empty());
        let tokens = client_credentials(&server, &rp).await;
        assert!(tokens.get("refresh_token").is_none(), "{tokens}");
        assert!(tokens.get("id_token").is_none(), "{tokens}");
        assert!(tokens["expires_in"].as_i64().unwrap() > 0);
        let access = tokens["access_token"].as_str().unwrap();
        Jws::parse(access)
            .unwrap()
            .verify_with_set(&jwks(&server).await, &["ES256"])
            .expect("signed with a published key");
        let info = introspect(&server, &rp, access).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["sub"], rp.id.as_str(), "the subject is the client");
        assert_eq!(info["client_id"], rp.id.as_str());

        let openid = post_token(
            &server,
            Some(&rp),
            &[("grant_type", "client_credentials"), ("scope", "openid")],
        )
        .await;
        assert_oauth_error(openid, 400, "invalid_scope", "openid without a person").await;
    }
}

#[test]
fn a_public_client_cannot_register_for_client_credentials() {
    let k = Kizuna::sqlite();
    let out = k.run(&[
        "client",
        "create",
        "--name",
        "Kiosk",
        "--public",
        "--grant-type",
        "client_credentials",
    ]);
    assert!(!out.status.success(), "a public client has no credentials");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("confidential"), "{stderr}");
    assert!(!k.ok(&["client", "list"]).contains("Kiosk"));
}

// ---------------------------------------------------------------------------------------------
// Device authorization grant (RFC 8628)

async fn start_device(server: &Server, rp: &Rp) -> Value {
    let response = api()
        .post(format!("{}/device_authorization", server.base))
        .form(&[("client_id", rp.id.as_str()), ("scope", "openid profile")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn poll(server: &Server, rp: &Rp, device_code: &str) -> reqwest::Response {
    post_token(
        server,
        None,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", &rp.id),
        ],
    )
    .await
}

/// Signs in as `user` from the verification link; returns the device page's HTML.
async fn open_device_page(b: &Browser, link: &str, user: &str) -> String {
    let login = location(&get_page(&b.http, link).await);
    assert!(login.starts_with("/login?next="), "sign in first: {login}");
    let back = location(&submit_login(b, &login, user, PASSWORD).await);
    assert!(back.starts_with("/device?user_code="), "{back}");
    let page = get_page(&b.http, &format!("{}{back}", b.base)).await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

async fn decide_device(b: &Browser, html: &str, decision: &str) -> reqwest::Response {
    b.http
        .post(format!("{}/device/decision", b.base))
        .header(ACCEPT, "text/html")
        .form(&[
            (
                "csrf_token",
                hidden_field(html, "csrf_token").expect("csrf"),
            ),
            (
                "user_code",
                hidden_field(html, "user_code").expect("user_code"),
            ),
            ("decision", decision.to_string()),
        ])
        .send()
        .await
        .unwrap()
}

/// Waits, if needed, until early in a wall-clock second, so quick polls fall in one.
async fn early_in_a_second() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    if into > 300 {
        tokio::time::sleep(Duration::from_millis(u64::from(1020 - into))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_tokens_once_a_person_approves_its_user_code() {
    for k in Kizuna::each_backend().await {
        let k = k.env("KIZUNA_OIDC__DEVICE_POLL_INTERVAL_SECS", "1");
        let server = k.serve();
        let rp = client(
            &k,
            "Library kiosk",
            &["--public", "--grant-type", "device_code"],
        );
        let user = k.resident("taro", PASSWORD);
        let started = start_device(&server, &rp).await;
        assert_eq!(
            started["verification_uri"],
            format!("{}/device", server.public)
        );
        assert_eq!(started["interval"], 1);
        let device_code = started["device_code"].as_str().unwrap();
        let user_code = started["user_code"].as_str().unwrap();
        let link = started["verification_uri_complete"].as_str().unwrap();
        assert!(link.ends_with(&format!("?user_code={user_code}")), "{link}");

        early_in_a_second().await;
        let pending = poll(&server, &rp, device_code).await;
        assert_oauth_error(pending, 400, "authorization_pending", "first poll").await;
        // Polling again at once is too fast. (The server counts whole seconds, so a poll that
        // happens to cross into the next second is merely pending; try again at once.)
        let mut answers = Vec::new();
        for _ in 0..3 {
            let body: Value = poll(&server, &rp, device_code).await.json().await.unwrap();
            answers.push(body["error"].as_str().unwrap_or_default().to_string());
            if body["error"] != "authorization_pending" {
                break;
            }
        }
        assert_eq!(
            answers.last().map(String::as_str),
            Some("slow_down"),
            "{answers:?}"
        );

        let b = browser(&server);
        let html = open_device_page(&b, link, "taro").await;
        assert!(
            html.contains("Library kiosk"),
            "the page names the device's service"
        );
        let wrong = b
            .http
            .post(format!("{}/device", server.base))
            .header(ACCEPT, "text/html")
            .form(&[
                (
                    "csrf_token",
                    hidden_field(&html, "csrf_token").unwrap().as_str(),
                ),
                (
                    "user_code",
                    if user_code == "BCDF-GHJK" {
                        "BCDF-GHJL"
                    } else {
                        "BCDF-GHJK"
                    },
                ),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 400, "a wrong user code");
        let approved = decide_device(&b, &html, "approve").await;
        assert_eq!(approved.status(), 200);

        // RFC 8628 §3.5: after slow_down the interval grows by 5 seconds (1 + 5); the clock
        // moves past it instead of the test waiting.
        k.clock().advance(7);
        let tokens = assert_tokens(poll(&server, &rp, device_code).await, "approved").await;
        let id_token = tokens["id_token"].as_str().expect("an ID token");
        Jws::parse(id_token)
            .unwrap()
            .verify_with_set(&jwks(&server).await, &["ES256"])
            .expect("the ID token verifies");
        let id = claims(id_token);
        assert_eq!(id["sub"], user["id"]);
        assert_eq!(id["aud"], rp.id.as_str());
        assert_eq!(id["iss"], server.public.as_str());
        assert_eq!(id["preferred_username"], "taro");

        let again = poll(&server, &rp, device_code).await;
        assert_oauth_error(again, 400, "invalid_grant", "a device code works once").await;
        // The approved code is no longer pending on the page either.
        let used = b
            .http
            .post(format!("{}/device", server.base))
            .header(ACCEPT, "text/html")
            .form(&[
                (
                    "csrf_token",
                    hidden_field(&html, "csrf_token").unwrap().as_str(),
                ),
                ("user_code", user_code),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(used.status(), 400, "a used user code");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_user_codes_is_throttled_on_the_decision_form_too() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = client(&k, "Kiosk", &["--public", "--grant-type", "device_code"]);
        k.resident("taro", PASSWORD);
        let started = start_device(&server, &rp).await;
        let b = browser(&server);
        let html = open_device_page(
            &b,
            started["verification_uri_complete"].as_str().unwrap(),
            "taro",
        )
        .await;
        let guess = |code: String| {
            let b = &b;
            let html = &html;
            async move {
                b.http
                    .post(format!("{}/device/decision", b.base))
                    .header(ACCEPT, "text/html")
                    .form(&[
                        ("csrf_token", hidden_field(html, "csrf_token").unwrap()),
                        ("user_code", code),
                        ("decision", "approve".to_string()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        for n in 0..20 {
            assert_eq!(guess(format!("WXYZ-{n:04}")).await, 400, "guess {n}");
        }
        assert_eq!(guess("WXYZ-9999".into()).await, 429);
        // The entry form counts the same guesses.
        let entered = b
            .http
            .post(format!("{}/device", server.base))
            .header(ACCEPT, "text/html")
            .form(&[
                ("csrf_token", hidden_field(&html, "csrf_token").unwrap()),
                ("user_code", "WXYZ-0000".into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(entered.status(), 429);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_or_expired_device_code_gets_no_tokens() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = client(&k, "Kiosk", &["--public", "--grant-type", "device_code"]);
        k.resident("taro", PASSWORD);

        let started = start_device(&server, &rp).await;
        let b = browser(&server);
        let html = open_device_page(
            &b,
            started["verification_uri_complete"].as_str().unwrap(),
            "taro",
        )
        .await;
        assert_eq!(decide_device(&b, &html, "deny").await.status(), 200);
        let denied = poll(&server, &rp, started["device_code"].as_str().unwrap()).await;
        assert_oauth_error(denied, 400, "access_denied", "the person declined").await;

        let started = start_device(&server, &rp).await;
        backdate(
            &k,
            "UPDATE device_codes SET expires_at = $1 WHERE user_code = $2",
            started["user_code"].as_str().unwrap(),
        )
        .await;
        let expired = poll(&server, &rp, started["device_code"].as_str().unwrap()).await;
        assert_oauth_error(expired, 400, "expired_token", "an expired device code").await;
        assert_eq!(count(&k, "SELECT COUNT(*) FROM grants").await, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Pushed authorization requests (RFC 9126)

async fn push(server: &Server, rp: &Rp, params: &[(&str, &str)]) -> reqwest::Response {
    api()
        .post(format!("{}/par", server.base))
        .basic_auth(&rp.id, Some(&rp.secret))
        .form(params)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_requests_are_single_use_and_can_be_required() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(&k, "Library", &[]);
        let strict = web_client(&k, "Tax office", &["--require-par"]);
        k.resident("taro", PASSWORD);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let params = |rp: &Rp| {
            vec![
                ("client_id", rp.id.clone()),
                ("redirect_uri", CALLBACK.to_string()),
                ("response_type", "code".to_string()),
                ("scope", "openid profile".to_string()),
                ("state", "pushed-1".to_string()),
                ("nonce", "n-1".to_string()),
                ("code_challenge", challenge.as_str().to_string()),
                ("code_challenge_method", "S256".to_string()),
            ]
        };
        let library_params = params(&rp);
        let pushed = push(&server, &rp, &pairs(&library_params)).await;
        assert_eq!(pushed.status(), 201);
        assert_eq!(pushed.headers()[CACHE_CONTROL], "no-store");
        let pushed: Value = pushed.json().await.unwrap();
        let request_uri = pushed["request_uri"].as_str().unwrap().to_string();
        assert!(
            request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
            "{request_uri}"
        );
        assert!(pushed["expires_in"].as_i64().unwrap() > 0);

        let by_reference = authorize_url(
            &server,
            &[("client_id", &rp.id), ("request_uri", &request_uri)],
        );
        let b = browser(&server);
        let callback = b.sign_in(&by_reference, "taro", PASSWORD).await;
        assert_eq!(query_param(&callback, "state").as_deref(), Some("pushed-1"));
        let code = query_param(&callback, "code").expect("code");
        let tokens = assert_tokens(
            exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
            "code from a pushed request",
        )
        .await;
        assert_eq!(claims(tokens["id_token"].as_str().unwrap())["nonce"], "n-1");

        let reused = get_page(&b.http, &by_reference).await;
        assert_error_page(reused, "the same request_uri again").await;

        // Unauthenticated pushes are refused.
        let anonymous = api()
            .post(format!("{}/par", server.base))
            .form(&pairs(&library_params))
            .send()
            .await
            .unwrap();
        assert_oauth_error(anonymous, 401, "invalid_client", "PAR without client auth").await;

        // A client that must push: a plain request goes back with invalid_request.
        let strict_params = params(&strict);
        let plain = pairs(&strict_params);
        let response = get_page(&b.http, &authorize_url(&server, &plain)).await;
        assert_error_redirect(
            &server,
            &response,
            "invalid_request",
            "pushed-1",
            "PAR required",
        );
        // Its pushed request works, and cannot be redeemed under another client_id.
        let pushed: Value = push(&server, &strict, &plain).await.json().await.unwrap();
        let request_uri = pushed["request_uri"].as_str().unwrap();
        let stolen = get_page(
            &b.http,
            &authorize_url(
                &server,
                &[("client_id", &rp.id), ("request_uri", request_uri)],
            ),
        )
        .await;
        assert_error_page(stolen, "another client's request_uri").await;
        let pushed: Value = push(&server, &strict, &plain).await.json().await.unwrap();
        let request_uri = pushed["request_uri"].as_str().unwrap();
        let step = get_page(
            &b.http,
            &authorize_url(
                &server,
                &[("client_id", &strict.id), ("request_uri", request_uri)],
            ),
        )
        .await;
        assert!(
            location(&step).starts_with("/consent?req="),
            "signed in, asked to consent: {:?}",
            step.headers().get(LOCATION)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Signing keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_publishes_retired_active_and_next_keys_and_old_tokens_stay_valid() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = client(&k, "Traffic feed", &["--grant-type", "client_credentials"]);
        let state_of = |k: &Kizuna, state: &str| -> String {
            let keys = k.json(&["keys", "list", "--json"]);
            let found: Vec<&Value> = keys
                .as_array()
                .unwrap()
                .iter()
                .filter(|key| key["state"] == state)
                .collect();
            assert_eq!(found.len(), 1, "one {state} key: {keys}");
            found[0]["kid"].as_str().unwrap().to_string()
        };
        let kids = |set: &Value| -> Vec<String> {
            set["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|key| {
                    assert_eq!(key["alg"], "ES256", "{key}");
                    assert_eq!(key["use"], "sig", "{key}");
                    key["kid"].as_str().unwrap().to_string()
                })
                .collect()
        };
        let old_active = state_of(&k, "active");
        let old_next = state_of(&k, "next");
        let mut before = kids(&jwks(&server).await);
        before.sort();
        let mut expected = vec![old_active.clone(), old_next.clone()];
        expected.sort();
        assert_eq!(before, expected, "active and next are published");

        let tokens = client_credentials(&server, &rp).await;
        let old_token = tokens["access_token"].as_str().unwrap().to_string();
        assert_eq!(
            Jws::parse(&old_token).unwrap().header.kid.as_deref(),
            Some(old_active.as_str())
        );

        assert!(k.ok(&["keys", "rotate"]).contains("rotated"));
        assert_eq!(state_of(&k, "retired"), old_active);
        assert_eq!(
            state_of(&k, "active"),
            old_next,
            "the published next key signs now"
        );
        let new_next = state_of(&k, "next");
        let published = jwks(&server).await;
        let mut after = kids(&published);
        after.sort();
        let mut expected = vec![old_active.clone(), old_next.clone(), new_next.clone()];
        expected.sort();
        assert_eq!(after, expected, "retired, active and a new next key");

        Jws::parse(&old_token)
            .unwrap()
            .verify_with_set(&published, &["ES256"])
            .expect("a token of the retired key still verifies");
        let info = introspect(&server, &rp, &old_token).await;
        assert_eq!(
            info["active"], true,
            "a token signed before rotation: {info}"
        );

        // The server signs with the new key once its short key cache has expired.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let token = client_credentials(&server, &rp).await;
            let kid = Jws::parse(token["access_token"].as_str().unwrap())
                .unwrap()
                .header
                .kid;
            if kid.as_deref() == Some(old_next.as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "still signing with {kid:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Back-channel logout

/// A relying party's back-channel logout endpoint: every POSTed `logout_token` goes to the
/// channel.
pub(crate) async fn logout_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/bcl",
        axum::routing::post(
            move |axum::Form(form): axum::Form<HashMap<String, String>>| {
                let sender = sender.clone();
                async move {
                    let _ = sender.send(form.get("logout_token").cloned().unwrap_or_default());
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/bcl"), receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_sends_a_signed_logout_token_over_the_back_channel() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let (endpoint, mut received) = logout_receiver().await;
        let rp = web_client(&k, "Library", &["--backchannel-logout-uri", &endpoint]);
        let user = k.resident("taro", PASSWORD);
        let b = browser(&server);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;
        let tokens = assert_tokens(
            exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
            "sign-in",
        )
        .await;
        let id_token = tokens["id_token"].as_str().unwrap();
        let sid = claims(id_token)["sid"].as_str().expect("sid").to_string();

        let logout = url::Url::parse_with_params(
            &format!("{}/logout", server.public),
            &[("id_token_hint", id_token)],
        )
        .unwrap();
        let response = get_page(&b.http, logout.as_str()).await;
        assert_eq!(response.status(), 200, "signed out");

        let token = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a logout token within seconds")
            .expect("receiver open");
        let jws = Jws::parse(&token).unwrap();
        jws.verify_with_set(&jwks(&server).await, &["ES256"])
            .expect("the logout token verifies against /jwks");
        assert_eq!(jws.header.typ.as_deref(), Some("logout+jwt"));
        let c: Value = jws.claims().unwrap();
        assert_eq!(c["iss"], server.public.as_str());
        assert_eq!(c["aud"], rp.id.as_str());
        assert_eq!(c["sid"], sid.as_str());
        assert_eq!(c["sub"], user["id"]);
        assert!(c["events"][LOGOUT_EVENT].is_object(), "{c}");
        assert!(c["jti"].is_string(), "{c}");
        assert!(
            c["iat"].is_i64() && c["exp"].as_i64() > c["iat"].as_i64(),
            "{c}"
        );
        assert!(c.get("nonce").is_none(), "a logout token has no nonce");

        // Signing out ended the tokens of the sign-in too.
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(introspect(&server, &rp, access).await["active"], false);
        let refresh = tokens["refresh_token"].as_str().unwrap();
        assert_eq!(introspect(&server, &rp, refresh).await["active"], false);
    }
}

// ---------------------------------------------------------------------------------------------
// Client options, request parameters, throttling, retries and schedules

/// The value of an audit entry's `details` field, for the newest entry with this action.
async fn audit_details(k: &Kizuna, action: &str) -> Value {
    let db = database(k).await;
    let details: String = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(action)
    .fetch_one(db.pool())
    .await
    .unwrap();
    db.close().await;
    serde_json::from_str(&details).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_post_client_gets_rs256_id_tokens_and_releases_are_audited() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(
            &k,
            "Old library system",
            &[
                "--auth-method",
                "client_secret_post",
                "--id-token-alg",
                "RS256",
                "--no-consent",
            ],
        );
        k.resident("taro", PASSWORD);
        let b = browser(&server);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier.secret()),
            ("client_id", rp.id.as_str()),
            ("client_secret", rp.secret.as_str()),
        ];
        let tokens = assert_tokens(post_token(&server, None, &form).await, "secret in body").await;
        let id_token = Jws::parse(tokens["id_token"].as_str().unwrap()).unwrap();
        id_token
            .verify_with_set(&jwks(&server).await, &["RS256"])
            .expect("an RS256 ID token verifying with a published RSA key");
        assert!(
            id_token
                .verify_with_set(&jwks(&server).await, &["ES256"])
                .is_err(),
            "the client's algorithm, not the default"
        );
        let claims: Value = id_token.claims().unwrap();
        assert_eq!(claims["aud"], json!(rp.id));
        assert_eq!(claims["preferred_username"], "taro");

        // The release names the claims that left; UserInfo's release too.
        let issued = audit_details(&k, "token.issue").await;
        let released: Vec<&str> = issued["claims"]
            .as_array()
            .expect("claims released")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(released.contains(&"preferred_username"), "{issued}");
        let info = api()
            .get(format!("{}/userinfo", server.base))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);
        let info: Value = info.json().await.unwrap();
        assert_eq!(info["preferred_username"], "taro");
        let userinfo = audit_details(&k, "userinfo.release").await;
        assert!(
            userinfo["claims"]
                .as_array()
                .unwrap()
                .contains(&json!("preferred_username")),
            "{userinfo}"
        );

        // The same secret presented another way than registered is refused.
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;
        assert_oauth_error(
            exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
            401,
            "invalid_client",
            "basic for a client_secret_post client",
        )
        .await;
    }
}

/// Serves a JWK Set at `/jwks` on a loopback port; returns its URL.
async fn jwks_server(set: Value) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}/jwks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_keys_are_fetched_from_the_clients_jwks_uri() {
    let backend = SoftwareBackend::new(Kek::from_bytes(&[6u8; 32]));
    let (public, material) = backend.generate("k", KeyAlgorithm::P256).unwrap();
    let key = KeyHandle::new(
        "k".into(),
        public.clone(),
        backend.load("k", KeyAlgorithm::P256, &material).unwrap(),
    );
    let mut jwk = public.jwk();
    jwk["kid"] = json!("sensor-key-1");
    let jwks_uri = jwks_server(json!({"keys": [jwk]})).await;
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = client(
        &k,
        "Bus stop display",
        &[
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks-uri",
            &jwks_uri,
        ],
    );
    let assertion = |kid: &str| {
        let now = kizuna_core::time::now_unix();
        let claims = json!({
            "iss": rp.id, "sub": rp.id, "aud": server.public,
            "iat": now, "exp": now + 60, "jti": kizuna_core::secret::new_id(),
        });
        jose::sign(&key, kid, None, &claims).unwrap()
    };
    let tokens = assert_tokens(
        present_assertion(&server, &rp, assertion("sensor-key-1")).await,
        "jwks_uri key",
    )
    .await;
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["sub"],
        json!(rp.id)
    );
    assert_oauth_error(
        present_assertion(&server, &rp, assertion("not-published")).await,
        401,
        "invalid_client",
        "a kid the client's JWKS does not publish",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_login_select_account_and_max_age_ask_for_a_fresh_sign_in() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &["--no-consent"]);
    k.resident("taro", PASSWORD);
    let b = browser(&server);
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    code_for(&b, &server, &rp, "taro", &challenge).await;
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut params = vec![
            ("client_id", rp.id.as_str()),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st-2"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        authorize_url(&server, &params)
    };
    // With the session and no demand, straight back to the client.
    let to = location(&get_page(&b.http, &with(&[])).await);
    assert!(to.starts_with(CALLBACK), "SSO: {to}");
    let to = location(&get_page(&b.http, &with(&[("max_age", "3600")])).await);
    assert!(
        to.starts_with(CALLBACK),
        "a recent sign-in satisfies max_age: {to}"
    );
    for extra in [
        ("prompt", "login"),
        ("prompt", "select_account"),
        ("max_age", "0"),
    ] {
        k.clock().advance(2);
        let to = location(&get_page(&b.http, &with(&[extra])).await);
        assert!(to.starts_with("/login?req="), "{extra:?}: {to}");
        let back = location(&submit_login(&b, &to, "taro", PASSWORD).await);
        let to = location(&get_page(&b.http, &format!("{}{back}", b.base)).await);
        assert!(to.starts_with(CALLBACK), "{extra:?}: {to}");
    }
    // The ID token of a max_age request carries auth_time.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let before = k.clock().now_unix();
    let url = authorize_url(
        &server,
        &[
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
            ("max_age", "0"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    k.clock().advance(2);
    let callback = b.sign_in(&url, "taro", PASSWORD).await;
    let code = query_param(&callback, "code").unwrap();
    let tokens = assert_tokens(
        exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
        "max_age",
    )
    .await;
    let auth_time = claims(tokens["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .expect("auth_time");
    assert!(
        auth_time >= before,
        "a fresh authentication: {auth_time} < {before}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_hint_fills_the_username_and_ui_locales_chooses_the_language() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &[]);
    let b = browser(&server);
    let page = |extra: &[(&'static str, &'static str)]| {
        let mut params = vec![
            ("client_id", rp.id.as_str()),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
        ];
        params.extend_from_slice(extra);
        let url = authorize_url(&server, &params);
        let b = &b;
        async move {
            let login = location(&get_page(&b.http, &url).await);
            let response = get_page(&b.http, &format!("{}{login}", b.base)).await;
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let html = page(&[("login_hint", "hanako@city.example")]).await;
    assert!(html.contains("value=\"hanako@city.example\""), "{html}");
    assert!(html.contains("lang=\"en\""), "Accept-Language: en");
    let html = page(&[("login_hint", "<b>x</b>")]).await;
    assert!(!html.contains("<b>x</b>"), "a hint is shown as text");
    let html = page(&[("ui_locales", "ja en")]).await;
    assert!(
        html.contains("lang=\"ja\""),
        "ui_locales wins over Accept-Language"
    );
    let html = page(&[("ui_locales", "fr")]).await;
    assert!(html.contains("lang=\"en\""), "an unknown locale falls back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_from_one_address_are_throttled_with_429_and_audited() {
    for k in Kizuna::each_backend().await {
        let k = k.env("KIZUNA_OIDC__LOGIN_IP_MAX_FAILURES", "3");
        let server = k.serve();
        k.resident("taro", PASSWORD);
        let b = browser(&server);
        // Different accounts, so no account lock: the address is what is counted.
        for name in ["jiro", "saburo", "shiro"] {
            let response = submit_login(&b, "/login?next=/account", name, "guess").await;
            assert_ne!(response.status(), 429, "{name}: below the limit");
        }
        let response = submit_login(&b, "/login?next=/account", "taro", PASSWORD).await;
        assert_eq!(
            response.status(),
            429,
            "even the right password is throttled once the address is over the limit"
        );
        assert!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'login' AND details LIKE '%throttled%'"
            )
            .await
                >= 1
        );
        // The server keeps serving other requests.
        let ready = api()
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_that_fails_is_delivered_on_a_later_attempt() {
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/bcl",
        axum::routing::post(
            move |axum::Form(form): axum::Form<HashMap<String, String>>| {
                let sender = sender.clone();
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let _ = sender.send(form.get("logout_token").cloned().unwrap_or_default());
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/bcl", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let k = Kizuna::sqlite();
    let server = k.serve();
    let rp = web_client(&k, "Library", &["--backchannel-logout-uri", &endpoint]);
    k.resident("taro", PASSWORD);
    let b = browser(&server);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = code_for(&b, &server, &rp, "taro", &challenge).await;
    let tokens = assert_tokens(
        exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
        "sign-in",
    )
    .await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = claims(id_token)["sid"].clone();
    let logout = url::Url::parse_with_params(
        &format!("{}/logout", server.public),
        &[("id_token_hint", id_token)],
    )
    .unwrap();
    assert_eq!(get_page(&b.http, logout.as_str()).await.status(), 200);
    // The first attempt fails; the retry (5 s later) delivers the same token.
    let token = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("delivered on a retry")
        .unwrap();
    assert_eq!(claims(&token)["sid"], sid);
    assert_eq!(
        count(
            &k,
            "SELECT COUNT(*) FROM logout_deliveries WHERE delivered_at IS NOT NULL AND attempts = 2"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_past_their_rotation_period_are_rotated_by_the_server() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let active = |k: &Kizuna| -> String {
            k.json(&["keys", "list", "--json"])
                .as_array()
                .unwrap()
                .iter()
                .find(|key| key["state"] == "active" && key["alg"] == "ES256")
                .expect("an active key")["kid"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let old = active(&k);
        drop(server);
        let db = database(&k).await;
        sqlx::query(
            "UPDATE signing_keys SET activated_at = activated_at - 91 * 86400 WHERE kid = $1",
        )
        .bind(&old)
        .execute(db.pool())
        .await
        .unwrap();
        db.close().await;
        let server = k.serve();
        let deadline = Instant::now() + Duration::from_secs(20);
        while active(&k) == old {
            assert!(Instant::now() < deadline, "the overdue key was not rotated");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let published: Vec<String> = jwks(&server).await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|key| key["kid"].as_str().map(str::to_string))
            .collect();
        assert!(
            published.contains(&old),
            "the old key stays published: {published:?}"
        );
        assert!(published.contains(&active(&k)), "{published:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_accounts_are_managed_from_the_command_line() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        // Clients: create, show, list, delete.
        let rp = web_client(&k, "Parking permits", &[]);
        let shown = k.json(&["client", "show", &rp.id, "--json"]);
        assert_eq!(shown["client_id"], json!(rp.id));
        assert_eq!(shown["redirect_uris"], json!([CALLBACK]));
        assert!(
            shown.get("client_secret").is_none(),
            "a secret is shown only at creation"
        );
        assert!(
            !shown.to_string().contains(&rp.secret),
            "nor its hash's source"
        );
        assert!(k.ok(&["client", "list"]).contains("Parking permits"));
        k.ok(&["client", "delete", &rp.id]);
        assert!(!k.run(&["client", "show", &rp.id]).status.success());
        assert_oauth_error(
            post_token(&server, Some(&rp), &[("grant_type", "client_credentials")]).await,
            401,
            "invalid_client",
            "a deleted client",
        )
        .await;

        // Accounts: list, disable, enable, set-password.
        let user = k.resident("umeko", PASSWORD);
        let listed = k.json(&["user", "list", "--json"]);
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == user["id"]),
            "{listed}"
        );
        let signs_in = |password: &'static str| {
            let b = browser(&server);
            async move {
                let response = submit_login(&b, "/login?next=/account", "umeko", password).await;
                response.status() == 303 && location(&response).starts_with("/account")
            }
        };
        assert!(signs_in(PASSWORD).await);
        k.ok(&["user", "disable", "umeko"]);
        assert!(
            !signs_in(PASSWORD).await,
            "a disabled account cannot sign in"
        );
        k.ok(&["user", "enable", "umeko"]);
        assert!(signs_in(PASSWORD).await, "enabled again");
        k.ok_stdin(
            &["user", "set-password", "umeko"],
            "a brand new long passphrase",
        );
        assert!(!signs_in(PASSWORD).await, "the old password stops working");
        let b = browser(&server);
        let response = submit_login(
            &b,
            "/login?next=/account",
            "umeko",
            "a brand new long passphrase",
        )
        .await;
        assert_eq!(response.status(), 303, "the new one works");
        let short = k
            .command(&["user", "set-password", "umeko"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!short.status.success(), "an empty password is refused");
        for action in [
            "user.disable",
            "user.enable",
            "user.set_password",
            "client.delete",
        ] {
            assert!(
                count(
                    &k,
                    &format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}'")
                )
                .await
                    >= 1,
                "{action} audited"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_sees_each_release_of_their_data_and_withdraws_consent() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = web_client(
            &k,
            "Childcare <b>portal</b>",
            &[
                "--grant-type",
                "authorization_code",
                "--grant-type",
                "refresh_token",
            ],
        );
        k.resident("taro", PASSWORD);
        let b = browser(&server);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&b, &server, &rp, "taro", &challenge).await;
        let tokens = assert_tokens(
            exchange_code(&server, &rp, &code, CALLBACK, Some(verifier.secret())).await,
            "sign-in",
        )
        .await;
        let info = api()
            .get(format!("{}/userinfo", server.base))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);

        let (status, html) = b.page("/account/services").await;
        assert_eq!(status, 200, "{html}\n{}", server.stderr());
        assert!(
            html.contains("Childcare &lt;b&gt;portal&lt;/b&gt;")
                || html.contains("Childcare &#60;b&#62;portal"),
            "the service, named as text: {html}"
        );
        assert!(!html.contains("<b>portal</b>"));
        assert!(html.contains("Your name and username"), "what it may read");
        assert!(
            html.contains("asked for your details"),
            "the UserInfo release"
        );
        assert!(
            html.contains("sign-in (tokens issued)"),
            "the token release"
        );
        assert!(html.contains("preferred_username"), "which claims left");

        // Without the CSRF token nothing is withdrawn.
        let forged = b
            .http
            .post(format!("{}/account/services/withdraw", server.base))
            .header(ACCEPT, "text/html")
            .form(&[("client_id", rp.id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        let refresh = tokens["refresh_token"].as_str().unwrap();
        assert_eq!(introspect(&server, &rp, refresh).await["active"], true);

        let withdrawn = b
            .post(
                "/account/services",
                "/account/services/withdraw",
                &[("client_id", &rp.id)],
            )
            .await;
        assert_eq!(location(&withdrawn), "/account/services?done=withdrawn");
        assert_eq!(
            introspect(&server, &rp, refresh).await["active"],
            false,
            "the service's grant ended"
        );
        assert_eq!(
            introspect(&server, &rp, tokens["access_token"].as_str().unwrap()).await["active"],
            false
        );
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'consent.withdraw'"
            )
            .await,
            1
        );
        let (_, html) = b.page("/account/services?done=withdrawn").await;
        assert!(html.contains("Your consent was withdrawn"), "{html}");
        assert!(
            !html.contains("Withdraw consent:"),
            "no service is listed any more"
        );

        // The next sign-in to the service asks for consent again.
        let url = authorize_url(
            &server,
            &[
                ("client_id", &rp.id),
                ("redirect_uri", CALLBACK),
                ("response_type", "code"),
                ("scope", "openid profile"),
            ],
        );
        let next = location(&get_page(&b.http, &url).await);
        assert!(next.starts_with("/consent?req="), "asks again: {next}");
    }
}

/// Moves the install's clock past the replicas' two-second cache of quota limits, to the
/// first second of a new one-minute counting window.
fn fresh_window(k: &Kizuna) {
    let clock = k.clock();
    clock.advance(61 - clock.now_unix().rem_euclid(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_quota_gets_429_until_the_limit_is_lifted() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let limited = client(&k, "Traffic feed", &["--grant-type", "client_credentials"]);
        let other = client(&k, "Air quality", &["--grant-type", "client_credentials"]);
        let set = k.json(&[
            "client",
            "quota",
            &limited.id,
            "--per-minute",
            "3",
            "--json",
        ]);
        assert_eq!(set["requests_per_minute"], 3);
        // A replica reads the limits at most every two seconds: move the clock past that,
        // to the start of a counting window.
        fresh_window(&k);
        let grant = |rp: &Rp| {
            let (id, secret) = (rp.id.clone(), rp.secret.clone());
            let server = &server;
            async move {
                post_token(
                    server,
                    Some(&Rp { id, secret }),
                    &[("grant_type", "client_credentials")],
                )
                .await
            }
        };
        for n in 1..=3 {
            assert_tokens(grant(&limited).await, &format!("request {n} of 3")).await;
        }
        let refused = grant(&limited).await;
        assert_eq!(
            refused
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("60")
        );
        assert_oauth_error(refused, 429, "temporarily_unavailable", "over the quota").await;
        assert_oauth_error(
            grant(&limited).await,
            429,
            "temporarily_unavailable",
            "still over",
        )
        .await;
        assert_tokens(grant(&other).await, "another client has its own budget").await;
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'client.quota_exceeded'"
            )
            .await,
            1,
            "audited once per window, not per refusal"
        );
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'client.quota'"
            )
            .await,
            1
        );

        // Bad values are refused and change nothing.
        for bad in [
            vec!["client", "quota", &limited.id, "--per-minute", "0"],
            vec!["client", "quota", "no-such-client", "--per-minute", "5"],
            vec!["client", "quota", &limited.id],
        ] {
            let out = k.run(&bad);
            assert!(!out.status.success(), "{bad:?}");
        }
        assert_oauth_error(
            grant(&limited).await,
            429,
            "temporarily_unavailable",
            "unchanged",
        )
        .await;

        k.ok(&["client", "quota", &limited.id, "--unlimited"]);
        fresh_window(&k);
        assert_tokens(grant(&limited).await, "the limit is lifted").await;

        // The admin API sets the same quota, for city administrators only.
        let admin = common::service_token(&k, &server.base, "kizuna:admin", None).await;
        let put = |id: String, body: Value, token: String| {
            let url = format!("{}/admin/api/v1/clients/{id}/quota", server.base);
            async move {
                api()
                    .put(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let set = put(
            other.id.clone(),
            json!({"requests_per_minute": 1}),
            admin.clone(),
        )
        .await;
        assert_eq!(set.status(), 200);
        assert_eq!(set.json::<Value>().await.unwrap()["requests_per_minute"], 1);
        let zero = put(
            other.id.clone(),
            json!({"requests_per_minute": 0}),
            admin.clone(),
        )
        .await;
        assert_eq!(zero.status(), 422, "out of range");
        let unknown = put(
            "nope".into(),
            json!({"requests_per_minute": 5}),
            admin.clone(),
        )
        .await;
        assert_eq!(unknown.status(), 404);
        let anonymous = put(
            other.id.clone(),
            json!({"requests_per_minute": null}),
            "x".into(),
        )
        .await;
        assert_eq!(anonymous.status(), 401);
        fresh_window(&k);
        assert_tokens(grant(&other).await, "one request a minute").await;
        assert_oauth_error(
            grant(&other).await,
            429,
            "temporarily_unavailable",
            "API quota",
        )
        .await;
    }
}
