//! The assertion's conditions and the response's addressing, each refused alone; and the
//! HTTP-Redirect binding signature.

use super::tests::*;
use super::*;

const START: i64 = 1_893_456_000; // 2030-01-01T00:00:00Z, NotBefore
const END: i64 = START + 300; // NotOnOrAfter of Conditions and SubjectConfirmationData

#[test]
fn a_wrong_audience_is_refused() {
    let e = Expected {
        sp_entity_id: "https://other.example.com/sp",
        ..expected()
    };
    assert!(matches!(
        verify_with(SIGNED_ASSERTION, &e),
        Err(SamlError::Audience)
    ));
}

#[test]
fn a_wrong_destination_is_refused() {
    let xml = SIGNED_RESPONSE.replacen(
        "Destination=\"https://kizuna.example.com/saml/acs\"",
        "Destination=\"https://evil.example.com/acs\"",
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::Destination)));
    let xml =
        SIGNED_ASSERTION.replacen("Destination=\"https://kizuna.example.com/saml/acs\"", "", 1);
    assert!(matches!(verify(&xml), Err(SamlError::Destination)));
}

#[test]
fn a_wrong_recipient_is_refused() {
    // The (unsigned) Response is readdressed; the signed Recipient still names ours.
    let acs = "https://other.example.com/acs";
    let xml = SIGNED_ASSERTION.replacen(
        "Destination=\"https://kizuna.example.com/saml/acs\"",
        &format!("Destination=\"{acs}\""),
        1,
    );
    let e = Expected {
        acs_url: acs,
        ..expected()
    };
    assert!(matches!(verify_with(&xml, &e), Err(SamlError::Recipient)));
}

#[test]
fn a_wrong_in_response_to_is_refused() {
    let e = Expected {
        request_id: "_another_request",
        ..expected()
    };
    assert!(matches!(
        verify_with(SIGNED_ASSERTION, &e),
        Err(SamlError::InResponseTo)
    ));
    // The signed SubjectConfirmationData's alone, when the Response carries none.
    let xml = SIGNED_ASSERTION.replacen(" InResponseTo=\"_req1\"", "", 1);
    assert!(matches!(
        verify_with(&xml, &e),
        Err(SamlError::InResponseTo)
    ));
    // The Response's own InResponseTo is checked too.
    let xml = SIGNED_ASSERTION.replacen("InResponseTo=\"_req1\"", "InResponseTo=\"_x\"", 1);
    assert!(matches!(verify(&xml), Err(SamlError::InResponseTo)));
}

#[test]
fn a_wrong_issuer_is_refused() {
    let e = Expected {
        idp_entity_id: "https://other-idp.example.org/idp",
        ..expected()
    };
    assert!(matches!(
        verify_with(SIGNED_ASSERTION, &e),
        Err(SamlError::Issuer)
    ));
    // The signed Assertion's Issuer alone, when the Response carries none.
    let xml = SIGNED_ASSERTION.replacen(
        "<saml:Issuer>https://idp.example.org/idp</saml:Issuer>",
        "",
        1,
    );
    assert!(matches!(verify_with(&xml, &e), Err(SamlError::Issuer)));
    // The Response's Issuer, when present, must name the same identity provider.
    let xml = SIGNED_ASSERTION.replacen(
        "<saml:Issuer>https://idp.example.org/idp</saml:Issuer>",
        "<saml:Issuer>https://evil.example.org/idp</saml:Issuer>",
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::Issuer)));
}

#[test]
fn an_expired_assertion_is_refused_once_past_the_skew() {
    let at = |now| verify_with(SIGNED_ASSERTION, &Expected { now, ..expected() });
    at(END + SKEW - 1).unwrap();
    assert!(matches!(at(END + SKEW), Err(SamlError::Expired)));
}

#[test]
fn an_assertion_not_yet_valid_is_refused_beyond_the_skew() {
    let at = |now| verify_with(SIGNED_ASSERTION, &Expected { now, ..expected() });
    at(START - SKEW).unwrap();
    assert!(matches!(at(START - SKEW - 1), Err(SamlError::NotYetValid)));
}

