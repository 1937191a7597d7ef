//! Root CA rollover seen by software this project did not write: after `kizuna ca
//! rollover-root`, `openssl verify` validates certificates issued before and after under
//! either root (through the cross-certificates), `openssl ocsp` answers for both
//! hierarchies, pkilint accepts the new root and the cross-certificates; the overlap ends by
//! `kizuna ca retire-root` or the old root's expiry; bad inputs change nothing.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ca::{issue, pki_install};
use crate::common::enroll::{Installation, openssl_verify, stderr};
use crate::common::pki::{csr, download_ca, pkilint_clean, sh, sh_ok, text};
use crate::common::{Kizuna, Server};

/// A device certificate `<name>.pem` (key `<name>.key`) for organization `org`.
pub(crate) fn device(k: &Kizuna, org: &str, name: &str) {
    csr(
        k.dir.path(),
        name,
        "p256",
        &format!("/CN={name}"),
        &[&format!(
            "subjectAltName=URI:urn:kizuna:device:{org}:{name}"
        )],
    );
    issue(k, name, "device", org, &[]);
}

/// `openssl verify -x509_strict` of `leaf` with `anchor` as the only trust anchor and the
/// concatenation of `untrusted` as the untrusted certificates.
fn verify(dir: &Path, anchor: &str, untrusted: &[&str], leaf: &str) -> Output {
    let bundle = format!("untrusted-{}.pem", crate::common::free_port());
    sh_ok(dir, &format!("cat {} > {bundle}", untrusted.join(" ")));
    sh(
        dir,
        &format!("openssl verify -x509_strict -CAfile {anchor} -untrusted {bundle} {leaf}"),
    )
}

fn verifies(dir: &Path, anchor: &str, untrusted: &[&str], leaf: &str) {
    let out = verify(dir, anchor, untrusted, leaf);
    assert!(
        out.status.success() && text(&out).contains(&format!("{leaf}: OK")),
        "{leaf} under {anchor} with {untrusted:?}:\n{}",
        text(&out)
    );
}

fn fails(dir: &Path, anchor: &str, untrusted: &[&str], leaf: &str) {
    let out = verify(dir, anchor, untrusted, leaf);
    assert!(
        !out.status.success(),
        "{leaf} must not verify under {anchor} with {untrusted:?}:\n{}",
        text(&out)
    );
}

