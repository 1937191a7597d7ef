//! Reading what the card-reader app sends and the CAs publish: certificates (PEM or base64
//! DER), signatures (RSA PKCS#1 v1.5, ECDSA), issuer links, validity, CRL distribution
//! points and CRLs, and the four basic attributes of a JPKI signature certificate.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{BasicConstraints, CrlDistributionPoints, SubjectAltName};

use super::X509Error;
use crate::assurance::Attributes;

/// The JPKI personal-data arc (1.2.392.200149.8.5.5): subjectAltName otherNames of the
/// signature certificate carrying the four basic attributes.
const JPKI_NAME: &str = "1.2.392.200149.8.5.5.1";
const JPKI_GENDER: &str = "1.2.392.200149.8.5.5.3";
const JPKI_BIRTHDATE: &str = "1.2.392.200149.8.5.5.4";
const JPKI_ADDRESS: &str = "1.2.392.200149.8.5.5.5";

/// The DER bytes of a PEM or base64 (standard or URL-safe) certificate.
pub(super) fn certificate_der(text: &str) -> Result<Vec<u8>, X509Error> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return Certificate::from_pem(text.as_bytes())
            .and_then(|c| c.to_der())
            .map_err(|e| X509Error::Malformed(e.to_string()));
    }
    decode_b64(text).ok_or_else(|| X509Error::Malformed("not base64".into()))
}

pub(super) fn decode_b64(text: &str) -> Option<Vec<u8>> {
    [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text.trim()).ok())
}

pub(super) fn parse_certificate(text: &str) -> Result<Certificate, X509Error> {
    Certificate::from_der(&certificate_der(text)?).map_err(|e| X509Error::Malformed(e.to_string()))
}

pub(super) fn unix(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// The to-be-signed part of a signed structure (certificate or CRL) as encoded.
pub(super) fn tbs_bytes(signed_der: &[u8]) -> Option<&[u8]> {
    let (outer, _) = kizuna_core::der::read_tlv(signed_der, 0x30)?;
    let (_, rest) = kizuna_core::der::read_tlv(outer, 0x30)?;
    Some(&outer[..outer.len() - rest.len()])
}

/// Verifies `sig` over `message` with the key of `spki` under the X.509 signature
/// algorithm `alg` (RSA PKCS#1 v1.5 with SHA-256/384/512, ECDSA P-256/P-384).
pub(super) fn verify_with(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    alg: &str,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let key = spki.subject_public_key.raw_bytes();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    let verifier: &dyn signature::VerificationAlgorithm = match (alg, curve.as_deref()) {
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return false,
    };
    UnparsedPublicKey::new(verifier, key)
        .verify(message, sig)
        .is_ok()
}

/// The algorithm a person's key signs a challenge with: SHA-256 with RSA or ECDSA.
pub(super) fn challenge_algorithm(cert: &Certificate) -> &'static str {
    match cert
        .tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .oid
        .to_string()
        .as_str()
    {
        "1.2.840.10045.2.1" => "1.2.840.10045.4.3.2",
        _ => "1.2.840.113549.1.1.11",
    }
}

/// True when `cert` is signed by `issuer` (names match and the signature verifies).
pub(super) fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(der) = cert.to_der() else {
        return false;
    };
    let (Some(tbs), Some(sig)) = (tbs_bytes(&der), cert.signature().as_bytes()) else {
        return false;
    };
    verify_with(
        issuer.tbs_certificate().subject_public_key_info(),
        &cert.signature_algorithm().oid.to_string(),
        tbs,
        sig,
    )
}

