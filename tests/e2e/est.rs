//! EST (RFC 7030) with curl and openssl, exactly as a device script would: cacerts,
//! simpleenroll with a one-time token, simplereenroll with the issued certificate (and a new
//! key), `openssl verify`, and every refusal the enrollment issue lists.

use crate::common;

use std::process::Command;

use crate::common::enroll::{
    Installation, csr, openssl, openssl_verify, read_tokens, self_signed, stderr, x509_field,
};
use crate::common::{Kizuna, database};

#[tokio::test]
async fn a_device_enrolls_with_a_token_reenrolls_with_its_certificate_and_verifies() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        i.add_device("sl-0042", "SN-0042");
        let token = i.token(&["--device", "sl-0042"]);
        let dir = i.path("sl-0042");

        let cacerts = i.device_script("cacerts", &dir, &[]);
        assert!(cacerts.status.success(), "{}", stderr(&cacerts));
        let ca = dir.join("ca.pem");
        assert_eq!(
            std::fs::read_to_string(&ca)
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count(),
            2,
            "cacerts: the issuing CA and the root"
        );

        i.enroll("sl-0042", &token, "/CN=sl-0042/serialNumber=SN-0042");
        let cert = dir.join("device.pem");
        let verified = openssl_verify(&i.root, &ca, &cert);
        assert!(
            verified.status.success(),
            "openssl verify: {} {}",
            String::from_utf8_lossy(&verified.stdout),
            stderr(&verified)
        );
        let san = x509_field(&cert, "-ext=subjectAltName");
        assert!(
            san.contains(&format!(
                "URI:{}",
                i.server.device_uri(&i.org_id, "sl-0042")
            )),
            "{san}"
        );
        assert!(x509_field(&cert, "-subject").contains("serialNumber=SN-0042"));
        let first_serial = x509_field(&cert, "-serial");
        let first_key = x509_field(&cert, "-pubkey");

        let reused = i.device_script("enroll", &i.path("again"), &[&token, "/CN=sl-0042"]);
        assert!(!reused.status.success());
        assert!(
            stderr(&reused).contains("HTTP 401") && stderr(&reused).contains("already been used"),
            "{}",
            stderr(&reused)
        );

        let renewed = i.device_script("reenroll", &dir, &[]);
        assert!(renewed.status.success(), "{}", stderr(&renewed));
        assert!(openssl_verify(&i.root, &ca, &cert).status.success());
        assert_ne!(x509_field(&cert, "-serial"), first_serial);
        assert_ne!(
            x509_field(&cert, "-pubkey"),
            first_key,
            "re-enrollment rekeyed"
        );

        let shown = i.k.json(&["device", "show", "sl-0042", "--json"]);
        assert_eq!(shown["device"]["status"], "active");
        assert_eq!(shown["certificates"].as_array().unwrap().len(), 2);
        let audit = i.k.ok(&["audit", "export"]);
        assert!(audit.contains("\"enroll.token.use\""));
        assert!(audit.contains("\"enroll.refused\""));
        assert!(
            !audit.contains(&token),
            "the token never reaches the audit log"
        );
        assert!(i.k.ok(&["audit", "verify"]).starts_with("ok"));
    }
}

