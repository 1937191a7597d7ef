//! Reading browsers' WebAuthn responses: the committed fuzz seeds and the refusals.

use super::*;

/// The committed `webauthn` fuzz seeds (`fuzz/corpus/webauthn/`): real browser responses,
/// each read as what it is (a registration or an assertion) and refused as the other.
#[test]
fn webauthn_fuzz_seeds_read_as_what_they_are() {
    let registration = Ok((true, false));
    let assertion = Ok((false, true));
    let expected = [
        ("assertion_discoverable.json", assertion.clone()),
        ("assertion_second_factor.json", assertion),
        ("registration_minimal.json", registration.clone()),
        ("registration_none.json", registration),
    ];
    kizuna_core::testing::check_fuzz_seeds(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/webauthn"),
        &expected,
        |bytes| -> Result<(bool, bool), String> {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            Ok((
                parse::<RegisterPublicKeyCredential>(text).is_ok(),
                parse::<PublicKeyCredential>(text).is_ok(),
            ))
        },
    );
}

#[test]
fn an_oversized_or_malformed_response_is_refused_with_why() {
    let huge = format!("{{\"id\":\"{}\"}}", "a".repeat(70 * 1024));
    assert!(matches!(
        parse::<PublicKeyCredential>(&huge),
        Err(MfaError::Rejected(m)) if m.contains("too large")
    ));
    assert!(matches!(
        parse::<PublicKeyCredential>("{\"id\":"),
        Err(MfaError::Rejected(m)) if m.starts_with("malformed response")
    ));
}