pub(super) fn is_ca(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

pub(super) fn in_validity(cert: &Certificate, now: i64) -> bool {
    let v = cert.tbs_certificate().validity();
    unix(&v.not_before) <= now && now <= unix(&v.not_after)
}

/// The CRL distribution point URLs (http or https) of a certificate.
pub(super) fn crl_urls(cert: &Certificate) -> Vec<String> {
    let Ok(Some((_, points))) = cert
        .tbs_certificate()
        .get_extension::<CrlDistributionPoints>()
    else {
        return Vec::new();
    };
    points
        .0
        .iter()
        .filter_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .collect()
}

/// A text value of an otherName (UTF8String, PrintableString or IA5String).
pub(super) fn other_name_text(value: &x509_cert::der::Any) -> Option<String> {
    Utf8StringRef::try_from(value)
        .map(|s| s.to_string())
        .or_else(|_| PrintableStringRef::try_from(value).map(|s| s.to_string()))
        .or_else(|_| Ia5StringRef::try_from(value).map(|s| s.to_string()))
        .ok()
}

/// The basic attributes of a JPKI signature certificate: the name (family and given name
/// split at the full-width space), the birthdate (an era digit and YYYYMMDD), the gender
/// code (1 male, 2 female, 3 other) and the address.
pub fn attributes(cert: &Certificate) -> Result<Attributes, X509Error> {
    let sans = match cert.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0,
        _ => Vec::new(),
    };
    let mut found: HashMap<String, String> = HashMap::new();
    for name in sans {
        if let GeneralName::OtherName(other) = name
            && let Some(text) = other_name_text(&other.value)
        {
            found.insert(other.type_id.to_string(), text);
        }
    }
    let missing: Vec<&str> = [
        (JPKI_NAME, "name"),
        (JPKI_BIRTHDATE, "birthdate"),
        (JPKI_GENDER, "gender"),
        (JPKI_ADDRESS, "address"),
    ]
    .iter()
    .filter(|(oid, _)| found.get(*oid).is_none_or(|v| v.trim().is_empty()))
    .map(|(_, n)| *n)
    .collect();
    if !missing.is_empty() {
        return Err(X509Error::MissingAttributes(format!(
            "missing {}",
            missing.join(", ")
        )));
    }
    let bad = |what: &str| X509Error::MissingAttributes(format!("{what} is malformed"));
    let name = found[JPKI_NAME].trim().to_string();
    let birth = found[JPKI_BIRTHDATE].trim();
    let digits = birth
        .get(birth.len().saturating_sub(8)..)
        .filter(|d| birth.len() >= 8 && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad("birthdate"))?;
    let birthdate = format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..]);
    let gender = match found[JPKI_GENDER].trim() {
        "1" => "male",
        "2" => "female",
        "3" => "other",
        _ => return Err(bad("gender")),
    };
    let mut out = Attributes::new();
    if let Some((family, given)) = name.split_once('\u{3000}') {
        out.insert("family_name".into(), family.trim().to_string());
        out.insert("given_name".into(), given.trim().to_string());
    }
    out.insert("name".into(), name.replace('\u{3000}', " "));
    out.insert("birthdate".into(), birthdate);
    out.insert("gender".into(), gender.into());
    out.insert("address".into(), found[JPKI_ADDRESS].trim().to_string());
    let raw: std::collections::BTreeMap<String, String> = out.clone().into_iter().collect();
    crate::assurance::clean_attributes(&raw)
        .map_err(|e| X509Error::MissingAttributes(e.to_string()))
}

/// True when the CRL is current at `now` (issued, and its next update still ahead).
pub(super) fn current(crl: &CertificateList, now: i64) -> bool {
    unix(&crl.tbs_cert_list.this_update) <= now + 300
        && crl
            .tbs_cert_list
            .next_update
            .as_ref()
            .is_some_and(|n| unix(n) > now)
}

/// True when `issuer` signed the CRL (names match and the signature verifies).
pub(super) fn crl_signed_by(crl: &CertificateList, issuer: &Certificate) -> bool {
    if &crl.tbs_cert_list.issuer != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(der) = crl.to_der() else {
        return false;
    };
    let (Some(tbs), Some(sig)) = (tbs_bytes(&der), crl.signature.as_bytes()) else {
        return false;
    };
    verify_with(
        issuer.tbs_certificate().subject_public_key_info(),
        &crl.signature_algorithm.oid.to_string(),
        tbs,
        sig,
    )
}
