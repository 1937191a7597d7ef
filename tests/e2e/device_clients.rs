//! Devices as OAuth clients with their certificates (RFC 8705), driven with curl as a device
//! would: client_credentials at the mutual-TLS token endpoint with no separate registration,
//! certificate-bound tokens, and one retirement that ends the certificate and every token.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::Value;

use kizuna_rs::{Authorized, ClientCertificate, Verification, Verifier};

use crate::common::enroll::Installation;
use crate::common::rp::Rp;
use crate::common::{Kizuna, Server};

/// A device enrolled over EST: its directory (device.pem, device.key).
fn enrolled(i: &Installation, id: &str) -> std::path::PathBuf {
    i.add_device(id, &format!("SN-{id}"));
    let token = i.token(&["--device", id]);
    i.enroll(id, &token, &format!("/CN={id}/serialNumber=SN-{id}"))
}

/// `curl` POSTing a form to `url` over TLS, with the device's certificate when given.
fn curl_form(i: &Installation, url: &str, device: Option<&Path>, form: &[&str]) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(&i.root);
    if let Some(dir) = device {
        cmd.arg("--cert")
            .arg(dir.join("device.pem"))
            .arg("--key")
            .arg(dir.join("device.key"));
    }
    for field in form {
        cmd.args(["--data-urlencode", field]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The `x5t#S256` of a PEM certificate file.
fn thumbprint(pem: &Path) -> String {
    let text = std::fs::read_to_string(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kizuna_core::secret::sha256(&der))
}

/// A city API using `kizuna-rs`: HTTPS on a free port asking for client certificates, one
/// route that answers the token's subject. Returns its URL and its certificate (PEM file).
async fn city_api(dir: &Path, verification: Verification) -> (String, std::path::PathBuf) {
    use axum::extract::ConnectInfo;
    use kizuna_core::web::tls::{CertSlot, ClientAuth, TlsConnectInfo, TlsListener, server_config};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert_file, key_file) = (dir.join("api.pem"), dir.join("api.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config = server_config(
        CertSlot::from_files(&cert_file, &key_file).unwrap(),
        ClientAuth::new(),
    )
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", tcp.local_addr().unwrap().port());
    // No answer cache here, so the test need not wait out the default second.
    let verifier = Verifier::cache_for(
        verification,
        reqwest::Client::new(),
        std::time::Duration::ZERO,
    );
    let app = axum::Router::new()
        .route(
            "/telemetry",
            axum::routing::get(|Authorized(token): Authorized| async move { token.sub }),
        )
        .layer(axum::middleware::from_fn(
            |ConnectInfo(info): ConnectInfo<TlsConnectInfo>,
             mut req: axum::extract::Request,
             next: axum::middleware::Next| async move {
                if let Some(leaf) = info.client_chain.as_ref().and_then(|c| c.first()) {
                    req.extensions_mut()
                        .insert(ClientCertificate(leaf.to_vec()));
                }
                next.run(req).await
            },
        ))
        .layer(axum::Extension(verifier));
    let listener = TlsListener::new(tcp, config).unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<TlsConnectInfo>(),
        )
        .await
    });
    (url, cert_file)
}

