//! Federation: Kizuna brokers an organization's identity provider. A city service (an RP
//! built with the `openidconnect` crate) sends the resident to Kizuna, Kizuna to the
//! upstream — panva's `oidc-provider` (npm; not written here), another Kizuna, or a small
//! provider in this file that signs crafted tokens for the bad-input cases — and back.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Value, json};

use crate::common::upstream::{Arrival, CrossBrowser, NodeOp};
use crate::common::{Kizuna, Server, node_peers, query_param};

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";
const PASSWORD: &str = "correct horse battery staple";
const UPSTREAM_SECRET: &str = "upstream-client-secret-upstream-client-secret";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A city service registered at Kizuna, as an `openidconnect` relying party.
struct CityService {
    client: openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    http: reqwest::Client,
}

/// One sign-in started at the city service.
struct Attempt {
    url: String,
    state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

impl CityService {
    async fn register(k: &Kizuna, server: &Server) -> CityService {
        let created = k.json(&[
            "client",
            "create",
            "--name",
            "Library",
            "--redirect-uri",
            CALLBACK,
            "--no-consent",
            "--post-logout-redirect-uri",
            AFTER_LOGOUT,
            "--json",
        ]);
        let http = http();
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(server.public.clone()).unwrap(),
            &http,
        )
        .await
        .unwrap();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(created["client_id"].as_str().unwrap().into()),
            Some(ClientSecret::new(
                created["client_secret"].as_str().unwrap().into(),
            )),
        )
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
        CityService { client, http }
    }

    fn start(&self, acr_values: Option<&str>) -> Attempt {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if let Some(acr) = acr_values {
            request = request.add_extra_param("acr_values", acr);
        }
        let (url, state, nonce) = request.url();
        Attempt {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce,
            verifier,
        }
    }

    /// Redeems the code the browser came back with; returns the verified ID token's claims
    /// (all of them, as JSON) and the ID token itself.
    async fn finish(&self, attempt: Attempt, back: &url::Url) -> (Value, String) {
        assert_eq!(
            query_param(back, "state").as_deref(),
            Some(attempt.state.as_str())
        );
        let code = query_param(back, "code").unwrap_or_else(|| panic!("no code: {back}"));
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(attempt.verifier)
            .request_async(&self.http)
            .await
            .unwrap();
        let id_token = tokens.id_token().expect("ID token");
        id_token
            .claims(&self.client.id_token_verifier(), &attempt.nonce)
            .expect("Kizuna's ID token verifies");
        let text = id_token.to_string();
        let payload = URL_SAFE_NO_PAD
            .decode(text.split('.').nth(1).unwrap())
            .unwrap();
        (serde_json::from_slice(&payload).unwrap(), text)
    }
}

/// oidc-provider's registration of Kizuna as a client.
fn kizuna_at_upstream(server: &Server, alias: &str, private_key_jwt: bool) -> Value {
    let mut client = json!({
        "client_id": "kizuna",
        "redirect_uris": [format!("{}/federation/callback", server.public)],
        "post_logout_redirect_uris": [format!("{}/federation/logout/done", server.public)],
        "backchannel_logout_uri": format!("{}/federation/{alias}/backchannel-logout", server.public),
        "backchannel_logout_session_required": true,
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
        "scope": "openid email profile groups",
    });
    if private_key_jwt {
        client["token_endpoint_auth_method"] = json!("private_key_jwt");
        client["jwks_uri"] = json!(format!("{}/federation/{alias}/jwks", server.public));
    } else {
        client["token_endpoint_auth_method"] = json!("client_secret_basic");
        client["client_secret"] = json!(UPSTREAM_SECRET);
    }
    json!([client])
}

/// The hospital's staff at the upstream.
fn hospital_staff() -> Value {
    json!({
        "hanako": {"claims": {"email": "hanako@hospital.example.jp", "email_verified": true, "name": "Hanako Sato",
                              "birthdate": "1990-04-01", "groups": ["nurses"]},
                   "acr": "aal2", "amr": ["pwd", "otp"]},
        "kenji": {"claims": {"email": "kenji@hospital.example.jp", "email_verified": true, "name": "Kenji Ito"},
                  "acr": "aal3", "amr": ["hwk", "user"]},
        "taro-upstream": {"claims": {"email": "taro@city.example.jp", "email_verified": true, "name": "Taro at the hospital"},
                          "acr": "aal2", "amr": ["pwd", "otp"]},
        "mallory": {"claims": {"email": "taro@city.example.jp", "email_verified": false, "name": "Not Taro"},
                    "acr": "aal1", "amr": ["pwd"]},
        "eve": {"claims": {"email": "mayor@city.example.jp", "email_verified": true, "name": "Eve"},
                "acr": "aal2", "amr": ["pwd", "otp"]}
    })
}

/// Adds the upstream with the CLI (`client_secret_basic` unless `private_key_jwt`).
fn add_upstream(
    k: &Kizuna,
    alias: &str,
    issuer: &str,
    private_key_jwt: bool,
    extra: &[&str],
) -> Value {
    let mut args = vec![
        "upstream",
        "add",
        "--alias",
        alias,
        "--name",
        "City Hospital",
        "--org",
        "Hospital",
        "--issuer",
        issuer,
        "--client-id",
        "kizuna",
        "--scope",
        "email",
        "--scope",
        "profile",
        "--scope",
        "groups",
        "--max-ial",
        "2",
        "--max-aal",
        "2",
        "--acr-map",
        "aal2=2",
        "--acr-map",
        "aal3=3:3",
        "--acr-value",
        "aal3",
        "--acr-value",
        "aal2",
        "--acr-value",
        "aal1",
        "--email-domain",
        "hospital.example.jp",
        "--json",
    ];
    args.extend(extra);
    if private_key_jwt {
        args.push("--private-key-jwt");
        k.json(&args)
    } else {
        args.push("--client-secret-stdin");
        serde_json::from_str(&k.ok_stdin(&args, UPSTREAM_SECRET)).unwrap()
    }
}