#[test]
fn a_non_success_status_is_its_own_refusal() {
    let xml = SIGNED_ASSERTION.replace(
        "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/>",
        "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\">\
         <samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:AuthnFailed\"/>\
         </samlp:StatusCode><samlp:StatusMessage>wrong password</samlp:StatusMessage>",
    );
    let e = refused(verify(&xml), "status");
    let SamlError::Status {
        code,
        second,
        message,
    } = e
    else {
        panic!("{e:?}");
    };
    assert_eq!(code, "urn:oasis:names:tc:SAML:2.0:status:Responder");
    assert_eq!(
        second.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed")
    );
    assert_eq!(message.as_deref(), Some("wrong password"));
}

/// Runs the assertion checks alone on the signed fixture's assertion after `edit` (the
/// signature is not checked here, so the edit can change signed content).
fn read_edited(edit: impl Fn(&str) -> String) -> Result<Assertion, SamlError> {
    read_edited_at(NOW, edit)
}

fn read_edited_at(now: i64, edit: impl Fn(&str) -> String) -> Result<Assertion, SamlError> {
    let text = edit(SIGNED_ASSERTION);
    let doc = super::xml::parse(text.as_bytes()).unwrap();
    let response = super::xml::root(&doc, PROTOCOL, "Response").unwrap();
    let assertion = super::xml::child(&doc, response, ASSERTION, "Assertion").unwrap();
    read_assertion(&doc, assertion, &Expected { now, ..expected() })
}

#[test]
fn the_checks_pass_on_the_unedited_assertion() {
    assert_eq!(read_edited(str::to_owned).unwrap().name_id, "alice");
}

#[test]
fn an_assertion_without_an_authn_statement_is_refused() {
    let result = read_edited(|x| {
        x.replace(
            cut(x, "<saml:AuthnStatement ", "</saml:AuthnStatement>"),
            "",
        )
    });
    assert!(matches!(result, Err(SamlError::Missing("AuthnStatement"))));
}

#[test]
fn an_assertion_without_a_bearer_confirmation_is_refused() {
    let result = read_edited(|x| x.replace("cm:bearer", "cm:holder-of-key"));
    assert!(matches!(result, Err(SamlError::SubjectConfirmation(_))));
    let result = read_edited(|x| {
        x.replace(
            " NotOnOrAfter=\"2030-01-01T00:05:00Z\" Recipient",
            " Recipient",
        )
    });
    assert!(matches!(result, Err(SamlError::SubjectConfirmation(_))));
}

#[test]
fn a_later_bearer_confirmation_may_be_the_good_one() {
    let result = read_edited(|x| {
        let sc = cut(
            x,
            "<saml:SubjectConfirmation ",
            "</saml:SubjectConfirmation>",
        );
        let bad = sc.replace(
            "https://kizuna.example.com/saml/acs",
            "https://evil.example.com/acs",
        );
        x.replace(sc, &format!("{bad}{sc}"))
    });
    result.unwrap();
}

#[test]
fn an_assertion_without_an_audience_restriction_is_refused() {
    let result = read_edited(|x| {
        x.replace(
            cut(
                x,
                "<saml:AudienceRestriction>",
                "</saml:AudienceRestriction>",
            ),
            "",
        )
    });
    assert!(matches!(result, Err(SamlError::Audience)));
    // Every AudienceRestriction must name us.
    let result = read_edited(|x| {
        x.replace(
            "</saml:AudienceRestriction>",
            "</saml:AudienceRestriction><saml:AudienceRestriction><saml:Audience>urn:other</saml:Audience></saml:AudienceRestriction>",
        )
    });
    assert!(matches!(result, Err(SamlError::Audience)));
}

#[test]
fn an_expired_subject_confirmation_is_refused_while_conditions_still_hold() {
    let result = read_edited(|x| {
        x.replace(
            "NotOnOrAfter=\"2030-01-01T00:05:00Z\" Recipient",
            "NotOnOrAfter=\"2029-12-31T23:58:00Z\" Recipient",
        )
    });
    assert!(matches!(result, Err(SamlError::Expired)));
}

