//! The verifier's rules, each shown refused on a real signed fixture (testdata/make.sh,
//! xmlsec1) or on a string-surgery variant of one.

use super::*;

/// 2030-01-01T00:01:00Z: one minute into the fixtures' five-minute window.
pub(super) const NOW: i64 = 1_893_456_060;
pub(super) const SKEW: i64 = 60;
pub(super) const IDP_CERT: &[u8] = include_bytes!("testdata/idp.crt.der");
const IDP_EC_CERT: &[u8] = include_bytes!("testdata/idp-ec.crt.der");
pub(super) const UNTRUSTED_CERT: &[u8] = include_bytes!("testdata/untrusted.crt.der");
pub(super) const SP_KEY: &[u8] = include_bytes!("testdata/sp-enc.key.der");

pub(super) const SIGNED_ASSERTION: &str = include_str!("testdata/signed_assertion.xml");
pub(super) const SIGNED_RESPONSE: &str = include_str!("testdata/signed_response.xml");

pub(super) fn expected() -> Expected<'static> {
    Expected {
        idp_entity_id: "https://idp.example.org/idp",
        sp_entity_id: "https://kizuna.example.com/saml/sp",
        acs_url: "https://kizuna.example.com/saml/acs",
        request_id: "_req1",
        now: NOW,
        skew_secs: SKEW,
    }
}

pub(super) fn certs() -> Vec<Vec<u8>> {
    vec![IDP_CERT.to_vec(), IDP_EC_CERT.to_vec()]
}

pub(super) fn verify_with(xml: &str, expected: &Expected) -> Result<Assertion, SamlError> {
    verify_response(xml.as_bytes(), &certs(), expected, Some(SP_KEY))
}

pub(super) fn verify(xml: &str) -> Result<Assertion, SamlError> {
    verify_with(xml, &expected())
}

/// The text between the first `start` and the end of the following `end`.
pub(super) fn cut<'a>(xml: &'a str, start: &str, end: &str) -> &'a str {
    let from = xml.find(start).expect("start marker");
    let to = from + xml[from..].find(end).expect("end marker") + end.len();
    &xml[from..to]
}

pub(super) fn signed_assertion_element() -> &'static str {
    cut(SIGNED_ASSERTION, "<saml:Assertion ", "</saml:Assertion>")
}

/// An assertion the attacker wrote: same shape, another subject, no signature.
pub(super) fn evil_assertion(id: &str) -> String {
    let unsigned = signed_assertion_element().replace(
        cut(
            signed_assertion_element(),
            "<ds:Signature",
            "</ds:Signature>",
        ),
        "",
    );
    unsigned
        .replace("ID=\"_assert1\"", &format!("ID=\"{id}\""))
        .replace(">alice<", ">admin<")
}

#[track_caller]
pub(super) fn refused(result: Result<Assertion, SamlError>, reason: &str) -> SamlError {
    match result {
        Ok(a) => panic!("accepted, expected {reason:?}: {a:?}"),
        Err(e) => {
            assert_eq!(e.reason(), reason, "{e}");
            e
        }
    }
}

