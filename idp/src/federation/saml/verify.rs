//! The SAML 2.0 Web Browser SSO response, as the service provider receives it over the
//! HTTP-POST binding (SAML profiles §4.1.4.2–4.1.4.3), and the HTTP-Redirect binding's
//! query-string signature (SAML bindings §3.4.4.1). What is signed is what is used: every
//! value returned comes from inside the element whose signature verified.

use uppsala::{Document, NodeId};

use super::keys::{SigAlg, TrustedKey, trusted_keys, verify_any};
use super::xml::{self, ASSERTION, PROTOCOL};
use super::{crypt, dsig};

pub use super::error::SamlError;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What the response must match: the upstream, this service provider, and the request
/// this browser started.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub idp_entity_id: &'a str,
    /// The Audience.
    pub sp_entity_id: &'a str,
    /// The Response's Destination and the SubjectConfirmationData's Recipient.
    pub acs_url: &'a str,
    /// InResponseTo of the Response and of the SubjectConfirmationData.
    pub request_id: &'a str,
    /// Unix seconds.
    pub now: i64,
    pub skew_secs: i64,
}

/// A SAML attribute: its Name, FriendlyName and the text of each AttributeValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub friendly_name: Option<String>,
    pub values: Vec<String>,
}

/// The verified assertion, read only from inside the signed element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub id: String,
    pub issuer: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    pub authn_context_class_ref: Option<String>,
    pub attributes: Vec<Attribute>,
    /// Until when its ID must be remembered against replay: the latest NotOnOrAfter that
    /// bounds it (Conditions, SubjectConfirmationData), plus the skew.
    pub expires_at: i64,
    /// It came as an EncryptedAssertion.
    pub encrypted: bool,
}

/// Verifies a POST-binding Response (already base64-decoded) from the upstream whose
/// metadata certificates (DER) are `idp_certs`, and returns its one assertion.
/// `decryption_key` is the PKCS#8 DER of the SP's RSA encryption key, for an
/// EncryptedAssertion.
pub fn verify_response(
    xml: &[u8],
    idp_certs: &[Vec<u8>],
    expected: &Expected,
    decryption_key: Option<&[u8]>,
) -> Result<Assertion, SamlError> {
    let text = xml::screen(xml)?;
    let outer = xml::parse_text(text)?;
    let response = xml::root(&outer, PROTOCOL, "Response")?;
    let ids = xml::ids(&outer)?;
    if xml::attr(&outer, response, "Destination") != Some(expected.acs_url) {
        return Err(SamlError::Destination);
    }
    status(&outer, response)?;
    let (plain, encrypted) = one_assertion(&outer, response)?;
    let keys = trusted_keys(idp_certs)?;

    // The Response's signature covers the assertion as sent (encrypted or not).
    let response_signed = match dsig::signature_of(&outer, response)? {
        Some(sig) => dsig::verify(&outer, &ids, sig, &keys)? == response,
        None => false,
    };

    let spliced: String;
    let decrypted: Document;
    let (doc, response, assertion) = match (plain, encrypted) {
        (Some(assertion), _) => (&outer, response, assertion),
        (None, Some(enc)) => {
            let key = decryption_key.ok_or(SamlError::Decryption("no decryption key"))?;
            let plaintext = crypt::decrypt(&outer, enc, key)?;
            spliced = splice(text, &outer, enc, &plaintext)?;
            decrypted = xml::parse_text(xml::screen(spliced.as_bytes())?)?;
            let response = xml::root(&decrypted, PROTOCOL, "Response")?;
            match one_assertion(&decrypted, response)? {
                (Some(assertion), None) => (&decrypted, response, assertion),
                _ => return Err(SamlError::Decryption("the plaintext is not one Assertion")),
            }
        }
        (None, None) => return Err(SamlError::AssertionCount(0)),
    };
    let ids = xml::ids(doc)?;

    let assertion_signed = match dsig::signature_of(doc, assertion)? {
        Some(sig) => dsig::verify(doc, &ids, sig, &keys)? == assertion,
        None => false,
    };
    // What is read below is the assertion: it must be the signed element, or inside it.
    if !assertion_signed && !response_signed {
        return Err(SamlError::Unsigned);
    }
    let assertion = read_assertion(doc, assertion, expected)?;

    if let Some(issuer) = xml::child(doc, response, ASSERTION, "Issuer")
        && xml::text(doc, issuer) != expected.idp_entity_id
    {
        return Err(SamlError::Issuer);
    }
    if let Some(in_response_to) = xml::attr(doc, response, "InResponseTo")
        && in_response_to != expected.request_id
    {
        return Err(SamlError::InResponseTo);
    }
    Ok(Assertion {
        encrypted: encrypted.is_some(),
        ..assertion
    })
}

