//! XML as SAML reads it (SAML core §1.3, XML 1.0): one parser configuration for every
//! message and metadata document, with no DTD, no entity declarations and no processing
//! instructions, a size cap, and small helpers over the namespace-resolved tree.

use std::collections::HashMap;

use uppsala::{Document, NodeId, NodeKind, Parser};

use super::error::SamlError;

/// The largest message or metadata document read (a POST-binding Response with a few
/// certificates and an encrypted assertion is far below this).
pub(super) const MAX_SIZE: usize = 256 * 1024;
/// Elements nest no deeper than this in any SAML message.
const MAX_DEPTH: u32 = 64;

pub(super) const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(super) const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(super) const METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(super) const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(super) const XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(super) const XMLENC11: &str = "http://www.w3.org/2009/xmlenc11#";
pub(super) const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// Refuses what must never reach the parser, by looking at the raw text: too large, not
/// UTF-8, a DTD or entity declaration, a processing instruction (the XML declaration
/// aside). Returns the text to parse.
pub(super) fn screen(xml: &[u8]) -> Result<&str, SamlError> {
    if xml.len() > MAX_SIZE {
        return Err(SamlError::TooLarge(MAX_SIZE));
    }
    let text =
        std::str::from_utf8(xml).map_err(|_| SamlError::NotWellFormed("not UTF-8".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Also matched inside comments or CDATA: a false refusal there costs nothing.
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(SamlError::Dtd);
    }
    let body = match text.strip_prefix("<?xml") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_whitespace()) => rest
            .find("?>")
            .map(|end| &rest[end + 2..])
            .ok_or_else(|| SamlError::NotWellFormed("unterminated XML declaration".into()))?,
        _ => text,
    };
    if body.contains("<?") {
        return Err(SamlError::ProcessingInstruction);
    }
    Ok(text)
}

/// Screens and parses a document; the parser itself refuses a DTD too.
pub(super) fn parse(xml: &[u8]) -> Result<Document<'_>, SamlError> {
    let text = screen(xml)?;
    parse_text(text)
}

/// Parses text that [`screen`] passed, or that was built from such text.
pub(super) fn parse_text(text: &str) -> Result<Document<'_>, SamlError> {
    let doc = Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .with_max_depth(MAX_DEPTH)
        .parse(text)
        .map_err(|e| SamlError::NotWellFormed(e.to_string()))?;
    let pi = doc
        .descendants(doc.root())
        .into_iter()
        .any(|id| matches!(doc.node_kind(id), Some(NodeKind::ProcessingInstruction(_))));
    if pi {
        return Err(SamlError::ProcessingInstruction);
    }
    Ok(doc)
}

/// The document element, which must be `local` in namespace `ns`.
pub(super) fn root(doc: &Document, ns: &str, local: &'static str) -> Result<NodeId, SamlError> {
    doc.document_element()
        .filter(|&id| is(doc, id, ns, local))
        .ok_or(SamlError::UnexpectedRoot(local))
}

/// Whether `id` is the element `local` in namespace `ns`.
pub(super) fn is(doc: &Document, id: NodeId, ns: &str, local: &str) -> bool {
    doc.element(id)
        .is_some_and(|e| e.name.matches(Some(ns), local))
}

/// The child elements of `id`.
pub(super) fn children<'d>(doc: &'d Document, id: NodeId) -> impl Iterator<Item = NodeId> + 'd {
    doc.children(id)
        .into_iter()
        .filter(|&c| doc.element(c).is_some())
}

/// The child elements of `id` named `local` in namespace `ns`.
pub(super) fn named<'d>(
    doc: &'d Document,
    id: NodeId,
    ns: &'d str,
    local: &'d str,
) -> impl Iterator<Item = NodeId> + 'd {
    children(doc, id).filter(move |&c| is(doc, c, ns, local))
}

/// The first child element of `id` named `local` in namespace `ns`.
pub(super) fn child(doc: &Document, id: NodeId, ns: &str, local: &str) -> Option<NodeId> {
    named(doc, id, ns, local).next()
}

/// Every element in the subtree of `id` (itself included) named `local` in `ns`.
pub(super) fn descendants(doc: &Document, id: NodeId, ns: &str, local: &str) -> Vec<NodeId> {
    let mut found: Vec<NodeId> = doc
        .descendants(id)
        .into_iter()
        .filter(|&d| is(doc, d, ns, local))
        .collect();
    if is(doc, id, ns, local) {
        found.insert(0, id);
    }
    found
}

/// An attribute without a namespace, as SAML's own attributes are.
pub(super) fn attr<'d>(doc: &'d Document, id: NodeId, name: &str) -> Option<&'d str> {
    doc.element(id)?
        .attributes
        .iter()
        .find(|a| a.name.namespace_uri.is_none() && a.name.local_name == name)
        .map(|a| &*a.value)
}

/// The whole text of an element: every text and CDATA child joined, comments skipped,
/// surrounding white space trimmed. Reading only the first text node would let a comment
/// (which exclusive canonicalization drops, so the signature stays good) cut a value
/// short: `user@evil.com<!---->.trusted.com` reads as the full string here.
pub(super) fn text(doc: &Document, id: NodeId) -> String {
    let mut out = String::new();
    for c in doc.children(id) {
        if let Some(t) = doc.text_content(c) {
            out.push_str(t);
        }
    }
    out.trim().to_owned()
}

/// Maps every `ID`/`Id`/`id` attribute value to its element, refusing a value that occurs
/// twice anywhere (a second element with the signed element's ID is a wrapping attack).
pub(super) fn ids(doc: &Document) -> Result<HashMap<String, NodeId>, SamlError> {
    let mut map = HashMap::new();
    for id in doc.descendants(doc.root()) {
        let Some(element) = doc.element(id) else {
            continue;
        };
        for a in &element.attributes {
            if matches!(&*a.name.local_name, "ID" | "Id" | "id")
                && map.insert(a.value.to_string(), id).is_some()
            {
                return Err(SamlError::DuplicateId(a.value.to_string()));
            }
        }
    }
    Ok(map)
}

/// A base64 value from an element's text, white space (line breaks) ignored.
pub(super) fn base64(doc: &Document, id: NodeId) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let compact: String = text(doc, id).split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// An `xs:dateTime` as unix seconds.
pub(super) fn time(value: &str) -> Result<i64, SamlError> {
    time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| SamlError::Invalid("a time is not an xs:dateTime in UTC"))
}
