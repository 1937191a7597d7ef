//! Rotating the key-encryption key end to end, on SQLite and PostgreSQL: `kizuna kek create`,
//! the rolling procedure of docs/operations.md (open-only KEKs, then `kizuna kek rotate`
//! beside a running server), an install that then runs on the new KEK alone, bad input that
//! changes nothing, and CA keys in SoftHSM2, which a rotation leaves where they are.

use std::path::Path;

use base64::Engine;
use kizuna_core::custody::{Kek, KeyBackend, SoftwareBackend, sealed_kek_id};
use serde_json::{Value, json};

use crate::common::rp::Rp;
use crate::common::softhsm::{softhsm_token, with_ca_keys_in};
use crate::common::upstream::DiscoveryStub;
use crate::common::{Browser, Kizuna, Server, TempDir, TotpApp, database, pki, service_token};

const PASSWORD: &str = "a perfectly long passphrase";
const UPSTREAM_SECRET: &str = "upstream-client-secret-for-the-kek-test";

/// Points the install at a KEK and its open-only KEKs (none: an empty list).
fn use_keks(k: &mut Kizuna, current: &Path, open_only: &[&Path]) {
    k.set_env("KIZUNA_KEK_FILE", current.to_str().unwrap());
    let list: Vec<&str> = open_only.iter().map(|p| p.to_str().unwrap()).collect();
    k.set_env("KIZUNA_KEK_OPEN_ONLY_FILES", &list.join(","));
}

fn software(kek_file: &Path) -> SoftwareBackend {
    SoftwareBackend::new(Kek::parse(&std::fs::read_to_string(kek_file).unwrap()).unwrap())
}

/// A resident with an authenticator app, enrolled through the account page.
async fn resident_with_totp(k: &Kizuna, server: &Server, name: &str) -> std::sync::Arc<TotpApp> {
    k.resident(name, PASSWORD);
    k.ok(&["user", "verify-email", name]);
    let browser = Browser::for_server(k, server);
    browser.sign_in_to_account(name, PASSWORD).await;
    browser.enroll_totp().await
}

