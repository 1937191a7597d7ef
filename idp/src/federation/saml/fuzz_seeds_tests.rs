//! The committed `saml` fuzz seeds (`fuzz/corpus/saml/`), through the same calls as the fuzz
//! target, each giving what the table says.

use super::read::{idp_metadata, inflate, logout_request, logout_response};
use super::verify::{Expected, SamlError, verify_response};

const IDP_CERT: &[u8] = include_bytes!("testdata/idp.crt.der");
const IDP_EC_CERT: &[u8] = include_bytes!("testdata/idp-ec.crt.der");
const SP_KEY: &[u8] = include_bytes!("testdata/sp-enc.key.der");

/// What one entry point gives a seed: accepted, or refused with this `reason()`.
type Given = Result<(), &'static str>;
const ACCEPTED: Given = Ok(());
const ROOT: Given = Err("root");
const NOT_BASE64: Given = Err("encoding");

fn given<T>(result: Result<T, SamlError>) -> Given {
    result.map(|_| ()).map_err(|e| e.reason())
}

/// The fuzz target's calls, in its order: `verify_response`, `idp_metadata`,
/// `logout_request`, `logout_response`, `inflate`.
fn outcome(bytes: &[u8]) -> [Given; 5] {
    let expected = Expected {
        idp_entity_id: "https://idp.example.org/idp",
        sp_entity_id: "https://kizuna.example.com/saml/sp",
        acs_url: "https://kizuna.example.com/saml/acs",
        request_id: "_req1",
        now: 1_893_456_060,
        skew_secs: 60,
    };
    let certs = [IDP_CERT.to_vec(), IDP_EC_CERT.to_vec()];
    [
        given(verify_response(bytes, &certs, &expected, Some(SP_KEY))),
        given(idp_metadata(bytes)),
        given(logout_request(bytes)),
        given(logout_response(bytes)),
        std::str::from_utf8(bytes).map_or(Err("not UTF-8"), |s| given(inflate(s))),
    ]
}

#[test]
fn saml_fuzz_seeds_read_as_what_they_are() {
    let table: [(&str, [Given; 5]); 9] = [
        // A copy of testdata/encrypted_oaep_aes256gcm.xml.
        (
            "assertion_encrypted.xml",
            [ACCEPTED, ROOT, ROOT, ROOT, NOT_BASE64],
        ),
        // A copy of testdata/signed_assertion.xml.
        (
            "assertion_signed.xml",
            [ACCEPTED, ROOT, ROOT, ROOT, NOT_BASE64],
        ),
        // XSW3: an unsigned assertion (ID _evil, NameID admin) before the signed one.
        (
            "assertion_wrapped.xml",
            [Err("wrapping"), ROOT, ROOT, ROOT, NOT_BASE64],
        ),
        // read_tests.rs's LOGOUT_REQUEST.
        (
            "logout_request.xml",
            [ROOT, ROOT, ACCEPTED, ROOT, NOT_BASE64],
        ),
        // The same, DEFLATEd and base64-encoded as an HTTP-Redirect SAMLRequest value.
        (
            "logout_request_redirect.txt",
            [
                Err("not well-formed"),
                Err("not well-formed"),
                Err("not well-formed"),
                Err("not well-formed"),
                ACCEPTED,
            ],
        ),
        // read_tests.rs's logout_response_with("Success").
        (
            "logout_response.xml",
            [ROOT, ROOT, ROOT, ACCEPTED, NOT_BASE64],
        ),
        // read_tests.rs's metadata(), with testdata/idp.crt.pem.
        ("metadata.xml", [ROOT, ACCEPTED, ROOT, ROOT, NOT_BASE64]),
        // testdata/signed_response.xml with a DTD declaring an external entity.
        (
            "response_dtd.xml",
            [Err("dtd"), Err("dtd"), Err("dtd"), Err("dtd"), NOT_BASE64],
        ),
        // A copy of testdata/signed_response.xml.
        (
            "response_signed.xml",
            [ACCEPTED, ROOT, ROOT, ROOT, NOT_BASE64],
        ),
    ];
    kizuna_core::testing::check_fuzz_seeds(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/saml"),
        &table,
        outcome,
    );
}
