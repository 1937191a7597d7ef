//! ACME (RFC 8555) with certbot (PyPI), standalone http-01, against Kizuna's directory:
//! register with external account binding, obtain, renew, revoke.

use crate::common;

use std::process::{Command, Output};

use base64::Engine;
use serde_json::{Value, json};

use crate::common::acme::{Client, NAME, install};
use crate::common::enroll::{Installation, csr, openssl_verify, self_signed, stderr, x509_field};
use crate::common::{Kizuna, free_port};

fn certbot(i: &Installation, args: &[&str]) -> Output {
    let dir = i.path("certbot");
    Command::new("certbot")
        .args(args)
        .arg("--config-dir")
        .arg(dir.join("etc"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--logs-dir")
        .arg(dir.join("logs"))
        .args([
            "--non-interactive",
            "--server",
            &format!("{}/acme/directory", i.server.public),
        ])
        .env("REQUESTS_CA_BUNDLE", &i.root)
        .output()
        .expect("certbot (scripts/test installs it from PyPI)")
}

fn certbot_ok(i: &Installation, args: &[&str]) {
    let out = certbot(i, args);
    assert!(
        out.status.success(),
        "certbot {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[tokio::test]
async fn certbot_obtains_renews_and_revokes_over_http_01() {
    for k in Kizuna::each_backend().await {
        let port = free_port();
        let i = install(k, port, free_port()).await;
        let eab =
            i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]);
        let standalone = [
            "--standalone",
            "--http-01-address",
            "127.0.0.1",
            "--http-01-port",
        ];
        let port_text = port.to_string();
        // The key is base64url and may begin with '-': given as `--opt=value` so certbot's
        // parser cannot take it for an option.
        let hmac_key = format!("--eab-hmac-key={}", eab["hmac_key"].as_str().unwrap());
        let mut obtain: Vec<&str> = vec!["certonly"];
        obtain.extend(standalone);
        obtain.extend([
            port_text.as_str(),
            "--agree-tos",
            "-m",
            "ops@streetlights.city.example",
            "--no-eff-email",
            "--eab-kid",
            eab["kid"].as_str().unwrap(),
            hmac_key.as_str(),
            "-d",
            NAME,
        ]);
        certbot_ok(&i, &obtain);
        let live = i.path("certbot").join("etc/live").join(NAME);
        let cert = live.join("cert.pem");
        let verified = openssl_verify(&i.root, &live.join("chain.pem"), &cert);
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
        assert!(x509_field(&cert, "-ext=subjectAltName").contains(&format!("DNS:{NAME}")));
        let first = x509_field(&cert, "-serial");

        certbot_ok(
            &i,
            &["renew", "--force-renewal", "--no-random-sleep-on-renew"],
        );
        let renewed = x509_field(&cert, "-serial");
        assert_ne!(renewed, first, "renewal issued a new certificate");
        assert!(
            openssl_verify(&i.root, &live.join("chain.pem"), &cert)
                .status
                .success()
        );

        certbot_ok(
            &i,
            &[
                "revoke",
                "--cert-path",
                cert.to_str().unwrap(),
                "--reason",
                "superseded",
                "--no-delete-after-revoke",
            ],
        );
        let serial = renewed.trim_start_matches("serial=").to_ascii_lowercase();
        let shown = i.k.json(&["cert", "show", &serial, "--json"]);
        assert_eq!(shown["status"], "revoked");
        assert_eq!(shown["revocation_reason"], "superseded");
        assert_eq!(shown["profile"], "service");
        assert_eq!(shown["org_id"], i.org_id.as_str());
        let audit = i.k.ok(&["audit", "export"]);
        for action in [
            "acme.account.create",
            "acme.order.create",
            "acme.challenge.validate",
            "cert.revoke",
        ] {
            assert!(audit.contains(&format!("\"{action}\"")), "{action} audited");
        }
    }
}

/// The binding key's HMAC key is a secret: stored sealed under the KEK (bound to its key id),
/// never as handed to the administrator, and a registration with it still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eab_hmac_key_is_stored_sealed_and_still_binds_an_account() {
    for k in Kizuna::each_backend().await {
        let (http, tls) = (free_port(), free_port());
        let i = install(k, http, tls).await;
        let eab =
            i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]);
        let issued = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(eab["hmac_key"].as_str().unwrap())
            .unwrap();
        let db = common::database(&i.k).await;
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT hmac_key FROM acme_eab_keys WHERE kid = $1")
                .bind(eab["kid"].as_str().unwrap())
                .fetch_one(db.pool())
                .await
                .unwrap();
        db.close().await;
        assert!(
            !stored.windows(issued.len()).any(|w| w == issued.as_slice()),
            "the HMAC key is stored as issued"
        );
        assert!(
            kizuna_core::custody::sealed_kek_id(&stored).is_some(),
            "sealed under the KEK"
        );
        bound_account(&i, &eab).await;
    }
}