#[tokio::test]
async fn batch_tokens_register_new_devices_and_the_csv_has_a_token_column() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let csv = i.path("batch.csv");
        let out = i.k.run(&[
            "enroll",
            "tokens",
            "--org",
            &i.org_id,
            "--profile",
            "device",
            "--model",
            "AQ-2",
            "--subject",
            "AQ-*",
            "--count",
            "3",
            "--ttl",
            "2h",
            "--out",
            csv.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("3/3 tokens"),
            "a progress line: {}",
            stderr(&out)
        );
        let tokens = read_tokens(&csv);
        assert_eq!(tokens.len(), 3);
        assert!(tokens.iter().all(|t| t.starts_with("kzet_")));
        let dir = i.enroll("aq-1", &tokens[0], "/CN=AQ-0001/serialNumber=AQ-SN-1");
        assert!(x509_field(&dir.join("device.pem"), "-subject").contains("AQ-SN-1"));
        let devices =
            i.k.json(&["device", "list", "--org", "Streetlights", "--json"]);
        let list = devices.as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["model"], "AQ-2");
        assert_eq!(list[0]["hardware_serial"], "AQ-SN-1");
        assert_eq!(list[0]["status"], "active");
        // The same hardware serial again is a cloned device: refused, token not spent.
        let clone = i.device_script(
            "enroll",
            &i.path("clone"),
            &[&tokens[1], "/CN=AQ-0002/serialNumber=AQ-SN-1"],
        );
        assert!(stderr(&clone).contains("HTTP 409"), "{}", stderr(&clone));
        i.enroll("aq-2", &tokens[1], "/CN=AQ-0002/serialNumber=AQ-SN-2");
        let listed =
            i.k.json(&["enroll", "list", "--org", "Streetlights", "--json"]);
        assert_eq!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["used_at"].is_number())
                .count(),
            2
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let token = i.token(&[]);
        let db = database(&i.k).await;
        sqlx::query("UPDATE enrollment_tokens SET expires_at = 1")
            .execute(db.pool())
            .await
            .unwrap();
        let out = i.device_script("enroll", &i.path("d"), &[&token, "/CN=x"]);
        assert!(
            stderr(&out).contains("HTTP 401") && stderr(&out).contains("expired"),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn a_token_for_another_organization_or_profile_is_refused() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let other: serde_json::Value = i.k.json(&["org", "create", "--name", "Water", "--json"]);
        let token = i.token(&[]);
        // A request naming a device of another organization.
        let dir = i.path("foreign");
        let urn = format!(
            "subjectAltName=URI:urn:kizuna:device:{}:w-1",
            other["id"].as_str().unwrap()
        );
        csr(&dir, "request", "/CN=w-1", &[&urn]);
        let csr = dir.join("request.der");
        let status = curl_enroll(&i, &i.est, &csr, Some(&token));
        assert_eq!(status.0, 403, "{}", status.1);
        assert!(status.1.contains("another organization"), "{}", status.1);
        // The token is for `device`; the URL's label names `service`.
        let service = format!("{}/service", i.est);
        let out = i.device_script_at(&service, "enroll", &i.path("svc"), &[&token, "/CN=x"]);
        assert!(
            stderr(&out).contains("HTTP 403")
                && stderr(&out).contains("profile device, not service"),
            "{}",
            stderr(&out)
        );
        // Neither refusal spent the token.
        i.enroll("ok", &token, "/CN=ok");
    }
}

#[tokio::test]
async fn a_request_whose_subject_or_names_the_token_does_not_allow_is_refused() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let token = i.token(&["--subject", "SL-*"]);
        let out = i.device_script("enroll", &i.path("a"), &[&token, "/CN=XL-1"]);
        assert!(
            stderr(&out).contains("HTTP 403") && stderr(&out).contains("pattern"),
            "{}",
            stderr(&out)
        );
        let dir = i.path("b");
        csr(
            &dir,
            "request",
            "/CN=SL-1",
            &["subjectAltName=DNS:evil.example"],
        );
        let csr = dir.join("request.der");
        let (status, body) = curl_enroll(&i, &i.est, &csr, Some(&token));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("DNS:evil.example"), "{body}");
        // A registered device's hardware serial must match the request's serialNumber.
        i.add_device("sl-7", "SN-7");
        let bound = i.token(&["--device", "sl-7"]);
        let out = i.device_script(
            "enroll",
            &i.path("c"),
            &[&bound, "/CN=SL-7/serialNumber=SN-8"],
        );
        assert!(
            stderr(&out).contains("HTTP 403") && stderr(&out).contains("hardware serial"),
            "{}",
            stderr(&out)
        );
    }
}

/// POSTs a DER CSR (base64) to simpleenroll; returns status and body.
fn curl_enroll(
    i: &Installation,
    est: &str,
    csr_der: &std::path::Path,
    token: Option<&str>,
) -> (u16, String) {
    let body = base64_file(csr_der);
    curl(
        i,
        &format!("{est}/simpleenroll"),
        "application/pkcs10",
        body.as_bytes(),
        token,
    )
}

fn base64_file(path: &std::path::Path) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

