//! SAML messages as Kizuna's SAML endpoints read them: the POST-binding Response at the ACS
//! (checked against the test IdP's certificates, with the SP's decryption key, at a time
//! inside the fixtures' validity window), IdP metadata, LogoutRequest and LogoutResponse,
//! and the HTTP-Redirect value's base64 + DEFLATE decoding. The logout endpoint reads the
//! inflated XML with the same two functions, which are fuzzed here on the XML directly.
#![no_main]

use kizuna_idp::federation::saml::{read, verify};
use libfuzzer_sys::fuzz_target;

const IDP_CERT: &[u8] = include_bytes!("../../idp/src/federation/saml/testdata/idp.crt.der");
const IDP_EC_CERT: &[u8] = include_bytes!("../../idp/src/federation/saml/testdata/idp-ec.crt.der");
const SP_KEY: &[u8] = include_bytes!("../../idp/src/federation/saml/testdata/sp-enc.key.der");

fuzz_target!(|data: &[u8]| {
    // The fixtures' values (testdata/README.md); "now" is one minute into their window.
    let expected = verify::Expected {
        idp_entity_id: "https://idp.example.org/idp",
        sp_entity_id: "https://kizuna.example.com/saml/sp",
        acs_url: "https://kizuna.example.com/saml/acs",
        request_id: "_req1",
        now: 1_893_456_060,
        skew_secs: 60,
    };
    let certs = [IDP_CERT.to_vec(), IDP_EC_CERT.to_vec()];
    let _ = verify::verify_response(data, &certs, &expected, Some(SP_KEY));
    let _ = read::idp_metadata(data);
    let _ = read::logout_request(data);
    let _ = read::logout_response(data);
    if let Ok(value) = std::str::from_utf8(data) {
        let _ = read::inflate(value);
    }
});