/// A new account registered with the binding key `eab` (`acme eab create --json`).
async fn bound_account(i: &Installation, eab: &Value) -> Client {
    let mut client = Client::new(i).await;
    let answer = client
        .register(Some((
            eab["kid"].as_str().unwrap(),
            eab["hmac_key"].as_str().unwrap(),
        )))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    client
}

/// A binding key stored before keys were sealed (its HMAC key as issued, 32 bytes) still
/// binds an account until it expires; one whose sealed key was tampered with does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eab_key_stored_before_sealing_still_binds_and_a_tampered_one_does_not() {
    let (http, tls) = (free_port(), free_port());
    let i = install(Kizuna::sqlite(), http, tls).await;
    let db = common::database(&i.k).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        keys.push(i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]));
    }
    let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(keys[0]["hmac_key"].as_str().unwrap())
        .unwrap();
    sqlx::query("UPDATE acme_eab_keys SET hmac_key = $1 WHERE kid = $2")
        .bind(&plain)
        .bind(keys[0]["kid"].as_str().unwrap())
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE acme_eab_keys SET hmac_key = hmac_key || x'00' WHERE kid = $1")
        .bind(keys[1]["kid"].as_str().unwrap())
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let register = |eab: &serde_json::Value| {
        let (kid, key) = (
            eab["kid"].as_str().unwrap().to_string(),
            eab["hmac_key"].as_str().unwrap().to_string(),
        );
        let i = &i;
        async move {
            let mut client = Client::new(i).await;
            client.register(Some((&kid, &key))).await
        }
    };
    let answer = register(&keys[0]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let tampered = register(&keys[1]).await;
    assert_eq!(tampered.status, 500, "{}", tampered.body);
    assert_eq!(tampered.problem(), "serverInternal", "{}", tampered.body);
    assert_eq!(
        i.k.json(&["acme", "eab", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["account_id"].is_null())
            .count(),
        1,
        "only the plain key bound an account"
    );
}

/// An install, a registered account bound to Streetlights, and the http-01 port.
async fn registered(k: Kizuna) -> (Installation, Client, u16, u16) {
    let (http, tls) = (free_port(), free_port());
    let i = install(k, http, tls).await;
    let eab =
        i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]);
    let client = bound_account(&i, &eab).await;
    (i, client, http, tls)
}

fn assert_problem(answer: &common::acme::Answer, status: u16, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.problem(), kind, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

#[tokio::test]
async fn accounts_need_an_external_account_binding_with_the_right_key() {
    for k in Kizuna::each_backend().await {
        let i = install(k, free_port(), free_port()).await;
        let mut client = Client::new(&i).await;
        assert_eq!(client.directory["meta"]["externalAccountRequired"], true);
        assert_problem(&client.register(None).await, 403, "externalAccountRequired");
        let eab =
            i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]);
        let kid = eab["kid"].as_str().unwrap();
        let wrong = common::acme::b64(&[7u8; 32]);
        assert_problem(
            &client.register(Some((kid, &wrong))).await,
            403,
            "unauthorized",
        );
        let ok = client
            .register(Some((kid, eab["hmac_key"].as_str().unwrap())))
            .await;
        assert_eq!(ok.status, 201, "{}", ok.body);
        // The binding key is used once.
        let mut second = Client::new(&i).await;
        assert_problem(
            &second
                .register(Some((kid, eab["hmac_key"].as_str().unwrap())))
                .await,
            403,
            "unauthorized",
        );
        // The same key again finds the same account.
        client.kid = None;
        let again = client.register(None).await;
        assert_eq!((again.status, again.location), (200, ok.location));
    }
}

