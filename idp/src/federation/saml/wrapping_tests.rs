//! Signature wrapping (XSW 1–8, after Somorovsky et al., "On Breaking SAML", 2012) and
//! document-shape attacks, built by string surgery on the real signed fixtures: each is
//! refused, and by the rule it targets.

use super::tests::*;
use super::*;

/// The signed Response's Signature element.
fn response_signature() -> &'static str {
    cut(SIGNED_RESPONSE, "<ds:Signature", "</ds:Signature>")
}

/// The signed Response's element, without the XML declaration.
fn original_response() -> &'static str {
    cut(SIGNED_RESPONSE, "<samlp:Response ", "</samlp:Response>")
}

/// An evil Response (ID _evil) around `inner`, holding `assertion`.
fn evil_response(inner: &str, assertion: &str) -> String {
    format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_evil\" Version=\"2.0\" \
         IssueInstant=\"2030-01-01T00:00:00Z\" Destination=\"https://kizuna.example.com/saml/acs\">\
         <saml:Issuer>https://idp.example.org/idp</saml:Issuer>{inner}\
         <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>\
         {assertion}</samlp:Response>"
    )
}

#[test]
fn xsw1_evil_response_with_the_signed_one_inside_its_signature_is_refused() {
    let sig = response_signature().replace(
        "</ds:Signature>",
        &format!(
            "<ds:Object>{}</ds:Object></ds:Signature>",
            original_response()
        ),
    );
    let xml = evil_response(&sig, &evil_assertion("_evil_a"));
    refused(verify(&xml), "wrapping");
}

#[test]
fn xsw2_evil_response_with_the_signed_one_beside_its_signature_is_refused() {
    let inner = format!("{}{}", response_signature(), original_response());
    let xml = evil_response(&inner, &evil_assertion("_evil_a"));
    refused(verify(&xml), "wrapping");
}

#[test]
fn xsw3_evil_assertion_before_the_signed_one_is_refused_by_the_count() {
    let signed = signed_assertion_element();
    let xml = SIGNED_ASSERTION.replace(signed, &format!("{}{signed}", evil_assertion("_evil")));
    assert!(matches!(verify(&xml), Err(SamlError::AssertionCount(2))));
}

#[test]
fn xsw4_signed_assertion_inside_the_evil_one_is_refused_by_the_count() {
    let signed = signed_assertion_element();
    let evil =
        evil_assertion("_evil").replace("</saml:Assertion>", &format!("{signed}</saml:Assertion>"));
    let xml = SIGNED_ASSERTION.replace(signed, &evil);
    assert!(matches!(verify(&xml), Err(SamlError::AssertionCount(2))));
}

#[test]
fn xsw5_evil_assertion_carrying_the_signature_is_refused() {
    // The evil assertion takes the signature; the signed one moves after it.
    let signed = signed_assertion_element();
    let sig = cut(signed, "<ds:Signature", "</ds:Signature>");
    let evil =
        evil_assertion("_evil").replacen("</saml:Issuer>", &format!("</saml:Issuer>{sig}"), 1);
    let xml = SIGNED_ASSERTION.replace(signed, &format!("{evil}{signed}"));
    refused(verify(&xml), "wrapping");
}

#[test]
fn xsw6_signed_assertion_inside_the_evil_ones_signature_object_is_refused() {
    let signed = signed_assertion_element();
    let sig = cut(signed, "<ds:Signature", "</ds:Signature>");
    let wrapped = sig.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{signed}</ds:Object></ds:Signature>"),
    );
    let evil =
        evil_assertion("_evil").replacen("</saml:Issuer>", &format!("</saml:Issuer>{wrapped}"), 1);
    let xml = SIGNED_ASSERTION.replace(signed, &evil);
    refused(verify(&xml), "wrapping");
}

#[test]
fn xsw7_signed_assertion_in_extensions_with_an_evil_one_in_its_place_is_refused() {
    let signed = signed_assertion_element();
    let xml = SIGNED_ASSERTION
        .replace(signed, &evil_assertion("_evil"))
        .replacen(
            "</saml:Issuer>",
            &format!("</saml:Issuer><samlp:Extensions>{signed}</samlp:Extensions>"),
            1,
        );
    assert!(matches!(verify(&xml), Err(SamlError::AssertionCount(2))));
}

