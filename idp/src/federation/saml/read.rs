//! Reading what an upstream SAML identity provider publishes and sends besides the SSO
//! response: its metadata (SAML metadata §2.4.3 IDPSSODescriptor), LogoutRequest and
//! LogoutResponse (SAML core §3.7), and the HTTP-Redirect binding's DEFLATE encoding
//! (SAML bindings §3.4.4.1). Parsed with the same refusals as responses (no DTD, no
//! processing instructions, size cap).

use std::io::Read as _;

use base64::Engine as _;
use uppsala::{Document, NodeId};

use super::verify::SamlError;
use super::xml::{self, ASSERTION, DSIG, METADATA, PROTOCOL};

const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// The largest inflated HTTP-Redirect message accepted.
pub const MAX_INFLATED: usize = 64 * 1024;

/// What Kizuna needs from an identity provider's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// SingleSignOnService, HTTP-Redirect binding.
    pub sso_redirect_url: String,
    /// SingleLogoutService, HTTP-Redirect binding.
    pub slo_redirect_url: Option<String>,
    /// DER certificates of the KeyDescriptors for signing (use="signing" or no use).
    pub signing_certs: Vec<Vec<u8>>,
    pub want_authn_requests_signed: bool,
}

/// Reads an EntityDescriptor, or an EntitiesDescriptor holding exactly one identity
/// provider. Refuses one without a SAML 2.0 IDPSSODescriptor, an HTTP-Redirect
/// SingleSignOnService, a signing certificate, or with a URL that is not http(s).
pub fn idp_metadata(xml: &[u8]) -> Result<IdpMetadata, SamlError> {
    let doc = xml::parse(xml)?;
    let root = doc
        .document_element()
        .ok_or(SamlError::UnexpectedRoot("EntityDescriptor"))?;
    let idps: Vec<(NodeId, NodeId)> = if xml::is(&doc, root, METADATA, "EntitiesDescriptor") {
        xml::named(&doc, root, METADATA, "EntityDescriptor")
            .filter_map(|e| idp_descriptor(&doc, e).map(|d| (e, d)))
            .collect()
    } else {
        let entity = xml::root(&doc, METADATA, "EntityDescriptor")?;
        idp_descriptor(&doc, entity)
            .map(|d| (entity, d))
            .into_iter()
            .collect()
    };
    let [(entity, idp)] = idps[..] else {
        return Err(SamlError::Metadata(if idps.is_empty() {
            "no SAML 2.0 IDPSSODescriptor"
        } else {
            "more than one identity provider"
        }));
    };
    let entity_id = xml::attr(&doc, entity, "entityID")
        .filter(|id| !id.trim().is_empty())
        .ok_or(SamlError::Metadata("no entityID"))?;
    let sso = service(&doc, idp, "SingleSignOnService")?
        .ok_or(SamlError::Metadata("no HTTP-Redirect SingleSignOnService"))?;
    let slo = service(&doc, idp, "SingleLogoutService")?;
    let mut signing_certs = Vec::new();
    for kd in xml::named(&doc, idp, METADATA, "KeyDescriptor") {
        if !matches!(xml::attr(&doc, kd, "use"), None | Some("signing")) {
            continue;
        }
        let certs = xml::named(&doc, kd, DSIG, "KeyInfo")
            .flat_map(|ki| xml::named(&doc, ki, DSIG, "X509Data").collect::<Vec<_>>())
            .flat_map(|xd| xml::named(&doc, xd, DSIG, "X509Certificate").collect::<Vec<_>>());
        for c in certs {
            let der =
                xml::base64(&doc, c).ok_or(SamlError::Metadata("a certificate is not base64"))?;
            <x509_cert::Certificate as x509_cert::der::Decode>::from_der(&der)
                .map_err(|_| SamlError::Metadata("a certificate is not X.509 DER"))?;
            signing_certs.push(der);
        }
    }
    if signing_certs.is_empty() {
        return Err(SamlError::Metadata("no signing certificate"));
    }
    Ok(IdpMetadata {
        entity_id: entity_id.trim().to_owned(),
        sso_redirect_url: sso,
        slo_redirect_url: slo,
        signing_certs,
        want_authn_requests_signed: matches!(
            xml::attr(&doc, idp, "WantAuthnRequestsSigned"),
            Some("true" | "1")
        ),
    })
}

/// The entity's IDPSSODescriptor that supports SAML 2.0.
fn idp_descriptor(doc: &Document, entity: NodeId) -> Option<NodeId> {
    xml::named(doc, entity, METADATA, "IDPSSODescriptor").find(|&d| {
        xml::attr(doc, d, "protocolSupportEnumeration")
            .is_some_and(|p| p.split_ascii_whitespace().any(|p| p == PROTOCOL))
    })
}