#[tokio::test]
async fn bad_jws_requests_get_the_problem_the_rfc_names() {
    for k in Kizuna::each_backend().await {
        let (i, client, _, _) = registered(k).await;
        let url = client.url("newOrder");
        let payload = json!({"identifiers": [{"type": "dns", "value": NAME}]});

        // A bad signature.
        let mut jws = client
            .key
            .sign(&client.protected(&url).await, Some(&payload));
        let sig = jws["signature"].as_str().unwrap().to_string();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        jws["signature"] = json!(format!("{flipped}{}", &sig[1..]));
        assert_problem(&client.send(&url, &jws).await, 400, "malformed");

        // A replayed nonce.
        let jws = client
            .key
            .sign(&client.protected(&url).await, Some(&payload));
        assert_eq!(client.send(&url, &jws).await.status, 201);
        assert_problem(&client.send(&url, &jws).await, 400, "badNonce");

        // An unknown account.
        let mut protected = client.protected(&url).await;
        protected["kid"] = json!(format!("{}/acme/account/nobody", i.server.public));
        assert_problem(
            &client
                .send(&url, &client.key.sign(&protected, Some(&payload)))
                .await,
            400,
            "accountDoesNotExist",
        );

        // alg none.
        let mut protected = client.protected(&url).await;
        protected["alg"] = json!("none");
        let unsigned = json!({
            "protected": common::acme::b64(protected.to_string().as_bytes()),
            "payload": common::acme::b64(payload.to_string().as_bytes()),
            "signature": "",
        });
        let answer = client.send(&url, &unsigned).await;
        assert_problem(&answer, 400, "badSignatureAlgorithm");
        assert!(
            answer.body["algorithms"]
                .as_array()
                .unwrap()
                .contains(&json!("ES256"))
        );

        // A URL that is not the request's.
        let protected = client.protected(&client.url("newAccount")).await;
        assert_problem(
            &client
                .send(&url, &client.key.sign(&protected, Some(&payload)))
                .await,
            403,
            "unauthorized",
        );

        // Not JOSE at all.
        let response = client
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415);
        // Still serving.
        assert_eq!(client.order(&[NAME]).await.status, 201);
    }
}

#[tokio::test]
async fn an_order_for_a_name_the_organization_may_not_use_is_rejected() {
    for k in Kizuna::each_backend().await {
        let (_i, client, _, _) = registered(k).await;
        assert_problem(
            &client.order(&["www.water.city.example"]).await,
            403,
            "rejectedIdentifier",
        );
        assert_problem(
            &client.order(&["*.streetlights.city.example"]).await,
            403,
            "rejectedIdentifier",
        );
        let ip = client
            .post(
                &client.url("newOrder"),
                Some(&json!({"identifiers": [{"type": "ip", "value": "192.0.2.1"}]})),
            )
            .await;
        assert_problem(&ip, 403, "rejectedIdentifier");
        let email = client
            .post(
                &client.url("newOrder"),
                Some(&json!({"identifiers": [{"type": "email", "value": "a@b"}]})),
            )
            .await;
        assert_problem(&email, 400, "unsupportedIdentifier");
    }
}

#[tokio::test]
async fn a_failed_challenge_invalidates_the_authorization_and_the_order() {
    for k in Kizuna::each_backend().await {
        let (_i, client, _, _) = registered(k).await;
        let order = client.order(&[NAME]).await;
        let (url, _) = client.challenge(&order.body, "http-01").await;
        // Nothing listens on the http-01 port.
        let started = client.post(&url, Some(&json!({}))).await;
        assert_eq!(started.status, 200, "{}", started.body);
        let settled = client.settle(&url).await;
        assert_eq!(settled["status"], "invalid");
        assert_eq!(
            settled["error"]["type"],
            "urn:ietf:params:acme:error:connection"
        );
        let order_now = client.post(order.location.as_deref().unwrap(), None).await;
        assert_eq!(order_now.body["status"], "invalid");
        let finalize = client
            .post(
                order.body["finalize"].as_str().unwrap(),
                Some(&json!({"csr": "AA"})),
            )
            .await;
        assert_problem(&finalize, 403, "orderNotReady");
    }
}

/// A challenge certificate made with openssl, served by `openssl s_server -alpn acme-tls/1`.
struct AlpnServer(std::process::Child);

