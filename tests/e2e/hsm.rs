//! CA keys in a PKCS#11 token: SoftHSM2 (not written here) stands in for the HSM. The root
//! and issuing CA keys are generated inside the token; the certificates they sign verify with
//! openssl; the database holds only the keys' object ids.

use std::process::Command;

use crate::common::softhsm::{MODULE, softhsm_token, with_ca_keys_in};
use crate::common::{Kizuna, TempDir, database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_keys_generated_in_softhsm_sign_certificates_openssl_verifies() {
    for k in Kizuna::each_backend().await {
        let hsm = TempDir::new("kizuna-softhsm");
        let Some(conf) = softhsm_token(&hsm) else {
            return;
        };
        let k = with_ca_keys_in(k, &conf);
        let created = k.ok(&["ca", "init"]);
        assert!(
            created.contains("root-1") && created.contains("issuing-1"),
            "{created}"
        );

        let dir = k.dir.path();
        let csr = dir.join("device.csr");
        let out = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=svc",
            ])
            .args(["-addext", "subjectAltName=DNS:api.water.city.example"])
            .arg("-keyout")
            .arg(dir.join("device.key"))
            .arg("-out")
            .arg(&csr)
            .output()
            .unwrap();
        assert!(out.status.success());
        let org: serde_json::Value = k.json(&["org", "create", "--name", "Water", "--json"]);
        k.ok(&[
            "org",
            "allow",
            org["id"].as_str().unwrap(),
            "--dns",
            "water.city.example",
        ]);
        let leaf = k.ok(&[
            "cert",
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--profile",
            "service",
            "--org",
            "Water",
        ]);
        std::fs::write(dir.join("leaf.pem"), &leaf).unwrap();

        let db = database(&k).await;
        let keys: Vec<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT purpose, backend, material FROM keys WHERE purpose LIKE 'ca-%'")
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(keys.len(), 2);
        for (purpose, backend, material) in &keys {
            assert_eq!(backend, "pkcs11", "{purpose}");
            assert!(
                material.len() < 64,
                "only the object id is stored, not key material"
            );
        }
        let cas: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT id, cert_der FROM cas ORDER BY kind DESC")
                .fetch_all(db.pool())
                .await
                .unwrap();
        db.close().await;
        for (id, der) in &cas {
            std::fs::write(dir.join(format!("{id}.der")), der).unwrap();
        }
        let verify = Command::new("sh")
            .current_dir(dir)
            .arg("-c")
            .arg("openssl x509 -inform DER -in root-1.der -out root.pem && openssl x509 -inform DER -in issuing-1.der -out issuing.pem && openssl verify -CAfile root.pem -untrusted issuing.pem leaf.pem")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&verify.stdout).contains("leaf.pem: OK"),
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        // The key objects are in the token, not extractable.
        let listed = Command::new("pkcs11-tool")
            .args([
                "--module",
                MODULE,
                "--token-label",
                "kizuna-ca",
                "--login",
                "--pin",
                "246810",
                "--list-objects",
                "--type",
                "privkey",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output();
        if let Ok(listed) = listed {
            let text = String::from_utf8_lossy(&listed.stdout);
            assert_eq!(text.matches("Private Key Object").count(), 2, "{text}");
        }
    }
}

#[test]
fn a_wrong_pin_or_token_stops_start_up_with_a_clear_message() {
    let hsm = TempDir::new("kizuna-softhsm");
    let Some(conf) = softhsm_token(&hsm) else {
        return;
    };
    let k = Kizuna::sqlite()
        .env("SOFTHSM2_CONF", conf.to_str().unwrap())
        .env("KIZUNA_PKCS11__MODULE", MODULE)
        .env("KIZUNA_PKCS11__TOKEN_LABEL", "kizuna-ca")
        .env("KIZUNA_PKCS11__PIN", "012345")
        .env("KIZUNA_CA__KEY_BACKEND", "pkcs11");
    let out = k.run(&["ca", "init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PKCS#11 login"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = k.env("KIZUNA_PKCS11__TOKEN_LABEL", "nope");
    let out = k.run(&["ca", "init"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no token labelled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Kizuna::sqlite()
        .env("KIZUNA_CA__KEY_BACKEND", "pkcs11")
        .run(&["ca", "init"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "pkcs11 without a [pkcs11] section is a configuration error"
    );
}