fn serial(dir: &Path, leaf: &str) -> String {
    sh_ok(dir, &format!("openssl x509 -in {leaf} -noout -serial"))
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// `openssl ocsp` for `<leaf>.pem` at issuer `issuer`'s responder, the response checked
/// under `anchor`; waits (boundedly) until the answer says `want`.
fn ocsp_says(dir: &Path, base: &str, issuer: &str, leaf: &str, anchor: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = text(&sh(
            dir,
            &format!(
                "openssl ocsp -no_nonce -issuer {issuer}.pem -cert {leaf}.pem -url {base}/ocsp/{issuer} -CAfile {anchor}"
            ),
        ));
        let done = answer.contains(&format!("{leaf}.pem: {want}"))
            && answer.contains("Response verify OK");
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "OCSP for {leaf} at {issuer}:\n{answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn certificates_in(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// The CA list and the CA entries of the audit log: what a refused command must leave as it
/// was. (The server beside may audit other work meanwhile.)
fn state(k: &Kizuna) -> (String, usize) {
    let audit = k.ok(&["audit", "export"]);
    (
        k.ok(&["ca", "list", "--json"]),
        audit.lines().filter(|l| l.contains("\"ca.")).count(),
    )
}

/// A failing kizuna command: its exit code and what it printed.
fn refused(k: &Kizuna, args: &[&str]) -> (Option<i32>, String) {
    let out = k.run(args);
    assert!(!out.status.success(), "kizuna {args:?} succeeded");
    (out.status.code(), text(&out))
}

async fn bundle(server: &Server) -> String {
    reqwest::get(format!("{}/pki/trust-bundle.pem", server.base))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_root_rollover_old_and_new_certificates_validate_under_either_root() {
    for (n, k) in Kizuna::each_backend().await.into_iter().enumerate() {
        let (k, server, org) = pki_install(k).await;
        let dir = k.dir.path().to_path_buf();
        device(&k, &org, "before");
        device(&k, &org, "before-lost");
        assert_eq!(certificates_in(&bundle(&server).await), 1, "one root");

        // Without --yes: what would change, and nothing changes.
        let untouched = state(&k);
        let (code, plan) = refused(&k, &["ca", "rollover-root"]);
        assert_eq!(code, Some(1));
        assert!(
            plan.contains("root-1") && plan.contains("issuing") && plan.contains("--yes"),
            "{plan}"
        );
        assert_eq!(state(&k), untouched);

        let out = k.ok(&["ca", "rollover-root", "--yes"]);
        for id in [
            "root-2",
            "root-2-by-root-1",
            "root-1-by-root-2",
            "issuing-2",
        ] {
            assert!(out.contains(id), "{out}");
        }
        device(&k, &org, "after");
        device(&k, &org, "after-lost");
        let issuer = sh_ok(&dir, "openssl x509 -in after.pem -noout -issuer");
        assert!(issuer.contains("Issuing CA 2"), "{issuer}");
        for id in [
            "root-1",
            "root-2",
            "issuing-1",
            "issuing-2",
            "root-2-by-root-1",
            "root-1-by-root-2",
        ] {
            download_ca(&k, &server, id, &format!("{id}.pem")).await;
        }

        // Each leaf under its own root alone.
        verifies(&dir, "root-1.pem", &["issuing-1.pem"], "before.pem");
        verifies(&dir, "root-2.pem", &["issuing-2.pem"], "after.pem");
        // Across: NewWithOld takes a new leaf to the old root, OldWithNew an old leaf to the
        // new root; without them neither path exists.
        fails(&dir, "root-1.pem", &["issuing-2.pem"], "after.pem");
        verifies(
            &dir,
            "root-1.pem",
            &["issuing-2.pem", "root-2-by-root-1.pem"],
            "after.pem",
        );
        fails(&dir, "root-2.pem", &["issuing-1.pem"], "before.pem");
        verifies(
            &dir,
            "root-2.pem",
            &["issuing-1.pem", "root-1-by-root-2.pem"],
            "before.pem",
        );
        let cross = sh_ok(
            &dir,
            "openssl x509 -in root-2-by-root-1.pem -noout -subject -issuer",
        );
        assert!(
            cross.contains("Root CA 2") && cross.contains("Root CA 1"),
            "{cross}"
        );

        // The chain handed out with a new certificate: both roots and both
        // cross-certificates, enough for a relying party that trusts either root.
        let chain = k.ok(&[
            "cert",
            "issue",
            "--csr",
            "after.csr",
            "--profile",
            "device",
            "--org",
            &org,
            "--chain",
        ]);
        assert_eq!(certificates_in(&chain), 6, "{chain}");
        std::fs::write(dir.join("chain.pem"), &chain).unwrap();
        for anchor in ["root-1.pem", "root-2.pem"] {
            verifies(&dir, anchor, &["chain.pem"], "chain.pem");
        }
        // The published trust bundle and the CA list.
        let published = bundle(&server).await;
        assert_eq!(certificates_in(&published), 4, "{published}");
        for id in ["root-1", "root-2", "root-2-by-root-1", "root-1-by-root-2"] {
            let pem = std::fs::read_to_string(dir.join(format!("{id}.pem"))).unwrap();
            assert!(published.contains(pem.trim()), "{id} not in the bundle");
        }
        let list: Value = k.json(&["ca", "list", "--json"]);
        let status = |id: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .map(|c| {
                    format!(
                        "{}/{}",
                        c["kind"].as_str().unwrap(),
                        c["status"].as_str().unwrap()
                    )
                })
        };
        assert_eq!(status("root-1").as_deref(), Some("root/superseded"));
        assert_eq!(status("root-2").as_deref(), Some("root/active"));
        assert_eq!(status("root-2-by-root-1").as_deref(), Some("cross/active"));
        assert_eq!(status("root-1-by-root-2").as_deref(), Some("cross/active"));
        assert_eq!(status("issuing-1").as_deref(), Some("issuing/superseded"));
        assert_eq!(status("issuing-2").as_deref(), Some("issuing/active"));

        // OCSP answers for both hierarchies, good then revoked.
        ocsp_says(
            &dir,
            &server.base,
            "issuing-1",
            "before",
            "root-1.pem",
            "good",
        );
        ocsp_says(
            &dir,
            &server.base,
            "issuing-2",
            "after",
            "root-2.pem",
            "good",
        );
        for leaf in ["before-lost", "after-lost"] {
            let serial = serial(&dir, &format!("{leaf}.pem"));
            k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
        }
        ocsp_says(
            &dir,
            &server.base,
            "issuing-1",
            "before-lost",
            "root-1.pem",
            "revoked",
        );
        ocsp_says(
            &dir,
            &server.base,
            "issuing-2",
            "after-lost",
            "root-2.pem",
            "revoked",
        );

        // The new CAs publish CRLs that verify.
        for (ca, signer) in [("root-2", "root-2.pem"), ("issuing-2", "issuing-2.pem")] {
            let crl = reqwest::get(format!("{}/pki/crl/{ca}.crl", server.base))
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .bytes()
                .await
                .unwrap();
            std::fs::write(dir.join(format!("{ca}.crl")), crl).unwrap();
            let checked = sh_ok(
                &dir,
                &format!("openssl crl -inform DER -in {ca}.crl -CAfile {signer} -noout"),
            );
            assert!(checked.contains("verify OK"), "{checked}");
        }

        if n == 0 {
            for ca in [
                "root-2.pem",
                "root-2-by-root-1.pem",
                "root-1-by-root-2.pem",
                "issuing-2.pem",
            ] {
                pkilint_clean(&dir, &format!("lint_pkix_cert lint -s ERROR {ca}"));
            }
        }
        let audit = k.ok(&["audit", "export"]);
        assert_eq!(audit.matches("ca.rollover_root").count(), 1, "{audit}");
        assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_root_rollover_waits_for_the_overlap_and_retiring_ends_it() {
    for k in Kizuna::each_backend().await {
        let (k, server, org) = pki_install(k).await;
        let dir = k.dir.path().to_path_buf();
        device(&k, &org, "before");

        // Bad inputs before any rollover.
        let untouched = state(&k);
        let (code, out) = refused(&k, &["ca", "rollover-root", "--yes", "--bogus"]);
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains("--bogus"), "{out}");
        let (_, out) = refused(&k, &["ca", "retire-root"]);
        assert!(out.contains("no root is in a rollover overlap"), "{out}");
        let (_, out) = refused(&k, &["ca", "retire-root", "--id", "root-1"]);
        assert!(out.contains("roll the root over first"), "{out}");
        assert_eq!(state(&k), untouched);

        k.ok(&["ca", "rollover-root", "--yes"]);
        device(&k, &org, "after");

        // While the overlap is open: a second rollover, retiring the wrong CA, and retiring
        // a root with certificates still valid under it are refused, and change nothing.
        let overlap = state(&k);
        let (code, out) = refused(&k, &["ca", "rollover-root", "--yes"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("overlap") && out.contains("root-1") && out.contains("retire-root"),
            "{out}"
        );
        let (_, out) = refused(&k, &["ca", "retire-root", "--id", "issuing-1"]);
        assert!(out.contains("not a root"), "{out}");
        let (_, out) = refused(&k, &["ca", "retire-root", "--id", "root-2"]);
        assert!(out.contains("roll the root over first"), "{out}");
        let (_, out) = refused(&k, &["ca", "retire-root", "--id", "root-9"]);
        assert!(out.contains("no CA root-9"), "{out}");
        let (code, out) = refused(&k, &["ca", "retire-root", "--forse"]);
        assert_eq!(code, Some(2), "{out}");
        let (_, out) = refused(&k, &["ca", "retire-root"]);
        assert!(
            out.contains("1 certificates issued under root-1 are still valid")
                && out.contains("--force"),
            "{out}"
        );
        assert_eq!(state(&k), overlap);

        let retired: Value = k.json(&["ca", "retire-root", "--force", "--json"]);
        assert_eq!(retired["root"], "root-1");
        assert_eq!(retired["still_valid"], 1);
        let crosses: Vec<&str> = retired["cross_certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(crosses, ["root-2-by-root-1", "root-1-by-root-2"]);

        // No longer published: the bundle holds the new root alone, the old root and the
        // cross-certificates are gone from /pki/ca, and chains carry the new path only.
        let published = bundle(&server).await;
        assert_eq!(certificates_in(&published), 1, "{published}");
        download_ca(&k, &server, "root-2", "root-2.pem").await;
        let root2 = std::fs::read_to_string(dir.join("root-2.pem")).unwrap();
        assert_eq!(published.trim(), root2.trim());
        for id in ["root-1", "root-2-by-root-1", "root-1-by-root-2"] {
            let status = reqwest::get(format!("{}/pki/ca/{id}.pem", server.base))
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404, "{id}");
        }
        let chain = k.ok(&[
            "cert",
            "issue",
            "--csr",
            "after.csr",
            "--profile",
            "device",
            "--org",
            &org,
            "--chain",
        ]);
        assert_eq!(
            certificates_in(&chain),
            3,
            "leaf, issuing-2, root-2: {chain}"
        );
        // What the old issuing CA issued still gets OCSP answers.
        std::fs::write(
            dir.join("issuing-1.pem"),
            std::fs::read(dir.join("issuing.pem")).unwrap(),
        )
        .unwrap();
        ocsp_says(
            &dir,
            &server.base,
            "issuing-1",
            "before",
            "root.pem",
            "good",
        );

        let (_, out) = refused(&k, &["ca", "retire-root"]);
        assert!(out.contains("no root is in a rollover overlap"), "{out}");
        let (_, out) = refused(&k, &["ca", "retire-root", "--id", "root-1"]);
        assert!(out.contains("already retired"), "{out}");
        // With the overlap over, the next rollover may start.
        let (_, plan) = refused(&k, &["ca", "rollover-root"]);
        assert!(plan.contains("root-2") && plan.contains("--yes"), "{plan}");

        let audit = k.ok(&["audit", "export"]);
        assert_eq!(audit.matches("ca.rollover_root").count(), 1, "{audit}");
        assert_eq!(audit.matches("ca.retire_root").count(), 1, "{audit}");
        assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlap_ends_when_the_old_root_expires() {
    for k in Kizuna::each_backend().await {
        let k = k
            .env("KIZUNA_CA__ROOT_VALIDITY_DAYS", "365")
            .env("KIZUNA_CA__ISSUING_VALIDITY_DAYS", "200");
        let clock = k.clock();
        k.ok(&["ca", "init"]);
        clock.advance(300 * 86_400);
        k.ok(&["ca", "rollover-root", "--yes"]);
        let server = k.serve();
        assert_eq!(certificates_in(&bundle(&server).await), 4);
        drop(server);
        // Past the old root's notAfter (and with it the cross-certificates').
        clock.advance(70 * 86_400);
        let server = k.serve();
        let published = bundle(&server).await;
        assert_eq!(certificates_in(&published), 1, "{published}");
        std::fs::write(k.dir.path().join("bundle.pem"), &published).unwrap();
        let subject = sh_ok(k.dir.path(), "openssl x509 -in bundle.pem -noout -subject");
        assert!(subject.contains("Root CA 2"), "{subject}");
        // An expired root's overlap does not hold up the next rollover.
        let (_, plan) = refused(&k, &["ca", "rollover-root"]);
        assert!(plan.contains("root-2") && plan.contains("--yes"), "{plan}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_trusts_only_the_old_root_enrolls_and_validates_after_a_rollover() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        i.k.ok(&["ca", "rollover-root", "--yes"]);
        i.add_device("sl-7", "SN-7");
        let token = i.token(&["--device", "sl-7"]);
        let dir = i.path("sl-7");
        // The server picks up the new issuing CA within 5 s (as every replica does).
        std::thread::sleep(Duration::from_secs(6));
        // The server's own TLS certificate still chains to the old root the device holds.
        let cacerts = i.device_script("cacerts", &dir, &[]);
        assert!(cacerts.status.success(), "{}", stderr(&cacerts));
        let ca = dir.join("ca.pem");
        let bag = std::fs::read_to_string(&ca).unwrap();
        // RFC 7030 §4.1.3: the issuing CA, NewWithNew, NewWithOld, OldWithOld, OldWithNew.
        assert_eq!(certificates_in(&bag), 5, "{bag}");
        i.enroll("sl-7", &token, "/CN=sl-7/serialNumber=SN-7");
        let cert = dir.join("device.pem");
        let issuer = sh_ok(&dir, "openssl x509 -in device.pem -noout -issuer");
        assert!(issuer.contains("Issuing CA 2"), "{issuer}");
        let verified = openssl_verify(&i.root, &ca, &cert);
        assert!(
            verified.status.success(),
            "a device with the old root only: {}{}",
            String::from_utf8_lossy(&verified.stdout),
            stderr(&verified)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kizunas_own_tls_certificate_validates_under_either_root_during_the_overlap() {
    for k in Kizuna::each_backend().await {
        let k = k.tls_self();
        let server = k.serve();
        k.ok(&["ca", "rollover-root", "--yes"]);
        for id in ["root-1", "root-2"] {
            download_ca(&k, &server, id, &format!("{id}.pem")).await;
        }
        // The listener's certificate was issued under root-1; after a restart its chain
        // carries OldWithNew, so a client that trusts only root-2 connects too.
        server.stop();
        let server = k.serve();
        for anchor in ["root-1.pem", "root-2.pem"] {
            let out = sh(
                k.dir.path(),
                &format!("curl -sS --fail --cacert {anchor} {}/readyz", server.public),
            );
            assert!(out.status.success(), "with {anchor}: {}", text(&out));
        }
    }
}

/// Makes an offline root `<name>.pem` (key `<name>.key`, request `<name>.csr` kept for its
/// cross-certificate) with openssl, as the machine that keeps it would.
fn offline_root(dir: &Path, name: &str, cn: &str) {
    sh_ok(
        dir,
        &format!(
            "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ca.ext && \
             openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key \
             -subj '/C=JP/O=City/CN={cn}' -out {name}.csr && \
             openssl x509 -req -in {name}.csr -key {name}.key -days 3650 -set_serial 0x{:x} -extfile ca.ext -out {name}.pem",
            crate::common::free_port()
        ),
    );
}

/// Signs `<csr>.csr` with offline root `<root>` into `<out>.pem`, as a CA certificate
/// (`pathlen` for an issuing CA, none for a cross-certificate).
fn offline_sign(dir: &Path, root: &str, csr: &str, out: &str, pathlen: &str) {
    sh_ok(
        dir,
        &format!(
            "printf 'basicConstraints=critical,CA:TRUE{pathlen}\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > {out}.ext && \
             openssl x509 -req -in {csr}.csr -CA {root}.pem -CAkey {root}.key -days 1800 -set_serial 0x{:x} -extfile {out}.ext -out {out}.pem",
            crate::common::free_port()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_root_rolls_over_where_it_is_kept_and_kizuna_publishes_the_cross_certificates() {
    for k in Kizuna::each_backend().await {
        let k = k.env("KIZUNA_CA__AUTO_INIT", "false");
        let dir = k.dir.path().to_path_buf();
        offline_root(&dir, "r1", "City Offline Root 1");
        k.ok(&["ca", "init", "--root-csr-out", "issuing-1.csr"]);
        offline_sign(&dir, "r1", "issuing-1", "issuing-1", ",pathlen:0");
        k.ok(&[
            "ca",
            "import-issuer",
            "--cert",
            "issuing-1.pem",
            "--root",
            "r1.pem",
        ]);

        // Kizuna holds no root key, so it cannot roll the root over itself.
        let untouched = state(&k);
        let (code, out) = refused(&k, &["ca", "rollover-root", "--yes"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("offline") && out.contains("docs/ca.md"),
            "{out}"
        );
        assert_eq!(state(&k), untouched);

        // On the offline machine: a new root and both cross-certificates; here: a new issuing
        // generation under the new root, then the cross-certificates.
        offline_root(&dir, "r2", "City Offline Root 2");
        offline_sign(&dir, "r1", "r2", "r2-by-r1", "");
        offline_sign(&dir, "r2", "r1", "r1-by-r2", "");
        k.ok(&["ca", "init", "--root-csr-out", "issuing-2.csr"]);
        offline_sign(&dir, "r2", "issuing-2", "issuing-2", ",pathlen:0");
        k.ok(&[
            "ca",
            "import-issuer",
            "--cert",
            "issuing-2.pem",
            "--root",
            "r2.pem",
        ]);

        // Bad cross-certificates: a root's own certificate, one for a key that is no root
        // here, a leaf; none is stored.
        let before = state(&k);
        let (_, out) = refused(&k, &["ca", "import-cross", "--cert", "r2.pem"]);
        assert!(out.contains("not signed by another root"), "{out}");
        offline_sign(&dir, "r1", "issuing-2", "stray", "");
        let (_, out) = refused(&k, &["ca", "import-cross", "--cert", "stray.pem"]);
        assert!(
            out.contains("does not certify the key of any root"),
            "{out}"
        );
        csr(&dir, "leafy", "p256", "/CN=leafy", &[]);
        sh_ok(
            &dir,
            "openssl x509 -req -in leafy.csr -CA r1.pem -CAkey r1.key -days 30 -out leafy.pem",
        );
        let (_, out) = refused(&k, &["ca", "import-cross", "--cert", "leafy.pem"]);
        assert!(out.contains("not a CA certificate"), "{out}");
        let (code, _) = refused(&k, &["ca", "import-cross"]);
        assert_eq!(code, Some(2));
        assert_eq!(state(&k), before);

        let out = k.ok(&["ca", "import-cross", "--cert", "r2-by-r1.pem"]);
        assert!(
            out.contains("published cross-certificate root-ext-"),
            "{out}"
        );
        k.ok(&["ca", "import-cross", "--cert", "r1-by-r2.pem"]);
        let (_, out) = refused(&k, &["ca", "import-cross", "--cert", "r1-by-r2.pem"]);
        assert!(out.contains("already a cross-certificate"), "{out}");

        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        assert_eq!(certificates_in(&bundle(&server).await), 4);
        let org = k.json(&["org", "create", "--name", "Parks", "--json"]);
        let org = org["id"].as_str().unwrap().to_string();
        device(&k, &org, "after");
        let chain = k.ok(&[
            "cert",
            "issue",
            "--csr",
            "after.csr",
            "--profile",
            "device",
            "--org",
            &org,
            "--chain",
        ]);
        std::fs::write(dir.join("chain.pem"), &chain).unwrap();
        verifies(&dir, "r2.pem", &["issuing-2.pem"], "after.pem");
        verifies(
            &dir,
            "r1.pem",
            &["issuing-2.pem", "r2-by-r1.pem"],
            "after.pem",
        );
        verifies(&dir, "r1.pem", &["chain.pem"], "chain.pem");

        // Ending the overlap: the old root by its id.
        let list: Value = k.json(&["ca", "list", "--json"]);
        let old = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "root")
            .min_by_key(|c| c["generation"].as_i64())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let retired: Value = k.json(&["ca", "retire-root", "--id", &old, "--json"]);
        assert_eq!(retired["cross_certificates"].as_array().unwrap().len(), 2);
        assert_eq!(certificates_in(&bundle(&server).await), 1);
        assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
    }
}
