//! Metadata, logout messages and the HTTP-Redirect encoding, read and refused.

use std::io::Write as _;

use super::*;

/// The test IdP's certificate as metadata carries it: the PEM body.
fn cert_b64() -> String {
    include_str!("testdata/idp.crt.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// IdP metadata shaped like what Shibboleth or Keycloak publish.
fn metadata() -> String {
    let cert = cert_b64();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.org/idp">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
{cert}
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.org/slo/post"/>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.org/sso/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/sso"/>
  </md:IDPSSODescriptor>
  <md:Organization><md:OrganizationName xml:lang="en">Example</md:OrganizationName><md:OrganizationDisplayName xml:lang="en">Example</md:OrganizationDisplayName><md:OrganizationURL xml:lang="en">https://example.org</md:OrganizationURL></md:Organization>
</md:EntityDescriptor>"#
    )
}

#[test]
fn idp_metadata_is_read() {
    let m = idp_metadata(metadata().as_bytes()).unwrap();
    assert_eq!(m.entity_id, "https://idp.example.org/idp");
    assert_eq!(m.sso_redirect_url, "https://idp.example.org/sso");
    assert_eq!(
        m.slo_redirect_url.as_deref(),
        Some("https://idp.example.org/slo")
    );
    // The encryption-only KeyDescriptor is left out.
    assert_eq!(
        m.signing_certs,
        vec![include_bytes!("testdata/idp.crt.der").to_vec()]
    );
    assert!(m.want_authn_requests_signed);
}

#[test]
fn a_key_descriptor_without_use_counts_as_signing() {
    let xml = metadata().replacen(" use=\"signing\"", "", 1);
    let xml = xml.replacen(" WantAuthnRequestsSigned=\"true\"", "", 1);
    let m = idp_metadata(xml.as_bytes()).unwrap();
    assert_eq!(m.signing_certs.len(), 1);
    assert!(!m.want_authn_requests_signed);
}

#[test]
fn an_entities_descriptor_with_exactly_one_idp_is_read() {
    let md = metadata();
    let entity = md.split_once("?>").unwrap().1;
    let sp = r#"<md:EntityDescriptor entityID="https://sp.example.org"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>"#;
    let wrap = |inner: &str| {
        format!(
            r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{sp}{inner}</md:EntitiesDescriptor>"#
        )
    };
    let m = idp_metadata(wrap(entity).as_bytes()).unwrap();
    assert_eq!(m.entity_id, "https://idp.example.org/idp");
    let two = wrap(&format!("{entity}{entity}"));
    assert!(matches!(
        idp_metadata(two.as_bytes()),
        Err(SamlError::Metadata(_))
    ));
}

#[test]
fn metadata_without_what_sign_in_needs_is_refused() {
    let md = metadata();
    let refusals = [
        // No SAML 2.0 IdP role.
        md.replace("IDPSSODescriptor", "SPSSODescriptor"),
        md.replace(
            "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"",
            "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:1.1:protocol\"",
        ),
        // No HTTP-Redirect SSO.
        md.replace("Location=\"https://idp.example.org/sso\"", "Location=\"x\"")
            .replace(
                "bindings:HTTP-Redirect\" Location=\"x\"",
                "bindings:SOAP\" Location=\"https://idp.example.org/soap\"",
            ),
        // A URL that is not http(s).
        md.replace("https://idp.example.org/sso\"", "javascript:alert(1)\""),
        md.replace("https://idp.example.org/slo\"", "file:///etc/passwd\""),
        // No signing certificate.
        md.replace("use=\"signing\"", "use=\"encryption\""),
        // A certificate that is not one.
        md.replacen("<ds:X509Certificate>\n", "<ds:X509Certificate>AAAA", 1),
        // No entityID.
        md.replace(" entityID=\"https://idp.example.org/idp\"", ""),
    ];
    for (i, xml) in refusals.iter().enumerate() {
        let result = idp_metadata(xml.as_bytes());
        assert!(
            matches!(result, Err(SamlError::Metadata(_))),
            "case {i}: {result:?}"
        );
    }
}

#[test]
fn metadata_with_a_dtd_or_another_root_is_refused() {
    let xml = metadata().replacen("?>", "?><!DOCTYPE md [<!ENTITY x \"y\">]>", 1);
    assert!(matches!(idp_metadata(xml.as_bytes()), Err(SamlError::Dtd)));
    let other = b"<md:Other xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\"/>";
    assert!(matches!(
        idp_metadata(other),
        Err(SamlError::UnexpectedRoot(_))
    ));
}

const LOGOUT_REQUEST: &str = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="2030-01-01T00:00:00Z" Destination="https://kizuna.example.com/saml/slo" NotOnOrAfter="2030-01-01T00:05:00Z">
  <saml:Issuer>https://idp.example.org/idp</saml:Issuer>
  <saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">alice</saml:NameID>
  <samlp:SessionIndex>_session1</samlp:SessionIndex>
  <samlp:SessionIndex>_session2</samlp:SessionIndex>
</samlp:LogoutRequest>"#;

#[test]
fn a_logout_request_is_read() {
    let r = logout_request(LOGOUT_REQUEST.as_bytes()).unwrap();
    assert_eq!(
        r,
        LogoutRequest {
            id: "_lr1".into(),
            issuer: "https://idp.example.org/idp".into(),
            name_id: "alice".into(),
            session_indexes: vec!["_session1".into(), "_session2".into()],
            destination: Some("https://kizuna.example.com/saml/slo".into()),
            issue_instant: 1_893_456_000,
            not_on_or_after: Some(1_893_456_300),
        }
    );
}

#[test]
fn a_logout_request_without_name_id_issuer_id_or_issue_instant_is_refused() {
    for (cut, what) in [
        (
            "<saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\">alice</saml:NameID>",
            "NameID",
        ),
        (
            "<saml:Issuer>https://idp.example.org/idp</saml:Issuer>",
            "Issuer",
        ),
        (" ID=\"_lr1\"", "ID"),
        (" IssueInstant=\"2030-01-01T00:00:00Z\"", "IssueInstant"),
    ] {
        let xml = LOGOUT_REQUEST.replace(cut, "");
        assert!(
            matches!(logout_request(xml.as_bytes()), Err(SamlError::Missing(m)) if m == what),
            "{what}"
        );
    }
    let response_as_request = LOGOUT_REQUEST.replace("LogoutRequest", "LogoutResponse");
    assert!(matches!(
        logout_request(response_as_request.as_bytes()),
        Err(SamlError::UnexpectedRoot(_))
    ));
}

fn logout_response_with(status: &str) -> String {
    format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lresp1" Version="2.0" IssueInstant="2030-01-01T00:00:00Z" Destination="https://kizuna.example.com/saml/slo" InResponseTo="_lr9"><saml:Issuer>https://idp.example.org/idp</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{status}"/></samlp:Status></samlp:LogoutResponse>"#
    )
}

