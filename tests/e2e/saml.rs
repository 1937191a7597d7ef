//! SAML 2.0 upstreams against pysaml2's IdP (`tests/saml/idp.py`), which this project did not
//! write: a city service signs a resident in through the university's IdP with JIT
//! provisioning and an encrypted assertion, logout goes both ways, and every answer that must
//! not be believed (a tampered signature, a replay, an expired assertion, another audience,
//! signature wrapping, a DTD, no signature) is refused, audited, and creates nothing. Once,
//! headless Chromium (`tests/node/saml.mjs`) walks the sign-in as a person would, the IdP's
//! page posting itself back across sites.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::rp::{CALLBACK, Rp};
use crate::common::saml_idp::SamlIdp;
use crate::common::upstream::{Arrival, CrossBrowser, saml_post_form};
use crate::common::{Kizuna, Server, query_param};

const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";
const PPT: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
const MFA: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract";

/// A city with the university's IdP as SAML upstream `uni` and a city service.
struct University {
    k: Kizuna,
    server: Server,
    idp: SamlIdp,
    rp: Rp,
    /// The IdP's entity id, as Kizuna stored it.
    entity_id: String,
}

fn hanako() -> Value {
    json!({
        "name_id": "u-1001",
        "name_id_format": "persistent",
        "attributes": {
            "mail": ["hanako@uni.example.jp"],
            "displayName": ["Hanako Sato"],
            "eduPersonPrincipalName": ["hanako@uni.example.jp"],
            "eduPersonAffiliation": ["student", "member"]
        },
        "authn_context": MFA,
        "session_index": "s-1",
        "data_encryption": "http://www.w3.org/2009/xmlenc11#aes256-gcm",
        "sign_assertion": true,
        "sign_response": false,
        "encrypt_assertion": false,
        "issue_offset_secs": 0,
        "audience": null,
    })
}

/// `k` running, with the university's IdP as SAML upstream `uni` and a city service.
async fn university(k: Kizuna) -> University {
    let server = k.serve();
    k.ok(&[
        "org",
        "create",
        "--name",
        "University",
        "--kind",
        "service-provider",
    ]);
    let idp = SamlIdp::start();
    let added = k.json(&[
        "upstream",
        "add",
        "--saml",
        "--alias",
        "uni",
        "--name",
        "City University",
        "--org",
        "University",
        "--metadata-url",
        &idp.metadata_url,
        "--acr-map",
        &format!("{PPT}=1"),
        "--acr-map",
        &format!("{MFA}=2"),
        "--max-aal",
        "2",
        "--email-domain",
        "uni.example.jp",
        "--claim",
        "groups=eduPersonAffiliation",
        "--json",
    ]);
    let sp_metadata = added["registration"]["saml"]["metadata_url"]
        .as_str()
        .expect("the SP metadata URL")
        .to_string();
    let mut settings = hanako();
    settings["sp_metadata_url"] = json!(sp_metadata);
    idp.control(settings).await;
    let rp = Rp::register(&k, "Library", &["--post-logout-redirect-uri", AFTER_LOGOUT]);
    University {
        entity_id: added["issuer"].as_str().unwrap().to_string(),
        k,
        server,
        idp,
        rp,
    }
}

/// [`university`] on each backend.
async fn universities() -> Vec<University> {
    let mut out = Vec::new();
    for k in Kizuna::each_backend().await {
        out.push(university(k).await);
    }
    out
}

fn browser(saml_post: bool) -> CrossBrowser {
    CrossBrowser {
        upstream: Some("uni".into()),
        saml_post,
        ..CrossBrowser::default()
    }
}

impl University {
    fn authorize(&self) -> String {
        self.rp
            .authorize_url(&self.server, "openid email profile", &[])
    }

    /// Signs in at the city service through the IdP; the ID token response.
    async fn sign_in(&self, browser: &CrossBrowser) -> Value {
        match browser.walk(&self.authorize(), CALLBACK).await {
            Arrival::Arrived(back) => self.rp.redeem(&self.server, &back).await,
            Arrival::Page(at, status, html) => panic!("stopped at {at} ({status}):\n{html}"),
        }
    }