/// GET the city API with a token, and a device certificate when given: the status.
fn call_api(api: &(String, std::path::PathBuf), token: &str, device: Option<&Path>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&api.1)
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(dir) = device {
        cmd.arg("--cert")
            .arg(dir.join("device.pem"))
            .arg("--key")
            .arg(dir.join("device.key"));
    }
    let out = cmd
        .arg(format!("{}/telemetry", api.0))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn introspect(server: &Server, rs: &Rp, client: &reqwest::Client, token: &str) -> Value {
    client
        .post(server.url("/introspect"))
        .basic_auth(&rs.id, Some(&rs.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_a_bound_token_with_its_certificate_and_retiring_it_ends_both() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let token_url = format!("{}/token", i.server.public);
        let lamp = enrolled(&i, "lamp-1");
        let other = enrolled(&i, "lamp-2");
        let lamp_uri = i.server.device_uri(&i.org_id, "lamp-1");

        // Until its organization lets devices act as clients, the certificate gets nothing.
        let (status, answer) = curl_form(
            &i,
            &token_url,
            Some(&lamp),
            &["grant_type=client_credentials"],
        );
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"], "invalid_client");
        i.k.ok(&[
            "device",
            "client-scopes",
            "--org",
            "Streetlights",
            "--profile",
            "device",
            "--scope",
            "streetlight:telemetry",
            "--scope",
            "streetlight:dim",
        ]);
        // What a presented certificate is (its organization's rule included) is kept for
        // two seconds on each replica; its status is read on every request.
        i.k.clock().advance(2);
        // A management scope is never one of them.
        let refused = i.k.run(&[
            "device",
            "client-scopes",
            "--org",
            "Streetlights",
            "--scope",
            "kizuna:admin",
        ]);
        assert!(!refused.status.success());

        let (status, answer) = curl_form(
            &i,
            &token_url,
            Some(&lamp),
            &[
                "grant_type=client_credentials",
                "scope=streetlight:telemetry",
            ],
        );
        assert_eq!(status, 200, "{answer}");
        let access = answer["access_token"].as_str().unwrap().to_string();
        let c = claims(&access);
        assert_eq!(c["client_id"], lamp_uri.as_str(), "{c}");
        assert_eq!(c["sub"], lamp_uri.as_str());
        assert_eq!(c["scope"], "streetlight:telemetry");
        assert_eq!(
            c["cnf"]["x5t#S256"],
            thumbprint(&lamp.join("device.pem")),
            "bound to the certificate"
        );
        // Refused: no certificate, another device's certificate for this device's client id.
        let (status, answer) = curl_form(
            &i,
            &token_url,
            None,
            &[
                "grant_type=client_credentials",
                &format!("client_id={lamp_uri}"),
            ],
        );
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_client")),
            "{answer}"
        );
        let (status, answer) = curl_form(
            &i,
            &token_url,
            Some(&other),
            &[
                "grant_type=client_credentials",
                &format!("client_id={lamp_uri}"),
            ],
        );
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_client")),
            "{answer}"
        );

        let rs = Rp::register(&i.k, "streetlight-api", &["--scope", "openid"]);
        let http = i.k.http().build().unwrap();
        let seen = introspect(&i.server, &rs, &http, &access).await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["cnf"]["x5t#S256"], c["cnf"]["x5t#S256"]);

        // A city API using kizuna-rs (introspection): the token with its certificate, yes;
        // without it or with another device's, no.
        let api = city_api(
            &i.path("api"),
            Verification::Introspection {
                endpoint: i.server.url("/introspect"),
                client_id: rs.id.clone(),
                client_secret: rs.secret.clone(),
            },
        )
        .await;
        assert_eq!(call_api(&api, &access, Some(&lamp)), 200);
        assert_eq!(call_api(&api, &access, None), 401);
        assert_eq!(call_api(&api, &access, Some(&other)), 401);
        // The same check done locally with Kizuna's JWK Set.
        let local = city_api(
            &i.path("api-jwt"),
            Verification::Jwt {
                issuer: i.server.public.clone(),
                jwks_uri: i.server.url("/jwks"),
            },
        )
        .await;
        assert_eq!(call_api(&local, &access, Some(&lamp)), 200);
        assert_eq!(call_api(&local, &access, Some(&other)), 401);
        assert_eq!(call_api(&local, "not.a.token", Some(&lamp)), 401);

        // The device's page in the console (and the admin API) shows its live tokens, and
        // a revocation's preview says how many would end.
        let org_admin = crate::common::service_token(
            &i.k,
            &i.server.base,
            "kizuna:role:org-admin",
            Some(&i.org_id),
        )
        .await;
        let device_tokens = || async {
            let view: Value = http
                .get(format!("{}/admin/api/v1/devices/lamp-1", i.server.base))
                .bearer_auth(&org_admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            view["tokens"].clone()
        };
        let tokens = device_tokens().await;
        assert_eq!(tokens["recent"], 1, "{tokens}");
        assert!(tokens["newest"].is_string(), "{tokens}");
        let preview = i.k.run(&[
            "cert",
            "revoke",
            "--device",
            "lamp-1",
            "--reason",
            "keyCompromise",
        ]);
        assert!(
            String::from_utf8_lossy(&preview.stdout).contains("ending 1 bound access tokens"),
            "{}",
            String::from_utf8_lossy(&preview.stdout)
        );

        // Suspending the device holds the certificate: the token ends, and resuming brings
        // back new tokens, never the old one.
        let held = i.k.ok(&["device", "suspend", "lamp-1"]);
        assert!(held.contains("1 bound access tokens ended"), "{held}");
        assert_eq!(
            introspect(&i.server, &rs, &http, &access).await["active"],
            false
        );
        let (status, _) = curl_form(
            &i,
            &token_url,
            Some(&lamp),
            &["grant_type=client_credentials"],
        );
        assert_eq!(status, 401);
        i.k.clock().advance(2);
        i.k.ok(&["device", "resume", "lamp-1"]);
        assert_eq!(
            introspect(&i.server, &rs, &http, &access).await["active"],
            false,
            "the old token stays dead"
        );
        let (status, answer) = curl_form(
            &i,
            &token_url,
            Some(&lamp),
            &["grant_type=client_credentials"],
        );
        assert_eq!(status, 200, "{answer}");
        let fresh = answer["access_token"].as_str().unwrap().to_string();
        assert_eq!(
            introspect(&i.server, &rs, &http, &fresh).await["active"],
            true
        );

        // Retiring the device revokes its certificate and, with it, every token bound to it:
        // introspection, the city API and OCSP agree.
        assert_eq!(call_api(&api, &fresh, Some(&lamp)), 200);
        // The token from before the hold is dead already: only the fresh one is counted.
        assert_eq!(device_tokens().await["recent"], 1);
        let retired = i.k.ok(&["device", "retire", "lamp-1"]);
        assert!(retired.contains("1 bound access tokens ended"), "{retired}");
        assert_eq!(device_tokens().await["recent"], 0);
        assert_eq!(
            introspect(&i.server, &rs, &http, &fresh).await["active"],
            false
        );
        assert_eq!(call_api(&api, &fresh, Some(&lamp)), 401);
        // The responder follows revocations made by other processes (this one: the CLI)
        // from the change feed, polled every 200 ms.
        crate::common::pki::download_ca_certificates(&i.k, &i.server).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let said = loop {
            let ocsp = Command::new("openssl")
                .args(["ocsp", "-no_nonce", "-issuer"])
                .arg(i.k.dir.path().join("issuing.pem"))
                .arg("-cert")
                .arg(lamp.join("device.pem"))
                .args(["-url", &format!("{}/ocsp", i.server.base), "-noverify"])
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&ocsp.stdout).into_owned();
            if said.contains(": revoked") || std::time::Instant::now() > deadline {
                break said;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(said.contains(": revoked"), "{said}");
        let (status, _) = curl_form(
            &i,
            &token_url,
            Some(&lamp),
            &["grant_type=client_credentials"],
        );
        assert_eq!(status, 401);
        // The other device is untouched.
        let (status, _) = curl_form(
            &i,
            &token_url,
            Some(&other),
            &["grant_type=client_credentials"],
        );
        assert_eq!(status, 200);
        // A certificate acting as a client of its own is no resource server: it may not read
        // other tokens through introspection.
        let (other_token_status, other_token) = curl_form(
            &i,
            &token_url,
            Some(&other),
            &["grant_type=client_credentials"],
        );
        assert_eq!(other_token_status, 200, "{other_token}");
        let other_token = other_token["access_token"].as_str().unwrap().to_string();
        let (status, answer) = curl_form(
            &i,
            &format!("{}/introspect", i.server.public),
            Some(&other),
            &[&format!("token={other_token}")],
        );
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_client")),
            "{answer}"
        );

        // A bound token never outlives its certificate: one issued a minute before the
        // certificate expires expires with it, and is inactive once it has.
        let not_after = Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-in"])
            .arg(other.join("device.pem"))
            .output()
            .unwrap();
        let not_after = String::from_utf8_lossy(&not_after.stdout)
            .trim()
            .trim_start_matches("notAfter=")
            .to_string();
        let not_after = Command::new("date")
            .args(["-u", "-d", &not_after, "+%s"])
            .output()
            .unwrap();
        let not_after: i64 = String::from_utf8_lossy(&not_after.stdout)
            .trim()
            .parse()
            .unwrap();
        let now = i.k.clock().now_unix();
        i.k.clock().advance(not_after - now - 60);
        let (status, answer) = curl_form(
            &i,
            &token_url,
            Some(&other),
            &["grant_type=client_credentials"],
        );
        assert_eq!(status, 200, "{answer}");
        let last = answer["access_token"].as_str().unwrap().to_string();
        assert!(
            claims(&last)["exp"].as_i64().unwrap() <= not_after,
            "exp {} is after the certificate's notAfter {not_after}",
            claims(&last)["exp"]
        );
        assert!(answer["expires_in"].as_i64().unwrap() <= 60, "{answer}");
        assert_eq!(
            introspect(&i.server, &rs, &http, &last).await["active"],
            true
        );
        i.k.clock().advance(61);
        assert_eq!(
            introspect(&i.server, &rs, &http, &last).await["active"],
            false
        );

        // The issuance named the certificate in the audit log, and the revocation what ended.
        let audit = i.k.ok(&["audit", "export"]);
        assert!(
            audit
                .lines()
                .any(|l| l.contains("\"cert.revoke\"") && l.contains("\"bound_access_tokens\":1")),
            "cert.revoke lists the tokens that ended"
        );
        assert!(
            audit.lines().any(|l| l.contains("\"token.issue\"")
                && l.contains("cert_serial")
                && l.contains(&lamp_uri)),
            "token.issue names the certificate"
        );
    }
}

