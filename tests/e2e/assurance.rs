//! Identity assurance end to end, on SQLite and PostgreSQL: the signature-certificate path
//! with a JPKI-like test CA (good, revoked, expired, untrusted; challenge reuse and expiry,
//! wrong challenge, missing attributes, CRL unreachable), the eKYC webhook with a vendor
//! simulator (valid, bad signature, replayed, timeout, a level above the ceiling), the
//! counter, `verified_claims` parsed by an RP built on the `openidconnect` crate, claims a
//! client is not allowed (omitted), one person one account, and editing a verified name.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::jpki::{Card, CrlServer, Holder, JpkiCa};
use crate::common::rp::{CALLBACK, Rp};
use crate::common::upstream::{Arrival, CrossBrowser, NodeOp};
use crate::common::{
    Browser, Kizuna, Landing, Server, database, free_port, hidden_field, query_param,
};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, ClientId, ClientSecret, IdToken, IdTokenVerifier, IssuerUrl,
    JsonWebKeySetUrl, Nonce,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const PASSWORD: &str = "a resident's long passphrase";

/// The `verified_claims` an RP reads (OpenID Connect for Identity Assurance 1.0 §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ida {
    verified_claims: VerifiedClaims,
}
impl AdditionalClaims for Ida {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VerifiedClaims {
    verification: Verification,
    claims: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verification {
    trust_framework: String,
    assurance_level: Option<String>,
    time: String,
    evidence: Vec<Value>,
}

type IdaIdToken =
    IdToken<Ida, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

fn rp(k: &Kizuna, assurance: &[&str]) -> Rp {
    let rp = Rp::register(k, "Childcare benefits", &[]);
    let mut args = vec!["client", "set-assurance", rp.id.as_str()];
    args.extend_from_slice(assurance);
    args.push("--json");
    k.json(&args);
    rp
}

/// Asks for these verified claims in both the ID token and UserInfo.
fn verified_claims_request(names: &[&str]) -> String {
    let claims: serde_json::Map<String, Value> =
        names.iter().map(|n| (n.to_string(), Value::Null)).collect();
    let vc = json!({"verification": {"trust_framework": null}, "claims": claims});
    json!({"id_token": {"verified_claims": vc}, "userinfo": {"verified_claims": vc}}).to_string()
}

fn authorize_url(server: &Server, rp: &Rp, extra: &[(&str, &str)]) -> String {
    rp.authorize_url(server, "openid profile", extra)
}

fn claims_of(id_token: &str) -> Value {
    kizuna_core::jose::Jws::parse(id_token)
        .unwrap()
        .claims()
        .unwrap()
}

async fn userinfo(server: &Server, access_token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/userinfo", server.public))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn count(k: &Kizuna, sql: &str, bind: &str) -> i64 {
    let db = database(k).await;
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// An install trusting a JPKI-like CA whose CRL a local server publishes.
struct X509Env {
    k: Kizuna,
    server: Server,
    ca: JpkiCa,
    crl: CrlServer,
}

impl X509Env {
    async fn new(k: Kizuna) -> X509Env {
        X509Env::with(k, None, "crl_cache_secs = 0\n").await
    }

    /// With the CA's certificates naming `crl_url` (default: the local CRL server) and these
    /// `[assurance.x509]` lines.
    async fn with(k: Kizuna, crl_url: Option<&str>, extra_toml: &str) -> X509Env {
        let crl = CrlServer::start().await;
        let ca = JpkiCa::new("Japan", crl_url.unwrap_or(&crl.url)).await;
        crl.set(ca.crl(&[]));
        let anchor = k.dir.path().join("jpki-root.pem");
        std::fs::write(&anchor, &ca.root_pem).unwrap();
        std::fs::write(
            k.dir.path().join("kizuna.toml"),
            format!(
                "[assurance.x509]\ntrust_anchors = [{:?}]\n{extra_toml}",
                anchor.display().to_string()
            ),
        )
        .unwrap();
        let server = k.serve();
        X509Env { k, server, ca, crl }
    }

    /// A resident signed in on Kizuna's own pages.
    async fn resident(&self, username: &str) -> (Browser, String) {
        let user = self.k.resident(username, PASSWORD);
        let browser = Browser::for_server(&self.k, &self.server);
        browser.sign_in_to_account(username, PASSWORD).await;
        (browser, user["id"].as_str().unwrap().to_string())
    }
}

/// A challenge for the signed-in browser (optionally for a pending sign-in).
async fn challenge(browser: &Browser, req: Option<&str>) -> (String, String) {
    let response = browser
        .http
        .post(format!("{}/assurance/x509/challenge", browser.base))
        .json(&json!({"req": req}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["challenge_id"].as_str().unwrap().to_string(),
        body["challenge"].as_str().unwrap().to_string(),
    )
}

/// What the card-reader app posts; the status and JSON answer.
async fn verify(server: &Server, id: &str, signature: &str, card: &Card) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/assurance/x509/verify", server.public))
        .json(
            &json!({"challenge_id": id, "signature": signature, "certificate": card.certificate()}),
        )
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Proves the signed-in browser's account with `card`: a fresh challenge, signed by the card.
async fn prove(server: &Server, browser: &Browser, card: &Card) -> (u16, Value) {
    let (id, c) = challenge(browser, None).await;
    verify(server, &id, &card.sign(&c), card).await
}

async fn ial(k: &Kizuna, user_id: &str) -> i64 {
    count(
        k,
        "SELECT COALESCE(MAX(level), 1) FROM identity_proofing WHERE user_id = $1 AND superseded_at IS NULL",
        user_id,
    )
    .await
}

// Multi-threaded so the clients' connections wind down while a server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_at_ial1_proves_with_a_jpki_signature_and_the_rp_gets_verified_claims() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (k, server) = (&env.k, &env.server);
        let rp = rp(
            k,
            &[
                "--min-ial",
                "3",
                "--verified-claim",
                "family_name",
                "--verified-claim",
                "given_name",
                "--verified-claim",
                "birthdate",
                "--verified-claim",
                "address",
                "--proofing-provider",
                "x509-signature",
            ],
        );
        let user = k.resident("taro", PASSWORD);
        let user_id = user["id"].as_str().unwrap();
        let claims = verified_claims_request(&["family_name", "given_name", "birthdate", "gender"]);
        let url = authorize_url(
            server,
            &rp,
            &[
                ("claims", &claims),
                ("acr_values", "urn:kizuna:ial:3:aal:1"),
            ],
        );
        let browser = Browser::for_server(k, server);
        // Below the client's IAL: the identity page offers the providers the client allows.
        let Landing::Page(200, html) = browser.walk(&url, Some(("taro", PASSWORD)), true).await
        else {
            panic!("expected the identity page");
        };
        assert!(html.contains("data-provider=\"x509-signature\""), "{html}");
        assert!(!html.contains("data-provider=\"counter\""), "{html}");
        assert!(html.contains("id=\"ial-needed\""), "{html}");
        let req = hidden_field(&html, "req").expect("the pending request");
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let (id, challenge) = challenge(&browser, Some(&req)).await;
        let (status, answer) = verify(server, &id, &card.sign(&challenge), &card).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["level"], 3);
        assert_eq!(ial(k, user_id).await, 3);
        // Back to the flow: the code comes now.
        let callback = browser
            .sign_in(answer["continue_url"].as_str().unwrap(), "taro", PASSWORD)
            .await;
        let tokens = rp.redeem(server, &callback).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(claims_of(id_token)["acr"], "urn:kizuna:ial:3:aal:1");

        // The RP (openidconnect crate) verifies the ID token and reads verified_claims.
        let vc = &rp_verified_claims(server, &rp, id_token).await;
        assert_eq!(vc.verification.trust_framework, "nist_800_63A");
        assert_eq!(vc.verification.assurance_level.as_deref(), Some("ial3"));
        assert!(!vc.verification.time.is_empty());
        assert_eq!(vc.verification.evidence[0]["type"], "electronic_signature");
        assert_eq!(vc.claims["family_name"], "山田");
        assert_eq!(vc.claims["given_name"], "太郎");
        assert_eq!(vc.claims["birthdate"], "1980-01-31");
        // Asked for but not allowed to this client: left out.
        assert!(!vc.claims.contains_key("gender"), "{:?}", vc.claims);
        assert!(vc.evidence_has_no_numbers());

        let info = userinfo(server, tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(
            info["verified_claims"]["claims"]["given_name"], "太郎",
            "{info}"
        );
        assert_eq!(info["name"], "山田 太郎");
        for action in ["assurance.proofing", "assurance.level"] {
            assert_eq!(
                count(
                    k,
                    &format!("SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = '{action}' AND outcome = 'success'"),
                    &format!("user:{user_id}"),
                )
                .await,
                1,
                "{action}"
            );
        }
        // Every release of verified claims is in the audit log, naming the claims.
        assert_eq!(
            count(
                k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action IN ('token.issue', 'userinfo.release') AND details LIKE '%verified_claims.given_name%'",
                &format!("user:{user_id}"),
            )
            .await,
            2
        );
        // The discovery document advertises identity assurance.
        let meta: Value = reqwest::get(server.url("/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["verified_claims_supported"], true);
        assert_eq!(meta["trust_frameworks_supported"], json!(["nist_800_63A"]));
        assert!(
            meta["evidence_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("electronic_signature"))
        );
        assert!(
            meta["claims_in_verified_claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("birthdate"))
        );
        assert!(
            meta["acr_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("urn:kizuna:ial:3:aal:2"))
        );
    }
}

/// What an RP built on the `openidconnect` crate reads: the ID token verified against
/// Kizuna's JWK Set (signature, issuer, audience, nonce `n-1`), then its `verified_claims`.
async fn rp_verified_claims(server: &Server, rp: &Rp, id_token: &str) -> VerifiedClaims {
    let http = reqwest::Client::new();
    let jwks = CoreJsonWebKeySet::fetch_async(
        &JsonWebKeySetUrl::new(format!("{}/jwks", server.public)).unwrap(),
        &http,
    )
    .await
    .unwrap();
    let verifier = IdTokenVerifier::new_confidential_client(
        ClientId::new(rp.id.clone()),
        ClientSecret::new(rp.secret.clone()),
        IssuerUrl::new(server.public.clone()).unwrap(),
        jwks,
    )
    .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let parsed: IdaIdToken = id_token.parse().unwrap();
    let claims = parsed
        .claims(&verifier, &Nonce::new(common::rp::NONCE.into()))
        .expect("ID token verifies");
    claims.additional_claims().verified_claims.clone()
}

trait NoNumbers {
    fn evidence_has_no_numbers(&self) -> bool;
}

impl NoNumbers for VerifiedClaims {
    /// Certificate serial numbers and document numbers are never released.
    fn evidence_has_no_numbers(&self) -> bool {
        self.verification.evidence.iter().all(|e| {
            e.get("serial_number").is_none()
                && e["document_details"].get("document_number").is_none()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_and_untrusted_certificates_are_refused() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (browser, user_id) = env.resident("taro").await;
        let revoked = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        env.crl.set(env.ca.crl(&[&revoked]));
        let expired = env.ca.card(Some(&Holder::taro()), -400, -1).await;
        let stranger = JpkiCa::new("Elsewhere", &env.crl.url).await;
        let untrusted = stranger.card(Some(&Holder::taro()), -1, 365).await;
        for (card, code) in [
            (&revoked, "certificate_revoked"),
            (&expired, "certificate_expired"),
            (&untrusted, "untrusted_certificate"),
        ] {
            let (status, answer) = prove(&env.server, &browser, card).await;
            assert_eq!(status, 422, "{code}: {answer}");
            assert_eq!(answer["error"], code, "{answer}");
        }
        assert_eq!(ial(&env.k, &user_id).await, 1);
        assert_eq!(
            count(
                &env.k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'assurance.proofing' AND outcome = 'denied'",
                &format!("user:{user_id}"),
            )
            .await,
            3
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_works_once_and_not_after_it_expired() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (browser, _) = env.resident("taro").await;
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        // A failed try spends the challenge too.
        let (id, c) = challenge(&browser, None).await;
        let (status, _) = verify(&env.server, &id, "AAAA", &card).await;
        assert_eq!(status, 422);
        let (status, answer) = verify(&env.server, &id, &card.sign(&c), &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_challenge"))
        );
        // Reused after success.
        assert_eq!(prove(&env.server, &browser, &card).await.0, 200);
        let (status, answer) = verify(&env.server, &id, &card.sign(&c), &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_challenge"))
        );
        // Expired.
        let (id, c) = challenge(&browser, None).await;
        let db = database(&env.k).await;
        sqlx::query("UPDATE proofing_attempts SET expires_at = 1 WHERE id = $1")
            .bind(&id)
            .execute(db.pool())
            .await
            .unwrap();
        let (status, answer) = verify(&env.server, &id, &card.sign(&c), &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_challenge"))
        );
        assert!(answer["message"].as_str().unwrap().contains("expired"));
        // One person cannot keep more than ten challenges open.
        let statuses: Vec<u16> = {
            let mut out = Vec::new();
            for _ in 0..11 {
                let response = browser
                    .http
                    .post(format!("{}/assurance/x509/challenge", browser.base))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                out.push(response.status().as_u16());
            }
            out
        };
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
        assert_eq!(statuses.last(), Some(&429));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_over_another_challenge_is_refused() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (browser, user_id) = env.resident("taro").await;
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let (_, first) = challenge(&browser, None).await;
        let (id, _) = challenge(&browser, None).await;
        let (status, answer) = verify(&env.server, &id, &card.sign(&first), &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("bad_signature"))
        );
        assert_eq!(ial(&env.k, &user_id).await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_the_basic_attributes_is_refused() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (browser, user_id) = env.resident("taro").await;
        let card = env.ca.card(None, -1, 365).await;
        let (status, answer) = prove(&env.server, &browser, &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("missing_attributes")),
            "{answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains("name"),
            "{answer}"
        );
        assert_eq!(ial(&env.k, &user_id).await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_crl_fails_closed_with_a_clear_message() {
    for k in Kizuna::each_backend().await {
        let offline = format!("http://127.0.0.1:{}/jpki.crl", common::free_port());
        let env = X509Env::with(k, Some(&offline), "crl_timeout_secs = 2\n").await;
        let (browser, user_id) = env.resident("taro").await;
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let (status, answer) = prove(&env.server, &browser, &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (503, Some("revocation_unavailable")),
            "{answer}"
        );
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains("could not be fetched") && message.contains("not accepted"),
            "{message}"
        );
        assert_eq!(ial(&env.k, &user_id).await, 1);
        // The server keeps serving.
        let (status, _) = browser.page("/account/identity").await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_claims_a_client_is_not_allowed_are_omitted_not_an_error() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (browser, _) = env.resident("taro").await;
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        assert_eq!(prove(&env.server, &browser, &card).await.0, 200);
        let rp = rp(&env.k, &["--min-ial", "0"]);
        let claims = verified_claims_request(&["given_name", "birthdate"]);
        let callback = browser
            .sign_in(
                &authorize_url(&env.server, &rp, &[("claims", &claims)]),
                "taro",
                PASSWORD,
            )
            .await;
        let tokens = rp.redeem(&env.server, &callback).await;
        let id_token = claims_of(tokens["id_token"].as_str().unwrap());
        assert!(id_token.get("verified_claims").is_none(), "{id_token}");
        assert_eq!(id_token["acr"], "urn:kizuna:aal:1");
        let info = userinfo(&env.server, tokens["access_token"].as_str().unwrap()).await;
        assert!(info.get("verified_claims").is_none(), "{info}");
        assert!(info.get("sub").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_card_binds_one_account_and_a_second_binding_is_refused_and_audited() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (taro, _) = env.resident("taro").await;
        let (other, other_id) = env.resident("taro2").await;
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        assert_eq!(prove(&env.server, &taro, &card).await.0, 200);
        let (status, answer) = prove(&env.server, &other, &card).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (409, Some("already_bound"))
        );
        assert_eq!(ial(&env.k, &other_id).await, 1);
        assert_eq!(
            count(
                &env.k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'assurance.binding_refused'",
                &format!("user:{other_id}"),
            )
            .await,
            1
        );
        // The identifier is stored only as a keyed hash.
        let db = database(&env.k).await;
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT identifier_hash FROM identity_bindings")
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].len() == 64 && !stored[0].contains("JPKI"));
    }
}

/// A card's serial number as `openssl x509 -serial` prints it (upper-case hex), with colons
/// between the bytes, as an operator may copy it from a J-LIS list.
fn printed_serial(k: &Kizuna, card: &Card) -> String {
    let path = k.dir.path().join("card.der");
    std::fs::write(&path, &card.der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-serial", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim().trim_start_matches("serial=");
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_card_stays_bound_to_its_account_once_its_link_is_fed_in() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (taro, taro_id) = env.resident("taro").await;
        let (other, other_id) = env.resident("taro2").await;
        let (third, _) = env.resident("taro3").await;
        let old = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        assert_eq!(prove(&env.server, &taro, &old).await.0, 200);

        // J-LIS lists the renewed card; one line names a card never used here, and one a
        // renewed card someone else has already proofed with.
        let renewed = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let unused_old = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let unused_new = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let taken = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let (id, c) = challenge(&third, None).await;
        assert_eq!(
            verify(&env.server, &id, &taken.sign(&c), &taken).await.0,
            200
        );
        let links = env.k.dir.path().join("links.csv");
        std::fs::write(
            &links,
            format!(
                "changed_on,old_serial,new_serial\n2026-11-30,{},{}\n2026-11-30,{},{}\n2026-11-30,{},{}\n",
                printed_serial(&env.k, &old),
                printed_serial(&env.k, &renewed),
                printed_serial(&env.k, &unused_old),
                printed_serial(&env.k, &unused_new),
                printed_serial(&env.k, &old),
                printed_serial(&env.k, &taken),
            ),
        )
        .unwrap();
        let anchor = env.k.dir.path().join("jpki-root.pem");
        let args = [
            "assurance",
            "renew-cards",
            "--issuer-cert",
            anchor.to_str().unwrap(),
            "--file",
            links.to_str().unwrap(),
            "--json",
        ];
        let out = env.k.run(&args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "a conflict is reported in the exit code"
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report,
            json!({"renewed": 1, "not_bound": 1, "already": 0, "conflicts": [3]})
        );
        let again: Value = serde_json::from_slice(&env.k.run(&args).stdout).unwrap();
        assert_eq!(
            again,
            json!({"renewed": 0, "not_bound": 1, "already": 1, "conflicts": [3]}),
            "feeding the file twice changes nothing"
        );

        // The renewed card belongs to taro's account: another account is refused, taro's is
        // raised.
        let (status, answer) = prove(&env.server, &other, &renewed).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (409, Some("already_bound"))
        );
        assert_eq!(ial(&env.k, &other_id).await, 1);
        let (id, c) = challenge(&taro, None).await;
        assert_eq!(
            verify(&env.server, &id, &renewed.sign(&c), &renewed)
                .await
                .0,
            200
        );
        assert_eq!(ial(&env.k, &taro_id).await, 3);
        assert_eq!(
            count(
                &env.k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'assurance.binding_renewed'",
                &format!("user:{taro_id}"),
            )
            .await,
            1
        );

        // Bad input changes nothing: a serial that is not hex, a file without the columns.
        let out = env.k.run(&[
            "assurance",
            "renew-cards",
            "--issuer-cert",
            anchor.to_str().unwrap(),
            "--old-serial",
            "not-hex",
            "--new-serial",
            "01",
        ]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a certificate serial number"));
        std::fs::write(&links, "old,new\n01,02\n").unwrap();
        let out = env.k.run(&args);
        assert!(String::from_utf8_lossy(&out.stderr).contains("no old_serial column"));
        assert_eq!(
            count(
                &env.k,
                "SELECT COUNT(*) FROM identity_bindings WHERE user_id = $1",
                &taro_id,
            )
            .await,
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_verified_name_drops_the_level() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::new(k).await;
        let (browser, user_id) = env.resident("taro").await;
        let card = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        assert_eq!(prove(&env.server, &browser, &card).await.0, 200);
        let (_, page) = browser.page("/account/identity").await;
        assert!(
            page.contains("id=\"name-warning\"") && page.contains("IAL3"),
            "{page}"
        );
        let done = browser
            .post(
                "/account/identity",
                "/account/identity",
                &[("name", "山田 花子")],
            )
            .await;
        assert_eq!(done.status(), 303);
        assert_eq!(
            done.headers()["location"],
            "/account/identity?done=name-level"
        );
        assert_eq!(
            count(
                &env.k,
                "SELECT COUNT(*) FROM identity_proofing WHERE user_id = $1 AND superseded_at IS NULL",
                &user_id,
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &env.k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'assurance.level' AND details LIKE '%attribute edited%'",
                &format!("user:{user_id}"),
            )
            .await,
            1
        );
        // Without a CSRF token nothing changes.
        let refused = browser
            .http
            .post(format!("{}/account/identity", browser.base))
            .form(&[("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
}

/// An eKYC vendor: answers transactions with a redirect, remembers them, and signs results.
struct Vendor {
    url: String,
    key: kizuna_core::custody::KeyHandle,
    other_key: kizuna_core::custody::KeyHandle,
    transactions: Arc<Mutex<Vec<Value>>>,
    _db: kizuna_core::testing::TestDb,
    task: tokio::task::JoinHandle<()>,
}

impl Vendor {
    async fn start() -> Vendor {
        let db = kizuna_core::testing::connect_migrated(kizuna_core::testing::fresh_sqlite()).await;
        let core = kizuna_core::testing::core(&db.db).await;
        let key = core
            .custody
            .generate("vendor", kizuna_core::custody::KeyAlgorithm::P256)
            .await
            .unwrap();
        let other_key = core
            .custody
            .generate("impostor", kizuna_core::custody::KeyAlgorithm::P256)
            .await
            .unwrap();
        let transactions = Arc::new(Mutex::new(Vec::new()));
        let seen = transactions.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let base = url.clone();
        let app = axum::Router::new()
            .route(
                "/start",
                axum::routing::post(move |axum::Json(t): axum::Json<Value>| {
                    let seen = seen.clone();
                    let base = base.clone();
                    async move {
                        let txn = t["transaction_id"].as_str().unwrap_or_default().to_string();
                        seen.lock().unwrap().push(t);
                        axum::Json(json!({"redirect_url": format!("{base}/check?t={txn}")}))
                    }
                }),
            )
            .route(
                "/slow",
                axum::routing::post(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    axum::Json(json!({}))
                }),
            );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Vendor {
            url,
            key,
            other_key,
            transactions,
            _db: db,
            task,
        }
    }

    fn toml(&self) -> String {
        let jwk = self.key.public_key().jwk().to_string();
        format!(
            "[[assurance.webhook]]\nname = \"ekyc\"\nlabel_en = \"Photo ID and selfie\"\nlabel_ja = \"本人確認書類と顔写真\"\nstart_url = \"{0}/start\"\njwk = {jwk:?}\nceiling = 2\n\
             [[assurance.webhook]]\nname = \"slow\"\nstart_url = \"{0}/slow\"\njwk = {jwk:?}\ntimeout_secs = 1\n",
            self.url
        )
    }

    fn last(&self) -> Value {
        self.transactions.lock().unwrap().last().cloned().unwrap()
    }

    fn result(&self, txn: &str, level: i64, impostor: bool) -> String {
        let claims = json!({
            "txn": txn,
            "jti": kizuna_core::secret::new_id(),
            "iat": kizuna_core::time::now_unix(),
            "level": level,
            "evidence": {"type": "document", "method": "sripp", "document_type": "driving_permit", "issuer": "Tokyo Metropolitan Public Safety Commission", "number": "123456789012"},
            "claims": {"family_name": "山田", "given_name": "太郎", "birthdate": "1980-01-31"},
        });
        let key = if impostor { &self.other_key } else { &self.key };
        kizuna_core::jose::sign(key, "vendor-1", Some("JWT"), &claims).unwrap()
    }
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn deliver(callback: &str, jws: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(callback)
        .header("content-type", "application/jose")
        .body(jws.to_string())
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ekyc_vendor_result_is_verified_capped_and_not_replayable() {
    for k in Kizuna::each_backend().await {
        let vendor = Vendor::start().await;
        std::fs::write(k.dir.path().join("kizuna.toml"), vendor.toml()).unwrap();
        let server = k.serve();
        let user = k.resident("hanako", PASSWORD);
        let user_id = user["id"].as_str().unwrap();
        let browser = Browser::for_server(&k, &server);
        browser.sign_in_to_account("hanako", PASSWORD).await;
        let (_, page) = browser.page("/account/identity").await;
        assert!(
            page.contains("Photo ID and selfie") || page.contains("本人確認書類と顔写真"),
            "{page}"
        );
        let sent = browser
            .post(
                "/account/identity",
                "/assurance/webhook/ekyc/start",
                &[("req", "")],
            )
            .await;
        assert_eq!(sent.status(), 303);
        assert!(
            sent.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with(&vendor.url)
        );
        let t = vendor.last();
        let txn = t["transaction_id"].as_str().unwrap();
        let callback = t["callback_url"].as_str().unwrap();
        assert!(
            t["return_url"]
                .as_str()
                .unwrap()
                .ends_with("/account/identity")
        );

        // A result signed by someone else.
        let (status, answer) = deliver(callback, &vendor.result(txn, 2, true)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("bad_signature"))
        );
        assert_eq!(ial(&k, user_id).await, 1);

        // The vendor claims IAL3; its ceiling is IAL2.
        let good = vendor.result(txn, 3, false);
        let (status, answer) = deliver(callback, &good).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["level"], 2);
        assert_eq!(ial(&k, user_id).await, 2);
        assert_eq!(
            count(
                &k,
                "SELECT COUNT(*) FROM audit_log WHERE target = $1 AND action = 'assurance.proofing' AND details LIKE '%\"capped\":true%' AND details LIKE '%\"claimed_level\":3%'",
                &format!("user:{user_id}"),
            )
            .await,
            1
        );
        // The same result again.
        let (status, answer) = deliver(callback, &good).await;
        assert_eq!((status, answer["error"].as_str()), (409, Some("replayed")));
        // A new result for the finished transaction.
        let (status, answer) = deliver(callback, &vendor.result(txn, 2, false)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (409, Some("unknown_transaction"))
        );
        let db = database(&k).await;
        let number: Option<String> = sqlx::query_scalar(
            "SELECT evidence_number_hash FROM identity_proofing WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert!(number.is_some_and(|n| n.len() == 64 && !n.contains("123456789012")));

        // A vendor that does not answer in time: a clear page, quickly.
        let began = std::time::Instant::now();
        let slow = browser
            .post(
                "/account/identity",
                "/assurance/webhook/slow/start",
                &[("req", "")],
            )
            .await;
        assert_eq!(slow.status(), 504);
        assert!(began.elapsed() < std::time::Duration::from_secs(4));
        let text = slow.text().await.unwrap();
        assert!(
            text.contains("did not answer") || text.contains("応答しませんでした"),
            "{text}"
        );
        assert_eq!(browser.page("/account/identity").await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_records_an_in_person_check_with_the_document_number_hashed() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let registrar = k.resident("registrar", PASSWORD);
        let resident = k.resident("jiro", PASSWORD);
        let db = database(&k).await;
        sqlx::query("INSERT INTO role_assignments (user_id, role, scope, created_at) VALUES ($1, 'registrar', '*', 0)")
            .bind(registrar["id"].as_str().unwrap())
            .execute(db.pool())
            .await
            .unwrap();
        let console = Rp::register(
            &k,
            "console",
            &["--scope", "openid", "--scope", "kizuna:admin"],
        );
        // Staff roles count only from a sign-in at console.min_aal (2): a second factor.
        let browser = Browser::for_server(&k, &server);
        browser.sign_in_to_account("registrar", PASSWORD).await;
        browser.enroll_totp().await;
        let url = console.authorize_url(&server, "openid kizuna:admin", &[]);
        let callback = browser.sign_in(&url, "registrar", PASSWORD).await;
        let token = console.redeem(&server, &callback).await["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let api = format!("{}/admin/api/v1/users/jiro/proofing", server.public);
        let check = json!({
            "document_type": "driving_permit",
            "document_number": "301234567890",
            "issuer": "Tokyo Metropolitan Public Safety Commission",
            "level": 3,
            "attributes": {"family_name": "佐藤", "given_name": "次郎", "birthdate": "1975-05-05"},
        });
        let http = reqwest::Client::new();
        let recorded = http
            .post(&api)
            .bearer_auth(&token)
            .json(&check)
            .send()
            .await
            .unwrap();
        assert_eq!(recorded.status(), 201);
        let record: Value = recorded.json().await.unwrap();
        assert_eq!(record["level"], 3);
        assert_eq!(record["verifier_kind"], "person");
        assert_eq!(record["verifier_id"], registrar["id"]);
        assert_eq!(record["evidence_document"], "driving_permit");
        let shown: Value = http
            .get(&api)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shown["ial"], 3);
        assert!(!shown.to_string().contains("301234567890"));
        // The console's view of the account shows the level and where it came from.
        let account: Value = http
            .get(format!("{}/admin/api/v1/users/jiro", server.public))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(account["ial"], 3, "{account}");
        assert_eq!(account["proofing"]["provider"], "counter", "{account}");
        assert_eq!(account["linked"], json!([]), "{account}");
        // Bad input: unknown document type, a level a counter does not give, own account.
        for (body, path) in [
            (
                json!({"document_type": "library_card", "document_number": "1", "level": 2}),
                "jiro",
            ),
            (
                json!({"document_type": "passport", "document_number": "1", "level": 1}),
                "jiro",
            ),
            (
                json!({"document_type": "passport", "document_number": "1", "level": 2}),
                "registrar",
            ),
        ] {
            let refused = http
                .post(format!(
                    "{}/admin/api/v1/users/{path}/proofing",
                    server.public
                ))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 422, "{body}");
        }
        // An automation client cannot record a check nobody saw.
        let automation = common::service_token(&k, &server.public, "kizuna:admin", None).await;
        let refused = http
            .post(&api)
            .bearer_auth(&automation)
            .json(&check)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert_eq!(ial(&k, resident["id"].as_str().unwrap()).await, 3);

        // A helpdesk reset of an account proven at IAL3 names a fresh check at IAL3 or above
        // of that person, not free text, not an old check, not a weaker one.
        let reset =
            |reference: &str| k.run(&["user", "mfa-reset", "jiro", "--reproofing-ref", reference]);
        let refused = |reference: &str, expected: &str| {
            let out = reset(reference);
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(!out.status.success(), "{reference}: reset anyway");
            assert!(stderr.contains(expected), "{reference}: {stderr}");
        };
        refused("counter-2026-0042", "proven at IAL3");
        let old_check = record["id"].as_str().unwrap();
        sqlx::query("UPDATE identity_proofing SET verified_at = verified_at - 90000 WHERE id = $1")
            .bind(old_check)
            .execute(db.pool())
            .await
            .unwrap();
        refused(old_check, "older than 24 hours");
        let record_check = |level: u8| {
            let (http, api, token) = (http.clone(), api.clone(), token.clone());
            let mut check = check.clone();
            check["level"] = json!(level);
            async move {
                let answer: Value = http
                    .post(&api)
                    .bearer_auth(&token)
                    .json(&check)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                answer["id"].as_str().unwrap().to_string()
            }
        };
        let weaker = record_check(2).await;
        refused(&weaker, "reached only IAL2");
        // Another person's fresh IAL3 check does not re-prove this one.
        k.resident("saburo", PASSWORD);
        let someone_else: Value = http
            .post(api.replace("/jiro/", "/saburo/"))
            .bearer_auth(&token)
            .json(&check)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        refused(
            someone_else["id"].as_str().unwrap(),
            "give the id of this person's proofing record",
        );
        let fresh = record_check(3).await;
        let out = reset(&fresh);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entry: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'mfa.reset' AND details LIKE $1",
        )
        .bind(format!("%\"reproofing_record\":{{%\"id\":\"{fresh}\"%"))
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(entry, 1, "the reset names the check it relied on");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allowed_provider_the_client_gets_unmet_authentication_requirements() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = rp(&k, &["--min-ial", "3", "--proofing-provider", "counter"]);
        k.resident("taro", PASSWORD);
        let browser = Browser::for_server(&k, &server);
        let callback = browser
            .sign_in(&authorize_url(&server, &rp, &[]), "taro", PASSWORD)
            .await;
        assert_eq!(
            query_param(&callback, "error").as_deref(),
            Some("unmet_authentication_requirements")
        );
        assert_eq!(query_param(&callback, "state").as_deref(), Some("st"));
    }
}

/// The My Number card OP, shaped like the Digital Agency's: the four basic attributes as
/// scopes, `acr_values` `aal3` and `crl`, PKCE required, Kizuna authenticating with
/// `private_key_jwt`.
fn jpki_op(node: &std::path::Path, server: &Server, alias: &str) -> NodeOp {
    NodeOp::start_shaped(
        node,
        free_port(),
        &json!([{
            "client_id": "kizuna",
            "redirect_uris": [format!("{}/federation/callback", server.public)],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": format!("{}/federation/{alias}/jwks", server.public),
            "scope": "openid name address birthdate gender",
        }]),
        &json!({
            "card-holder": {
                "claims": {"name": "鈴木\u{3000}一郎", "address": {"formatted": "千葉県柏市若柴一七八番地"},
                           "birthdate": "1985-07-07", "gender": "male"},
                "acr": "aal3", "amr": ["hwk", "pin"],
            },
        }),
        &[
            (
                "SCOPE_CLAIMS",
                json!({"openid": ["sub"], "name": ["name"], "address": ["address"],
                       "birthdate": ["birthdate"], "gender": ["gender"]}),
            ),
            ("ACR_VALUES", json!(["aal3", "crl"])),
        ],
    )
}

fn add_jpki_upstream(k: &Kizuna, alias: &str, issuer: &str, max_ial: &str) {
    k.json(&[
        "upstream",
        "add",
        "--alias",
        alias,
        "--name",
        "My Number card",
        "--org",
        "Digital Agency",
        "--issuer",
        issuer,
        "--client-id",
        "kizuna",
        "--scope",
        "name",
        "--scope",
        "address",
        "--scope",
        "birthdate",
        "--scope",
        "gender",
        "--acr-value",
        "aal3",
        "--acr-value",
        "crl",
        "--acr-map",
        "aal3=3:3",
        "--max-ial",
        max_ial,
        "--max-aal",
        "3",
        "--no-jit",
        "--private-key-jwt",
        "--json",
    ]);
}

/// Walks a resident signed in with a password to the identity page of a sign-in at `rp`,
/// presses the provider's button and walks on to the RP's callback.
async fn through_provider(
    browser: &CrossBrowser,
    server: &Server,
    rp: &Rp,
    provider_path: &str,
    extra: &[(&str, &str)],
) -> Arrival {
    let url = authorize_url(server, rp, extra);
    let Arrival::Page(at, 200, html) = browser.walk(&url, CALLBACK).await else {
        panic!("expected the identity page");
    };
    assert!(at.path().starts_with("/account/identity"), "{at}");
    assert!(
        html.contains(&format!("action=\"{provider_path}\"")),
        "{html}"
    );
    let req = hidden_field(&html, "req").unwrap();
    let sent = browser
        .post_form(at.as_str(), provider_path, &[("req", &req)])
        .await;
    assert_eq!(sent.status(), 303);
    let to = sent.headers()["location"].to_str().unwrap().to_string();
    browser.walk(&to, CALLBACK).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_at_ial1_goes_through_the_jpki_op_and_comes_back_at_ial3() {
    let Some(node) = common::node_peers() else {
        return;
    };
    for k in Kizuna::each_backend().await {
        std::fs::write(
            k.dir.path().join("kizuna.toml"),
            "[assurance.jpki_oidc]\nupstreams = [\"jpki\", \"jpki-lite\"]\n",
        )
        .unwrap();
        let server = k.serve();
        k.ok(&[
            "org",
            "create",
            "--name",
            "Digital Agency",
            "--kind",
            "service-provider",
        ]);
        let op = jpki_op(&node, &server, "jpki");
        add_jpki_upstream(&k, "jpki", &op.issuer, "3");
        let service = rp(
            &k,
            &[
                "--min-ial",
                "3",
                "--verified-claim",
                "family_name",
                "--verified-claim",
                "given_name",
                "--verified-claim",
                "birthdate",
                "--verified-claim",
                "address",
                "--verified-claim",
                "gender",
                "--proofing-provider",
                "jpki-oidc:jpki",
            ],
        );
        let user = k.resident("ichiro", PASSWORD);
        let user_id = user["id"].as_str().unwrap();
        let browser = CrossBrowser {
            upstream_login: Some("card-holder".into()),
            password_login: Some(("ichiro".into(), PASSWORD.into())),
            ..CrossBrowser::default()
        };
        let claims = verified_claims_request(&[
            "family_name",
            "given_name",
            "birthdate",
            "address",
            "gender",
        ]);
        let arrival = through_provider(
            &browser,
            &server,
            &service,
            "/assurance/jpki-oidc/jpki/start",
            &[
                ("claims", &claims),
                ("acr_values", "urn:kizuna:ial:3:aal:1"),
            ],
        )
        .await;
        let Arrival::Arrived(callback) = arrival else {
            panic!("did not come back: {arrival:?}");
        };
        assert_eq!(ial(&k, user_id).await, 3);
        let tokens = service.redeem(&server, &callback).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(claims_of(id_token)["acr"], "urn:kizuna:ial:3:aal:1");
        // The resident is still the same local account, signed in with a password.
        assert_eq!(claims_of(id_token)["sub"], user["id"]);
        let vc = rp_verified_claims(&server, &service, id_token).await;
        assert_eq!(vc.verification.assurance_level.as_deref(), Some("ial3"));
        assert_eq!(vc.claims["family_name"], "鈴木");
        assert_eq!(vc.claims["given_name"], "一郎");
        assert_eq!(vc.claims["birthdate"], "1985-07-07");
        assert_eq!(vc.claims["gender"], "male");
        assert_eq!(
            vc.claims["address"]["formatted"],
            "千葉県柏市若柴一七八番地"
        );
        assert!(vc.evidence_has_no_numbers());

        // An upstream vetted only to IAL2 cannot give more: capped, and the client's IAL3
        // requirement stays unmet.
        let lite = jpki_op(&node, &server, "jpki-lite");
        add_jpki_upstream(&k, "jpki-lite", &lite.issuer, "2");
        let rp2 = rp(
            &k,
            &[
                "--min-ial",
                "3",
                "--proofing-provider",
                "jpki-oidc:jpki-lite",
            ],
        );
        k.resident("jiro", PASSWORD);
        let browser = CrossBrowser {
            upstream_login: Some("card-holder".into()),
            password_login: Some(("jiro".into(), PASSWORD.into())),
            ..CrossBrowser::default()
        };
        let arrival = through_provider(
            &browser,
            &server,
            &rp2,
            "/assurance/jpki-oidc/jpki-lite/start",
            &[],
        )
        .await;
        let Arrival::Page(at, 200, _) = arrival else {
            panic!("expected the identity page again: {arrival:?}");
        };
        assert!(at.path().starts_with("/account/identity"), "{at}");
        let db = database(&k).await;
        let (level, claimed): (i64, i64) = sqlx::query_as(
            "SELECT p.level, p.claimed_level FROM identity_proofing p JOIN users u ON u.id = p.user_id WHERE u.username = 'jiro'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!((level, claimed), (2, 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crl_is_fetched_once_and_cached_until_its_next_update() {
    for k in Kizuna::each_backend().await {
        let env = X509Env::with(k, None, "").await;
        let (browser, _) = env.resident("taro").await;
        let (b2, other) = env.resident("hanako").await;
        let first = env.ca.card(Some(&Holder::taro()), -1, 365).await;
        let (id, c) = challenge(&browser, None).await;
        assert_eq!(
            verify(&env.server, &id, &first.sign(&c), &first).await.0,
            200
        );
        assert_eq!(env.crl.fetches(), 1);
        // The distribution point now serves garbage: the cached CRL still answers.
        env.crl.set(b"not a CRL".to_vec());
        let mut holder = Holder::taro();
        holder.name = "佐藤\u{3000}花子".into();
        let second = env.ca.card(Some(&holder), -1, 365).await;
        let (status, answer) = prove(&env.server, &b2, &second).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(env.crl.fetches(), 1);
        assert_eq!(ial(&env.k, &other).await, 3);
    }
}
