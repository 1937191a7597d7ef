//! The SAML messages Kizuna sends (SAML 2.0 Core §3.4.1 AuthnRequest, §3.7.1 LogoutRequest,
//! §3.7.2 LogoutResponse) and the HTTP-Redirect binding that carries them (SAML 2.0 Bindings
//! §3.4.4: DEFLATE, base64, URL-encoding, and a signature over the query by the SP's
//! custody key with RSA-SHA256).

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use url::form_urlencoded::byte_serialize;

use kizuna_core::custody::KeyHandle;
/// Text made safe for XML content and attribute values (the HTML rules are XML's too).
pub use kizuna_core::web::html_escape as escape;

use crate::federation::FederationError;

const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// The only signature algorithm Kizuna signs redirect-bound messages with.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// A new message id: an NCName (it starts with `_`) with 256 random bits.
pub fn new_id() -> String {
    format!("_{}", kizuna_core::secret::random_token())
}

/// A SAML timestamp (xs:dateTime in UTC, no fractions).
pub fn instant(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The header every message shares: root element, id, time, destination and issuer.
fn opening(element: &str, id: &str, now: i64, destination: &str, issuer: &str) -> String {
    format!(
        "<samlp:{element} xmlns:samlp=\"{PROTOCOL}\" xmlns:saml=\"{ASSERTION}\" ID=\"{id}\" \
         Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{destination}\"",
        now = instant(now),
        destination = escape(destination),
    ) + &format!("><saml:Issuer>{}</saml:Issuer>", escape(issuer))
}

/// An AuthnRequest asking for an answer at `acs_url` by HTTP-POST, with the requested
/// authentication context classes (the upstream's `acr_values`) when there are any.
pub fn authn_request(
    id: &str,
    now: i64,
    destination: &str,
    sp_entity_id: &str,
    acs_url: &str,
    classes: &[String],
) -> String {
    let head = opening("AuthnRequest", id, now, destination, sp_entity_id);
    let head = head.replacen(
        " Destination=",
        &format!(
            " ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
             AssertionConsumerServiceURL=\"{}\" Destination=",
            escape(acs_url)
        ),
        1,
    );
    let context = if classes.is_empty() {
        String::new()
    } else {
        let refs: String = classes
            .iter()
            .map(|c| {
                format!(
                    "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                    escape(c)
                )
            })
            .collect();
        format!(
            "<samlp:RequestedAuthnContext Comparison=\"exact\">{refs}</samlp:RequestedAuthnContext>"
        )
    };
    format!("{head}<samlp:NameIDPolicy AllowCreate=\"true\"/>{context}</samlp:AuthnRequest>")
}

/// A LogoutRequest for the person the upstream knows as `name_id` (with its `format`) in its
/// session `session_index`.
pub fn logout_request(
    id: &str,
    now: i64,
    destination: &str,
    sp_entity_id: &str,
    name_id: &str,
    format: Option<&str>,
    session_index: Option<&str>,
) -> String {
    let format = format
        .map(|f| format!(" Format=\"{}\"", escape(f)))
        .unwrap_or_default();
    let index = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    format!(
        "{}<saml:NameID{format}>{}</saml:NameID>{index}</samlp:LogoutRequest>",
        opening("LogoutRequest", id, now, destination, sp_entity_id),
        escape(name_id)
    )
}

/// A LogoutResponse to the request `in_response_to`, with a top-level status.
pub fn logout_response(
    id: &str,
    now: i64,
    destination: &str,
    sp_entity_id: &str,
    in_response_to: &str,
    status: &str,
) -> String {
    let head = opening("LogoutResponse", id, now, destination, sp_entity_id).replacen(
        " Destination=",
        &format!(" InResponseTo=\"{}\" Destination=", escape(in_response_to)),
        1,
    );
    format!(
        "{head}<samlp:Status><samlp:StatusCode Value=\"{status}\"/></samlp:Status></samlp:LogoutResponse>"
    )
}

fn encoded(text: &str) -> String {
    byte_serialize(text.as_bytes()).collect()
}

/// The URL that carries `xml` as `parameter` (`SAMLRequest` or `SAMLResponse`) to
/// `endpoint` by the HTTP-Redirect binding, signed with `key` (RSA-SHA256).
pub fn redirect(
    key: &KeyHandle,
    endpoint: &str,
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> Result<String, FederationError> {
    let mut deflate = DeflateEncoder::new(Vec::new(), Compression::default());
    deflate
        .write_all(xml.as_bytes())
        .and_then(|_| deflate.finish())
        .map(|compressed| {
            let mut query = format!("{parameter}={}", encoded(&STANDARD.encode(compressed)));
            if let Some(relay) = relay_state {
                query.push_str(&format!("&RelayState={}", encoded(relay)));
            }
            query.push_str(&format!("&SigAlg={}", encoded(RSA_SHA256)));
            query
        })
        .map_err(|e| FederationError::Invalid(format!("compressing a SAML message: {e}")))
        .and_then(|query| {
            let signature = key.sign(query.as_bytes())?;
            let separator = if endpoint.contains('?') { '&' } else { '?' };
            Ok(format!(
                "{endpoint}{separator}{query}&Signature={}",
                encoded(&STANDARD.encode(signature))
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_utc_without_fractions() {
        assert_eq!(instant(0), "1970-01-01T00:00:00Z");
        assert_eq!(instant(1_800_000_000), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn values_are_escaped_in_messages() {
        let xml = logout_request(
            "_1",
            0,
            "https://idp.example/slo?a=1&b=\"2\"",
            "sp",
            "<evil>&",
            None,
            Some("s1"),
        );
        assert!(xml.contains("Destination=\"https://idp.example/slo?a=1&amp;b=&quot;2&quot;\""));
        assert!(xml.contains("<saml:NameID>&lt;evil&gt;&amp;</saml:NameID>"));
        assert!(xml.contains("<samlp:SessionIndex>s1</samlp:SessionIndex>"));
    }

    #[test]
    fn an_authn_request_names_its_acs_and_classes() {
        let xml = authn_request(
            "_r",
            0,
            "https://idp.example/sso",
            "https://kizuna.example/federation/saml/u/metadata",
            "https://kizuna.example/federation/saml/u/acs",
            &["urn:example:mfa".into()],
        );
        assert!(xml.starts_with("<samlp:AuthnRequest "));
        assert!(xml.contains("ID=\"_r\""));
        assert!(xml.contains(
            "AssertionConsumerServiceURL=\"https://kizuna.example/federation/saml/u/acs\""
        ));
        assert!(
            xml.contains("<saml:AuthnContextClassRef>urn:example:mfa</saml:AuthnContextClassRef>")
        );
        assert!(xml.ends_with("</samlp:AuthnRequest>"));
    }
}
