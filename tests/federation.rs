//! Federation: Kizuna brokers an organization's identity provider. A city service (an RP
//! built with the `openidconnect` crate) sends the resident to Kizuna, Kizuna to the
//! upstream — panva's `oidc-provider` (npm; not written here), another Kizuna, or a small
//! provider in this file that signs crafted tokens for the bad-input cases — and back.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Value, json};

use common::upstream::{Arrival, CrossBrowser, NodeOp};
use common::{Kizuna, Server, node_peers, query_param};

const CALLBACK: &str = "http://127.0.0.1:9/callback";
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
                    "acr": "aal1", "amr": ["pwd"]}
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