/// `curl` for a client certificate and key given by path.
fn curl_with(i: &Installation, url: &str, cert: &Path, key: &Path, form: &[&str]) -> (u16, Value) {
    let dir = i.path(&format!("pair-{}", crate::common::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(cert, dir.join("device.pem")).unwrap();
    std::fs::copy(key, dir.join("device.key")).unwrap();
    curl_form(i, url, Some(&dir), form)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_clients_authenticate_with_tls_client_auth_or_a_self_signed_certificate() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let token_url = format!("{}/token", i.server.public);
        let dir = i.k.dir.path();
        i.k.ok(&[
            "org",
            "allow",
            "Streetlights",
            "--dns",
            "lights.city.example",
        ]);
        // A service certificate from Kizuna's CA, and a client registered by its DNS name.
        for name in ["api", "other"] {
            crate::common::pki::csr(
                dir,
                name,
                "p256",
                &format!("/CN={name}.lights.city.example"),
                &[],
            );
            let pem = i.k.ok(&[
                "cert",
                "issue",
                "--csr",
                &format!("{name}.csr"),
                "--profile",
                "service",
                "--org",
                "Streetlights",
                "--san",
                &format!("dns:{name}.lights.city.example"),
            ]);
            std::fs::write(dir.join(format!("{name}.pem")), pem).unwrap();
        }
        let registered = i.k.json(&[
            "client",
            "create",
            "--name",
            "Lights API",
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "tls_client_auth",
            "--tls-name",
            "dns:api.lights.city.example",
            "--scope",
            "lights:read",
            "--json",
        ]);
        let id = registered["client_id"].as_str().unwrap();
        assert!(
            registered.get("client_secret").is_none(),
            "no secret: {registered}"
        );
        let form = [
            "grant_type=client_credentials".to_string(),
            format!("client_id={id}"),
        ];
        let form: Vec<&str> = form.iter().map(String::as_str).collect();
        let (status, answer) = curl_with(
            &i,
            &token_url,
            &dir.join("api.pem"),
            &dir.join("api.key"),
            &form,
        );
        assert_eq!(status, 200, "{answer}");
        let c = claims(answer["access_token"].as_str().unwrap());
        assert_eq!(c["client_id"], id);
        assert_eq!(c["cnf"]["x5t#S256"], thumbprint(&dir.join("api.pem")));
        // Another certificate of the same CA does not name the registered DNS name.
        let (status, answer) = curl_with(
            &i,
            &token_url,
            &dir.join("other.pem"),
            &dir.join("other.key"),
            &form,
        );
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_client")),
            "{answer}"
        );
        // And no certificate at all (the plain listener has none to give).
        let (status, _) = curl_form(&i, &i.server.url("/token"), None, &form);
        assert_eq!(status, 401);

        // A client with a secret whose tokens are bound to its certificate: a certificate of
        // Kizuna's binds them by serial too, so its revocation ends them, and a revoked one
        // gets nothing.
        let secret_bound = i.k.json(&[
            "client",
            "create",
            "--name",
            "Lights reporter",
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "client_secret_post",
            "--certificate-bound",
            "--scope",
            "lights:read",
            "--json",
        ]);
        let secret_form = [
            "grant_type=client_credentials".to_string(),
            format!("client_id={}", secret_bound["client_id"].as_str().unwrap()),
            format!(
                "client_secret={}",
                secret_bound["client_secret"].as_str().unwrap()
            ),
        ];
        let secret_form: Vec<&str> = secret_form.iter().map(String::as_str).collect();
        let (status, answer) = curl_with(
            &i,
            &token_url,
            &dir.join("other.pem"),
            &dir.join("other.key"),
            &secret_form,
        );
        assert_eq!(status, 200, "{answer}");
        let reporter = claims(answer["access_token"].as_str().unwrap());
        assert_eq!(
            reporter["cnf"]["x5t#S256"],
            thumbprint(&dir.join("other.pem"))
        );
        let other_serial = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(dir.join("other.pem"))
            .output()
            .unwrap();
        let other_serial = String::from_utf8_lossy(&other_serial.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        assert_eq!(
            reporter["kizuna_cert"]
                .as_str()
                .map(|s| s.trim_start_matches('0')),
            Some(other_serial.trim_start_matches('0')),
            "{reporter}"
        );
        i.k.ok(&["cert", "revoke", &other_serial, "--reason", "keyCompromise"]);
        let (status, answer) = curl_with(
            &i,
            &token_url,
            &dir.join("other.pem"),
            &dir.join("other.key"),
            &secret_form,
        );
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_client")),
            "a revoked certificate binds nothing: {answer}"
        );

        // A self-signed certificate whose key the client registered (RFC 8705 §2.2).
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["sensor.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("self.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("self.key"), key.serialize_pem()).unwrap();
        let point = key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
        std::fs::write(dir.join("self-jwks.json"), jwks.to_string()).unwrap();
        let selfsigned = i.k.json(&[
            "client",
            "create",
            "--name",
            "Air sensor",
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "self_signed_tls_client_auth",
            "--jwks-file",
            dir.join("self-jwks.json").to_str().unwrap(),
            "--scope",
            "air:write",
            "--json",
        ]);
        let id = selfsigned["client_id"].as_str().unwrap();
        let form = [
            "grant_type=client_credentials".to_string(),
            format!("client_id={id}"),
        ];
        let form: Vec<&str> = form.iter().map(String::as_str).collect();
        let (status, answer) = curl_with(
            &i,
            &token_url,
            &dir.join("self.pem"),
            &dir.join("self.key"),
            &form,
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            claims(answer["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
            thumbprint(&dir.join("self.pem"))
        );
        // Kizuna's own certificate, whose key the client did not register, is refused.
        let (status, _) = curl_with(
            &i,
            &token_url,
            &dir.join("api.pem"),
            &dir.join("api.key"),
            &form,
        );
        assert_eq!(status, 401);
        // Discovery says how.
        let discovery: Value = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&i.root).unwrap()).unwrap(),
            )
            .build()
            .unwrap()
            .get(format!(
                "{}/.well-known/openid-configuration",
                i.server.public
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            discovery["tls_client_certificate_bound_access_tokens"],
            true
        );
        assert!(
            discovery["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("self_signed_tls_client_auth"))
        );
        assert_eq!(
            discovery["mtls_endpoint_aliases"]["token_endpoint"],
            format!("{}/token", i.server.public),
            "{discovery}"
        );
    }
}
