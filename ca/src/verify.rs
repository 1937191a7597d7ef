//! Checks on certificates Kizuna did not make itself (an offline root's, a device's): the
//! signature under an issuer, CA-ness, validity.

use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::BasicConstraints;

use kizuna_core::der;

use crate::keys::SubjectKey;

/// Verifies `cert`'s signature with `issuer`'s public key.
pub fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let der_bytes = cert.to_der().map_err(|e| e.to_string())?;
    let (outer, _) = der::read_tlv(&der_bytes, 0x30).ok_or("truncated certificate")?;
    let (_, rest) = der::read_tlv(outer, 0x30).ok_or("truncated certificate")?;
    let tbs = &outer[..outer.len() - rest.len()];
    let key = SubjectKey::from_spki(issuer.tbs_certificate().subject_public_key_info())
        .map_err(|e| e.to_string())?;
    let signature = cert.signature().as_bytes().ok_or("malformed signature")?;
    key.verify(&cert.signature_algorithm().oid.to_string(), tbs, signature)
        .map_err(|e| format!("the certificate does not verify under the issuer: {e}"))
}

/// Requires basicConstraints cA=TRUE.
pub fn is_ca(cert: &Certificate) -> Result<(), String> {
    let ca = cert
        .tbs_certificate()
        .extensions()
        .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == "2.5.29.19"))
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|bc| bc.ca);
    if ca {
        Ok(())
    } else {
        Err("the certificate is not a CA certificate (basicConstraints cA is not true)".into())
    }
}

/// notBefore and notAfter as unix seconds.
pub fn validity(cert: &Certificate) -> (i64, i64) {
    let v = cert.tbs_certificate().validity();
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    (secs(&v.not_before), secs(&v.not_after))
}
