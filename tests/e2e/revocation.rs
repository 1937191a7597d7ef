//! Revocation seen by software this project did not write: `openssl ocsp` (GET and POST,
//! nonce), `openssl verify -crl_check` (full and partitioned CRLs), pkilint, and a rustls
//! server that loads Kizuna's CRL.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::pki::{self, pkilint_clean, sh, text};
use crate::common::{Kizuna, Server, database};

/// `openssl ocsp` for `<cert>.pem`. Without `-nonce` in `extra` the request carries no
/// nonce, as RFC 5019 clients send it, so the answer comes from the pre-signed cache.
fn ocsp(dir: &Path, base: &str, cert: &str, extra: &str) -> String {
    let nonce = if extra.contains("-nonce") {
        ""
    } else {
        "-no_nonce"
    };
    text(&sh(
        dir,
        &format!(
            "openssl ocsp {nonce} -issuer issuing.pem -cert {cert}.pem -url {base}/ocsp/issuing-1 -CAfile root.pem {extra}"
        ),
    ))
}

/// Waits (up to a generous bound) for the responder to say `revoked`.
fn until_revoked(dir: &Path, base: &str, cert: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = ocsp(dir, base, cert, "");
        if answer.contains(": revoked") || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_sees_good_then_revoked_with_the_reason() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let serial = pki::device_certificate(&k, &server, "Transit", "bus-1").await;
        let dir = k.dir.path();
        let good = ocsp(dir, &server.base, "bus-1", "");
        assert!(
            good.contains("Response verify OK") && good.contains("bus-1.pem: good"),
            "{good}"
        );
        let with_nonce = ocsp(dir, &server.base, "bus-1", "-nonce");
        assert!(with_nonce.contains("Response verify OK"), "{with_nonce}");
        assert!(
            !with_nonce.contains("WARNING: no nonce") && !with_nonce.contains("Nonce Verify Error"),
            "{with_nonce}"
        );

        sh(
            dir,
            "openssl ocsp -no_nonce -issuer issuing.pem -cert bus-1.pem -reqout bus-1.req",
        );
        let get_url = format!(
            "{}/ocsp/issuing-1/{}",
            server.base,
            base64_url_path(&std::fs::read(dir.join("bus-1.req")).unwrap())
        );
        let etag_before = reqwest::get(&get_url).await.unwrap().headers()["etag"].clone();

        let out = k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
        assert!(out.contains("revoked 1"), "{out}");
        let revoked = until_revoked(dir, &server.base, "bus-1");
        assert!(revoked.contains("bus-1.pem: revoked"), "{revoked}");
        assert!(revoked.contains("Reason: keyCompromise"), "{revoked}");
        let after = reqwest::get(&get_url).await.unwrap();
        assert_ne!(
            after.headers()["etag"],
            etag_before,
            "a new response, a new ETag"
        );
        let with_nonce = ocsp(dir, &server.base, "bus-1", "-nonce");
        assert!(with_nonce.contains("bus-1.pem: revoked"), "{with_nonce}");

        // Revoking again changes nothing and says so, once, in the audit log.
        let again = k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
        assert!(again.contains("already revoked"), "{again}");
        let audit = k.ok(&["audit", "export"]);
        let revokes: Vec<&str> = audit
            .lines()
            .filter(|l| l.contains("\"action\":\"cert.revoke\""))
            .collect();
        assert_eq!(revokes.len(), 2, "one revocation, one 'already revoked'");
        assert!(revokes[1].contains("already revoked"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_5019_get_requests_are_cacheable_and_verify() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    pki::device_certificate(&k, &server, "Transit", "lamp-7").await;
    let dir = k.dir.path();
    let out = sh(
        dir,
        "openssl ocsp -issuer issuing.pem -cert lamp-7.pem -no_nonce -reqout req.der",
    );
    assert!(out.status.success(), "{}", text(&out));
    let der = std::fs::read(dir.join("req.der")).unwrap();
    let encoded = base64_url_path(&der);
    let url = format!("{}/ocsp/issuing-1/{encoded}", server.base);
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/ocsp-response"
    );
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cache.contains("max-age=") && cache.contains("public"),
        "{cache}"
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    assert!(response.headers().contains_key("last-modified"));
    std::fs::write(dir.join("resp.der"), response.bytes().await.unwrap()).unwrap();
    let checked = text(&sh(
        dir,
        "openssl ocsp -respin resp.der -issuer issuing.pem -cert lamp-7.pem -CAfile root.pem",
    ));
    assert!(
        checked.contains("Response verify OK") && checked.contains("lamp-7.pem: good"),
        "{checked}"
    );
    // Meanwhile the responder has seen the issuance on the change feed (polled every 200 ms);
    // the response it already signed still says the same, so it keeps its ETag.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let again = reqwest::Client::new()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

fn base64_url_path(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

async fn post_ocsp(base: &str, body: Vec<u8>) -> Vec<u8> {
    let response = reqwest::Client::new()
        .post(format!("{base}/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "OCSP errors travel inside a 200 response"
    );
    response.bytes().await.unwrap().to_vec()
}

/// The responseStatus of an OCSPResponse.
fn response_status(der: &[u8]) -> u8 {
    assert_eq!(&der[..2], &[0x30, der[1]], "a DER SEQUENCE");
    let start = if der[1] & 0x80 != 0 {
        2 + (der[1] & 0x7f) as usize
    } else {
        2
    };
    assert_eq!(
        &der[start..start + 2],
        &[0x0a, 0x01],
        "ENUMERATED responseStatus"
    );
    der[start + 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ocsp_requests_get_the_rfc_6960_error_and_the_responder_keeps_serving() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    pki::device_certificate(&k, &server, "Transit", "meter-3").await;
    let dir = k.dir.path();
    sh(
        dir,
        "openssl ocsp -issuer issuing.pem -cert meter-3.pem -no_nonce -reqout good.der",
    );
    let good = std::fs::read(dir.join("good.der")).unwrap();
    assert_eq!(
        response_status(&post_ocsp(&server.base, good.clone()).await),
        0,
        "successful"
    );
    const MALFORMED: u8 = 1;
    const UNAUTHORIZED: u8 = 6;
    assert_eq!(
        response_status(&post_ocsp(&server.base, b"not an ocsp request".to_vec()).await),
        MALFORMED
    );
    assert_eq!(
        response_status(&post_ocsp(&server.base, good[..good.len() - 5].to_vec()).await),
        MALFORMED
    );
    assert_eq!(
        response_status(&post_ocsp(&server.base, vec![0x30; 20_000]).await),
        MALFORMED
    );
    assert_eq!(
        response_status(&post_ocsp(&server.base, vec![]).await),
        MALFORMED
    );
    // A CertID hashed with MD5.
    let md5 = sh(
        dir,
        "openssl ocsp -issuer issuing.pem -md5 -cert meter-3.pem -no_nonce -reqout md5.der",
    );
    assert!(md5.status.success(), "{}", text(&md5));
    let body = std::fs::read(dir.join("md5.der")).unwrap();
    assert_eq!(
        response_status(&post_ocsp(&server.base, body).await),
        MALFORMED
    );
    // A serial this CA never issued: a signed `unknown`.
    let unknown = text(&sh(
        dir,
        &format!(
            "openssl ocsp -no_nonce -issuer issuing.pem -serial 0x1234abcd -url {}/ocsp -CAfile root.pem",
            server.base
        ),
    ));
    assert!(
        unknown.contains("Response verify OK") && unknown.contains("0x1234abcd: unknown"),
        "{unknown}"
    );
    // Larger than any endpoint takes: refused from its declared length.
    let (status, _) = common::declared_oversize_post(&server.base, "/ocsp", 2 << 20).await;
    assert_eq!(status, 413);
    // An issuer this responder does not serve.
    let other = Kizuna::sqlite();
    let other_server = other.serve();
    let other = other.env("KIZUNA_PUBLIC_URL", &other_server.public);
    pki::device_certificate(&other, &other_server, "Transit", "stranger").await;
    let foreign = other.dir.path();
    sh(
        foreign,
        "openssl ocsp -issuer issuing.pem -cert stranger.pem -no_nonce -reqout foreign.der",
    );
    let body = std::fs::read(foreign.join("foreign.der")).unwrap();
    assert_eq!(
        response_status(&post_ocsp(&server.base, body).await),
        UNAUTHORIZED
    );
    // Still serving.
    assert_eq!(response_status(&post_ocsp(&server.base, good).await), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_need_live_signing_are_budgeted_per_address_and_cached_ones_are_not() {
    let k = Kizuna::sqlite().env("KIZUNA_OCSP__LIVE_SIGNING_PER_ADDRESS_PER_MINUTE", "4");
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    pki::device_certificate(&k, &server, "Transit", "meter-4").await;
    let dir = k.dir.path();
    sh(
        dir,
        "openssl ocsp -issuer issuing.pem -cert meter-4.pem -no_nonce -reqout cached.der",
    );
    let cached = std::fs::read(dir.join("cached.der")).unwrap();
    // Unknown serials and nonces are signed on demand: four, then tryLater.
    const TRY_LATER: u8 = 3;
    let mut answers = Vec::new();
    for n in 0..3 {
        sh(
            dir,
            &format!(
                "openssl ocsp -no_nonce -issuer issuing.pem -serial 0x{n}abc -reqout unknown{n}.der"
            ),
        );
        let body = std::fs::read(dir.join(format!("unknown{n}.der"))).unwrap();
        answers.push(response_status(&post_ocsp(&server.base, body).await));
    }
    sh(
        dir,
        "openssl ocsp -nonce -issuer issuing.pem -cert meter-4.pem -reqout nonce.der",
    );
    let nonce = std::fs::read(dir.join("nonce.der")).unwrap();
    answers.push(response_status(
        &post_ocsp(&server.base, nonce.clone()).await,
    ));
    answers.push(response_status(&post_ocsp(&server.base, nonce).await));
    assert_eq!(answers, vec![0, 0, 0, 0, TRY_LATER]);
    // The pre-signed answer costs nothing and keeps coming.
    for _ in 0..20 {
        assert_eq!(
            response_status(&post_ocsp(&server.base, cached.clone()).await),
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crls_full_and_partitioned_make_openssl_reject_a_revoked_certificate() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let serial = pki::device_certificate(&k, &server, "Transit", "cam-9").await;
    let dir = k.dir.path();
    k.ok(&[
        "cert",
        "revoke",
        &serial,
        "--reason",
        "cessationOfOperation",
    ]);
    let out = k.ok(&["crl", "generate"]);
    assert!(
        out.contains("issuing-1") && out.contains("1 revoked"),
        "{out}"
    );
    let shard = text(&sh(
        dir,
        "openssl x509 -in cam-9.pem -noout -ext crlDistributionPoints",
    ));
    let shard_url = shard
        .lines()
        .find_map(|l| l.trim().strip_prefix("URI:"))
        .unwrap()
        .to_string();
    assert!(
        shard_url.starts_with(&format!("{}/pki/crl/issuing-1/", server.public)),
        "{shard_url}"
    );
    for (name, url) in [
        ("full", format!("{}/pki/crl/issuing-1.crl", server.base)),
        ("shard", shard_url.replace(&server.public, &server.base)),
        ("root", format!("{}/pki/crl/root-1.crl", server.base)),
    ] {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "application/pkix-crl");
        assert!(
            response.headers().contains_key("etag")
                && response.headers().contains_key("last-modified")
        );
        std::fs::write(
            dir.join(format!("{name}.crl")),
            response.bytes().await.unwrap(),
        )
        .unwrap();
        let kind = if name == "root" { "ARL" } else { "CRL" };
        pkilint_clean(
            dir,
            &format!("lint_crl lint -t {kind} -p PKIX -s ERROR {name}.crl"),
        );
    }
    for crl in ["full", "shard"] {
        let out = text(&sh(
            dir,
            &format!(
                "openssl crl -inform DER -in {crl}.crl -out {crl}.pem && openssl crl -inform DER -in root.crl -out root.crl.pem && \
                 cat {crl}.pem root.crl.pem > crls-{crl}.pem && cat root.pem issuing.pem > chain.pem && \
                 openssl verify -crl_check_all -CAfile chain.pem -CRLfile crls-{crl}.pem cam-9.pem"
            ),
        ));
        assert!(out.contains("certificate revoked"), "{crl}: {out}");
    }
    // A certificate that is not revoked passes with the same CRL.
    pki::device_certificate(&k, &server, "Transit", "cam-10").await;
    let out = text(&sh(
        dir,
        "openssl verify -crl_check_all -CAfile chain.pem -CRLfile crls-full.pem cam-10.pem",
    ));
    assert!(out.contains("cam-10.pem: OK"), "{out}");
    let pem = reqwest::get(format!("{}/pki/crl/issuing-1.pem", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkilint_finds_nothing_wrong_in_ocsp_responses() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let serial = pki::device_certificate(&k, &server, "Transit", "hub-2").await;
    let dir = k.dir.path();
    for state in ["good", "revoked"] {
        if state == "revoked" {
            k.ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
            until_revoked(dir, &server.base, "hub-2");
        }
        let out = ocsp(dir, &server.base, "hub-2", &format!("-respout {state}.der"));
        assert!(out.contains(&format!("hub-2.pem: {state}")), "{out}");
        pkilint_clean(
            dir,
            &format!("lint_ocsp_response lint -s ERROR {state}.der"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_is_released_and_bulk_revocation_asks_for_confirmation() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let held = pki::device_certificate(&k, &server, "Transit", "kiosk-1").await;
        pki::device_certificate(&k, &server, "Transit", "kiosk-2").await;
        let dir = k.dir.path();
        k.ok(&["cert", "revoke", &held, "--reason", "certificateHold"]);
        let on_hold = until_revoked(dir, &server.base, "kiosk-1");
        assert!(on_hold.contains("Reason: certificateHold"), "{on_hold}");
        k.ok(&["cert", "unhold", &held]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ocsp(dir, &server.base, "kiosk-1", "").contains("kiosk-1.pem: good")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(ocsp(dir, &server.base, "kiosk-1", "").contains("kiosk-1.pem: good"));

        let preview = k.run(&[
            "cert",
            "revoke",
            "--org",
            "Transit",
            "--reason",
            "affiliationChanged",
        ]);
        assert_eq!(preview.status.code(), Some(1), "no --yes: only the count");
        assert!(
            String::from_utf8_lossy(&preview.stdout).contains("2 certificates would be revoked")
        );
        assert!(
            ocsp(dir, &server.base, "kiosk-2", "").contains("kiosk-2.pem: good"),
            "nothing changed yet"
        );
        let done = k.ok(&[
            "cert",
            "revoke",
            "--org",
            "Transit",
            "--reason",
            "affiliationChanged",
            "--yes",
        ]);
        assert!(done.contains("revoked 2"), "{done}");
        assert!(until_revoked(dir, &server.base, "kiosk-2").contains("kiosk-2.pem: revoked"));

        let unknown = k.run(&["cert", "revoke", "00ff00ff", "--reason", "keyCompromise"]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&unknown.stderr)
                .contains("no certificate with serial 00ff00ff")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_between_the_database_and_the_cache_the_responder_follows_the_database() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let serial = pki::device_certificate(&k, &server, "Transit", "gate-5").await;
    let dir = k.dir.path().to_path_buf();
    assert!(ocsp(&dir, &server.base, "gate-5", "").contains("gate-5.pem: good"));
    drop(server);
    // The revocation reached the database but nothing else (no change record, no cache).
    let db = database(&k).await;
    sqlx::query("UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = 'keyCompromise' WHERE serial = $2")
        .bind(kizuna_core::time::now_unix())
        .bind(&serial)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let server = k.serve();
    assert!(ocsp(&dir, &server.base, "gate-5", "").contains("gate-5.pem: revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_reaches_the_other_replicas_responder() {
    let Some(pg) = kizuna_core::testing::postgres_url() else {
        return;
    };
    let fresh = kizuna_core::testing::fresh_postgres(&pg).await;
    let kek = common::TempDir::new("kizuna-shared-kek");
    let kek_file = kek.path().join("kek");
    std::fs::write(&kek_file, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n").unwrap();
    let url = fresh.url.clone();
    let a = Kizuna::on(fresh)
        .env("KIZUNA_KEK_FILE", kek_file.to_str().unwrap())
        .env("KIZUNA_PUBLIC_URL", "http://pki.city.example");
    let server_a = a.serve();
    let b = Kizuna::sqlite()
        .env("KIZUNA_DATABASE_URL", &url)
        .env("KIZUNA_KEK_FILE", kek_file.to_str().unwrap())
        .env("KIZUNA_PUBLIC_URL", "http://pki.city.example");
    let responder_b = b.serve();
    let serial = pki::device_certificate(&a, &server_a, "Transit", "tram-4").await;
    let dir = a.dir.path();
    assert!(ocsp(dir, &responder_b.base, "tram-4", "").contains("tram-4.pem: good"));
    // Revoked through replica A's admin API path (the CLI stands in for it).
    a.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    let answer = until_revoked(dir, &responder_b.base, "tram-4");
    assert!(answer.contains("tram-4.pem: revoked"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_responder_answers_from_the_same_database() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    pki::device_certificate(&k, &server, "Transit", "pole-8").await;
    drop(server);
    let responder = responder_only(&k);
    let dir = k.dir.path();
    assert!(ocsp(dir, &responder.base, "pole-8", "").contains("pole-8.pem: good"));
    // It serves OCSP and health, not the identity provider.
    assert_eq!(
        reqwest::get(format!("{}/healthz", responder.base))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!(
            "{}/.well-known/openid-configuration",
            responder.base
        ))
        .await
        .unwrap()
        .status(),
        404
    );
}

fn responder_only(k: &Kizuna) -> Server {
    k.try_serve_command(&["ocsp", "serve"])
        .expect("kizuna ocsp serve")
}

/// Downloads a CA's current CRL.
async fn download_crl(
    server: &Server,
    ca: &str,
) -> rustls::pki_types::CertificateRevocationListDer<'static> {
    let url = format!("{}/pki/crl/{ca}.crl", server.base);
    let der = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    rustls::pki_types::CertificateRevocationListDer::from(der.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rustls_server_loading_the_crl_refuses_a_revoked_device() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let serial = pki::device_certificate(&k, &server, "Transit", "sensor-1").await;
    let dir = k.dir.path();
    let leaf = CertificateDer::from_pem_file(dir.join("sensor-1.pem")).unwrap();
    let issuing = CertificateDer::from_pem_file(dir.join("issuing.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("root.pem")).unwrap())
        .unwrap();
    let roots = Arc::new(roots);
    // The server checks the whole chain: the root's CRL (for the issuing CA) and the issuing
    // CA's CRL (for the device).
    let accepts = |crls| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
                .with_crls(crls)
                .build()
                .unwrap();
        verifier.verify_client_cert(
            &leaf,
            std::slice::from_ref(&issuing),
            rustls::pki_types::UnixTime::now(),
        )
    };
    let before = vec![
        download_crl(&server, "root-1").await,
        download_crl(&server, "issuing-1").await,
    ];
    let verdict = accepts(before);
    assert!(
        verdict.is_ok(),
        "a valid device passes with the current CRLs: {verdict:?}"
    );
    k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    k.ok(&["crl", "generate"]);
    let after = vec![
        download_crl(&server, "root-1").await,
        download_crl(&server, "issuing-1").await,
    ];
    let verdict = accepts(after);
    assert!(
        matches!(
            verdict,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            ))
        ),
        "the revoked device is refused: {verdict:?}"
    );
}

/// The serials a DER CRL lists, as openssl prints them (upper-case hex).
fn crl_serials(dir: &Path, der: &[u8]) -> String {
    std::fs::write(dir.join("current.crl"), der).unwrap();
    text(&sh(
        dir,
        "openssl crl -inform DER -in current.crl -noout -text",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_the_published_crl_without_anyone_asking() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let serial = pki::device_certificate(&k, &server, "Transit", "crane-2").await;
    let dir = k.dir.path();
    let url = format!("{}/pki/crl/issuing-1.crl", server.base);
    let before = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert!(!crl_serials(dir, &before).contains(&serial.to_ascii_uppercase()));
    k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    // The server regenerates CRLs once changes have been quiet for a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let now = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
        let printed = crl_serials(dir, &now);
        if printed.contains(&serial.to_ascii_uppercase()) || Instant::now() > deadline {
            break printed;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        listed.contains(&serial.to_ascii_uppercase()) && listed.contains("Key Compromise"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_api_revokes_holds_releases_and_counts_before_a_bulk_revocation() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let one = pki::device_certificate(&k, &server, "Transit", "tap-1").await;
        pki::device_certificate(&k, &server, "Transit", "tap-2").await;
        let dir = k.dir.path();
        let admin = common::service_token(&k, &server.base, "kizuna:admin", None).await;
        let http = reqwest::Client::new();
        let api = |path: &str| format!("{}/ca/api/v1{path}", server.base);

        let unauthenticated = http
            .post(api(&format!("/certificates/{one}/revoke")))
            .json(&serde_json::json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401);
        let bad_reason = http
            .post(api(&format!("/certificates/{one}/revoke")))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"reason": "stolen"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_reason.status(), 400);
        assert!(ocsp(dir, &server.base, "tap-1", "").contains("tap-1.pem: good"));

        let held: serde_json::Value = http
            .post(api(&format!("/certificates/{one}/revoke")))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"reason": "certificateHold"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(held["revoked"][0], one.as_str(), "{held}");
        assert!(until_revoked(dir, &server.base, "tap-1").contains("Reason: certificateHold"));
        let released = http
            .post(api(&format!("/certificates/{one}/unhold")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(released.status(), 204);

        let count: serde_json::Value = http
            .post(api("/revocations"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"org_id": org_of(&k), "reason": "cessationOfOperation"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(count["would_revoke"], 2, "{count}");
        assert!(ocsp(dir, &server.base, "tap-2", "").contains("tap-2.pem: good"));
        let done: serde_json::Value = http
            .post(api("/revocations"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"org_id": org_of(&k), "reason": "cessationOfOperation", "confirm": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(done["revoked"].as_array().map(Vec::len), Some(2), "{done}");
        assert!(until_revoked(dir, &server.base, "tap-2").contains("tap-2.pem: revoked"));
        let audit = k.ok(&["audit", "export"]);
        assert!(
            audit
                .lines()
                .any(|l| l.contains("\"action\":\"cert.revoke\"")
                    && l.contains("\"actor_kind\":\"client\"")),
            "the API caller is the audited actor"
        );
    }
}

fn org_of(k: &Kizuna) -> String {
    k.json(&["org", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_by_device_never_reaches_another_organizations_device() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let mut serials = Vec::new();
        for org in ["Water", "Gas"] {
            let id = k.json(&["org", "create", "--name", org, "--json"])["id"]
                .as_str()
                .unwrap()
                .to_string();
            // The same device name in both organizations.
            serials.push(pki::issue_device_certificate(&k, &id, "meter-1"));
        }
        let ambiguous = k.run(&[
            "cert",
            "revoke",
            "--device",
            "meter-1",
            "--reason",
            "keyCompromise",
            "--yes",
        ]);
        assert!(!ambiguous.status.success());
        assert!(
            String::from_utf8_lossy(&ambiguous.stderr).contains("several organizations"),
            "{}",
            text(&ambiguous)
        );
        let preview = k.run(&[
            "cert",
            "revoke",
            "--device",
            "meter-1",
            "--org",
            "Water",
            "--reason",
            "keyCompromise",
        ]);
        assert!(
            String::from_utf8_lossy(&preview.stdout).contains("1 certificates would be revoked"),
            "{}",
            text(&preview)
        );
        let done = k.ok(&[
            "cert",
            "revoke",
            "--device",
            "meter-1",
            "--org",
            "Water",
            "--reason",
            "keyCompromise",
            "--yes",
        ]);
        assert!(done.contains("revoked 1"), "{done}");
        let water = k.json(&["cert", "show", &serials[0], "--json"]);
        let gas = k.json(&["cert", "show", &serials[1], "--json"]);
        assert_eq!(water["status"], "revoked");
        assert_eq!(
            gas["status"], "valid",
            "the other organization's meter-1 is untouched"
        );
    }
}