/// Signs `name` in to `rp` (which asks for AAL2) with the password and the authenticator app
/// in a fresh browser; the ID token must verify against the server's JWKS.
async fn signs_in_with_totp(
    k: &Kizuna,
    server: &Server,
    rp: &Rp,
    name: &str,
    app: &std::sync::Arc<TotpApp>,
) {
    let browser = Browser::for_server(k, server);
    *browser.totp.lock().unwrap() = Some(app.clone());
    let callback = browser
        .sign_in(&rp.authorize_url(server, "openid", &[]), name, PASSWORD)
        .await;
    let tokens = rp.redeem(server, &callback).await;
    let id_token = kizuna_core::jose::Jws::parse(tokens["id_token"].as_str().unwrap()).unwrap();
    let jwks: Value = reqwest::get(server.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    id_token.verify_with_set(&jwks, &["ES256"]).unwrap();
    let claims: Value = id_token.claims().unwrap();
    assert_eq!(
        claims["acr"], "urn:kizuna:aal:2",
        "the TOTP code was accepted"
    );
}

/// A service token: signed by the token signing key, and accepted by the server (the admin
/// API checks it).
async fn service_token_works(k: &Kizuna, server: &Server) {
    let token = service_token(k, &server.public, "kizuna:admin", None).await;
    let status = reqwest::Client::new()
        .get(server.url("/admin/api/v1/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the token verifies");
}

/// Issues a service certificate from the command line (the issuing CA's key signs it).
fn issues_a_certificate(k: &Kizuna, name: &str) {
    let csr = pki::csr(
        k.dir.path(),
        name,
        "p256",
        &format!("/CN={name}"),
        &[&format!("subjectAltName=DNS:{name}.water.city.example")],
    );
    let pem = k.ok(&[
        "cert",
        "issue",
        "--csr",
        csr.to_str().unwrap(),
        "--profile",
        "service",
        "--org",
        "Water",
    ]);
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
}

fn water_org(k: &Kizuna) {
    k.ok(&["org", "create", "--name", "Water"]);
    k.ok(&["org", "allow", "Water", "--dns", "water.city.example"]);
}

/// Derives (and on first use creates) the assurance binding key.
fn uses_the_binding_key(k: &Kizuna) {
    let anchor = k.dir.path().join("jpki.pem");
    if !anchor.exists() {
        pki::sh_ok(
            k.dir.path(),
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout jpki.key -out jpki.pem -subj '/CN=JPKI test' -days 2",
        );
    }
    let report = k.json(&[
        "assurance",
        "renew-cards",
        "--issuer-cert",
        anchor.to_str().unwrap(),
        "--old-serial",
        "01",
        "--new-serial",
        "02",
        "--json",
    ]);
    assert_eq!(report["not_bound"], 1, "{report}");
}

/// Every KEK-sealed value in the database: (kind, context, sealed).
async fn sealed_values(k: &Kizuna) -> Vec<(String, Option<String>, Vec<u8>)> {
    let db = database(k).await;
    let mut out = Vec::new();
    let keys: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT id, material FROM keys WHERE backend = 'software'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    out.extend(
        keys.into_iter()
            .map(|(id, m)| (format!("key {id}"), None, m)),
    );
    let seeds: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT user_id, secret FROM totp_credentials")
            .fetch_all(db.pool())
            .await
            .unwrap();
    out.extend(
        seeds
            .into_iter()
            .map(|(u, s)| ("totp".into(), Some(format!("totp:{u}")), s)),
    );
    let secrets: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT id, client_secret FROM upstreams WHERE client_secret IS NOT NULL")
            .fetch_all(db.pool())
            .await
            .unwrap();
    out.extend(secrets.into_iter().map(|(id, s)| {
        (
            "upstream".into(),
            Some(format!("upstream-client-secret:{id}")),
            s,
        )
    }));
    let eab_keys: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, hmac_key FROM acme_eab_keys")
            .fetch_all(db.pool())
            .await
            .unwrap();
    out.extend(
        eab_keys
            .into_iter()
            .map(|(kid, key)| ("acme eab".into(), Some(format!("acme-eab:{kid}")), key)),
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let texts: Vec<(String, String)> = sqlx::query_as(
        "SELECT 'check', value FROM meta WHERE key = 'kek_check' \
         UNION ALL SELECT 'binding', value FROM settings WHERE key = 'assurance.binding_key'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    for (kind, text) in texts {
        let context = (kind == "binding").then(|| "assurance:binding-key".to_string());
        out.push((kind, context, b64.decode(text).unwrap()));
    }
    db.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_rotation_moves_everything_to_the_new_kek_and_the_install_runs_on_it_alone() {
    for mut k in Kizuna::each_backend().await {
        let upstream = DiscoveryStub::start().await;
        // The first start creates the CAs, the token signing key and the KEK file.
        let server = k.serve();
        let old = k.data_dir().join("kek");
        water_org(&k);
        k.ok(&["org", "create", "--name", "Hospital"]);
        // An ACME binding key not yet used: its HMAC key is a sealed value too.
        k.ok(&["acme", "eab", "create", "--org", "Hospital"]);
        let rp = Rp::register(&k, "Ward office", &["--min-aal", "2"]);
        let taro = resident_with_totp(&k, &server, "taro").await;
        let upstream_args = |alias: &'static str| {
            vec![
                "upstream",
                "add",
                "--alias",
                alias,
                "--name",
                "City Hospital",
                "--org",
                "Hospital",
                "--issuer",
                &upstream.issuer,
                "--client-id",
                "kizuna",
                "--json",
            ]
        };
        let mut with_secret = upstream_args("hospital");
        with_secret.push("--client-secret-stdin");
        let hospital: Value =
            serde_json::from_str(&k.ok_stdin(&with_secret, UPSTREAM_SECRET)).unwrap();
        let mut with_key = upstream_args("clinic");
        with_key.push("--private-key-jwt");
        k.json(&with_key);
        uses_the_binding_key(&k);
        server.stop();

        let new = k.dir.path().join("kek-2");
        let created = k.json(&["kek", "create", "--out", new.to_str().unwrap(), "--json"]);
        let new_text = std::fs::read_to_string(&new).unwrap();
        let new_id = Kek::parse(&new_text).unwrap().id().to_string();
        assert_eq!(created["kek_id"], new_id.as_str());
        assert!(
            !created.to_string().contains(new_text.trim()),
            "the key is not printed"
        );

        // Step 1 (rolling restart): the old KEK seals, every replica can open the new one.
        use_keks(&mut k, &old, &[&new]);
        k.serve().stop();
        // Step 2 (rolling restart): the new KEK seals, the old one still opens. What this
        // replica seals now (hanako's seed) is under the new KEK already.
        use_keks(&mut k, &new, &[&old]);
        let server = k.serve();
        let hanako = resident_with_totp(&k, &server, "hanako").await;
        signs_in_with_totp(&k, &server, &rp, "taro", &taro).await;

        // Step 3: the rotation, beside the running server.
        let report = k.json(&[
            "kek",
            "rotate",
            "--new-kek-file",
            new.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(report["new_kek"], new_id.as_str());
        let kinds = &report["kinds"];
        let count = |kind: &str, field: &str| kinds[kind][field].as_u64().unwrap_or(0);
        assert_eq!(
            (
                count("totp_seed", "resealed"),
                count("totp_seed", "already")
            ),
            (1, 1),
            "{report}"
        );
        assert_eq!(count("upstream_client_secret", "resealed"), 1, "{report}");
        assert_eq!(count("assurance_binding_key", "resealed"), 1, "{report}");
        assert_eq!(count("kek_check", "resealed"), 1, "{report}");
        // Root and issuing CA, token signing keys, the client-assertion key, OCSP signers...
        assert!(count("software_key", "resealed") >= 4, "{report}");
        assert_eq!(report["held_elsewhere"], json!({}));
        assert!(!report.to_string().contains(new_text.trim()));

        // The server that runs with (new, old) keeps serving through the rotation.
        signs_in_with_totp(&k, &server, &rp, "taro", &taro).await;
        signs_in_with_totp(&k, &server, &rp, "hanako", &hanako).await;
        service_token_works(&k, &server).await;
        server.stop();

        // Every sealed value now names the new KEK and opens with it alone.
        let only_new = software(&new);
        let values = sealed_values(&k).await;
        assert!(values.len() >= 9, "{values:?}");
        for (kind, context, sealed) in &values {
            assert_eq!(
                sealed_kek_id(sealed).map(|id| id.to_string()).as_deref(),
                Some(new_id.as_str()),
                "{kind}"
            );
            if let Some(context) = context {
                assert!(only_new.open_data(context, sealed).is_some(), "{kind}");
                assert!(
                    software(&old).open_data(context, sealed).is_none(),
                    "{kind}"
                );
            }
        }
        let (_, context, sealed) = values.iter().find(|v| v.0 == "upstream").unwrap();
        assert_eq!(
            only_new
                .open_data(context.as_deref().unwrap(), sealed)
                .unwrap(),
            UPSTREAM_SECRET.as_bytes(),
            "upstream {}",
            hospital["id"]
        );

        // Running it again finds nothing left; a dry run says so without failing.
        let again = k.run(&["kek", "rotate", "--new-kek-file", new.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to re-seal"));
        let dry = k.json(&[
            "kek",
            "rotate",
            "--new-kek-file",
            new.to_str().unwrap(),
            "--dry-run",
            "--json",
        ]);
        assert_eq!(dry["resealed"], 0, "{dry}");

        // Step 4: the old KEK goes. The install runs on the new one alone.
        use_keks(&mut k, &new, &[]);
        let server = k.serve();
        signs_in_with_totp(&k, &server, &rp, "taro", &taro).await;
        signs_in_with_totp(&k, &server, &rp, "hanako", &hanako).await;
        service_token_works(&k, &server).await;
        issues_a_certificate(&k, "pumps");
        uses_the_binding_key(&k);
        server.stop();

        // The rotation is in the audit chain, with counts and KEK ids only.
        assert!(k.ok(&["audit", "verify"]).starts_with("ok:"));
        let audit = k.ok(&["audit", "export"]);
        let entry: Value = audit
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["action"] == "kek.rotate")
            .expect("a kek.rotate audit entry");
        let details = &entry["details"];
        assert_eq!(details["kinds"]["totp_seed"]["resealed"], 1, "{details}");
        assert_eq!(entry["target"], format!("kek:{new_id}"));
        assert_eq!(
            audit.matches("kek.rotate").count(),
            1,
            "the refused re-run wrote nothing"
        );
        assert!(
            !audit.contains(new_text.trim())
                && !audit.contains(std::fs::read_to_string(&old).unwrap().trim())
        );

        // The old KEK alone no longer opens the database.
        use_keks(&mut k, &old, &[]);
        let refused = k.try_serve(&[]).err().expect("the old KEK is refused");
        assert!(
            refused.stderr.contains("does not match this database"),
            "{refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rotations_are_refused_clearly_and_change_nothing() {
    for mut k in Kizuna::each_backend().await {
        k.ok(&["ca", "init"]);
        let old = k.data_dir().join("kek");
        let before = sealed_values(&k).await;
        let dir = k.dir.path().to_path_buf();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let other = write("other.kek", &b64.encode([8u8; 32]));
        let refused = |k: &Kizuna, new: &Path, expected: &str| {
            let out = k.run(&["kek", "rotate", "--new-kek-file", new.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(stderr.contains(expected), "expected {expected:?}: {stderr}");
            assert!(
                stderr.contains("othing was changed") || stderr.contains("does not exist"),
                "{stderr}"
            );
        };
        refused(&k, &dir.join("absent.kek"), "absent.kek does not exist");
        refused(&k, &write("text.kek", "not a key at all"), "malformed: ");
        refused(
            &k,
            &write("short.kek", &b64.encode([1u8; 16])),
            "16 bytes, expected 32",
        );
        refused(
            &k,
            &old,
            "nothing to re-seal: every sealed value is already under KEK",
        );
        // The configuration's KEK is not this database's.
        use_keks(&mut k, &other, &[]);
        let fresh = write("fresh.kek", &b64.encode([9u8; 32]));
        refused(&k, &fresh, "does not match this database");
        // An open-only KEK that is not there.
        use_keks(&mut k, &old, &[&dir.join("gone.kek")]);
        refused(&k, &fresh, "gone.kek does not exist");
        use_keks(&mut k, &old, &[]);

        assert_eq!(sealed_values(&k).await, before, "nothing was re-sealed");
        assert!(!k.ok(&["audit", "export"]).contains("kek.rotate"));
        // The dry run reports and changes nothing either.
        let dry = k.json(&[
            "kek",
            "rotate",
            "--new-kek-file",
            fresh.to_str().unwrap(),
            "--dry-run",
            "--json",
        ]);
        assert!(dry["resealed"].as_u64().unwrap() >= 3, "{dry}");
        assert_eq!(sealed_values(&k).await, before);
        assert!(!k.ok(&["audit", "export"]).contains("kek.rotate"));
    }
}

#[test]
fn kek_create_writes_a_private_file_once_and_prints_the_key_only_when_asked() {
    let k = Kizuna::sqlite();
    let out = k.dir.path().join("kek-new");
    let said = k.ok(&["kek", "create", "--out", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    let kek = Kek::parse(&text).unwrap();
    assert!(said.contains(&format!("KEK id {}", kek.id())), "{said}");
    assert!(said.contains("Rotate the key-encryption key"), "{said}");
    assert!(!said.contains(text.trim()), "the key is not printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over an existing file.
    let again = k.run(&["kek", "create", "--out", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists: refusing to overwrite")
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let nowhere = k.run(&["kek", "create", "--out", "/nonexistent-dir/kek"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("/nonexistent-dir/kek"));
    // --stdout prints the key itself (for a secret manager), its id on standard error.
    let printed = k.run(&["kek", "create", "--stdout"]);
    assert!(printed.status.success());
    let key = Kek::parse(&String::from_utf8_lossy(&printed.stdout)).unwrap();
    assert!(String::from_utf8_lossy(&printed.stderr).contains(&key.id().to_string()));
    // One of --out or --stdout.
    assert_eq!(k.run(&["kek", "create"]).status.code(), Some(2));
    assert!(
        !k.data_dir().join("kek").exists(),
        "kek create touches no install"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ca_keys_in_an_hsm_a_rotation_reseals_the_rest_and_leaves_the_hsm_keys() {
    for k in Kizuna::each_backend().await {
        let hsm = TempDir::new("kizuna-softhsm");
        let Some(conf) = softhsm_token(&hsm) else {
            return;
        };
        let mut k = with_ca_keys_in(k, &conf);
        k.ok(&["ca", "init"]);
        let server = k.serve();
        water_org(&k);
        let rp = Rp::register(&k, "Ward office", &["--min-aal", "2"]);
        let taro = resident_with_totp(&k, &server, "taro").await;
        server.stop();
        let db = database(&k).await;
        let hsm_keys = || async {
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                "SELECT id, material FROM keys WHERE backend = 'pkcs11' ORDER BY id",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            rows
        };
        let before = hsm_keys().await;
        assert_eq!(before.len(), 2, "root and issuing CA keys in the token");

        // A single server: stop it, rotate, start it on the new KEK.
        let new = k.dir.path().join("kek-2");
        k.ok(&["kek", "create", "--out", new.to_str().unwrap()]);
        let said = k.ok(&["kek", "rotate", "--new-kek-file", new.to_str().unwrap()]);
        assert!(
            said.contains("pkcs11: 2 keys held in the HSM, not re-sealed"),
            "{said}"
        );
        assert!(said.contains("totp_seed"), "{said}");
        assert_eq!(
            hsm_keys().await,
            before,
            "the HSM keys' references are untouched"
        );
        db.close().await;

        use_keks(&mut k, &new, &[]);
        let server = k.serve();
        issues_a_certificate(&k, "meters");
        service_token_works(&k, &server).await;
        signs_in_with_totp(&k, &server, &rp, "taro", &taro).await;
        server.stop();
        let entry = k
            .ok(&["audit", "export"])
            .lines()
            .find(|l| l.contains("\"kek.rotate\""))
            .map(str::to_string)
            .expect("audited");
        assert!(entry.contains("pkcs11"), "{entry}");
        assert!(k.ok(&["audit", "verify"]).starts_with("ok:"));
    }
}