fn curl(
    i: &Installation,
    url: &str,
    content_type: &str,
    body: &[u8],
    token: Option<&str>,
) -> (u16, String) {
    let body_file = i.path(&format!("body-{}", common::free_port()));
    std::fs::write(&body_file, body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(&i.root)
        .args(["-H", &format!("Content-Type: {content_type}")])
        .arg("--data-binary")
        .arg(format!("@{}", body_file.display()));
    if let Some(token) = token {
        cmd.args(["-u", &format!("device:{token}")]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test]
async fn bodies_that_are_not_base64_csrs_or_have_the_wrong_type_are_refused() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let token = i.token(&[]);
        let url = format!("{}/simpleenroll", i.est);
        let (status, body) = curl(
            &i,
            &url,
            "application/pkcs10",
            b"%%% not base64 %%%",
            Some(&token),
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("not base64"), "{body}");
        let (status, body) = curl(
            &i,
            &url,
            "application/pkcs10",
            b"aGVsbG8gd29ybGQ=",
            Some(&token),
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("PKCS#10"), "{body}");
        let (status, body) = curl(&i, &url, "application/json", b"{}", Some(&token));
        assert_eq!(status, 415, "{body}");
        let (status, _) = curl(&i, &url, "application/pkcs10", b"aGVsbG8=", None);
        assert_eq!(status, 401);
        // PEM armour crafted so its footer comes before its body.
        for crafted in [
            &b"-----BEGIN CERTIFICATE REQUEST-----END\nMIIB"[..],
            b"-----BEGIN CERTIFICATE REQUEST-----END CERTIFICATE REQUEST-----\n",
        ] {
            let (status, body) = curl(&i, &url, "application/pkcs10", crafted, Some(&token));
            assert_eq!(status, 400, "{body}");
        }
        // None of this spent the token, and the server still serves.
        i.enroll("d", &token, "/CN=d");
    }
}

#[tokio::test]
async fn the_plain_listener_sends_est_clients_to_the_tls_listener() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        let response = reqwest::get(i.server.url("/.well-known/est/cacerts"))
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let text = response.text().await.unwrap();
        assert!(
            text.contains(&format!("{}/.well-known/est/cacerts", i.server.public)),
            "{text}"
        );
    }
}

#[tokio::test]
async fn reenrollment_with_a_revoked_held_or_foreign_certificate_is_refused() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        i.add_device("sl-1", "SN-1");
        let dir = i.enroll("sl-1", &i.token(&["--device", "sl-1"]), "/CN=sl-1");

        i.k.ok(&["device", "suspend", "sl-1"]);
        let held = i.device_script("reenroll", &dir, &[]);
        assert!(
            stderr(&held).contains("HTTP 403") && stderr(&held).contains("hold"),
            "{}",
            stderr(&held)
        );
        i.k.ok(&["device", "resume", "sl-1"]);
        assert!(i.device_script("reenroll", &dir, &[]).status.success());

        let serial = x509_field(&dir.join("device.pem"), "-serial").replace("serial=", "");
        i.k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
        let revoked = i.device_script("reenroll", &dir, &[]);
        assert!(
            stderr(&revoked).contains("HTTP 403") && stderr(&revoked).contains("revoked"),
            "{}",
            stderr(&revoked)
        );

        // A certificate from another CA is refused in the TLS handshake or by EST.
        let foreign = i.path("foreign");
        self_signed(&foreign, "device", "/CN=sl-1", &[]);
        let out = i.device_script("reenroll", &foreign, &[]);
        assert!(!out.status.success());
        assert!(!stderr(&out).contains("HTTP 200"));
        assert!(
            !foreign.join("response").exists()
                || !std::fs::read_to_string(foreign.join("response"))
                    .unwrap()
                    .contains("MII")
        );
        // The server keeps serving.
        i.add_device("sl-2", "SN-2");
        i.enroll("sl-2", &i.token(&["--device", "sl-2"]), "/CN=sl-2");
    }
}

#[tokio::test]
async fn renewal_after_expiry_is_allowed_only_within_the_profiles_grace_window() {
    for (grace, allowed) in [(None, false), (Some("30"), true)] {
        for mut k in Kizuna::each_backend().await {
            if let Some(days) = grace {
                k = k.env("KIZUNA_CA__PROFILES__DEVICE__RENEWAL_GRACE_DAYS", days);
            }
            let i = Installation::start(k).await;
            i.add_device("sl-9", "SN-9");
            let dir = i.enroll("sl-9", &i.token(&["--device", "sl-9"]), "/CN=sl-9");
            // The device was offline: its certificate expired ten days ago (as the registry sees it).
            let db = database(&i.k).await;
            sqlx::query("UPDATE certificates SET not_after = $1 WHERE device_id = 'sl-9'")
                .bind(kizuna_core::time::now_unix() - 10 * 86_400)
                .execute(db.pool())
                .await
                .unwrap();
            let out = i.device_script("reenroll", &dir, &[]);
            assert_eq!(
                out.status.success(),
                allowed,
                "grace {grace:?}: {}",
                stderr(&out)
            );
            if !allowed {
                assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
            }
        }
    }
}