#[test]
fn expired_conditions_are_refused_while_the_confirmation_still_holds() {
    let later = |x: &str| {
        x.replace(
            "NotOnOrAfter=\"2030-01-01T00:05:00Z\" Recipient",
            "NotOnOrAfter=\"2030-01-01T00:10:00Z\" Recipient",
        )
    };
    read_edited_at(END + SKEW - 1, later).unwrap();
    assert!(matches!(
        read_edited_at(END + SKEW, later),
        Err(SamlError::Expired)
    ));
}

#[test]
fn a_confirmation_not_yet_valid_is_refused_while_conditions_hold() {
    // Conditions without NotBefore; the confirmation's NotBefore is still ahead.
    let edit = |x: &str| {
        x.replace(" NotBefore=\"2030-01-01T00:00:00Z\"", "")
            .replace(
                " Recipient=",
                " NotBefore=\"2030-01-01T00:03:00Z\" Recipient=",
            )
    };
    read_edited_at(START + 180 - SKEW, edit).unwrap();
    let result = read_edited_at(START + 180 - SKEW - 1, edit);
    assert!(matches!(result, Err(SamlError::NotYetValid)));
}

#[test]
fn expires_at_is_the_latest_bound_plus_the_skew() {
    let a = read_edited(|x| {
        x.replace(
            "NotOnOrAfter=\"2030-01-01T00:05:00Z\" Recipient",
            "NotOnOrAfter=\"2030-01-01T00:10:00Z\" Recipient",
        )
    })
    .unwrap();
    assert_eq!(a.expires_at, START + 600 + SKEW);
    // Without Conditions NotOnOrAfter, the confirmation's bound.
    let a = read_edited(|x| x.replacen(" NotOnOrAfter=\"2030-01-01T00:05:00Z\">", ">", 1)).unwrap();
    assert_eq!(a.expires_at, END + SKEW);
}

#[test]
fn a_malformed_time_is_refused() {
    let result =
        read_edited(|x| x.replace("NotBefore=\"2030-01-01T00:00:00Z\"", "NotBefore=\"soon\""));
    assert!(matches!(result, Err(SamlError::Invalid(_))));
}

/// The test IdP's RSA key, PKCS#8 DER from its PEM.
fn idp_key() -> ring::signature::RsaKeyPair {
    use base64::Engine as _;
    let pem = include_str!("testdata/idp.key.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap()
}

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const OCTETS: &[u8] = b"SAMLRequest=fZFNT8MwDIbv%2BRVR7l0%2FtjGI1k5iAmkSiEIHDlyi1F0rtU6p0wH%2FnjAxaVw4Wn79%2BLG9Wn8MPT%2BAo86a&RelayState=abc&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256";

fn sign(octets: &[u8]) -> Vec<u8> {
    let key = idp_key();
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        octets,
        &mut sig,
    )
    .unwrap();
    sig
}

#[test]
fn a_redirect_binding_signature_verifies_with_the_metadata_key() {
    verify_redirect_signature(OCTETS, RSA_SHA256, &sign(OCTETS), &certs()).unwrap();
}

#[test]
fn a_redirect_binding_signature_by_another_key_or_over_other_octets_is_refused() {
    let sig = sign(OCTETS);
    let untrusted = [UNTRUSTED_CERT.to_vec()];
    assert!(matches!(
        verify_redirect_signature(OCTETS, RSA_SHA256, &sig, &untrusted),
        Err(SamlError::Signature)
    ));
    let other = [OCTETS, b"&x=1"].concat();
    assert!(matches!(
        verify_redirect_signature(&other, RSA_SHA256, &sig, &certs()),
        Err(SamlError::Signature)
    ));
}

#[test]
fn a_redirect_binding_rsa_sha1_sig_alg_is_refused() {
    let sha1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    assert!(matches!(
        verify_redirect_signature(OCTETS, sha1, &sign(OCTETS), &certs()),
        Err(SamlError::Algorithm(_))
    ));
}