#[test]
fn a_signed_assertion_is_accepted_and_read_in_full() {
    let a = verify(SIGNED_ASSERTION).unwrap();
    assert_eq!(a.id, "_assert1");
    assert_eq!(a.issuer, "https://idp.example.org/idp");
    assert_eq!(a.name_id, "alice");
    assert_eq!(
        a.name_id_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    assert_eq!(a.session_index.as_deref(), Some("_session1"));
    assert_eq!(
        a.authn_context_class_ref.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    );
    assert_eq!(
        a.attributes,
        vec![
            Attribute {
                name: "urn:oid:0.9.2342.19200300.100.1.3".into(),
                friendly_name: Some("mail".into()),
                values: vec!["alice@example.org".into()],
            },
            Attribute {
                name: "role".into(),
                friendly_name: None,
                values: vec!["staff".into(), "admin".into()],
            },
        ]
    );
    // 2030-01-01T00:05:00Z plus the skew.
    assert_eq!(a.expires_at, 1_893_456_300 + SKEW);
    assert!(!a.encrypted);
}

#[test]
fn a_signed_response_is_accepted() {
    let a = verify(SIGNED_RESPONSE).unwrap();
    assert_eq!(a.name_id, "alice");
}

#[test]
fn an_ecdsa_p256_signature_is_accepted() {
    verify(include_str!("testdata/signed_assertion_ecdsa.xml")).unwrap();
}

#[test]
fn an_rsa_sha512_signature_is_accepted() {
    verify(include_str!("testdata/signed_assertion_sha512.xml")).unwrap();
}

#[test]
fn an_encrypted_assertion_aes128_cbc_is_decrypted_then_verified() {
    let a = verify(include_str!("testdata/encrypted_oaep_aes128cbc.xml")).unwrap();
    assert!(a.encrypted);
    assert_eq!(a.name_id, "alice");
    assert_eq!(a.attributes.len(), 2);
}

#[test]
fn an_encrypted_assertion_aes256_gcm_is_decrypted_then_verified() {
    let a = verify(include_str!("testdata/encrypted_oaep_aes256gcm.xml")).unwrap();
    assert!(a.encrypted);
}

#[test]
fn the_xmlenc11_rsa_oaep_uri_is_accepted() {
    // MGF1 with SHA-1 and a SHA-1 digest are xmlenc11#rsa-oaep's defaults: same bytes.
    let xml = include_str!("testdata/encrypted_oaep_aes256gcm.xml").replace(
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    );
    assert!(verify(&xml).unwrap().encrypted);
}

#[test]
fn rsa_pkcs1_v1_5_key_transport_is_refused() {
    refused(
        verify(include_str!("testdata/encrypted_rsa15.xml")),
        "algorithm",
    );
}

#[test]
fn an_encrypted_assertion_without_our_key_is_refused() {
    let xml = include_str!("testdata/encrypted_oaep_aes128cbc.xml");
    refused(
        verify_response(xml.as_bytes(), &certs(), &expected(), None),
        "decryption",
    );
    // A certificate is no PKCS#8 RSA key.
    refused(
        verify_response(xml.as_bytes(), &certs(), &expected(), Some(IDP_CERT)),
        "decryption",
    );
}

#[test]
fn a_tampered_cipher_value_is_refused() {
    let xml = include_str!("testdata/encrypted_oaep_aes256gcm.xml");
    let data = cut(xml, "</xenc:EncryptedKey>", "</xenc:CipherValue>");
    let value_at = xml.find(data).unwrap() + data.find("<xenc:CipherValue>").unwrap() + 40;
    let mut bytes = xml.as_bytes().to_vec();
    bytes[value_at] = if bytes[value_at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    refused(verify(&tampered), "decryption");
}

#[test]
fn a_tampered_attribute_value_fails_the_digest() {
    let xml = SIGNED_ASSERTION.replace(">staff<", ">root<");
    assert!(matches!(verify(&xml), Err(SamlError::Digest)));
    let xml = SIGNED_RESPONSE.replace(">alice<", ">admin<");
    assert!(matches!(verify(&xml), Err(SamlError::Digest)));
}

#[test]
fn a_tampered_signature_value_is_refused() {
    let value = cut(
        SIGNED_ASSERTION,
        "<ds:SignatureValue>",
        "</ds:SignatureValue>",
    );
    let flipped = value.replacen("<ds:SignatureValue>", "<ds:SignatureValue>AAAA", 1);
    let flipped = flipped.replacen(&value[19..23], "", 1);
    let xml = SIGNED_ASSERTION.replace(value, &flipped);
    assert_ne!(xml, SIGNED_ASSERTION);
    assert!(matches!(verify(&xml), Err(SamlError::Signature)));
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused_though_its_keyinfo_carries_the_key() {
    let xml = include_str!("testdata/signed_by_untrusted.xml");
    assert!(xml.contains("<ds:X509Certificate>MII"));
    assert!(matches!(verify(xml), Err(SamlError::Signature)));
    // With the key trusted, the same document verifies: the refusal was the key's.
    verify_response(
        xml.as_bytes(),
        &[UNTRUSTED_CERT.to_vec()],
        &expected(),
        None,
    )
    .unwrap();
}

#[test]
fn no_usable_certificate_is_refused() {
    let result = verify_response(
        SIGNED_ASSERTION.as_bytes(),
        &[b"junk".to_vec()],
        &expected(),
        None,
    );
    assert!(matches!(result, Err(SamlError::NoTrustedKey)));
}

#[test]
fn an_unsigned_response_is_refused() {
    let xml = SIGNED_ASSERTION.replace(
        cut(SIGNED_ASSERTION, "<ds:Signature", "</ds:Signature>"),
        "",
    );
    assert!(matches!(verify(&xml), Err(SamlError::Unsigned)));
}

#[test]
fn a_sha1_signature_is_refused() {
    let e = refused(
        verify(include_str!("testdata/signed_assertion_sha1.xml")),
        "algorithm",
    );
    assert!(e.to_string().contains("rsa-sha1"), "{e}");
}

#[test]
fn signature_methods_digests_and_transforms_off_the_allow_list_are_refused() {
    for (from, to) in [
        ("xmldsig-more#rsa-sha256", "xmldsig-more#hmac-sha256"),
        (
            "xmlenc#sha256\"/><ds:DigestValue>",
            "xmldsig-more#sha224\"/><ds:DigestValue>",
        ),
        (
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
        ),
        (
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments\"/>",
        ),
    ] {
        assert!(SIGNED_ASSERTION.contains(from), "{from}");
        let xml = SIGNED_ASSERTION.replace(from, to);
        refused(verify(&xml), "algorithm");
    }
}

#[test]
fn a_second_reference_is_refused() {
    let reference = cut(SIGNED_ASSERTION, "<ds:Reference ", "</ds:Reference>");
    let xml = SIGNED_ASSERTION.replace(reference, &format!("{reference}{reference}"));
    assert!(matches!(
        verify(&xml),
        Err(SamlError::SignatureStructure(_))
    ));
}

#[test]
fn a_signature_that_is_not_a_child_of_what_it_signs_is_refused() {
    // Valid: it sits in the Assertion and covers the whole Response.
    let xml = include_str!("testdata/signature_not_child_of_signed.xml");
    assert!(matches!(verify(xml), Err(SamlError::Wrapping(_))));
}

#[test]
fn a_comment_in_the_name_id_does_not_cut_the_value_short() {
    let a = verify(include_str!("testdata/signed_comment_in_nameid.xml")).unwrap();
    assert_eq!(a.name_id, "user@evil.com.trusted.com");
}