#[test]
fn a_logout_response_is_read() {
    let r = logout_response(logout_response_with("Success").as_bytes()).unwrap();
    assert_eq!(
        r,
        LogoutResponse {
            id: "_lresp1".into(),
            issuer: "https://idp.example.org/idp".into(),
            in_response_to: Some("_lr9".into()),
            destination: Some("https://kizuna.example.com/saml/slo".into()),
            success: true,
        }
    );
    let failed = logout_response(logout_response_with("Responder").as_bytes()).unwrap();
    assert!(!failed.success);
}

#[test]
fn a_logout_response_with_a_processing_instruction_is_refused() {
    let xml = logout_response_with("Success").replacen("<saml:Issuer>", "<?pi?><saml:Issuer>", 1);
    assert!(matches!(
        logout_response(xml.as_bytes()),
        Err(SamlError::ProcessingInstruction)
    ));
}

fn deflate_b64(data: &[u8]) -> String {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap())
}

#[test]
fn inflate_reverses_the_redirect_encoding() {
    let b64 = deflate_b64(LOGOUT_REQUEST.as_bytes());
    assert_eq!(inflate(&b64).unwrap(), LOGOUT_REQUEST.as_bytes());
    // Line breaks some senders leave in the value are ignored.
    let wrapped = format!("{}\n{}", &b64[..10], &b64[10..]);
    assert_eq!(inflate(&wrapped).unwrap(), LOGOUT_REQUEST.as_bytes());
    let exact = vec![b'a'; MAX_INFLATED];
    assert_eq!(inflate(&deflate_b64(&exact)).unwrap().len(), MAX_INFLATED);
}

#[test]
fn a_deflate_bomb_is_refused() {
    let bomb = deflate_b64(&vec![0; 16 * 1024 * 1024]);
    assert!(bomb.len() < 40_000, "{}", bomb.len());
    assert!(matches!(inflate(&bomb), Err(SamlError::TooLarge(_))));
    let one_over = deflate_b64(&vec![b'a'; MAX_INFLATED + 1]);
    assert!(matches!(inflate(&one_over), Err(SamlError::TooLarge(_))));
}

#[test]
fn undecodable_redirect_values_are_refused() {
    assert!(matches!(
        inflate("not base64!"),
        Err(SamlError::Encoding(_))
    ));
    let not_deflate = base64::engine::general_purpose::STANDARD.encode([0xff; 32]);
    assert!(matches!(inflate(&not_deflate), Err(SamlError::Encoding(_))));
}