/// Verifies an HTTP-Redirect binding signature: `signed_octets` is
/// `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as received, `sig_alg` the SigAlg URI
/// and `signature` the base64-decoded Signature parameter.
pub fn verify_redirect_signature(
    signed_octets: &[u8],
    sig_alg: &str,
    signature: &[u8],
    idp_certs: &[Vec<u8>],
) -> Result<(), SamlError> {
    let alg = SigAlg::from_uri(sig_alg)?;
    let keys: Vec<TrustedKey> = trusted_keys(idp_certs)?;
    verify_any(&keys, alg, signed_octets, signature)
}

/// Refuses a top-level status other than Success, carrying the codes and the message.
fn status(doc: &Document, response: NodeId) -> Result<(), SamlError> {
    let status =
        xml::child(doc, response, PROTOCOL, "Status").ok_or(SamlError::Missing("Status"))?;
    let code =
        xml::child(doc, status, PROTOCOL, "StatusCode").ok_or(SamlError::Missing("StatusCode"))?;
    let value = xml::attr(doc, code, "Value").unwrap_or_default();
    if value == SUCCESS {
        return Ok(());
    }
    let second = xml::child(doc, code, PROTOCOL, "StatusCode")
        .and_then(|c| xml::attr(doc, c, "Value"))
        .map(|v| super::super::clean_text(v, 200));
    let message = xml::child(doc, status, PROTOCOL, "StatusMessage")
        .map(|m| super::super::clean_text(&xml::text(doc, m), 500));
    Err(SamlError::Status {
        code: super::super::clean_text(value, 200),
        second,
        message,
    })
}

/// The one (plain, encrypted) assertion of the document, a child of the Response.
/// More than one anywhere, or one elsewhere, is a wrapping attempt.
#[allow(clippy::type_complexity)]
fn one_assertion(
    doc: &Document,
    response: NodeId,
) -> Result<(Option<NodeId>, Option<NodeId>), SamlError> {
    let plain = xml::descendants(doc, doc.root(), ASSERTION, "Assertion");
    let encrypted = xml::descendants(doc, doc.root(), ASSERTION, "EncryptedAssertion");
    let count = plain.len() + encrypted.len();
    if count != 1 {
        return Err(SamlError::AssertionCount(count));
    }
    let found = plain.first().or(encrypted.first()).copied();
    if found.and_then(|a| doc.parent(a)) != Some(response) {
        return Err(SamlError::Wrapping(
            "the assertion is not a child of the response",
        ));
    }
    Ok((plain.first().copied(), encrypted.first().copied()))
}

/// The document text with the EncryptedAssertion replaced by its plaintext, so the
/// assertion is parsed in its place, with the Response's namespaces in scope.
fn splice(text: &str, doc: &Document, enc: NodeId, plaintext: &[u8]) -> Result<String, SamlError> {
    let plaintext = std::str::from_utf8(plaintext)
        .map_err(|_| SamlError::Decryption("the plaintext is not UTF-8"))?;
    let plaintext = plaintext.strip_prefix('\u{feff}').unwrap_or(plaintext);
    let range = doc.node_range(enc).ok_or(SamlError::Decryption(
        "the EncryptedAssertion has no source range",
    ))?;
    Ok([&text[..range.start], plaintext, &text[range.end..]].concat())
}