impl Drop for AlpnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alpn_server(dir: &std::path::Path, port: u16, key_authorization: &str) -> AlpnServer {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let acme_id = format!("1.3.6.1.5.5.7.1.31=critical,DER:04:20:{}", hex.join(":"));
    self_signed(
        dir,
        "alpn",
        &format!("/CN={NAME}"),
        &[&format!("subjectAltName=DNS:{NAME}"), &acme_id],
    );
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-alpn",
            "acme-tls/1",
            "-cert",
        ])
        .arg(dir.join("alpn.pem"))
        .arg("-key")
        .arg(dir.join("alpn.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    AlpnServer(child)
}

fn csr_der(dir: &std::path::Path, names: &[&str]) -> String {
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let san = format!("subjectAltName={}", san.join(","));
    common::acme::b64(&csr(dir, "service", &format!("/CN={}", names[0]), &[&san]))
}

#[tokio::test]
async fn tls_alpn_01_validates_finalize_checks_the_csr_and_keys_roll_over() {
    for k in Kizuna::each_backend().await {
        let (i, mut client, _, tls_port) = registered(k).await;
        let order = client.order(&[NAME]).await;
        let (url, token) = client.challenge(&order.body, "tls-alpn-01").await;
        let _server = alpn_server(
            i.k.dir.path(),
            tls_port,
            &format!("{token}.{}", client.key.thumbprint()),
        );
        client.post(&url, Some(&json!({}))).await;
        let settled = client.settle(&url).await;
        assert_eq!(settled["status"], "valid", "{settled}");
        let order_url = order.location.clone().unwrap();
        assert_eq!(client.settle(&order_url).await["status"], "ready");

        let finalize = order.body["finalize"].as_str().unwrap();
        let dir = i.k.dir.path();
        let wrong = client
            .post(
                finalize,
                Some(&json!({"csr": csr_der(dir, &[NAME, "other.streetlights.city.example"])})),
            )
            .await;
        assert_problem(&wrong, 400, "badCSR");
        let done = client
            .post(finalize, Some(&json!({"csr": csr_der(dir, &[NAME])})))
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        assert_eq!(done.body["status"], "valid");
        let cert_url = done.body["certificate"].as_str().unwrap().to_string();
        let chain = client.post(&cert_url, None).await;
        assert_eq!(chain.content_type, "application/pem-certificate-chain");
        let pem = chain.body.as_str().unwrap().to_string();
        assert_eq!(
            pem.matches("BEGIN CERTIFICATE").count(),
            2,
            "leaf and issuing CA"
        );

        // Key rollover: the new key signs the inner JWS, the account the outer one.
        let new_key = common::acme::Key::generate();
        let key_change = client.url("keyChange");
        let inner = new_key.sign(
            &json!({"alg": "ES256", "jwk": new_key.jwk(), "url": key_change}),
            Some(&json!({"account": client.kid.clone().unwrap(), "oldKey": client.key.jwk()})),
        );
        let rolled = client.post(&key_change, Some(&inner)).await;
        assert_eq!(rolled.status, 200, "{}", rolled.body);
        // The old key no longer signs for the account; the new one does.
        assert_problem(&client.post(&order_url, None).await, 400, "malformed");
        client.key = new_key;
        assert_eq!(client.post(&order_url, None).await.body["status"], "valid");

        // Revocation: a bad reason, then a good one, then again.
        let der = {
            let body: String = pem
                .lines()
                .skip(1)
                .take_while(|l| !l.starts_with("-----END"))
                .collect();
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap()
        };
        let revoke = client.url("revokeCert");
        let cert = common::acme::b64(&der);
        assert_problem(
            &client
                .post(&revoke, Some(&json!({"certificate": cert, "reason": 7})))
                .await,
            400,
            "badRevocationReason",
        );
        assert_eq!(
            client
                .post(&revoke, Some(&json!({"certificate": cert, "reason": 1})))
                .await
                .status,
            200
        );
        assert_problem(
            &client
                .post(&revoke, Some(&json!({"certificate": cert})))
                .await,
            400,
            "alreadyRevoked",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_asks_for_too_many_nonces_is_rate_limited_and_nothing_is_stored() {
    for k in Kizuna::each_backend().await {
        let k = k.env("KIZUNA_CA__ACME__REQUESTS_PER_ADDRESS_PER_MINUTE", "5");
        let server = k.serve();
        let http = reqwest::Client::new();
        let url = format!("{}/acme/new-nonce", server.public);
        for n in 0..5 {
            let answer = http.head(&url).send().await.unwrap();
            assert_eq!(answer.status(), 200, "request {n}");
            assert!(answer.headers().contains_key("replay-nonce"));
        }
        let db = common::database(&k).await;
        let stored = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM acme_nonces")
                .fetch_one(db.pool())
                .await
                .unwrap()
        };
        let before = stored().await;
        let limited = http.get(&url).send().await.unwrap();
        assert_eq!(limited.status(), 429);
        assert!(!limited.headers().contains_key("replay-nonce"));
        let retry: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let problem: serde_json::Value = limited.json().await.unwrap();
        assert_eq!(problem["type"], "urn:ietf:params:acme:error:rateLimited");
        assert_eq!(stored().await, before, "a refused request stores no nonce");
        // The rest of the server is not affected.
        let health = http.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_budget_counts_each_forwarded_client() {
    let k = Kizuna::sqlite()
        .env("KIZUNA_CA__ACME__REQUESTS_PER_ADDRESS_PER_MINUTE", "2")
        .env("KIZUNA_TLS__TRUSTED_PROXIES", "[\"127.0.0.1\"]");
    let server = k.serve();
    let http = reqwest::Client::new();
    let url = format!("{}/acme/new-nonce", server.public);
    let from = |client: &'static str| {
        http.head(&url)
            .header("x-forwarded-for", format!("198.51.100.9, {client}"))
    };
    for _ in 0..2 {
        assert_eq!(from("192.0.2.1").send().await.unwrap().status(), 200);
    }
    assert_eq!(from("192.0.2.1").send().await.unwrap().status(), 429);
    // Another client behind the same proxy has its own budget; the address the proxy
    // appended counts, not one the client wrote itself.
    assert_eq!(from("192.0.2.2").send().await.unwrap().status(), 200);
}