/// A Kizuna install with the Hospital organization, running.
fn city(k: &Kizuna) -> Server {
    let server = k.serve();
    k.ok(&[
        "org",
        "create",
        "--name",
        "Hospital",
        "--kind",
        "service-provider",
    ]);
    server
}

fn upstream_browser(login: &str) -> CrossBrowser {
    CrossBrowser {
        upstream: Some("hospital".into()),
        upstream_login: Some(login.into()),
        ..CrossBrowser::default()
    }
}

async fn arrive(browser: &CrossBrowser, attempt: &Attempt) -> url::Url {
    match browser.walk(&attempt.url, CALLBACK).await {
        Arrival::Arrived(url) => url,
        Arrival::Page(url, status, html) => panic!("stopped at {url} ({status}):\n{html}"),
    }
}

fn audit_actions(k: &Kizuna) -> String {
    assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
    k.ok(&["audit", "export"])
}

/// A city with the hospital's oidc-provider as upstream `hospital` and a city service.
struct HospitalCity {
    k: Kizuna,
    server: Server,
    op: NodeOp,
    city: CityService,
}

async fn hospital_cities(node: &std::path::Path, private_key_jwt: bool) -> Vec<HospitalCity> {
    let mut out = Vec::new();
    for k in Kizuna::each_backend().await {
        let server = city(&k);
        let op = NodeOp::start(
            node,
            &kizuna_at_upstream(&server, "hospital", private_key_jwt),
            &hospital_staff(),
        );
        add_upstream(&k, "hospital", &op.issuer, private_key_jwt, &[]);
        let city = CityService::register(&k, &server).await;
        out.push(HospitalCity {
            k,
            server,
            op,
            city,
        });
    }
    out
}

impl HospitalCity {
    /// Signs `login` in at the city service through the hospital; the ID token's claims.
    async fn sign_in(&self, browser: &CrossBrowser) -> (Value, String) {
        let attempt = self.city.start(None);
        let back = arrive(browser, &attempt).await;
        self.city.finish(attempt, &back).await
    }

