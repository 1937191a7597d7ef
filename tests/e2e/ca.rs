//! The certificate authority seen by software this project did not write: `openssl verify`
//! and pkilint accept every profile's output and the CA certificates; bad requests get a
//! clear 4xx and store nothing; rollover and an offline root keep every certificate valid;
//! certificates and CA certificates download in PEM and DER.

use crate::common;

use crate::common::pki::{self, csr, pkilint_clean, sh_ok, text};
use crate::common::{Kizuna, Server, database};
use serde_json::{Value, json};

/// A serving install with an organization allowed `water.city.example`, `water.kizuna-city.jp`
/// and `10.20.0.0/16`, and the CA certificates in its directory. Returns (install with its
/// public URL set, server, organization id).
pub(crate) async fn pki_install(k: Kizuna) -> (Kizuna, Server, String) {
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let org = k.json(&["org", "create", "--name", "Water", "--json"]);
    let org_id = org["id"].as_str().unwrap().to_string();
    k.ok(&[
        "org",
        "allow",
        &org_id,
        "--dns",
        "water.city.example",
        "--dns",
        "water.kizuna-city.jp",
        "--ip",
        "10.20.0.0/16",
    ]);
    pki::download_ca_certificates(&k, &server).await;
    (k, server, org_id)
}

/// Issues `<name>.pem` from `<name>.csr` with the CLI.
pub(crate) fn issue(k: &Kizuna, name: &str, profile: &str, org: &str, sans: &[&str]) -> String {
    let csr = format!("{name}.csr");
    let mut args = vec![
        "cert",
        "issue",
        "--csr",
        csr.as_str(),
        "--profile",
        profile,
        "--org",
        org,
    ];
    for san in sans {
        args.extend(["--san", san]);
    }
    let pem = k.ok(&args);
    std::fs::write(k.dir.path().join(format!("{name}.pem")), &pem).unwrap();
    pem
}