#[tokio::test]
async fn a_manufacturer_certificate_enrolls_a_registered_device_without_a_token() {
    for k in Kizuna::each_backend().await {
        let vendor = common::TempDir::new("vendor");
        let v = vendor.path();
        self_signed(
            v,
            "vendor",
            "/O=Lamp Maker/CN=Lamp Maker Root",
            &[
                "basicConstraints=critical,CA:TRUE",
                "keyUsage=critical,keyCertSign",
            ],
        );
        std::fs::write(
            v.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for serial in ["LM-1", "LM-2"] {
            csr(v, serial, &format!("/CN=lamp/serialNumber={serial}"), &[]);
            let (der, pem) = (format!("{serial}.der"), format!("{serial}.pem"));
            openssl(
                v,
                &[
                    "x509",
                    "-req",
                    "-inform",
                    "DER",
                    "-in",
                    &der,
                    "-CA",
                    "vendor.pem",
                    "-CAkey",
                    "vendor.key",
                    "-days",
                    "30",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    &pem,
                ],
            );
        }
        let anchors = format!("[\"{}\"]", v.join("vendor.pem").display());
        let i = Installation::start(k.env("KIZUNA_CA__ENROLLMENT__IDEVID_ANCHORS", &anchors)).await;
        i.add_device("lamp-1", "LM-1");
        let idevid = |serial: &str, dir: &str| {
            i.device_script(
                "idevid",
                &i.path(dir),
                &[
                    v.join(format!("{serial}.pem")).to_str().unwrap(),
                    v.join(format!("{serial}.key")).to_str().unwrap(),
                    &format!("/CN=lamp-1/serialNumber={serial}"),
                ],
            )
        };
        let ok = idevid("LM-1", "lamp-1");
        assert!(ok.status.success(), "{}", stderr(&ok));
        let san = x509_field(&i.path("lamp-1").join("device.pem"), "-ext=subjectAltName");
        assert!(
            san.contains("URI:spiffe://") && san.contains("/device/lamp-1"),
            "{san}"
        );
        // LM-2 has a valid manufacturer certificate but is not registered: quarantined.
        let unknown = idevid("LM-2", "lamp-2");
        assert!(
            stderr(&unknown).contains("HTTP 403")
                && stderr(&unknown).contains("no registered device"),
            "{}",
            stderr(&unknown)
        );
    }
}

/// Percent-encodes PEM as nginx's `$ssl_client_escaped_cert` does.
pub(crate) fn escaped(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_certificate_authenticates() {
    for k in Kizuna::each_backend().await {
        let i =
            Installation::start(k.env("KIZUNA_TLS__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")).await;
        i.add_device("sl-5", "SN-5");
        let dir = i.enroll("sl-5", &i.token(&["--device", "sl-5"]), "/CN=sl-5");
        let pem = std::fs::read_to_string(dir.join("device.pem")).unwrap();
        csr(&dir, "proxy", "/CN=sl-5", &[]);
        let csr = dir.join("proxy.der");
        let reenroll = |header: String| {
            let out = Command::new("curl")
                .args([
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    "Content-Type: application/pkcs10",
                    "-H",
                ])
                .arg(header)
                .args(["--data-binary", &base64_file(&csr)])
                .arg(i.server.url("/.well-known/est/simplereenroll"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        // Envoy's form and nginx's form, from the trusted proxy address (the plain listener).
        assert_eq!(
            reenroll(format!(
                "X-Forwarded-Client-Cert: Hash=00;Cert=\"{}\"",
                escaped(&pem)
            )),
            "200"
        );
        assert_eq!(
            reenroll(format!("X-Forwarded-Client-Cert: {}", escaped(&pem))),
            "200"
        );
        assert_eq!(reenroll("X-Forwarded-Client-Cert: garbage".into()), "401");
    }
}

#[tokio::test]
async fn a_forwarded_certificate_from_an_untrusted_address_is_ignored() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        i.add_device("sl-6", "SN-6");
        let dir = i.enroll("sl-6", &i.token(&["--device", "sl-6"]), "/CN=sl-6");
        let pem = std::fs::read_to_string(dir.join("device.pem")).unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/pkcs10",
                "-H",
            ])
            .arg(format!("X-Forwarded-Client-Cert: {}", escaped(&pem)))
            .args(["--data-binary", "MAMCAQE="])
            .arg(i.server.url("/.well-known/est/simplereenroll"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.ends_with("403") && text.contains("over TLS only"),
            "{text}"
        );
    }
}
