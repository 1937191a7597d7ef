//! ACME (RFC 8555) with certbot (PyPI), standalone http-01, against Kizuna's directory:
//! register with external account binding, obtain, renew, revoke.

mod common;

use std::process::{Command, Output};

use common::enroll::{Installation, openssl_verify, stderr, x509_field};
use common::{Kizuna, free_port};

const NAME: &str = "api.streetlights.city.example";

/// An install whose ACME validation reaches `http_port` on 127.0.0.1 for the test's names.
pub async fn acme_install(k: Kizuna, http_port: u16, tls_port: u16) -> Installation {
    std::fs::write(
        k.dir.path().join("kizuna.toml"),
        format!(
            "[ca.acme]\nhttp01_port = {http_port}\ntls_alpn01_port = {tls_port}\n\n[ca.acme.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\"other.streetlights.city.example\" = \"127.0.0.1\"\n"
        ),
    )
    .unwrap();
    let i = Installation::start(k).await;
    i.k.ok(&["org", "allow", "Streetlights", "--dns", "streetlights.city.example"]);
    i
}

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
        .args(["--non-interactive", "--server", &format!("{}/acme/directory", i.server.public)])
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
        let i = acme_install(k, port, free_port()).await;
        let eab = i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]);
        let standalone = ["--standalone", "--http-01-address", "127.0.0.1", "--http-01-port"];
        let port_text = port.to_string();
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
            "--eab-hmac-key",
            eab["hmac_key"].as_str().unwrap(),
            "-d",
            NAME,
        ]);
        certbot_ok(&i, &obtain);
        let live = i.path("certbot").join("etc/live").join(NAME);
        let cert = live.join("cert.pem");
        let verified = openssl_verify(&i.root, &live.join("chain.pem"), &cert);
        assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
        assert!(x509_field(&cert, "-ext=subjectAltName").contains(&format!("DNS:{NAME}")));
        let first = x509_field(&cert, "-serial");

        certbot_ok(&i, &["renew", "--force-renewal", "--no-random-sleep-on-renew"]);
        let renewed = x509_field(&cert, "-serial");
        assert_ne!(renewed, first, "renewal issued a new certificate");
        assert!(openssl_verify(&i.root, &live.join("chain.pem"), &cert).status.success());

        certbot_ok(&i, &[
            "revoke", "--cert-path", cert.to_str().unwrap(), "--reason", "superseded",
            "--no-delete-after-revoke",
        ]);
        let serial = renewed.trim_start_matches("serial=").to_ascii_lowercase();
        let shown = i.k.json(&["cert", "show", &serial, "--json"]);
        assert_eq!(shown["status"], "revoked");
        assert_eq!(shown["revocation_reason"], "superseded");
        assert_eq!(shown["profile"], "service");
        assert_eq!(shown["org_id"], i.org_id.as_str());
        let audit = i.k.ok(&["audit", "export"]);
        for action in ["acme.account.create", "acme.order.create", "acme.challenge.validate", "cert.revoke"] {
            assert!(audit.contains(&format!("\"{action}\"")), "{action} audited");
        }
    }
}
