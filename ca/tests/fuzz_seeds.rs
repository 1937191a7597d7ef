//! The committed fuzz seeds (`fuzz/corpus/<target>/`) of the targets whose parsers are public,
//! run through the same calls as `fuzz/fuzz_targets/<target>.rs`, without libFuzzer. The
//! seeds are real inputs, so each table says what every file must give: a parse that finds
//! the expected key, names or algorithms, or the expected refusal. A seed file without a row
//! fails the test (`kizuna_core::testing::check_fuzz_seeds`). The crate-private parsers'
//! seeds are tested beside them: `est_body` in `enroll/est.rs`, `acme_jws` in `acme/jws.rs`,
//! `webauthn` in kizuna-idp's `mfa/webauthn.rs`.

use std::net::IpAddr;

use kizuna_ca::csr::{self, CsrError};
use kizuna_ca::keys::KeyType;
use kizuna_ca::names::San;
use kizuna_core::jose::{JoseError, Jws, PublicJwk, thumbprint};
use kizuna_core::testing::{FUZZ_HMAC_KEY, FUZZ_JWKS, check_fuzz_seeds};
use kizuna_ocsp::codec::{self, HashAlg, ParseError};

macro_rules! corpus {
    ($target:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/", $target)
    };
}

/// What enrollment reads from a verified request.
#[derive(Debug, PartialEq)]
struct Request {
    key: KeyType,
    cn: Option<String>,
    serial_number: Option<String>,
    sans: Vec<San>,
    /// Requested extensions other than subjectAltName (never copied into certificates).
    ignored_extensions: usize,
}

fn request(key: KeyType, cn: Option<&str>, serial_number: Option<&str>) -> Request {
    Request {
        key,
        cn: cn.map(str::to_string),
        serial_number: serial_number.map(str::to_string),
        sans: Vec::new(),
        ignored_extensions: 0,
    }
}

#[test]
fn csr_seeds_are_valid_requests() {
    let ip = |text: &str| San::Ip(text.parse::<IpAddr>().unwrap());
    let expected = [
        (
            "ed25519.b64",
            Ok(request(KeyType::Ed25519, Some("ed"), None)),
        ),
        (
            "hardware_module_name.der",
            Ok(Request {
                sans: vec![San::hardware_module("1.3.6.1.4.1.99999.1", b"HW-0001").unwrap()],
                ..request(KeyType::P256, None, Some("HW-0001"))
            }),
        ),
        (
            "new_armour_crlf.pem",
            Ok(request(KeyType::P256, Some("x"), None)),
        ),
        ("p256.der", Ok(request(KeyType::P256, Some("x"), None))),
        (
            "p384.pem",
            Ok(request(KeyType::P384, Some("device-1"), Some("SN123"))),
        ),
        (
            "rsa2048.pem",
            Ok(request(KeyType::Rsa(2048), Some("rsa"), None)),
        ),
        (
            "sans.pem",
            Ok(Request {
                sans: vec![
                    San::Dns("sensor.example.org".into()),
                    ip("192.0.2.7"),
                    ip("2001:db8::1"),
                    San::Email("ops@example.org".into()),
                    San::Uri("urn:example:device:1".into()),
                ],
                // keyUsage and extendedKeyUsage.
                ignored_extensions: 2,
                ..request(KeyType::P256, Some("sensor.example.org"), None)
            }),
        ),
    ];
    check_fuzz_seeds(corpus!("csr"), &expected, |data| {
        let parsed = csr::parse(data, |_| Ok(()))?;
        Ok::<_, CsrError>(Request {
            key: parsed.key.key_type,
            cn: csr::attribute(&parsed.subject, csr::CN),
            serial_number: csr::attribute(&parsed.subject, csr::SERIAL_NUMBER),
            sans: parsed.requested_sans,
            ignored_extensions: parsed.ignored_extensions.len(),
        })
    });
}

/// The hash algorithm and serial (hex) of each CertID, and whether a nonce came.
type Asked = (Vec<(HashAlg, String)>, bool);

fn asked(ids: &[(HashAlg, &str)], nonce: bool) -> Result<Asked, ParseError> {
    let ids = ids.iter().map(|(hash, serial)| (*hash, serial.to_string()));
    Ok((ids.collect(), nonce))
}

