//! Signature algorithms Kizuna accepts from an identity provider (XML-DSig 1.1 §6.4,
//! RFC 6931) and the keys it verifies them with: only those of the certificates in the
//! upstream's approved metadata, never a key carried in the message.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, oid::ObjectIdentifier};

use super::error::SamlError;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A signature algorithm on the allow list: RSA PKCS#1 v1.5 or ECDSA, SHA-256 or stronger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SigAlg {
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
}

impl SigAlg {
    /// The algorithm a `SignatureMethod` or `SigAlg` URI names; anything else (SHA-1, HMAC,
    /// DSA, ...) is refused.
    pub(super) fn from_uri(uri: &str) -> Result<SigAlg, SamlError> {
        Ok(match uri {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => SigAlg::RsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => SigAlg::RsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => SigAlg::RsaSha512,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => SigAlg::EcdsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => SigAlg::EcdsaSha384,
            other => return Err(SamlError::Algorithm(format!("signature method {other}"))),
        })
    }
}

/// A digest algorithm on the allow list for a `Reference`.
pub(super) fn digest_alg(uri: &str) -> Result<&'static ring::digest::Algorithm, SamlError> {
    Ok(match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => &ring::digest::SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => &ring::digest::SHA384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => &ring::digest::SHA512,
        other => return Err(SamlError::Algorithm(format!("digest method {other}"))),
    })
}

/// A public key from a trusted certificate.
#[derive(Debug)]
pub(super) enum TrustedKey {
    /// PKCS#1 RSAPublicKey DER.
    Rsa(Vec<u8>),
    /// Uncompressed point on P-256.
    P256(Vec<u8>),
    /// Uncompressed point on P-384.
    P384(Vec<u8>),
}

/// The keys of the upstream's certificates (DER). A certificate whose key is of another
/// kind is left out; none left is an error.
pub(super) fn trusted_keys(certs: &[Vec<u8>]) -> Result<Vec<TrustedKey>, SamlError> {
    let keys: Vec<TrustedKey> = certs.iter().filter_map(|der| key_of(der)).collect();
    if keys.is_empty() {
        return Err(SamlError::NoTrustedKey);
    }
    Ok(keys)
}

fn key_of(der: &[u8]) -> Option<TrustedKey> {
    let cert = Certificate::from_der(der).ok()?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let bits = spki.subject_public_key.as_bytes()?.to_vec();
    if spki.algorithm.oid == RSA_ENCRYPTION {
        return Some(TrustedKey::Rsa(bits));
    }
    if spki.algorithm.oid != EC_PUBLIC_KEY {
        return None;
    }
    let curve: ObjectIdentifier = spki.algorithm.parameters.as_ref()?.decode_as().ok()?;
    match curve {
        c if c == P256 => Some(TrustedKey::P256(bits)),
        c if c == P384 => Some(TrustedKey::P384(bits)),
        _ => None,
    }
}

/// Verifies `sig` over `message` with any of `keys`. ECDSA values are the XML-DSig form
/// (r and s concatenated); a P-256 key signs with SHA-256, a P-384 key with SHA-384.
pub(super) fn verify_any(
    keys: &[TrustedKey],
    alg: SigAlg,
    message: &[u8],
    sig: &[u8],
) -> Result<(), SamlError> {
    let verified = keys.iter().any(|key| {
        let (algorithm, public): (&dyn VerificationAlgorithm, &[u8]) = match (key, alg) {
            (TrustedKey::Rsa(k), SigAlg::RsaSha256) => (&signature::RSA_PKCS1_2048_8192_SHA256, k),
            (TrustedKey::Rsa(k), SigAlg::RsaSha384) => (&signature::RSA_PKCS1_2048_8192_SHA384, k),
            (TrustedKey::Rsa(k), SigAlg::RsaSha512) => (&signature::RSA_PKCS1_2048_8192_SHA512, k),
            (TrustedKey::P256(k), SigAlg::EcdsaSha256) => (&signature::ECDSA_P256_SHA256_FIXED, k),
            (TrustedKey::P384(k), SigAlg::EcdsaSha384) => (&signature::ECDSA_P384_SHA384_FIXED, k),
            _ => return false,
        };
        UnparsedPublicKey::new(algorithm, public)
            .verify(message, sig)
            .is_ok()
    });
    if verified {
        Ok(())
    } else {
        Err(SamlError::Signature)
    }
}