fn verify(k: &Kizuna, leaf: &str, purpose: &str) {
    let out = sh_ok(
        k.dir.path(),
        &format!(
            "openssl verify -x509_strict -purpose {purpose} -CAfile root.pem -untrusted issuing.pem {leaf}"
        ),
    );
    assert!(out.contains(&format!("{leaf}: OK")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_names_are_spiffe_ids_in_this_trust_domain_only() {
    let (k, server, org) = pki_install(Kizuna::sqlite()).await;
    let dir = k.dir.path().to_path_buf();
    let spiffe = server.device_uri(&org, "valve-7");
    assert_eq!(
        spiffe,
        format!("spiffe://127.0.0.1/org/{org}/device/valve-7"),
        "trust domain: the public URL's host"
    );
    csr(
        &dir,
        "valve-7",
        "p256",
        "/CN=valve-7",
        &[&format!("subjectAltName=URI:{spiffe}")],
    );
    issue(&k, "valve-7", "device", &org, &[]);
    verify(&k, "valve-7.pem", "sslclient");
    pkilint_clean(&dir, "lint_pkix_cert lint -s ERROR valve-7.pem");

    let refused = |name: &str, uri: &str, says: &str| {
        csr(
            &dir,
            name,
            "p256",
            "/CN=x",
            &[&format!("subjectAltName=URI:{uri}")],
        );
        let csr_file = format!("{name}.csr");
        let out = k.run(&[
            "cert",
            "issue",
            "--csr",
            &csr_file,
            "--profile",
            "device",
            "--org",
            &org,
        ]);
        let printed = format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr));
        assert!(
            !out.status.success() && printed.contains(says),
            "{uri}: {printed}"
        );
    };
    refused(
        "foreign",
        &format!("spiffe://other.example/org/{org}/device/valve-8"),
        "not this CA's (127.0.0.1)",
    );
    refused(
        "dots",
        &format!("spiffe://127.0.0.1/org/{org}/device/.."),
        "must not be . or ..",
    );
    refused(
        "deep",
        &format!("spiffe://127.0.0.1/org/{org}/device/a/b"),
        "is not spiffe://127.0.0.1/org/",
    );
    refused(
        "other-org",
        "spiffe://127.0.0.1/org/someone-else/device/valve-9",
        "another organization",
    );
    // Nothing was written for the refused requests.
    let listed = k.json(&["cert", "list", "--org", &org, "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_and_key_type_passes_openssl_verify_and_pkilint() {
    let (mut k, server, org) = pki_install(Kizuna::sqlite()).await;
    let dir = k.dir.path().to_path_buf();
    for key in ["p256", "p384", "ed25519", "rsa2048"] {
        let name = format!("meter-{key}");
        let urn = format!("URI:urn:kizuna:device:{org}:{name}");
        csr(
            &dir,
            &name,
            key,
            &format!("/CN={name}/serialNumber=SN-{key}"),
            &[&format!("subjectAltName={urn}")],
        );
        issue(&k, &name, "device", &org, &[]);
        verify(&k, &format!("{name}.pem"), "sslclient");
        pkilint_clean(&dir, &format!("lint_pkix_cert lint -s ERROR {name}.pem"));
    }
    // The request asked for the legacy URN; the certificate names the device by its SPIFFE ID.
    let san = sh_ok(
        &dir,
        "openssl x509 -in meter-p256.pem -noout -ext subjectAltName",
    );
    assert!(
        san.contains(&format!("URI:{}", server.device_uri(&org, "meter-p256")))
            && !san.contains("urn:kizuna"),
        "{san}"
    );
    // The subject serialNumber is copied from the request.
    let subject = sh_ok(&dir, "openssl x509 -in meter-p256.pem -noout -subject");
    assert!(
        subject.contains("serialNumber") && subject.contains("SN-p256"),
        "{subject}"
    );

    // A device identified by its hardware module (RFC 4108), as IEEE 802.1AR IDevIDs are.
    csr(&dir, "gateway", "p256", "/CN=gateway", &[]);
    issue(
        &k,
        "gateway",
        "device",
        &org,
        &[
            &format!("uri:urn:kizuna:device:{org}:gateway"),
            "hwmodule:1.3.6.1.4.1.99999.7:0a0b0c0d",
        ],
    );
    verify(&k, "gateway.pem", "sslclient");
    pkilint_clean(&dir, "lint_pkix_cert lint -s ERROR gateway.pem");
    let san = sh_ok(
        &dir,
        "openssl x509 -in gateway.pem -noout -ext subjectAltName",
    );
    assert!(
        san.to_ascii_lowercase().contains("othername")
            && san.contains(&format!("URI:spiffe://127.0.0.1/org/{org}/device/gateway"))
            && !san.contains("urn:"),
        "{san}"
    );

    // A service with DNS and IP names; and one with a public DNS name only, which the
    // CA/Browser Forum server-certificate profile applies to.
    csr(&dir, "api", "p256", "/CN=api", &[]);
    issue(
        &k,
        "api",
        "service",
        &org,
        &["dns:api.water.city.example", "ip:10.20.0.5"],
    );
    verify(&k, "api.pem", "sslserver");
    verify(&k, "api.pem", "sslclient");
    pkilint_clean(&dir, "lint_pkix_cert lint -s ERROR api.pem");
    // The Baseline Requirements also want public names in the CRL and AIA URLs: this one is
    // issued as a city whose public URL is on the internet would issue it.
    csr(&dir, "portal", "rsa2048", "/CN=portal", &[]);
    k.set_env("KIZUNA_PUBLIC_URL", "https://pki.kizuna-city.jp");
    issue(
        &k,
        "portal",
        "service",
        &org,
        &["dns:portal.water.kizuna-city.jp"],
    );
    k.set_env("KIZUNA_PUBLIC_URL", &server.public);
    verify(&k, "portal.pem", "sslserver");
    pkilint_clean(
        &dir,
        "lint_cabf_serverauth_cert lint -t DV-FINAL-CERTIFICATE -s ERROR portal.pem",
    );

    // The delegated OCSP signer Kizuna issued itself.
    let db = database(&k).await;
    let signer: Vec<u8> = sqlx::query_scalar("SELECT cert_der FROM ocsp_signers LIMIT 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    std::fs::write(dir.join("signer.der"), signer).unwrap();
    sh_ok(
        &dir,
        "openssl x509 -inform DER -in signer.der -out signer.pem",
    );
    verify(&k, "signer.pem", "ocsphelper");
    let subject = sh_ok(&dir, "openssl x509 -in signer.pem -noout -subject");
    assert!(subject.contains("OCSP Responder"), "{subject}");
    pkilint_clean(&dir, "lint_pkix_cert lint -s ERROR signer.pem");
    let nocheck = sh_ok(&dir, "openssl x509 -in signer.pem -noout -text");
    assert!(nocheck.contains("OCSP No Check"), "{nocheck}");

    // The CA certificates themselves.
    for ca in ["root.pem", "issuing.pem"] {
        pkilint_clean(&dir, &format!("lint_pkix_cert lint -s ERROR {ca}"));
    }
}

/// A PEM CERTIFICATE REQUEST around `der`.
fn pem_request(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_4xx_and_nothing_is_stored() {
    for install in Kizuna::each_backend().await {
        let config = install.dir.path().join("kizuna.toml");
        std::fs::write(
            &config,
            "[ca.issuers.issuing.name_constraints]\nexcluded_dns = [\"secret.water.city.example\"]\n",
        )
        .unwrap();
        let install = install.env("KIZUNA_CONFIG", config.to_str().unwrap());
        let (k, server, org) = pki_install(install).await;
        let dir = k.dir.path().to_path_buf();
        let ca_text = sh_ok(&dir, "openssl x509 -in issuing.pem -noout -text");
        assert!(
            ca_text.contains("X509v3 Name Constraints")
                && ca_text.contains("secret.water.city.example"),
            "{ca_text}"
        );
        let admin = common::service_token(&k, &server.base, "kizuna:admin", None).await;
        let stored = || async {
            let db = database(&k).await;
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM certificates WHERE profile <> 'ocsp-signer'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            db.close().await;
            n
        };
        let before = stored().await;
        let api = |token: String, body: Value| {
            let url = format!("{}/ca/api/v1/certificates", server.base);
            async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let refused = |(status, body): (u16, Value), want: u16, error: &str, says: &str| {
            assert_eq!(status, want, "{body}");
            assert_eq!(body["error"], error, "{body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{message:?} should say {says:?}");
        };

        let device_san = |name: &str| format!("subjectAltName=URI:urn:kizuna:device:{org}:{name}");
        csr(&dir, "good", "p256", "/CN=good", &[&device_san("good")]);
        sh_ok(&dir, "openssl req -in good.csr -outform DER -out good.der");
        let good = std::fs::read(dir.join("good.der")).unwrap();
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        refused(
            api(
                admin.clone(),
                json!({"csr": pem_request(&tampered), "profile": "device", "org_id": org}),
            )
            .await,
            400,
            "bad_csr",
            "proof of possession",
        );
        refused(
            api(admin.clone(), json!({"csr": pem_request(&good[..good.len() / 2]), "profile": "device", "org_id": org})).await,
            400,
            "bad_csr",
            "PKCS#10",
        );
        for garbage in [
            "hello",
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
            // Armour whose footer comes before its body.
            "-----BEGIN CERTIFICATE REQUEST-----END\nMIIB",
            "-----BEGIN CERTIFICATE REQUEST-----END CERTIFICATE REQUEST-----\n",
        ] {
            refused(
                api(
                    admin.clone(),
                    json!({"csr": garbage, "profile": "device", "org_id": org}),
                )
                .await,
                400,
                "bad_csr",
                "not PEM, DER or base64",
            );
        }
        for (key, says) in [
            ("rsa1024", "at least 2048"),
            ("p521", "does not allow ECDSA P-521"),
        ] {
            csr(&dir, key, key, &format!("/CN={key}"), &[&device_san(key)]);
            let body = std::fs::read_to_string(dir.join(format!("{key}.csr"))).unwrap();
            refused(
                api(
                    admin.clone(),
                    json!({"csr": body, "profile": "device", "org_id": org}),
                )
                .await,
                422,
                "not_allowed",
                says,
            );
        }
        csr(&dir, "svc", "p256", "/CN=svc", &[]);
        let svc = std::fs::read_to_string(dir.join("svc.csr")).unwrap();
        refused(
            api(admin.clone(), json!({"csr": svc, "profile": "service", "org_id": org, "sans": ["dns:www.evil.example"]})).await,
            422,
            "not_allowed",
            "not among the names the organization may use",
        );
        refused(
            api(admin.clone(), json!({"csr": svc, "profile": "service", "org_id": org, "sans": ["dns:db.secret.water.city.example"]})).await,
            422,
            "not_allowed",
            "excluded by the issuing CA's name constraints",
        );
        let huge = format!("{}{}", "A".repeat(70 * 1024), svc);
        refused(
            api(
                admin.clone(),
                json!({"csr": huge, "profile": "service", "org_id": org}),
            )
            .await,
            413,
            "csr_too_large",
            "larger than",
        );
        let megabyte = "A".repeat(1024 * 1024);
        let (status, _) = api(
            admin.clone(),
            json!({"csr": megabyte, "profile": "service"}),
        )
        .await;
        assert_eq!(status, 413, "a 1 MB body is refused at the door");
        std::fs::write(
            dir.join("huge.csr"),
            format!("{}\n{svc}", "A".repeat(1024 * 1024)),
        )
        .unwrap();
        let cli = k.run(&[
            "cert",
            "issue",
            "--csr",
            "huge.csr",
            "--profile",
            "service",
            "--org",
            &org,
        ]);
        assert!(!cli.status.success());
        assert!(
            String::from_utf8_lossy(&cli.stderr).contains("larger than"),
            "{}",
            text(&cli)
        );

        let device_only = common::service_token(&k, &server.base, "kizuna:cert:device", None).await;
        refused(
            api(
                device_only,
                json!({"csr": svc, "profile": "service", "sans": ["dns:api.water.city.example"]}),
            )
            .await,
            403,
            "insufficient_scope",
            "kizuna:cert:service",
        );
        refused(
            api(admin.clone(), json!({"csr": svc, "profile": "ocsp-signer"})).await,
            403,
            "forbidden",
            "issued by Kizuna itself",
        );
        refused(
            api(
                admin.clone(),
                json!({"csr": svc, "profile": "no-such-profile"}),
            )
            .await,
            400,
            "unknown_profile",
            "no-such-profile",
        );
        assert_eq!(
            stored().await,
            before,
            "nothing was stored for any refused request"
        );

        // Extensions the profile does not grant are never copied: a request to be a CA yields
        // a leaf, and the answer names what was left out.
        csr(
            &dir,
            "greedy",
            "p256",
            "/CN=greedy",
            &[
                &device_san("greedy"),
                "basicConstraints=critical,CA:TRUE",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let greedy = std::fs::read_to_string(dir.join("greedy.csr")).unwrap();
        let (status, body) = api(
            admin.clone(),
            json!({"csr": greedy, "profile": "device", "org_id": org}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let ignored: Vec<&str> = body["ignored_extensions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            ignored.contains(&"2.5.29.19") && ignored.contains(&"2.5.29.15"),
            "{ignored:?}"
        );
        std::fs::write(
            dir.join("greedy.pem"),
            body["certificate_pem"].as_str().unwrap(),
        )
        .unwrap();
        let issued = sh_ok(&dir, "openssl x509 -in greedy.pem -noout -text");
        assert!(
            issued.contains("CA:FALSE") && !issued.contains("Certificate Sign"),
            "{issued}"
        );
        assert_eq!(stored().await, before + 1);

        // The server kept serving throughout.
        assert_eq!(
            reqwest::get(format!("{}/readyz", server.base))
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

/// An OCSP responder that met an issuing CA before the CA's signer was valid (another process,
/// the CLI, commits a new CA and then its signer; a responder reading between the two) answers
/// `tryLater` for it, not an internal error, and answers for it once the signer is valid,
/// without a restart.
#[tokio::test]
async fn a_responder_that_met_an_issuer_before_its_signer_answers_once_the_signer_is_there() {
    let (k, server, org) = pki_install(Kizuna::sqlite()).await;
    let dir = k.dir.path().to_path_buf();
    k.ok(&["ca", "rollover", "--name", "issuing"]);
    crate::root_rollover::device(&k, &org, "late");
    drop(server);
    // The new CA's signer not yet valid when the responder starts and reads its CAs.
    let db = database(&k).await;
    let shift = |by: i64| {
        sqlx::query(
            "UPDATE ocsp_signers SET not_before = not_before + $1 WHERE ca_id = 'issuing-2'",
        )
        .bind(by)
        .execute(db.pool())
    };
    shift(1_000_000).await.unwrap();
    let server = k.serve();
    pki::download_ca(&k, &server, "issuing-2", "issuing-2.pem").await;
    let ask = || {
        text(&pki::sh(
            &dir,
            &format!(
                "openssl ocsp -no_nonce -issuer issuing-2.pem -cert late.pem -url {}/ocsp/issuing-2 -CAfile root.pem",
                server.base
            ),
        ))
    };
    let early = ask();
    assert!(early.contains("trylater"), "{early}");
    shift(-1_000_000).await.unwrap();
    db.close().await;
    // Past the responder's limit of one reload of its CAs a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let answer = ask();
    assert!(
        answer.contains("late.pem: good") && answer.contains("Response verify OK"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_over_issuer_keeps_its_certificates_valid_and_answers_ocsp_at_once() {
    let (k, server, org) = pki_install(Kizuna::sqlite()).await;
    let dir = k.dir.path().to_path_buf();
    crate::root_rollover::device(&k, &org, "before");
    let out = k.ok(&["ca", "rollover", "--name", "issuing"]);
    assert!(out.contains("issuing-2"), "{out}");
    crate::root_rollover::device(&k, &org, "after");
    pki::download_ca(&k, &server, "issuing-2", "issuing-2.pem").await;
    verify(&k, "before.pem", "sslclient");
    let after = sh_ok(
        &dir,
        "openssl verify -CAfile root.pem -untrusted issuing-2.pem after.pem",
    );
    assert!(after.contains("after.pem: OK"), "{after}");
    let issuer = sh_ok(&dir, "openssl x509 -in after.pem -noout -issuer");
    assert!(
        issuer.contains("Issuing CA 2") || issuer.contains("2"),
        "{issuer}"
    );
    // The new CA has its OCSP signer from the start.
    let answer = sh_ok(
        &dir,
        &format!(
            "openssl ocsp -no_nonce -issuer issuing-2.pem -cert after.pem -url {}/ocsp/issuing-2 -CAfile root.pem",
            server.base
        ),
    );
    assert!(
        answer.contains("after.pem: good") && answer.contains("Response verify OK"),
        "{answer}"
    );

    k.ok(&["ca", "create-issuer", "--name", "services"]);
    let list: Value = k.json(&["ca", "list", "--json"]);
    let ids: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    for id in ["root-1", "issuing-1", "issuing-2", "services-1"] {
        assert!(ids.iter().any(|(i, _)| *i == id), "{ids:?}");
    }
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["not_after"].as_i64().is_some())
    );
    let table = k.ok(&["ca", "list"]);
    assert!(
        table.contains("NOT AFTER") && table.contains("services-1"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_root_signs_the_issuing_ca_and_its_key_never_reaches_the_server() {
    let k = Kizuna::sqlite().env("KIZUNA_CA__AUTO_INIT", "false");
    let dir = k.dir.path().to_path_buf();
    k.ok(&["ca", "init", "--root-csr-out", "issuing.csr"]);
    // The offline root, made and kept with openssl.
    sh_ok(
        &dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout offline.key \
         -subj '/C=JP/O=City/CN=City Offline Root' -days 3650 -out offline.pem \
         -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' && \
         printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > sub.ext && \
         openssl x509 -req -in issuing.csr -CA offline.pem -CAkey offline.key -set_serial 0x51 -days 1800 -extfile sub.ext -out issued.pem",
    );
    let out = k.ok(&[
        "ca",
        "import-issuer",
        "--cert",
        "issued.pem",
        "--root",
        "offline.pem",
    ]);
    assert!(out.contains("is active"), "{out}");
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let org = k.json(&["org", "create", "--name", "Parks", "--json"]);
    let org = org["id"].as_str().unwrap();
    csr(
        &dir,
        "bench-1",
        "p256",
        "/CN=bench-1",
        &[&format!(
            "subjectAltName=URI:urn:kizuna:device:{org}:bench-1"
        )],
    );
    issue(&k, "bench-1", "device", org, &[]);
    let verified = sh_ok(
        &dir,
        "openssl verify -CAfile offline.pem -untrusted issued.pem bench-1.pem",
    );
    assert!(verified.contains("bench-1.pem: OK"), "{verified}");
    let db = database(&k).await;
    let keys: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, key_id FROM cas WHERE kind = 'root'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    db.close().await;
    assert!(
        keys.iter().all(|(_, key)| key.is_none()),
        "no root key on the server: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_download_in_pem_and_der_at_the_urls_they_name() {
    let (k, server, org) = pki_install(Kizuna::sqlite()).await;
    let dir = k.dir.path().to_path_buf();
    csr(
        &dir,
        "pump-3",
        "p256",
        "/CN=pump-3",
        &[&format!(
            "subjectAltName=URI:urn:kizuna:device:{org}:pump-3"
        )],
    );
    issue(&k, "pump-3", "device", &org, &[]);
    let serial = sh_ok(&dir, "openssl x509 -in pump-3.pem -noout -serial");
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();

    // The AIA "CA issuers" URL serves the issuing CA in DER.
    let aia = sh_ok(
        &dir,
        "openssl x509 -in pump-3.pem -noout -ext authorityInfoAccess",
    );
    let ca_issuers = aia
        .lines()
        .find(|l| l.contains("CA Issuers"))
        .and_then(|l| l.split("URI:").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let der = reqwest::get(ca_issuers.replace(&server.public, &server.base))
        .await
        .unwrap();
    assert_eq!(der.headers()["content-type"], "application/pkix-cert");
    std::fs::write(dir.join("aia.der"), der.bytes().await.unwrap()).unwrap();
    let from_der = sh_ok(
        &dir,
        "openssl x509 -inform DER -in aia.der -noout -fingerprint -sha256",
    );
    let from_pem = sh_ok(
        &dir,
        "openssl x509 -in issuing.pem -noout -fingerprint -sha256",
    );
    assert_eq!(from_der, from_pem);

    for (suffix, check) in [
        ("pem", "openssl x509 -in dl.pem -noout -serial"),
        ("der", "openssl x509 -inform DER -in dl.der -noout -serial"),
    ] {
        let body = reqwest::get(format!("{}/pki/cert/{serial}.{suffix}", server.base))
            .await
            .unwrap();
        assert_eq!(body.status(), 200);
        std::fs::write(
            dir.join(format!("dl.{suffix}")),
            body.bytes().await.unwrap(),
        )
        .unwrap();
        let out = sh_ok(&dir, check);
        assert!(out.to_ascii_lowercase().contains(&serial), "{out}");
    }
    assert_eq!(
        reqwest::get(format!("{}/pki/cert/00ff.pem", server.base))
            .await
            .unwrap()
            .status(),
        404
    );

    let shown = k.json(&["cert", "show", &serial, "--json"]);
    assert_eq!(shown["profile"], "device");
    assert_eq!(shown["device_id"], "pump-3");
    assert_eq!(shown["org_id"], org.as_str());
    let listed = k.json(&["cert", "list", "--profile", "device", "--json"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["serial"] == serial.as_str())
    );
    let none = k.json(&["cert", "list", "--profile", "service", "--json"]);
    assert!(none.as_array().unwrap().is_empty(), "{none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_beside_the_server_writes_the_servers_urls_into_certificates() {
    // No public URL configured: the server serves under the address it bound and records it.
    let k = Kizuna::sqlite();
    let server = k.serve();
    let org = k.json(&["org", "create", "--name", "Lights", "--json"]);
    let org = org["id"].as_str().unwrap();
    let dir = k.dir.path().to_path_buf();
    csr(
        &dir,
        "lamp-1",
        "p256",
        "/CN=lamp-1",
        &[&format!(
            "subjectAltName=URI:urn:kizuna:device:{org}:lamp-1"
        )],
    );
    issue(&k, "lamp-1", "device", org, &[]);
    let cdp = sh_ok(
        &dir,
        "openssl x509 -in lamp-1.pem -noout -ext crlDistributionPoints",
    );
    assert!(
        cdp.contains(&format!("URI:{}/pki/crl/issuing-1/", server.base)),
        "{cdp}"
    );
}