#[test]
fn ocsp_request_seeds_are_valid_requests() {
    const LEAF: &str = "6c73871d1d009efe9ff579c4fad7e482ed718305";
    let expected = [
        ("sha1_no_nonce.der", asked(&[(HashAlg::Sha1, LEAF)], false)),
        ("sha1_nonce.der", asked(&[(HashAlg::Sha1, LEAF)], true)),
        ("sha256.der", asked(&[(HashAlg::Sha256, LEAF)], false)),
        (
            "sha384_two_certs.der",
            asked(
                &[
                    (HashAlg::Sha384, LEAF),
                    (HashAlg::Sha384, "2e54e2c9969bf5d941fe126c09a3c16c113e44d0"),
                ],
                true,
            ),
        ),
        (
            "sha512_serial.der",
            asked(&[(HashAlg::Sha512, "ff01")], false),
        ),
        // The requestor name and the signature are skipped, not refused.
        ("signed.der", asked(&[(HashAlg::Sha1, LEAF)], true)),
    ];
    check_fuzz_seeds(corpus!("ocsp_request"), &expected, |data| {
        let request = codec::parse_request(data)?;
        for id in &request.ids {
            let digest_len = id.hash.digest(b"").len();
            assert_eq!(id.issuer_name_hash.len(), digest_len);
            assert_eq!(id.issuer_key_hash.len(), digest_len);
        }
        let ids = request.ids.iter();
        let ids = ids.map(|id| (id.hash, id.serial.as_str().to_string()));
        Ok((ids.collect(), request.nonce.is_some()))
    });
}

#[test]
fn jws_seeds_verify_with_their_key_only() {
    const ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "RS256", "PS256"];
    let set: serde_json::Value = serde_json::from_str(FUZZ_JWKS).unwrap();
    // What verifies each token: "set" (verify_with_set), a key's kid (verify with that key
    // alone) or "hmac" (verify_hmac with the shared key).
    let verified_by = |names: &[&'static str]| Ok::<_, JoseError>(names.to_vec());
    let expected = [
        ("alg_none.txt", verified_by(&[])),
        ("eddsa.txt", verified_by(&["set", "ed"])),
        ("es256_client_assertion.txt", verified_by(&["set", "ec"])),
        ("es256_id_token.txt", verified_by(&["set", "ec"])),
        ("es256_logout_token.txt", verified_by(&["set", "ec"])),
        ("es384.txt", verified_by(&["set", "ec384"])),
        ("hs256.txt", verified_by(&["hmac"])),
        // No kid: the one key of the set that fits PS256.
        ("ps256_no_kid.txt", verified_by(&["set", "rsa"])),
        ("rs256.txt", verified_by(&["set", "rsa"])),
    ];
    check_fuzz_seeds(corpus!("jws"), &expected, |data| {
        let jws = Jws::parse(std::str::from_utf8(data).map_err(|_| JoseError::Malformed)?)?;
        let claims: serde_json::Value = jws.claims()?;
        assert!(claims["iss"].is_string(), "every seed has an issuer");
        let mut by = Vec::new();
        if jws.verify_with_set(&set, ALGORITHMS).is_ok() {
            by.push("set");
        }
        for (key, kid) in [(0, "ec"), (1, "ec384"), (2, "ed"), (3, "rsa")] {
            assert_eq!(set["keys"][key]["kid"], kid);
            if jws.verify(&set["keys"][key], ALGORITHMS).is_ok() {
                by.push(kid);
            }
        }
        if jws.verify_hmac(FUZZ_HMAC_KEY).is_ok() {
            by.push("hmac");
        }
        if jws.header.alg == "none" {
            assert_eq!(
                jws.verify(&set["keys"][0], ALGORITHMS),
                Err(JoseError::AlgorithmNotAllowed("none".into()))
            );
        }
        Ok(by)
    });
}

#[test]
fn jwk_seeds_are_public_keys_or_refused() {
    const ALGORITHMS: &[&str] = &[
        "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    ];
    // The algorithms each key verifies (a zero signature, refused as BadSignature by exactly
    // these, with AlgorithmNotAllowed by the rest), or why the key is refused.
    let expected: [(&str, Result<Vec<&str>, JoseError>); 6] = [
        ("ec.json", Ok(vec!["ES256"])),
        ("ec384.json", Ok(vec!["ES384"])),
        (
            "ec_with_private_d.json",
            Err(JoseError::BadKey("it contains a private key")),
        ),
        ("ed.json", Ok(vec!["EdDSA"])),
        ("oct.json", Err(JoseError::BadKey("unsupported key type"))),
        (
            "rsa.json",
            Ok(vec!["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]),
        ),
    ];
    check_fuzz_seeds(corpus!("jwk"), &expected, |data| {
        let value: serde_json::Value = serde_json::from_slice(data).expect("every seed is JSON");
        let key = PublicJwk::parse(&value)?;
        let print = thumbprint(&value).expect("a usable key has a thumbprint");
        assert_eq!(print.len(), 43, "an RFC 7638 SHA-256 thumbprint");
        assert!(!key.public_key().spki_der().is_empty());
        let mut fits = Vec::new();
        for alg in ALGORITHMS {
            match key.verify(alg, b"message", &[0u8; 64]) {
                Err(JoseError::BadSignature) => fits.push(*alg),
                Err(JoseError::AlgorithmNotAllowed(_)) => {}
                other => panic!("{alg} with a zero signature gave {other:?}"),
            }
        }
        Ok(fits)
    });
}