    /// Walks a fresh browser to the IdP's HTTP-POST page: the browser, the ACS URL and the
    /// form's fields.
    async fn answer(&self) -> (CrossBrowser, String, Vec<(String, String)>) {
        let browser = browser(false);
        match browser.walk(&self.authorize(), CALLBACK).await {
            Arrival::Page(_, 200, html) if html.contains("SAMLResponse") => {
                let (action, form) = saml_post_form(&html);
                (browser, action, form)
            }
            other => panic!("no SAML answer: {other:?}"),
        }
    }

    fn accounts(&self) -> Vec<Value> {
        self.k
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    fn audit(&self) -> Vec<Value> {
        assert!(self.k.ok(&["audit", "verify"]).starts_with("ok: "));
        self.k
            .ok(&["audit", "export"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Walks a fresh browser to the IdP's answer and posts it to the ACS, changed by
    /// `tamper`: it must be refused (502), with one more refusal audited whose reason or
    /// detail names one of `reasons`. The page and the refusal.
    async fn refused_as(
        &self,
        tamper: impl FnOnce(String) -> String,
        reasons: &[&str],
    ) -> (String, String) {
        let (b, action, form) = self.answer().await;
        let before = self.refusals();
        let xml = tamper(decoded(&form));
        let (status, page) = post(&b, &action, &form, Some(&xml)).await;
        assert_eq!(status, 502, "{page}");
        assert_eq!(self.refusals(), before + 1, "audited");
        let refusal = self.last_refusal();
        assert!(reasons.iter().any(|r| refusal.contains(r)), "{refusal}");
        (page, refusal)
    }

    /// The last audit entry of an IdP's logout request.
    fn last_logout(&self) -> Value {
        self.audit()
            .into_iter()
            .rev()
            .find(|e| e["action"] == "federation.saml_logout")
            .expect("a SAML logout request is audited")
    }

    /// How many answers the audit log says were refused.
    fn refusals(&self) -> usize {
        self.audit()
            .iter()
            .filter(|e| e["action"] == "federation.callback" && e["outcome"] != "success")
            .count()
    }

    /// The reason of the last refused answer in the audit log.
    fn last_refusal(&self) -> String {
        self.audit()
            .iter()
            .rev()
            .find(|e| e["action"] == "federation.callback")
            .map(|e| format!("{} {}", e["details"]["reason"], e["details"]["detail"]))
            .unwrap_or_default()
    }
}

fn id_token(tokens: &Value) -> Value {
    kizuna_core::jose::Jws::parse(tokens["id_token"].as_str().expect("id_token"))
        .unwrap()
        .claims()
        .unwrap()
}

/// Posts `form` (its SAMLResponse replaced by `xml`) to the ACS: status and body.
async fn post(
    browser: &CrossBrowser,
    action: &str,
    form: &[(String, String)],
    xml: Option<&str>,
) -> (u16, String) {
    let mut form = form.to_vec();
    if let Some(xml) = xml {
        form[0].1 = STANDARD.encode(xml);
    }
    let response = browser
        .http
        .post(action)
        .header("accept", "text/html")
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn decoded(form: &[(String, String)]) -> String {
    String::from_utf8(STANDARD.decode(&form[0].1).unwrap()).unwrap()
}

/// The span of the first element named `local` (any prefix) in `xml`, end tag included.
fn element(xml: &str, local: &str) -> (usize, usize) {
    let open = [":", ""]
        .iter()
        .find_map(|sep| {
            xml.match_indices('<').find_map(|(i, _)| {
                let tag = &xml[i + 1..];
                let name_end = tag.find([' ', '>', '/'])?;
                let name = &tag[..name_end];
                (name == local || name.ends_with(&format!("{sep}{local}")) && !sep.is_empty())
                    .then_some(i)
            })
        })
        .unwrap_or_else(|| panic!("no {local} in {xml}"));
    let tag_end = xml[open..].find([' ', '>']).unwrap() + open;
    let name = &xml[open + 1..tag_end];
    let close = format!("</{name}>");
    let end = xml[open..].find(&close).unwrap() + open + close.len();
    (open, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_signs_in_through_a_saml_idp_just_in_time_and_again_with_an_encrypted_assertion()
{
    for u in universities().await {
        // Kizuna's SP metadata names its ACS, its logout service and both certificates.
        let sp = reqwest::get(format!("{}/federation/saml/uni/metadata", u.server.public))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(sp.contains("AuthnRequestsSigned=\"true\""), "{sp}");
        assert!(sp.contains("/federation/saml/uni/acs"), "{sp}");
        assert!(sp.contains("use=\"encryption\""), "{sp}");

        let tokens = u.sign_in(&browser(true)).await;
        let claims = id_token(&tokens);
        assert_eq!(claims["amr"], json!(["fed"]), "{claims}");
        assert_eq!(claims["idp"], json!(u.entity_id), "{claims}");
        assert_eq!(claims["email"], "hanako@uni.example.jp", "{claims}");
        assert_eq!(claims["email_verified"], true, "{claims}");
        assert_eq!(claims["name"], "Hanako Sato", "{claims}");
        let accounts = u.accounts();
        assert_eq!(accounts.len(), 1, "{accounts:?}");
        assert!(
            accounts[0]["username"]
                .as_str()
                .unwrap()
                .starts_with("uni."),
            "{accounts:?}"
        );
        let audit = u.audit();
        let login = audit
            .iter()
            .rev()
            .find(|e| e["action"] == "federation.login")
            .expect("the sign-in is audited");
        assert_eq!(login["details"]["aal"], 2, "{login}");
        assert_eq!(
            login["details"]["mapped"]["groups"],
            json!(["student", "member"]),
            "{login}"
        );

        // An encrypted assertion is decrypted with the SP key: the same person again.
        u.idp.control(json!({"encrypt_assertion": true})).await;
        let again = id_token(&u.sign_in(&browser(true)).await);
        assert_eq!(again["sub"], claims["sub"], "{again}");
        assert!(
            u.idp.last_response().await.contains("EncryptedAssertion"),
            "the IdP encrypted it"
        );
        assert_eq!(u.accounts().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_answers_that_must_not_be_believed_are_refused_audited_and_create_nothing() {
    for u in universities().await {
        // A tampered attribute: the digest no longer matches.
        let (page, _) = u
            .refused_as(
                |xml| xml.replace("hanako@uni.example.jp", "mallory@uni.example.jp"),
                &["digest", "signature"],
            )
            .await;
        assert!(page.contains("could not be verified"), "{page}");

        // No signature at all.
        u.idp
            .control(json!({"sign_assertion": false, "sign_response": false}))
            .await;
        u.refused_as(|xml| xml, &["unsigned"]).await;
        u.idp.control(json!({"sign_assertion": true})).await;

        // An assertion issued an hour ago is expired.
        u.idp.control(json!({"issue_offset_secs": -3600})).await;
        u.refused_as(|xml| xml, &["expired"]).await;
        u.idp.control(json!({"issue_offset_secs": 0})).await;

        // An assertion for another service provider.
        u.idp
            .control(json!({"audience": "https://elsewhere.example/sp"}))
            .await;
        u.refused_as(|xml| xml, &["audience"]).await;
        u.idp.control(json!({"audience": null})).await;

        // A DTD with an external entity is refused before anything else is read.
        let with_dtd = |xml: String| {
            let body = xml.trim_start_matches(|c| c != '<');
            let body = match body.strip_prefix("<?xml") {
                Some(rest) => &rest[rest.find("?>").unwrap() + 2..],
                None => body,
            };
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{body}"
            )
        };
        u.refused_as(with_dtd, &["dtd"]).await;

        // Signature wrapping: the signed assertion stays, an unsigned one naming someone
        // else is put first (XSW3), last (XSW4) or the signed one is hidden inside the evil
        // one (XSW5-like).
        for shape in ["before", "after", "inside"] {
            let wrap = |xml: String| {
                let (start, end) = element(&xml, "Assertion");
                let signed = &xml[start..end];
                let (s_start, s_end) = element(signed, "Signature");
                let evil = format!("{}{}", &signed[..s_start], &signed[s_end..])
                    .replace("u-1001", "u-6666")
                    .replace("hanako@uni.example.jp", "mayor@uni.example.jp")
                    .replacen(" ID=\"", " ID=\"evil", 1);
                match shape {
                    "before" => format!("{}{evil}{signed}{}", &xml[..start], &xml[end..]),
                    "after" => format!("{}{signed}{evil}{}", &xml[..start], &xml[end..]),
                    _ => {
                        let close = evil.rfind("</").unwrap();
                        format!(
                            "{}{}{signed}{}{}",
                            &xml[..start],
                            &evil[..close],
                            &evil[close..],
                            &xml[end..]
                        )
                    }
                }
            };
            let (_, refusal) = u
                .refused_as(wrap, &["\"wrapping\"", "\"duplicate id\""])
                .await;
            assert!(
                refusal.starts_with("\"wrapping\"") || refusal.starts_with("\"duplicate id\""),
                "{shape}: {refusal}"
            );
        }
        assert!(
            u.accounts().is_empty(),
            "a refused answer created an account"
        );

        // An answer that names no request (IdP-initiated, or its RelayState dropped) is
        // refused: Kizuna takes only answers to requests this browser started.
        let (b, action, form) = u.answer().await;
        let unsolicited = vec![form[0].clone()];
        assert_eq!(post(&b, &action, &unsolicited, None).await.0, 400);
        assert!(
            u.last_refusal().contains("bad state"),
            "{}",
            u.last_refusal()
        );

        // A good answer signs in; posting it again is refused, and so is posting it for
        // a sign-in started afterwards (its InResponseTo names the first).
        let (b, action, form) = u.answer().await;
        let (status, _) = post(&b, &action, &form, None).await;
        assert_eq!(status, 303);
        assert_eq!(post(&b, &action, &form, None).await.0, 400);
        assert!(
            u.last_refusal().contains("bad state"),
            "{}",
            u.last_refusal()
        );
        let (b2, action2, fresh) = u.answer().await;
        let replayed = vec![form[0].clone(), fresh[1].clone()];
        assert_eq!(post(&b2, &action2, &replayed, None).await.0, 502);
        assert!(
            u.last_refusal().contains("response"),
            "{}",
            u.last_refusal()
        );
        assert_eq!(u.accounts().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_logout_goes_from_kizuna_to_the_idp_and_from_the_idp_to_kizuna() {
    for u in universities().await {
        // Kizuna → IdP: RP-initiated logout continues at the IdP with a signed
        // LogoutRequest and comes back to the city service.
        let b = browser(true);
        let tokens = u.sign_in(&b).await;
        let logout = url::Url::parse_with_params(
            &format!("{}/logout", u.server.public),
            &[
                ("id_token_hint", tokens["id_token"].as_str().unwrap()),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
                ("state", "bye-1"),
            ],
        )
        .unwrap();
        match b.walk(logout.as_str(), AFTER_LOGOUT).await {
            Arrival::Arrived(url) => {
                assert_eq!(query_param(&url, "state").as_deref(), Some("bye-1"))
            }
            other => panic!("{other:?}"),
        }
        let logouts = u.idp.logouts().await;
        let request = &logouts.as_array().unwrap()[0];
        assert_eq!(request["name_id"], "u-1001", "{logouts}");
        assert_eq!(request["signature_verified"], true, "{logouts}");
        assert_eq!(b.get(&format!("{}/account", u.server.public)).await.0, 303);

        // IdP → Kizuna: the IdP's signed LogoutRequest ends the session it names.
        let b = browser(true);
        u.sign_in(&b).await;
        assert_eq!(b.get(&format!("{}/account", u.server.public)).await.0, 200);
        let url = u.idp.initiate_logout("u-1001", "s-1").await;
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303);
        let back = answer.headers()["location"].to_str().unwrap().to_string();
        assert!(back.contains("SAMLResponse="), "{back}");
        assert_eq!(b.get(&format!("{}/account", u.server.public)).await.0, 303);
        let ended = u.last_logout();
        assert_eq!(ended["details"]["sessions_ended"], 1, "{ended}");

        // The same request with its signature broken is refused and audited.
        let forged = u.idp.initiate_logout("u-1001", "s-1").await.replacen(
            "Signature=",
            "Signature=AAAA",
            1,
        );
        let refused = reqwest::get(&forged).await.unwrap();
        assert_eq!(refused.status(), 400);
        let last = u.last_logout();
        assert_eq!(last["outcome"], "failure", "{last}");

        // Without its signature at all it is refused and audited as unsigned.
        let signed = u.idp.initiate_logout("u-1001", "s-1").await;
        let unsigned = signed[..signed.find("&SigAlg=").expect("a signed request")].to_string();
        assert_eq!(reqwest::get(&unsigned).await.unwrap().status(), 400);
        let last = u.last_logout();
        assert!(
            last["details"]["detail"]
                .as_str()
                .unwrap()
                .contains("not signed"),
            "{last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_identity_with_an_existing_accounts_address_is_linked_after_signing_in_to_it() {
    const PASSWORD: &str = "correct horse battery staple";
    for u in universities().await {
        let taro = u.k.resident("taro", PASSWORD);
        // A transient NameID: the eduPersonPrincipalName is who it is.
        u.idp
            .control(json!({
                "name_id": "t-8c1f",
                "name_id_format": "transient",
                "attributes": {
                    "mail": ["taro@city.example.jp"],
                    "displayName": ["Taro at the university"],
                    "eduPersonPrincipalName": ["taro@uni.example.jp"]
                }
            }))
            .await;
        let b = browser(true);
        let html = match b.walk(&u.authorize(), CALLBACK).await {
            Arrival::Page(at, 200, html) if at.path() == "/federation/link" => html,
            other => panic!("{other:?}"),
        };
        assert!(html.contains("Sign in to your city account"), "{html}");
        assert!(
            u.audit().iter().all(|e| e["action"] != "federation.link"),
            "not linked by address"
        );

        let signing_in = CrossBrowser {
            http: b.http.clone(),
            password_login: Some(("taro".into(), PASSWORD.into())),
            ..CrossBrowser::default()
        };
        let start = format!("{}/login?next=/federation/link", u.server.public);
        assert!(matches!(
            signing_in.walk(&start, CALLBACK).await,
            Arrival::Page(at, 200, _) if at.path() == "/federation/link"
        ));
        let link_url = format!("{}/federation/link", u.server.public);
        let linked = b.post_form(&link_url, "/federation/link", &[]).await;
        assert_eq!(linked.status(), 303);
        let link = u
            .audit()
            .into_iter()
            .rev()
            .find(|e| e["action"] == "federation.link")
            .expect("the link is audited");
        assert_eq!(link["details"]["subject"], "taro@uni.example.jp", "{link}");

        // The next transient NameID differs; the same person is signed in to taro.
        u.idp.control(json!({"name_id": "t-93d0"})).await;
        let claims = id_token(&u.sign_in(&browser(true)).await);
        assert_eq!(claims["sub"], taro["id"], "{claims}");
        assert_eq!(u.accounts().len(), 1, "nothing provisioned");

        // Without an eduPersonPrincipalName a transient NameID names no one: refused.
        u.idp
            .control(json!({"attributes": {"mail": ["taro@city.example.jp"]}}))
            .await;
        let (b, action, form) = u.answer().await;
        assert_eq!(post(&b, &action, &form, None).await.0, 502);
        assert!(
            u.last_refusal().contains("transient"),
            "{}",
            u.last_refusal()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_idp_is_registered_through_the_admin_api_by_its_metadata_url() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        k.ok(&[
            "org",
            "create",
            "--name",
            "Hospital",
            "--kind",
            "service-provider",
        ]);
        let token = crate::common::service_token(&k, &server.public, "kizuna:admin", None).await;
        let idp = SamlIdp::start();
        let api = format!("{}/admin/api/v1/upstreams", server.public);
        let http = reqwest::Client::new();
        let add = |alias: &str, url: &str| {
            http.post(&api).bearer_auth(&token).json(&json!({
                "alias": alias, "name": "City Hospital", "org_id": "Hospital",
                "saml_metadata_url": url, "acr_map": {PPT: {"aal": 1, "ial": 1}},
            }))
        };

        // Metadata that cannot be read stores nothing.
        let missing = add("gone", &format!("{}/nothing-here", idp.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 422);
        let why: Value = missing.json().await.unwrap();
        assert!(
            why["detail"].as_str().unwrap().contains("metadata"),
            "{why}"
        );
        assert!(!k.ok(&["upstream", "list"]).contains("gone"));
        // Saying "saml" without giving the metadata is refused too.
        let half = http
            .post(&api)
            .bearer_auth(&token)
            .json(&json!({"alias": "half", "name": "Half", "org_id": "Hospital",
                          "issuer": idp.metadata_url, "client_id": "kizuna", "client_auth": "saml"}))
            .send()
            .await
            .unwrap();
        assert_eq!(half.status(), 422);
        let why: Value = half.json().await.unwrap();
        assert!(
            why["detail"].as_str().unwrap().contains("metadata"),
            "{why}"
        );

        let created = add("hospital", &idp.metadata_url).send().await.unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["status"], "active", "{created}");
        assert_eq!(created["issuer"], idp.metadata_url, "{created}");
        assert_eq!(
            created["registration"]["saml"]["acs_url"],
            format!("{}/federation/saml/hospital/acs", server.public),
            "{created}"
        );
        assert!(
            created["jwks"].is_null(),
            "no client-assertion key: {created}"
        );
        assert!(
            created["sp_metadata"]
                .as_str()
                .unwrap()
                .contains("<md:SPSSODescriptor"),
            "{created}"
        );
        // The command line prints the same SP metadata to register at the IdP.
        let shown = k.ok(&["upstream", "show", "hospital"]);
        assert!(
            shown.contains("entity id:") && shown.contains("entityID=\""),
            "{shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_signs_in_through_the_saml_idp_in_a_real_browser() {
    let (Some(node), Some(chromium)) = (crate::common::node_peers(), crate::common::chromium())
    else {
        return;
    };
    let u = university(Kizuna::sqlite()).await;
    let out = std::process::Command::new("node")
        .arg("saml.mjs")
        .current_dir(&node)
        .env("AUTHORIZE_URL", u.authorize())
        .env("CALLBACK", CALLBACK)
        .env("UPSTREAM", "uni")
        .env("CHROMIUM", &chromium)
        .env(
            "ARTIFACTS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-artifacts/saml"),
        )
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "saml.mjs failed:\n{stderr}\nthe IdP:\n{}",
        u.idp.log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no report:\n{stdout}\n{stderr}"));
    // Over plain HTTP (this test) the binding cookie is Lax; over HTTPS it is None and Secure.
    assert_eq!(
        report["cookie"],
        json!({"httpOnly": true, "sameSite": "Lax"}),
        "{report}"
    );
    let code = report["code"].as_str().unwrap();
    let back = url::Url::parse(&format!("{CALLBACK}?code={code}&state=st")).unwrap();
    let claims = id_token(&u.rp.redeem(&u.server, &back).await);
    assert_eq!(claims["amr"], json!(["fed"]), "{claims}");
    assert_eq!(claims["email"], "hanako@uni.example.jp", "{claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sp_decryption_key_is_resealed_by_a_kek_rotation_and_still_decrypts() {
    let u = university(Kizuna::sqlite()).await;
    u.idp.control(json!({"encrypt_assertion": true})).await;
    let before = id_token(&u.sign_in(&browser(true)).await);
    let University {
        mut k,
        server,
        idp,
        rp,
        entity_id,
    } = u;
    let listen = server.base.trim_start_matches("http://").to_string();
    server.stop();
    let new = k.dir.path().join("new.kek");
    k.ok(&["kek", "create", "--out", new.to_str().unwrap()]);
    let report = k.json(&[
        "kek",
        "rotate",
        "--new-kek-file",
        new.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        report["kinds"]["upstream_client_secret"]["resealed"], 1,
        "the SP decryption key: {report}"
    );
    // The new KEK alone: the old one cannot open anything any more.
    k.set_env("KIZUNA_KEK_FILE", new.to_str().unwrap());
    let server = k
        .try_serve(&["--listen", &listen])
        .unwrap_or_else(|e| panic!("{e}"));
    let u = University {
        k,
        server,
        idp,
        rp,
        entity_id,
    };
    let after = id_token(&u.sign_in(&browser(true)).await);
    assert_eq!(after["sub"], before["sub"]);
    assert!(u.idp.last_response().await.contains("EncryptedAssertion"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_logout_request_issued_long_ago_is_refused() {
    let u = university(Kizuna::sqlite()).await;
    let b = browser(true);
    u.sign_in(&b).await;
    // Signed by the IdP an hour before Kizuna reads it: captured and replayed later, it
    // would sign the person out of whatever session they have by then.
    let url = u.idp.initiate_logout("u-1001", "s-1").await;
    u.k.clock().advance(3600);
    let answer = reqwest::get(&url).await.unwrap();
    assert_eq!(answer.status(), 400);
    let refused = u.last_logout();
    assert_eq!(refused["outcome"], "failure", "{refused}");
    assert!(
        refused["details"]["detail"]
            .as_str()
            .unwrap()
            .contains("issued"),
        "{refused}"
    );
}