    /// Walks a fresh browser through the hospital as `login` to where Kizuna stops.
    async fn stops_at(&self, login: &str) -> (CrossBrowser, url::Url, u16, String) {
        let browser = upstream_browser(login);
        let attempt = self.city.start(None);
        match browser.walk(&attempt.url, CALLBACK).await {
            Arrival::Page(at, status, html) => (browser, at, status, html),
            Arrival::Arrived(url) => panic!("signed in: {url}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_is_believed_about_verified_addresses_only_in_its_own_domains() {
    let Some(node) = node_peers() else { return };
    for c in hospital_cities(&node, false).await {
        // The hospital says it verified an address at the city's domain: not its to vouch for.
        let (claims, _) = c.sign_in(&upstream_browser("eve")).await;
        assert_ne!(claims["email_verified"], true, "{claims}");
        assert_ne!(claims["email"], "mayor@city.example.jp", "{claims}");
        let users = c.k.json(&["user", "list", "--json"]);
        let eve = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == claims["sub"])
            .expect("a provisioned account");
        assert!(eve["email"].is_null(), "{eve}");
        // An address in its own domain stays verified.
        let (claims, _) = c.sign_in(&upstream_browser("hanako")).await;
        assert_eq!(claims["email"], "hanako@hospital.example.jp");
        assert_eq!(claims["email_verified"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_signs_in_through_oidc_provider_and_is_provisioned_just_in_time() {
    let Some(node) = node_peers() else { return };
    for k in Kizuna::each_backend().await {
        let server = city(&k);
        let op = NodeOp::start(
            &node,
            &kizuna_at_upstream(&server, "hospital", false),
            &hospital_staff(),
        );
        let added = add_upstream(&k, "hospital", &op.issuer, false, &[]);
        assert_eq!(
            added["registration"]["redirect_uri"],
            format!("{}/federation/callback", server.public)
        );
        let listed = k.ok(&["upstream", "list"]);
        assert!(
            listed.contains("hospital") && listed.contains("IAL2/AAL2"),
            "{listed}"
        );
        let city = CityService::register(&k, &server).await;

        let browser = upstream_browser("hanako");
        let attempt = city.start(None);
        let back = arrive(&browser, &attempt).await;
        let (claims, _) = city.finish(attempt, &back).await;
        assert_eq!(claims["email"], "hanako@hospital.example.jp");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(
            claims["name"], "Hanako Sato",
            "from the upstream's UserInfo"
        );
        assert!(
            claims["amr"].as_array().unwrap().contains(&json!("fed")),
            "{claims}"
        );
        assert_eq!(
            claims["acr"], "urn:kizuna:aal:2",
            "upstream aal2 mapped to AAL2"
        );
        assert_eq!(claims["idp"], op.issuer.as_str(), "names the upstream");
        let sub = claims["sub"].as_str().unwrap().to_string();
        let users = k.json(&["user", "list", "--json"]);
        let user = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == sub.as_str())
            .expect("a provisioned account");
        assert!(
            user["username"].as_str().unwrap().starts_with("hospital."),
            "{user}"
        );

        // Single sign-on: the next request needs no upstream at all.
        let attempt = city.start(None);
        let sso = CrossBrowser {
            http: browser.http.clone(),
            ..CrossBrowser::default()
        };
        let back = arrive(&sso, &attempt).await;
        assert_eq!(city.finish(attempt, &back).await.0["sub"], sub.as_str());

        // Another browser, the same upstream account: the same Kizuna account.
        let attempt = city.start(None);
        let back = arrive(&upstream_browser("hanako"), &attempt).await;
        assert_eq!(city.finish(attempt, &back).await.0["sub"], sub.as_str());
        let count = k
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len();
        assert_eq!(count, users.as_array().unwrap().len(), "no second account");

        let audit = audit_actions(&k);
        assert!(audit.contains("\"action\":\"upstream.add\""));
        assert!(audit.contains("\"action\":\"federation.provision\""));
        assert!(audit.contains("\"action\":\"federation.login\""));
        assert!(audit.contains("hanako"), "the upstream subject is audited");
    }
}

// ------------------------------------------------------------------------------------------
// Bad input from an upstream: a small provider of our own that answers as told.

/// How the crafted provider misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Craft {
    Good,
    WrongState,
    ReplayedNonce,
    UnknownKey,
    AlgNone,
    WrongIssuer,
    WrongAudience,
    Expired,
    ErrorResponse,
    SlowDiscovery,
    WrongAtHash,
    /// UserInfo answers with a JWT signed by the provider's key.
    SignedUserInfo,
    /// ... signed by a key the provider does not publish.
    UserInfoUnknownKey,
    /// ... signed, for another client.
    UserInfoWrongAudience,
    /// ... encrypted (a five-part JWE).
    UserInfoEncrypted,
    /// Advertises RFC 9207 and sends `iss` with its answers.
    IssSent,
    /// Advertises RFC 9207 but answers without `iss`.
    IssMissing,
    /// Answers with another server's `iss` (a mix-up).
    IssOfAnother,
}

impl Craft {
    fn has_userinfo(self) -> bool {
        matches!(
            self,
            Craft::SignedUserInfo
                | Craft::UserInfoUnknownKey
                | Craft::UserInfoWrongAudience
                | Craft::UserInfoEncrypted
        )
    }
}

struct CraftedState {
    issuer: String,
    craft: std::sync::Mutex<Craft>,
    key: common::acme::Key,
    rogue: common::acme::Key,
    codes: std::sync::Mutex<std::collections::HashMap<String, String>>,
    first_nonce: std::sync::Mutex<Option<String>>,
}

/// The crafted provider, served in this process until dropped.
struct CraftedOp {
    state: std::sync::Arc<CraftedState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CraftedOp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CraftedOp {
    async fn start() -> CraftedOp {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = std::sync::Arc::new(CraftedState {
            issuer,
            craft: std::sync::Mutex::new(Craft::Good),
            key: common::acme::Key::generate(),
            rogue: common::acme::Key::generate(),
            codes: Default::default(),
            first_nonce: Default::default(),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(crafted_discovery))
            .route("/jwks", get(crafted_jwks))
            .route("/authorize", get(crafted_authorize))
            .route("/token", post(crafted_token))
            .route("/userinfo", get(crafted_userinfo))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CraftedOp { state, task }
    }

    fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    fn set(&self, craft: Craft) {
        *self.state.craft.lock().unwrap() = craft;
    }
}

type Crafted = axum::extract::State<std::sync::Arc<CraftedState>>;

async fn crafted_discovery(axum::extract::State(s): Crafted) -> axum::Json<Value> {
    if *s.craft.lock().unwrap() == Craft::SlowDiscovery {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    let mut document = json!({
        "issuer": s.issuer,
        "authorization_endpoint": format!("{}/authorize", s.issuer),
        "token_endpoint": format!("{}/token", s.issuer),
        "jwks_uri": format!("{}/jwks", s.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
    });
    if matches!(*s.craft.lock().unwrap(), Craft::IssSent | Craft::IssMissing) {
        document["authorization_response_iss_parameter_supported"] = json!(true);
    }
    if s.craft.lock().unwrap().has_userinfo() {
        document["userinfo_endpoint"] = json!(format!("{}/userinfo", s.issuer));
        document["userinfo_signing_alg_values_supported"] = json!(["ES256"]);
    }
    axum::Json(document)
}

/// A compact JWS of `claims` by `key` under `kid`.
fn crafted_jws(key: &common::acme::Key, kid: &str, claims: &Value) -> String {
    let jws = key.sign(
        &json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
        Some(claims),
    );
    format!(
        "{}.{}.{}",
        jws["protected"].as_str().unwrap(),
        jws["payload"].as_str().unwrap(),
        jws["signature"].as_str().unwrap()
    )
}

async fn crafted_userinfo(axum::extract::State(s): Crafted) -> axum::response::Response {
    use axum::response::IntoResponse;
    let craft = *s.craft.lock().unwrap();
    let claims = json!({
        "iss": s.issuer,
        "aud": if craft == Craft::UserInfoWrongAudience { "someone-else" } else { "kizuna" },
        "sub": "crafted-person",
        "name": "Signed Person",
    });
    let body = match craft {
        Craft::UserInfoUnknownKey => crafted_jws(&s.rogue, "k9", &claims),
        Craft::UserInfoEncrypted => "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d".to_string(),
        _ => crafted_jws(&s.key, "k1", &claims),
    };
    ([("content-type", "application/jwt")], body).into_response()
}

async fn crafted_jwks(axum::extract::State(s): Crafted) -> axum::Json<Value> {
    let mut jwk = s.key.jwk();
    jwk["kid"] = json!("k1");
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    axum::Json(json!({"keys": [jwk]}))
}

async fn crafted_authorize(
    axum::extract::State(s): Crafted,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Redirect {
    let craft = *s.craft.lock().unwrap();
    let nonce = q.get("nonce").cloned().unwrap_or_default();
    s.first_nonce.lock().unwrap().get_or_insert(nonce.clone());
    let code = kizuna_core::secret::random_token();
    s.codes.lock().unwrap().insert(code.clone(), nonce);
    let state = if craft == Craft::WrongState {
        "forged-state-forged-state-forged-state-000".to_string()
    } else {
        q["state"].clone()
    };
    let mut params: Vec<(&str, &str)> = if craft == Craft::ErrorResponse {
        vec![
            ("error", "access_denied"),
            ("error_description", "the person said no"),
            ("state", &state),
        ]
    } else {
        vec![("code", &code), ("state", &state)]
    };
    match craft {
        Craft::IssSent => params.push(("iss", &s.issuer)),
        Craft::IssOfAnother => params.push(("iss", "http://127.0.0.1:1")),
        _ => {}
    }
    let to = url::Url::parse_with_params(&q["redirect_uri"], &params).unwrap();
    axum::response::Redirect::to(to.as_str())
}

async fn crafted_token(
    axum::extract::State(s): Crafted,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> axum::Json<Value> {
    let craft = *s.craft.lock().unwrap();
    let nonce = match craft {
        Craft::ReplayedNonce => s.first_nonce.lock().unwrap().clone().unwrap(),
        _ => s
            .codes
            .lock()
            .unwrap()
            .remove(&form["code"])
            .unwrap_or_default(),
    };
    let now = kizuna_core::time::now_unix();
    let (iat, exp) = if craft == Craft::Expired {
        (now - 300, now - 120)
    } else {
        (now, now + 300)
    };
    let mut claims = json!({
        "iss": if craft == Craft::WrongIssuer { "http://127.0.0.1:1".to_string() } else { s.issuer.clone() },
        "sub": "crafted-person",
        "aud": if craft == Craft::WrongAudience { "someone-else" } else { "kizuna" },
        "iat": iat,
        "exp": exp,
        "nonce": nonce,
        "email": "crafted@hospital.example.jp",
        "email_verified": true,
    });
    if craft == Craft::WrongAtHash {
        claims["at_hash"] = json!("AAAAAAAAAAAAAAAAAAAAAA");
    }
    let id_token = match craft {
        Craft::AlgNone => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
        _ => {
            let (key, kid) = if craft == Craft::UnknownKey {
                (&s.rogue, "k9")
            } else {
                (&s.key, "k1")
            };
            crafted_jws(key, kid, &claims)
        }
    };
    axum::Json(json!({
        "access_token": kizuna_core::secret::random_token(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
}

/// A Kizuna install with the crafted provider as upstream `crafted`, and a city service.
struct CraftedCity {
    k: Kizuna,
    server: Server,
    op: CraftedOp,
    city: CityService,
}

async fn crafted_cities() -> Vec<CraftedCity> {
    let mut out = Vec::new();
    for k in Kizuna::each_backend().await {
        let k = k.env("KIZUNA_OIDC__UPSTREAM_TIMEOUT_SECS", "2");
        let server = city(&k);
        let op = CraftedOp::start().await;
        let issuer = op.issuer();
        serde_json::from_str::<Value>(&k.ok_stdin(
            &[
                "upstream",
                "add",
                "--alias",
                "crafted",
                "--name",
                "Crafted",
                "--org",
                "Hospital",
                "--issuer",
                &issuer,
                "--client-id",
                "kizuna",
                "--client-secret-stdin",
                "--email-domain",
                "hospital.example.jp",
                "--json",
            ],
            UPSTREAM_SECRET,
        ))
        .unwrap();
        let city = CityService::register(&k, &server).await;
        out.push(CraftedCity {
            k,
            server,
            op,
            city,
        });
    }
    out
}

fn crafted_browser() -> CrossBrowser {
    CrossBrowser {
        upstream: Some("crafted".into()),
        ..CrossBrowser::default()
    }
}

impl CraftedCity {
    /// A sign-in through the crafted provider that must end on Kizuna's refusal page with
    /// `status` and `text`; nothing is signed in or created, the server keeps serving, and
    /// the refusal is audited.
    async fn refused(&self, status: u16, text: &str) -> String {
        let users_before = self
            .k
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len();
        let browser = crafted_browser();
        let attempt = self.city.start(None);
        let (at, got, html) = match browser.walk(&attempt.url, CALLBACK).await {
            Arrival::Page(at, got, html) => (at, got, html),
            Arrival::Arrived(url) => panic!("signed in despite the bad answer: {url}"),
        };
        assert_eq!(got, status, "at {at}: {html}");
        assert!(html.contains(text), "expected {text:?} at {at}:\n{html}");
        let (account, _) = browser
            .get(&format!("{}/account", self.server.public))
            .await;
        assert_eq!(account, 303, "no session was started");
        let users_after = self
            .k
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len();
        assert_eq!(users_before, users_after, "no account was created");
        let (status, _) = browser
            .get(&format!(
                "{}/.well-known/openid-configuration",
                self.server.public
            ))
            .await;
        assert_eq!(status, 200, "the server keeps serving");
        html
    }

    fn audited(&self, reason: &str) {
        let audit = audit_actions(&self.k);
        assert!(
            audit
                .lines()
                .any(|l| l.contains("\"action\":\"federation.callback\"") && l.contains(reason)),
            "no audited refusal with {reason:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sane_crafted_upstream_signs_in() {
    for c in crafted_cities().await {
        let attempt = c.city.start(None);
        let back = arrive(&crafted_browser(), &attempt).await;
        let (claims, _) = c.city.finish(attempt, &back).await;
        assert_eq!(
            claims["acr"], "urn:kizuna:aal:1",
            "nothing claimed, ceiling 1"
        );
        assert_eq!(claims["email"], "crafted@hospital.example.jp");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answer_with_a_wrong_state_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::WrongState);
        c.refused(400, "does not match one started in this browser")
            .await;
        c.audited("bad state");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answer_from_another_browser_is_refused() {
    for c in crafted_cities().await {
        // The answer is fetched by a browser that did not start the sign-in (login CSRF).
        let starter = crafted_browser();
        let attempt = c.city.start(None);
        let to_upstream = match starter.walk(&attempt.url, &c.op.issuer()).await {
            Arrival::Arrived(url) => url,
            other => panic!("{other:?}"),
        };
        let response = starter.http.get(to_upstream).send().await.unwrap();
        let callback = response.headers()["location"].to_str().unwrap().to_string();
        let other = crafted_browser();
        let (status, html) = other.get(&callback).await;
        assert_eq!(status, 400, "{html}");
        assert!(html.contains("does not match one started in this browser"));
        // And the real browser can still finish: the state was not spent by the stranger.
        match starter.walk(&callback, CALLBACK).await {
            Arrival::Arrived(back) => {
                c.city.finish(attempt, &back).await;
            }
            other => panic!("{other:?}"),
        }
        // A replay of the same answer is refused: the state was used.
        let (status, _) = starter.get(&callback).await;
        assert_eq!(status, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_a_replayed_nonce_is_refused() {
    for c in crafted_cities().await {
        let attempt = c.city.start(None);
        let back = arrive(&crafted_browser(), &attempt).await;
        c.city.finish(attempt, &back).await;
        c.op.set(Craft::ReplayedNonce);
        c.refused(502, "could not be verified").await;
        c.audited("nonce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_signed_with_an_unknown_key_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::UnknownKey);
        c.refused(502, "could not be verified").await;
        c.audited("No matching key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_userinfo_answer_is_verified_and_its_claims_used() {
    for c in crafted_cities().await {
        c.op.set(Craft::SignedUserInfo);
        let attempt = c.city.start(None);
        let back = arrive(&crafted_browser(), &attempt).await;
        let (claims, _) = c.city.finish(attempt, &back).await;
        assert_eq!(claims["name"], "Signed Person", "{claims}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_authenticator_code_steps_a_federated_sign_in_up_to_aal2() {
    for c in crafted_cities().await {
        let browser = crafted_browser();
        let attempt = c.city.start(None);
        let back = arrive(&browser, &attempt).await;
        let (claims, _) = c.city.finish(attempt, &back).await;
        assert_eq!(claims["acr"], "urn:kizuna:aal:1");

        // The federated account sets up an authenticator app on its account page.
        let account = format!("{}/account/totp/new", c.server.public);
        let (status, html) = browser.get(&account).await;
        assert_eq!(status, 200, "{html}");
        let app = common::TotpApp::from_page(&html);
        let enrolled = browser
            .post_form(&account, "/account/totp", &[("code", &app.code())])
            .await;
        assert_eq!(enrolled.status(), 303);

        // A service that needs AAL2 asks for the code only, not another upstream sign-in.
        let attempt = c.city.start(Some("urn:kizuna:aal:2"));
        let (at, status, html) = match browser.walk(&attempt.url, CALLBACK).await {
            Arrival::Page(at, status, html) => (at, status, html),
            Arrival::Arrived(url) => panic!("AAL2 without a second factor: {url}"),
        };
        assert!(at.path().starts_with("/login/mfa"), "{at} {status}");
        assert!(html.contains("value=\"totp\""), "{html}");
        let answered = browser
            .post_form(
                at.as_str(),
                "/login/mfa",
                &[("method", "totp"), ("code", &app.code())],
            )
            .await;
        assert_eq!(answered.status(), 303);
        let next = at
            .join(answered.headers()["location"].to_str().unwrap())
            .unwrap();
        let back = match browser.walk(next.as_str(), CALLBACK).await {
            Arrival::Arrived(url) => url,
            Arrival::Page(at, status, html) => panic!("stopped at {at} ({status}): {html}"),
        };
        let (claims, _) = c.city.finish(attempt, &back).await;
        assert_eq!(claims["acr"], "urn:kizuna:aal:2", "{claims}");
        assert_eq!(claims["amr"], json!(["fed", "otp", "mfa"]));
        assert!(
            claims["idp"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userinfo_answer_signed_with_an_unknown_key_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::UserInfoUnknownKey);
        c.refused(502, "could not be verified").await;
        c.audited("the UserInfo answer's signature");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_userinfo_answer_for_another_client_or_encrypted_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::UserInfoWrongAudience);
        c.refused(502, "its aud is not Kizuna").await;
        c.audited("userinfo refused");
    }
    for c in crafted_cities().await {
        c.op.set(Craft::UserInfoEncrypted);
        c.refused(502, "encrypted (JWE)").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_id_token_alg_none_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::AlgNone);
        c.refused(502, "could not be verified").await;
        c.audited("ID token refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_response_without_the_iss_its_upstream_promises_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::IssSent);
        let attempt = c.city.start(None);
        let back = arrive(&crafted_browser(), &attempt).await;
        c.city.finish(attempt, &back).await;
        c.op.set(Craft::IssMissing);
        c.refused(502, "could not be verified").await;
        c.audited("issuer mix-up");
        c.op.set(Craft::IssOfAnother);
        c.refused(502, "could not be verified").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_from_another_issuer_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::WrongIssuer);
        c.refused(502, "could not be verified").await;
        c.audited("Invalid issuer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_audience_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::WrongAudience);
        c.refused(502, "could not be verified").await;
        c.audited("Invalid audiences");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::Expired);
        c.refused(502, "could not be verified").await;
        c.audited("Expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_response_shows_a_clear_page() {
    for c in crafted_cities().await {
        c.op.set(Craft::ErrorResponse);
        let html = c.refused(403, "was cancelled or refused").await;
        assert!(html.contains("access_denied"), "{html}");
        c.audited("upstream error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_discovery_times_out_with_a_clear_page() {
    for c in crafted_cities().await {
        c.op.set(Craft::SlowDiscovery);
        let started = std::time::Instant::now();
        let html = c.refused(502, "cannot be reached").await;
        assert!(html.contains("did not answer within 2 seconds"), "{html}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "no hang"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_discovery_shows_a_clear_page_and_cannot_be_added() {
    for c in crafted_cities().await {
        let issuer = c.op.issuer();
        c.op.task.abort();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        c.refused(502, "cannot be reached").await;
        let out = c.k.run(&[
            "upstream",
            "add",
            "--alias",
            "gone",
            "--name",
            "Gone",
            "--org",
            "Hospital",
            "--issuer",
            &issuer,
            "--client-id",
            "kizuna",
            "--private-key-jwt",
        ]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("discovery document could not be used"),
            "{stderr}"
        );
        assert!(
            !c.k.ok(&["upstream", "list"]).contains("gone"),
            "nothing stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_account_is_linked_to_an_existing_account_after_signing_in_to_it() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let taro = h.k.resident("taro", PASSWORD);
        let (browser, at, status, html) = h.stops_at("taro-upstream").await;
        assert_eq!((at.path(), status), ("/federation/link", 200), "{html}");
        assert!(html.contains("Sign in to your city account"), "{html}");
        assert!(
            !audit_actions(&h.k).contains("\"action\":\"federation.link\""),
            "not linked by address"
        );

        // Sign in to the existing account, then confirm.
        let signing_in = CrossBrowser {
            http: browser.http.clone(),
            password_login: Some(("taro".into(), PASSWORD.into())),
            ..CrossBrowser::default()
        };
        let start = format!("{}/login?next=/federation/link", h.server.public);
        let page = match signing_in.walk(&start, CALLBACK).await {
            Arrival::Page(at, 200, html) if at.path() == "/federation/link" => html,
            other => panic!("{other:?}"),
        };
        assert!(
            page.contains("Link the accounts") && page.contains("taro"),
            "{page}"
        );
        let link_url = format!("{}/federation/link", h.server.public);
        let linked = browser.post_form(&link_url, "/federation/link", &[]).await;
        assert_eq!(linked.status(), 303);
        let resume = url::Url::parse(&link_url)
            .unwrap()
            .join(linked.headers()["location"].to_str().unwrap())
            .unwrap();
        let back = match browser.walk(resume.as_str(), CALLBACK).await {
            Arrival::Arrived(url) => url,
            other => panic!("{other:?}"),
        };
        assert!(
            query_param(&back, "code").is_some(),
            "the original request continues: {back}"
        );

        // From now on the upstream signs taro in directly.
        let (claims, _) = h.sign_in(&upstream_browser("taro-upstream")).await;
        assert_eq!(claims["sub"], taro["id"]);
        assert!(claims["amr"].as_array().unwrap().contains(&json!("fed")));

        // taro sees the link on /account and may unlink it (he has a password).
        let account = CrossBrowser {
            password_login: Some(("taro".into(), PASSWORD.into())),
            ..CrossBrowser::default()
        };
        let page = match account
            .walk(
                &format!("{}/login?next=/account", h.server.public),
                CALLBACK,
            )
            .await
        {
            Arrival::Page(_, 200, html) => html,
            other => panic!("{other:?}"),
        };
        assert!(
            page.contains("Linked organization accounts") && page.contains("City Hospital"),
            "{page}"
        );
        let account_url = format!("{}/account", h.server.public);
        let removed = account
            .post_form(
                &account_url,
                "/account/links/remove",
                &[("upstream", "hospital")],
            )
            .await;
        assert_eq!(removed.headers()["location"], "/account?done=link_removed");
        let (_, at, _, _) = h.stops_at("taro-upstream").await;
        assert_eq!(
            at.path(),
            "/federation/link",
            "unlinked: linking is asked again"
        );
        let audit = audit_actions(&h.k);
        assert!(audit.contains("\"action\":\"federation.link_required\""));
        assert!(audit.contains("\"action\":\"federation.link\""));
        assert!(audit.contains("\"action\":\"federation.unlink\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_way_to_sign_in_cannot_be_unlinked() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let browser = upstream_browser("hanako");
        h.sign_in(&browser).await;
        let account_url = format!("{}/account", h.server.public);
        let (status, page) = browser.get(&account_url).await;
        assert_eq!(status, 200);
        assert!(page.contains("City Hospital"), "{page}");
        let refused = browser
            .post_form(
                &account_url,
                "/account/links/remove",
                &[("upstream", "hospital")],
            )
            .await;
        assert_eq!(refused.headers()["location"], "/account?error=last_method");
        let (_, page) = browser
            .get(&format!("{account_url}?error=last_method"))
            .await;
        assert!(page.contains("only way to sign in"), "{page}");
        assert!(page.contains("City Hospital"), "still linked");
        assert!(!audit_actions(&h.k).contains("\"action\":\"federation.unlink\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_upstream_email_matching_an_account_never_links_it() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let taro = h.k.resident("taro", PASSWORD);
        let users =
            h.k.json(&["user", "list", "--json"])
                .as_array()
                .unwrap()
                .len();
        let (browser, at, status, html) = h.stops_at("mallory").await;
        assert_eq!((at.path(), status), ("/federation/link", 200), "{html}");
        let (account, _) = browser.get(&format!("{}/account", h.server.public)).await;
        assert_eq!(account, 303, "no session for the existing account");
        // Confirming without signing in to the account links nothing.
        let link_url = format!("{}/federation/link", h.server.public);
        let response = browser.post_form(&link_url, "/federation/link", &[]).await;
        assert_eq!(response.headers()["location"], "/federation/link");
        assert_eq!(
            users,
            h.k.json(&["user", "list", "--json"])
                .as_array()
                .unwrap()
                .len(),
            "no new account"
        );
        let (_, at, _, _) = h.stops_at("mallory").await;
        assert_eq!(at.path(), "/federation/link", "still not linked");
        let audit = audit_actions(&h.k);
        assert!(audit.contains("\"action\":\"federation.link_required\""));
        assert!(!audit.contains("\"action\":\"federation.link\""));
        assert!(!audit.contains(&format!(
            "\"action\":\"federation.login\",\"target\":\"user:{}",
            taro["id"].as_str().unwrap()
        )));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_acr_above_its_ceiling_is_capped() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        // kenji's upstream says aal3 (mapped to AAL3/IAL3); the hospital may vouch for AAL2.
        let browser = upstream_browser("kenji");
        let (claims, _) = h.sign_in(&browser).await;
        assert_eq!(claims["acr"], "urn:kizuna:aal:2", "{claims}");
        let audit = audit_actions(&h.k);
        let login = audit
            .lines()
            .find(|l| l.contains("\"action\":\"federation.provision\""))
            .unwrap();
        assert!(
            login.contains("\"capped\":true") && login.contains("\"upstream_acr\":\"aal3\""),
            "{login}"
        );
        // A service that needs AAL3 is told it cannot be met (kenji has no local factor).
        let attempt = h.city.start(Some("urn:kizuna:aal:3"));
        let sso = CrossBrowser {
            http: browser.http.clone(),
            ..CrossBrowser::default()
        };
        let back = arrive(&sso, &attempt).await;
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some("unmet_authentication_requirements"),
            "{back}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kizuna_authenticates_to_the_upstream_with_private_key_jwt() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, true).await {
        let (claims, _) = h.sign_in(&upstream_browser("hanako")).await;
        assert_eq!(claims["email"], "hanako@hospital.example.jp");
        let (status, jwks) = CrossBrowser::default()
            .get(&format!("{}/federation/hospital/jwks", h.server.public))
            .await;
        assert_eq!(status, 200);
        let jwks: Value = serde_json::from_str(&jwks).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert!(jwks["keys"][0].get("d").is_none(), "public only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_back_channel_logout_ends_the_kizuna_session() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let browser = upstream_browser("hanako");
        h.sign_in(&browser).await;
        let account_url = format!("{}/account", h.server.public);
        assert_eq!(browser.get(&account_url).await.0, 200);
        // The person signs out at the hospital; it tells Kizuna over the back channel.
        let end = format!("{}/session/end?client_id=kizuna", h.op.issuer);
        match browser.walk(&end, "http://never.example").await {
            Arrival::Page(_, status, _) => assert!(status < 400, "{status}"),
            other => panic!("{other:?}"),
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while browser.get(&account_url).await.0 == 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "the Kizuna session is still live"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let audit = audit_actions(&h.k);
        let line = audit
            .lines()
            .find(|l| l.contains("\"action\":\"federation.backchannel_logout\""))
            .expect("audited");
        assert!(line.contains("\"sessions_ended\":1"), "{line}");
        // A replayed or forged logout token is refused with 400.
        let forged = reqwest::Client::new()
            .post(format!(
                "{}/federation/hospital/backchannel-logout",
                h.server.public
            ))
            .form(&[("logout_token", "e30.e30.")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_at_kizuna_signs_out_at_the_upstream_and_returns_to_the_service() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let browser = upstream_browser("hanako");
        let (_, id_token) = h.sign_in(&browser).await;
        let logout = url::Url::parse_with_params(
            &format!("{}/logout", h.server.public),
            &[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
                ("state", "bye-1"),
            ],
        )
        .unwrap();
        match browser.walk(logout.as_str(), AFTER_LOGOUT).await {
            Arrival::Arrived(url) => {
                assert_eq!(url.as_str(), format!("{AFTER_LOGOUT}?state=bye-1"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            browser.get(&format!("{}/account", h.server.public)).await.0,
            303
        );
        // The hospital's session is gone too: a new sign-in asks for the login again.
        let attempt = h.city.start(None);
        let no_login = CrossBrowser {
            http: browser.http.clone(),
            upstream: Some("hospital".into()),
            ..CrossBrowser::default()
        };
        match no_login.walk(&attempt.url, CALLBACK).await {
            Arrival::Page(at, _, _) => assert!(at.path().starts_with("/interaction/"), "{at}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_kizuna_is_an_upstream_city_to_city() {
    for k in Kizuna::each_backend().await {
        let server = city(&k);
        // The neighbouring city's Kizuna, on another host name (its own cookies).
        let port = common::free_port();
        let next = Kizuna::sqlite().env("KIZUNA_PUBLIC_URL", &format!("http://localhost:{port}"));
        let next_server = next
            .try_serve(&["--listen", &format!("127.0.0.1:{port}")])
            .unwrap_or_else(|f| panic!("{f}"));
        let aiko = next.resident("aiko", PASSWORD);
        let registered = next.json(&[
            "client",
            "create",
            "--name",
            "Kashiwa City",
            "--redirect-uri",
            &format!("{}/federation/callback", server.public),
            "--post-logout-redirect-uri",
            &format!("{}/federation/logout/done", server.public),
            "--backchannel-logout-uri",
            &format!("{}/federation/nextcity/backchannel-logout", server.public),
            "--json",
        ]);
        k.ok(&["org", "create", "--name", "Next City", "--kind", "city"]);
        k.ok_stdin(
            &[
                "upstream",
                "add",
                "--alias",
                "nextcity",
                "--name",
                "Next City",
                "--org",
                "Next City",
                "--issuer",
                &next_server.public,
                "--client-id",
                registered["client_id"].as_str().unwrap(),
                "--client-secret-stdin",
                "--scope",
                "profile",
                "--scope",
                "email",
                "--max-aal",
                "2",
            ],
            registered["client_secret"].as_str().unwrap(),
        );
        let city = CityService::register(&k, &server).await;
        let browser = CrossBrowser {
            upstream: Some("nextcity".into()),
            password_login: Some(("aiko".into(), PASSWORD.into())),
            ..CrossBrowser::default()
        };
        let attempt = city.start(None);
        let back = arrive(&browser, &attempt).await;
        let (claims, id_token) = city.finish(attempt, &back).await;
        assert_eq!(claims["idp"], next_server.public.as_str());
        assert_eq!(
            claims["acr"], "urn:kizuna:aal:1",
            "a password at the next city is AAL1"
        );
        assert_eq!(claims["name"], "Taro Yamada");
        assert!(
            claims.get("email").is_none(),
            "not verified there, so not kept: {claims}"
        );
        assert!(claims["amr"].as_array().unwrap().contains(&json!("fed")));
        assert!(
            audit_actions(&k).contains(aiko["id"].as_str().unwrap()),
            "the upstream subject is audited"
        );

        // Signing out here signs out there too, and the next city's back-channel logout
        // token (Kizuna to Kizuna) verifies.
        let logout = url::Url::parse_with_params(
            &format!("{}/logout", server.public),
            &[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
            ],
        )
        .unwrap();
        match browser.walk(logout.as_str(), AFTER_LOGOUT).await {
            Arrival::Arrived(_) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            browser
                .get(&format!("{}/account", next_server.public))
                .await
                .0,
            303
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let audit = audit_actions(&k);
            if let Some(line) = audit
                .lines()
                .find(|l| l.contains("\"action\":\"federation.backchannel_logout\""))
            {
                assert!(line.contains("\"outcome\":\"success\""), "{line}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no logout token from the next city"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_realm_discovery_sends_an_organization_address_to_its_upstream() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let browser = CrossBrowser::default();
        let attempt = h.city.start(None);
        let login = match browser.walk(&attempt.url, CALLBACK).await {
            Arrival::Page(at, 200, html) if at.path() == "/login" => (at, html),
            other => panic!("{other:?}"),
        };
        assert!(
            login.1.contains("Sign in with City Hospital"),
            "{}",
            login.1
        );
        assert!(login.1.contains("name=\"email\""), "the address field");
        let req = common::hidden_field(&login.1, "req").unwrap();
        let sent = browser
            .post_form(
                login.0.as_str(),
                "/login/federated",
                &[("req", &req), ("email", "Hanako@Hospital.Example.JP")],
            )
            .await;
        assert_eq!(sent.status(), 303);
        let to = url::Url::parse(sent.headers()["location"].to_str().unwrap()).unwrap();
        assert!(to.as_str().starts_with(&h.op.issuer), "{to}");
        assert_eq!(
            query_param(&to, "login_hint").as_deref(),
            Some("hanako@hospital.example.jp")
        );
        assert_eq!(
            query_param(&to, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert!(query_param(&to, "nonce").is_some() && query_param(&to, "state").is_some());
        let unknown = browser
            .post_form(
                login.0.as_str(),
                "/login/federated",
                &[("req", &req), ("email", "someone@elsewhere.example")],
            )
            .await;
        assert_eq!(unknown.status(), 401);
        assert!(
            unknown
                .text()
                .await
                .unwrap()
                .contains("no organization sign-in for this address")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_upstream_is_not_offered_and_its_answers_are_refused() {
    for c in crafted_cities().await {
        let browser = crafted_browser();
        let attempt = c.city.start(None);
        let at_upstream = match browser.walk(&attempt.url, &c.op.issuer()).await {
            Arrival::Arrived(url) => url,
            other => panic!("{other:?}"),
        };
        c.k.ok(&["upstream", "disable", "crafted"]);
        assert!(c.k.ok(&["upstream", "list"]).contains("disabled"));
        let (status, html) = match browser.walk(at_upstream.as_str(), CALLBACK).await {
            Arrival::Page(_, status, html) => (status, html),
            other => panic!("{other:?}"),
        };
        assert_eq!(status, 403, "{html}");
        assert!(html.contains("switched off"), "{html}");
        let attempt = c.city.start(None);
        match CrossBrowser::default().walk(&attempt.url, CALLBACK).await {
            Arrival::Page(_, 200, html) => {
                assert!(!html.contains("upstream-crafted"), "not offered")
            }
            other => panic!("{other:?}"),
        }
        assert!(audit_actions(&c.k).contains("\"action\":\"upstream.disable\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_linked_account_is_not_signed_in_through_the_upstream() {
    let Some(node) = node_peers() else { return };
    for h in hospital_cities(&node, false).await {
        let (claims, _) = h.sign_in(&upstream_browser("hanako")).await;
        h.k.ok(&["user", "disable", claims["sub"].as_str().unwrap()]);
        let (_, at, status, html) = h.stops_at("hanako").await;
        assert_eq!((at.path(), status), ("/federation/callback", 403), "{html}");
        assert!(html.contains("The linked account is not active"), "{html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_add_refuses_bad_settings_and_never_prints_the_secret() {
    let k = Kizuna::sqlite();
    k.ok(&[
        "org",
        "create",
        "--name",
        "Hospital",
        "--kind",
        "service-provider",
    ]);
    let add = |extra: &[&str]| {
        let mut args = vec![
            "upstream",
            "add",
            "--alias",
            "hospital",
            "--name",
            "City Hospital",
            "--org",
            "Hospital",
            "--client-id",
            "kizuna",
        ];
        args.extend(extra);
        let out = k.run(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(add(&["--issuer", "http://op.example", "--private-key-jwt"]).contains("https://"));
    assert!(add(&["--issuer", "https://op.example"]).contains("--client-secret-stdin"));
    assert!(
        add(&[
            "--issuer",
            "https://op.example",
            "--private-key-jwt",
            "--max-aal",
            "4"
        ])
        .contains("4")
    );
    assert!(
        add(&[
            "--issuer",
            "https://op.example",
            "--private-key-jwt",
            "--acr-map",
            "gold"
        ])
        .contains("VALUE=AAL")
    );
    assert!(
        add(&[
            "--issuer",
            "https://op.example",
            "--private-key-jwt",
            "--claim",
            "password=pwd"
        ])
        .contains("not an attribute")
    );
    assert_eq!(
        k.json(&["upstream", "list", "--json"]),
        json!([]),
        "nothing stored"
    );

    let op = CraftedOp::start().await;
    let out = k.ok_stdin(
        &[
            "upstream",
            "add",
            "--alias",
            "hospital",
            "--name",
            "City Hospital",
            "--org",
            "Hospital",
            "--issuer",
            &op.issuer(),
            "--client-id",
            "kizuna",
            "--client-secret-stdin",
        ],
        UPSTREAM_SECRET,
    );
    assert!(out.contains("/federation/callback"), "{out}");
    let listed = k.ok(&["upstream", "list", "--json"]);
    assert!(
        !listed.contains(UPSTREAM_SECRET) && !listed.contains("\"client_secret\""),
        "{listed}"
    );
    let again = k.run(&[
        "upstream",
        "add",
        "--alias",
        "hospital",
        "--name",
        "Again",
        "--org",
        "Hospital",
        "--issuer",
        &op.issuer(),
        "--client-id",
        "kizuna",
        "--private-key-jwt",
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_whose_at_hash_does_not_match_is_refused() {
    for c in crafted_cities().await {
        c.op.set(Craft::WrongAtHash);
        c.refused(502, "could not be verified").await;
        c.audited("at_hash does not match");
    }
}
