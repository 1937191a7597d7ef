//! Enveloped XML signatures as SAML uses them (SAML core §5, XML-DSig 1.1 §3.2): one
//! `Reference` to the parent element's ID, exclusive canonicalization, allow-listed
//! algorithms, and a key from the upstream's metadata. Returns the element the signature
//! covers, so the caller reads that element and nothing else.

use std::collections::HashMap;

use bergshamra_c14n::{C14nMode, canonicalize_doc};
use bergshamra_xml::NodeSet;
use uppsala::{Document, NodeId};

use super::error::SamlError;
use super::keys::{SigAlg, TrustedKey, digest_alg, verify_any};
use super::xml::{self, DSIG, EXC_C14N};

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The `ds:Signature` children of `id` (a SAML element has at most one).
pub(super) fn signature_of(doc: &Document, id: NodeId) -> Result<Option<NodeId>, SamlError> {
    let mut sigs = xml::named(doc, id, DSIG, "Signature");
    let first = sigs.next();
    if sigs.next().is_some() {
        return Err(SamlError::SignatureStructure(
            "two signatures on one element",
        ));
    }
    Ok(first)
}

/// Verifies the signature element `sig` and returns the element it signs, which is always
/// its parent: a signature anywhere else, or covering anything else, is refused.
pub(super) fn verify(
    doc: &Document,
    ids: &HashMap<String, NodeId>,
    sig: NodeId,
    keys: &[TrustedKey],
) -> Result<NodeId, SamlError> {
    let malformed = SamlError::SignatureStructure;
    let signed_info = only(doc, sig, "SignedInfo").ok_or(malformed("no single SignedInfo"))?;

    let c14n = only(doc, signed_info, "CanonicalizationMethod")
        .ok_or(malformed("no single CanonicalizationMethod"))?;
    let info_prefixes = exclusive_prefixes(doc, c14n)?;
    let method =
        only(doc, signed_info, "SignatureMethod").ok_or(malformed("no single SignatureMethod"))?;
    let alg = SigAlg::from_uri(xml::attr(doc, method, "Algorithm").unwrap_or_default())?;

    let mut references = xml::named(doc, signed_info, DSIG, "Reference");
    let reference = references.next().ok_or(malformed("no Reference"))?;
    if references.next().is_some() {
        return Err(malformed("more than one Reference"));
    }

    // What the reference covers must be the element the signature sits in.
    let uri = xml::attr(doc, reference, "URI").unwrap_or_default();
    let target_id = uri
        .strip_prefix('#')
        .filter(|id| !id.is_empty())
        .ok_or(malformed("the Reference URI is not a same-document #ID"))?;
    let target = *ids
        .get(target_id)
        .ok_or(malformed("the Reference names no element"))?;
    if doc.parent(sig) != Some(target) {
        return Err(SamlError::Wrapping(
            "the signature is not a child of the element it signs",
        ));
    }

    let ref_prefixes = transforms(doc, reference)?;
    let digest_method =
        only(doc, reference, "DigestMethod").ok_or(malformed("no single DigestMethod"))?;
    let digest = digest_alg(xml::attr(doc, digest_method, "Algorithm").unwrap_or_default())?;
    let digest_value = only(doc, reference, "DigestValue")
        .and_then(|d| xml::base64(doc, d))
        .ok_or(malformed("no DigestValue"))?;
    let signature_value = only(doc, sig, "SignatureValue")
        .and_then(|v| xml::base64(doc, v))
        .ok_or(malformed("no SignatureValue"))?;

    // SignedInfo first: once it verifies, its digest and algorithms are the signer's.
    let info = exclusive(
        doc,
        &NodeSet::tree_without_comments(signed_info, doc),
        &info_prefixes,
    )?;
    verify_any(keys, alg, &info, &signature_value)?;

    // The enveloped-signature transform: the signed element without this signature.
    let nodes = NodeSet::tree_without_comments(target, doc)
        .subtract(&NodeSet::tree_with_comments(sig, doc));
    let octets = exclusive(doc, &nodes, &ref_prefixes)?;
    if ring::digest::digest(digest, &octets).as_ref() != digest_value.as_slice() {
        return Err(SamlError::Digest);
    }
    Ok(target)
}

/// The only `ds:local` child of `id`, if there is exactly one.
fn only(doc: &Document, id: NodeId, local: &str) -> Option<NodeId> {
    let mut found = xml::named(doc, id, DSIG, local);
    let first = found.next();
    found.next().is_none().then_some(first).flatten()
}

/// Checks a Reference's transforms (exactly enveloped-signature and exclusive C14N) and
/// returns the exclusive C14N InclusiveNamespaces prefixes.
fn transforms(doc: &Document, reference: NodeId) -> Result<Vec<String>, SamlError> {
    let list = only(doc, reference, "Transforms")
        .ok_or(SamlError::SignatureStructure("no single Transforms"))?;
    let mut enveloped = false;
    let mut prefixes = None;
    for t in xml::children(doc, list) {
        if !xml::is(doc, t, DSIG, "Transform") {
            return Err(SamlError::SignatureStructure(
                "Transforms holds something else",
            ));
        }
        match xml::attr(doc, t, "Algorithm").unwrap_or_default() {
            ENVELOPED if !enveloped => enveloped = true,
            EXC_C14N if prefixes.is_none() => prefixes = Some(exclusive_prefixes(doc, t)?),
            other => return Err(SamlError::Algorithm(format!("transform {other}"))),
        }
    }
    match (enveloped, prefixes) {
        (true, Some(prefixes)) => Ok(prefixes),
        _ => Err(SamlError::Algorithm(
            "the Reference needs the enveloped-signature and exclusive C14N transforms".into(),
        )),
    }
}

/// Checks that an algorithm element names exclusive C14N (without comments) and returns
/// its InclusiveNamespaces PrefixList.
fn exclusive_prefixes(doc: &Document, method: NodeId) -> Result<Vec<String>, SamlError> {
    let alg = xml::attr(doc, method, "Algorithm").unwrap_or_default();
    if alg != EXC_C14N {
        return Err(SamlError::Algorithm(format!("canonicalization {alg}")));
    }
    let mut prefixes = Vec::new();
    for child in xml::children(doc, method) {
        if !xml::is(doc, child, EXC_C14N, "InclusiveNamespaces") {
            return Err(SamlError::SignatureStructure(
                "unexpected canonicalization parameter",
            ));
        }
        let list = xml::attr(doc, child, "PrefixList").unwrap_or_default();
        prefixes.extend(list.split_ascii_whitespace().map(str::to_owned));
    }
    Ok(prefixes)
}

fn exclusive(doc: &Document, nodes: &NodeSet, prefixes: &[String]) -> Result<Vec<u8>, SamlError> {
    canonicalize_doc(doc, C14nMode::Exclusive, Some(nodes), prefixes)
        .map_err(|e| SamlError::NotWellFormed(format!("canonicalization failed: {e}")))
}