/// Reads and checks the assertion (SAML profiles §4.1.4.2–4.1.4.3).
fn read_assertion(doc: &Document, a: NodeId, expected: &Expected) -> Result<Assertion, SamlError> {
    let id = xml::attr(doc, a, "ID").ok_or(SamlError::Missing("Assertion ID"))?;
    let issuer = xml::child(doc, a, ASSERTION, "Issuer")
        .map(|i| xml::text(doc, i))
        .ok_or(SamlError::Missing("Issuer"))?;
    if issuer != expected.idp_entity_id {
        return Err(SamlError::Issuer);
    }
    let conditions_until = conditions(doc, a, expected)?;
    let subject = xml::child(doc, a, ASSERTION, "Subject").ok_or(SamlError::Missing("Subject"))?;
    let confirmed_until = bearer(doc, subject, expected)?;
    let name_id =
        xml::child(doc, subject, ASSERTION, "NameID").ok_or(SamlError::Missing("NameID"))?;
    let name = xml::text(doc, name_id);
    if name.is_empty() {
        return Err(SamlError::Missing("NameID"));
    }
    let authn = xml::child(doc, a, ASSERTION, "AuthnStatement")
        .ok_or(SamlError::Missing("AuthnStatement"))?;
    let class_ref = xml::child(doc, authn, ASSERTION, "AuthnContext")
        .and_then(|c| xml::child(doc, c, ASSERTION, "AuthnContextClassRef"))
        .map(|r| xml::text(doc, r));
    let attributes = xml::named(doc, a, ASSERTION, "AttributeStatement")
        .flat_map(|s| xml::named(doc, s, ASSERTION, "Attribute").collect::<Vec<_>>())
        .map(|at| {
            Ok(Attribute {
                name: xml::attr(doc, at, "Name")
                    .ok_or(SamlError::Missing("Attribute Name"))?
                    .to_owned(),
                friendly_name: xml::attr(doc, at, "FriendlyName").map(str::to_owned),
                values: xml::named(doc, at, ASSERTION, "AttributeValue")
                    .map(|v| xml::text(doc, v))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, SamlError>>()?;
    Ok(Assertion {
        id: id.to_owned(),
        issuer,
        name_id: name,
        name_id_format: xml::attr(doc, name_id, "Format").map(str::to_owned),
        session_index: xml::attr(doc, authn, "SessionIndex").map(str::to_owned),
        authn_context_class_ref: class_ref,
        attributes,
        expires_at: conditions_until
            .unwrap_or(confirmed_until)
            .max(confirmed_until)
            + expected.skew_secs,
        encrypted: false,
    })
}

/// Checks Conditions: the validity window (within the skew) and an AudienceRestriction
/// naming this SP (each one present must). Returns its NotOnOrAfter.
fn conditions(doc: &Document, a: NodeId, expected: &Expected) -> Result<Option<i64>, SamlError> {
    let c = xml::child(doc, a, ASSERTION, "Conditions").ok_or(SamlError::Missing("Conditions"))?;
    if let Some(not_before) = xml::attr(doc, c, "NotBefore")
        && expected.now + expected.skew_secs < xml::time(not_before)?
    {
        return Err(SamlError::NotYetValid);
    }
    let not_on_or_after = xml::attr(doc, c, "NotOnOrAfter")
        .map(xml::time)
        .transpose()?;
    if not_on_or_after.is_some_and(|t| expected.now - expected.skew_secs >= t) {
        return Err(SamlError::Expired);
    }
    let mut restrictions = xml::named(doc, c, ASSERTION, "AudienceRestriction").peekable();
    if restrictions.peek().is_none() {
        return Err(SamlError::Audience);
    }
    for r in restrictions {
        if !xml::named(doc, r, ASSERTION, "Audience")
            .any(|au| xml::text(doc, au) == expected.sp_entity_id)
        {
            return Err(SamlError::Audience);
        }
    }
    Ok(not_on_or_after)
}

/// Finds a bearer SubjectConfirmation whose data names the ACS URL and the request and has
/// not expired. Returns its NotOnOrAfter; without one, the first bearer's failure.
fn bearer(doc: &Document, subject: NodeId, expected: &Expected) -> Result<i64, SamlError> {
    let mut first_error = None;
    for sc in xml::named(doc, subject, ASSERTION, "SubjectConfirmation") {
        if xml::attr(doc, sc, "Method") != Some(BEARER) {
            continue;
        }
        match confirmation(doc, sc, expected) {
            Ok(until) => return Ok(until),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(SamlError::SubjectConfirmation("no bearer confirmation")))
}

fn confirmation(doc: &Document, sc: NodeId, expected: &Expected) -> Result<i64, SamlError> {
    let data = xml::child(doc, sc, ASSERTION, "SubjectConfirmationData")
        .ok_or(SamlError::SubjectConfirmation("no SubjectConfirmationData"))?;
    if xml::attr(doc, data, "Recipient") != Some(expected.acs_url) {
        return Err(SamlError::Recipient);
    }
    if xml::attr(doc, data, "InResponseTo") != Some(expected.request_id) {
        return Err(SamlError::InResponseTo);
    }
    if let Some(not_before) = xml::attr(doc, data, "NotBefore")
        && expected.now + expected.skew_secs < xml::time(not_before)?
    {
        return Err(SamlError::NotYetValid);
    }
    let until = xml::attr(doc, data, "NotOnOrAfter")
        .ok_or(SamlError::SubjectConfirmation("no NotOnOrAfter"))
        .and_then(xml::time)?;
    if expected.now - expected.skew_secs >= until {
        return Err(SamlError::Expired);
    }
    Ok(until)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "wrapping_tests.rs"]
mod wrapping_tests;

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod conditions_tests;

#[cfg(test)]
#[path = "encryption_tests.rs"]
mod encryption_tests;