/// The Location of the first `local` endpoint with the HTTP-Redirect binding.
fn service(doc: &Document, idp: NodeId, local: &str) -> Result<Option<String>, SamlError> {
    let Some(endpoint) = xml::named(doc, idp, METADATA, local)
        .find(|&s| xml::attr(doc, s, "Binding") == Some(REDIRECT))
    else {
        return Ok(None);
    };
    let location = xml::attr(doc, endpoint, "Location")
        .unwrap_or_default()
        .trim();
    match url::Url::parse(location) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(Some(location.to_owned()))
        }
        _ => Err(SamlError::Metadata(
            "an endpoint Location is not an http(s) URL",
        )),
    }
}

/// A LogoutRequest from the identity provider (SAML core §3.7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issuer: String,
    pub name_id: String,
    pub session_indexes: Vec<String>,
    pub destination: Option<String>,
    /// When the IdP issued it (required, SAML core §3.2.1), unix seconds.
    pub issue_instant: i64,
    /// Unix seconds.
    pub not_on_or_after: Option<i64>,
}

/// Reads a LogoutRequest (its signature, in the HTTP-Redirect binding, is checked by
/// `verify::verify_redirect_signature`).
pub fn logout_request(xml: &[u8]) -> Result<LogoutRequest, SamlError> {
    let doc = xml::parse(xml)?;
    let root = xml::root(&doc, PROTOCOL, "LogoutRequest")?;
    xml::ids(&doc)?;
    let name_id = xml::child(&doc, root, ASSERTION, "NameID")
        .map(|n| xml::text(&doc, n))
        .filter(|n| !n.is_empty())
        .ok_or(SamlError::Missing("NameID"))?;
    Ok(LogoutRequest {
        id: id(&doc, root)?,
        issuer: issuer(&doc, root)?,
        name_id,
        session_indexes: xml::named(&doc, root, PROTOCOL, "SessionIndex")
            .map(|s| xml::text(&doc, s))
            .collect(),
        destination: xml::attr(&doc, root, "Destination").map(str::to_owned),
        issue_instant: xml::attr(&doc, root, "IssueInstant")
            .map(xml::time)
            .transpose()?
            .ok_or(SamlError::Missing("IssueInstant"))?,
        not_on_or_after: xml::attr(&doc, root, "NotOnOrAfter")
            .map(xml::time)
            .transpose()?,
    })
}

/// A LogoutResponse from the identity provider (SAML core §3.7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub id: String,
    pub issuer: String,
    pub in_response_to: Option<String>,
    pub destination: Option<String>,
    /// The top-level StatusCode is Success.
    pub success: bool,
}

/// Reads a LogoutResponse.
pub fn logout_response(xml: &[u8]) -> Result<LogoutResponse, SamlError> {
    let doc = xml::parse(xml)?;
    let root = xml::root(&doc, PROTOCOL, "LogoutResponse")?;
    xml::ids(&doc)?;
    let code = xml::child(&doc, root, PROTOCOL, "Status")
        .and_then(|s| xml::child(&doc, s, PROTOCOL, "StatusCode"))
        .ok_or(SamlError::Missing("StatusCode"))?;
    Ok(LogoutResponse {
        id: id(&doc, root)?,
        issuer: issuer(&doc, root)?,
        in_response_to: xml::attr(&doc, root, "InResponseTo").map(str::to_owned),
        destination: xml::attr(&doc, root, "Destination").map(str::to_owned),
        success: xml::attr(&doc, code, "Value") == Some(SUCCESS),
    })
}

fn id(doc: &Document, root: NodeId) -> Result<String, SamlError> {
    xml::attr(doc, root, "ID")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or(SamlError::Missing("ID"))
}

fn issuer(doc: &Document, root: NodeId) -> Result<String, SamlError> {
    xml::child(doc, root, ASSERTION, "Issuer")
        .map(|i| xml::text(doc, i))
        .filter(|i| !i.is_empty())
        .ok_or(SamlError::Missing("Issuer"))
}

/// Decodes an HTTP-Redirect SAMLRequest or SAMLResponse value (already URL-decoded):
/// base64, then raw DEFLATE, refusing more than [`MAX_INFLATED`] bytes inflated so a
/// deflate bomb costs nothing.
pub fn inflate(b64: &str) -> Result<Vec<u8>, SamlError> {
    let compact: String = b64.split_ascii_whitespace().collect();
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| SamlError::Encoding(format!("base64: {e}")))?;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| SamlError::Encoding(format!("DEFLATE: {e}")))?;
    if out.len() > MAX_INFLATED {
        return Err(SamlError::TooLarge(MAX_INFLATED));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