#[test]
fn xsw8_unsigned_copy_of_the_signed_assertion_inside_the_evil_ones_signature_is_refused() {
    let signed = signed_assertion_element();
    let sig = cut(signed, "<ds:Signature", "</ds:Signature>");
    let stripped = signed.replace(sig, "");
    let wrapped = sig.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{stripped}</ds:Object></ds:Signature>"),
    );
    let evil =
        evil_assertion("_evil").replacen("</saml:Issuer>", &format!("</saml:Issuer>{wrapped}"), 1);
    let xml = SIGNED_ASSERTION.replace(signed, &evil);
    refused(verify(&xml), "wrapping");
}

#[test]
fn the_only_assertion_moved_out_of_its_place_is_refused() {
    // One assertion (so the count passes), signed and intact, but not a child of the
    // Response: inside Extensions.
    let signed = signed_assertion_element();
    let xml = SIGNED_ASSERTION.replace(signed, "").replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer><samlp:Extensions>{signed}</samlp:Extensions>"),
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::Wrapping(_))));
}

#[test]
fn an_assertion_hidden_in_the_signed_responses_signature_is_refused() {
    // The enveloped transform leaves the Signature out of what is signed, so an assertion
    // moved in there would be unsigned content.
    let assertion = cut(SIGNED_RESPONSE, "<saml:Assertion ", "</saml:Assertion>");
    let xml = SIGNED_RESPONSE.replace(assertion, "").replace(
        "</ds:Signature>",
        &format!("<ds:Object>{assertion}</ds:Object></ds:Signature>"),
    );
    assert!(matches!(verify(&xml), Err(SamlError::Wrapping(_))));
}

#[test]
fn a_duplicate_id_anywhere_is_refused() {
    let xml = SIGNED_ASSERTION.replacen(
        "</saml:Issuer>",
        "</saml:Issuer><samlp:Extensions><x:Any xmlns:x=\"urn:x\" ID=\"_assert1\"/></samlp:Extensions>",
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::DuplicateId(id)) if id == "_assert1"));
    // The same ID under another attribute name counts too.
    let xml = SIGNED_RESPONSE.replacen(
        "</saml:Issuer>",
        "</saml:Issuer><samlp:Extensions><x:Any xmlns:x=\"urn:x\" Id=\"_resp1\"/></samlp:Extensions>",
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::DuplicateId(_))));
}

#[test]
fn a_response_with_no_assertion_is_refused() {
    let xml = SIGNED_ASSERTION.replace(signed_assertion_element(), "");
    assert!(matches!(verify(&xml), Err(SamlError::AssertionCount(0))));
}

#[test]
fn a_root_other_than_a_protocol_response_is_refused() {
    let xml = SIGNED_ASSERTION
        .replace("<samlp:Response ", "<samlp:Other ")
        .replace("</samlp:Response>", "</samlp:Other>");
    assert!(matches!(verify(&xml), Err(SamlError::UnexpectedRoot(_))));
    // Right name, wrong namespace.
    let xml = SIGNED_ASSERTION.replacen(
        "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"",
        "xmlns:samlp=\"urn:evil\"",
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::UnexpectedRoot(_))));
}

#[test]
fn a_dtd_with_an_external_entity_is_refused_before_parsing() {
    let xml = SIGNED_ASSERTION.replacen(
        "<samlp:Response ",
        "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><samlp:Response ",
        1,
    );
    assert!(matches!(verify(&xml), Err(SamlError::Dtd)));
    // The parser refuses one on its own as well.
    let doc = "<!DOCTYPE r><r/>";
    assert!(matches!(
        super::super::xml::parse_text(doc),
        Err(SamlError::NotWellFormed(_))
    ));
}

#[test]
fn a_processing_instruction_is_refused() {
    let xml = SIGNED_ASSERTION.replacen(
        "<samlp:Status>",
        "<?xml-stylesheet href=\"x\"?><samlp:Status>",
        1,
    );
    assert!(matches!(
        verify(&xml),
        Err(SamlError::ProcessingInstruction)
    ));
    // The parser-level check, for text that did not come through the screen.
    assert!(matches!(
        super::super::xml::parse_text("<r><?pi x?></r>"),
        Err(SamlError::ProcessingInstruction)
    ));
}

#[test]
fn an_oversized_or_malformed_message_is_refused() {
    let big = format!(
        "{SIGNED_ASSERTION}{}",
        " ".repeat(super::super::xml::MAX_SIZE)
    );
    assert!(matches!(verify(&big), Err(SamlError::TooLarge(_))));
    refused(verify("<samlp:Response"), "not well-formed");
    let latin1 = b"<r>\xe9</r>";
    let result = verify_response(latin1, &certs(), &expected(), None);
    assert!(matches!(result, Err(SamlError::NotWellFormed(_))));
}
