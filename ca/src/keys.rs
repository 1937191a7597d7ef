//! Subject public keys as they arrive in CSRs: their type (which profiles allow), their
//! SubjectPublicKeyInfo, and verification of the signature that proves possession.

use std::fmt;

use ring::signature::{self, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use kizuna_core::der;

const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const SECP256R1: &str = "1.2.840.10045.3.1.7";
const SECP384R1: &str = "1.3.132.0.34";
const SECP521R1: &str = "1.3.132.0.35";
const ID_ED25519: &str = "1.3.101.112";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// A key type a profile may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    P256,
    P384,
    P521,
    Ed25519,
    Rsa(u32),
}

impl KeyType {
    /// The name a profile lists (`p256`, `p384`, `ed25519`, `rsa` for any RSA size).
    pub fn family(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::P521 => "p521",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa(_) => "rsa",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::P256 => f.write_str("ECDSA P-256"),
            KeyType::P384 => f.write_str("ECDSA P-384"),
            KeyType::P521 => f.write_str("ECDSA P-521"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::Rsa(bits) => write!(f, "RSA-{bits}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the public key type ({0}) is not supported")]
    Unsupported(String),
    #[error("the public key is malformed")]
    Malformed,
    #[error("the signature algorithm {0} is not accepted")]
    SignatureAlgorithm(String),
    #[error("the signature does not verify with the public key (proof of possession failed)")]
    BadSignature,
}

/// A subject's public key.
#[derive(Debug, Clone)]
pub struct SubjectKey {
    pub key_type: KeyType,
    /// The subjectPublicKey bits (EC point, Ed25519 key, PKCS#1 RSAPublicKey).
    raw: Vec<u8>,
    spki_der: Vec<u8>,
}

impl SubjectKey {
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, KeyError> {
        use x509_cert::der::Encode;
        let algorithm = spki.algorithm.oid.to_string();
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::Malformed)?
            .to_vec();
        let key_type = match algorithm.as_str() {
            ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                    .map(|oid| oid.to_string())
                    .ok_or(KeyError::Malformed)?;
                let (key_type, len) = match curve.as_str() {
                    SECP256R1 => (KeyType::P256, 65),
                    SECP384R1 => (KeyType::P384, 97),
                    SECP521R1 => (KeyType::P521, 133),
                    other => return Err(KeyError::Unsupported(format!("elliptic curve {other}"))),
                };
                if raw.len() != len || raw[0] != 4 {
                    return Err(KeyError::Malformed);
                }
                key_type
            }
            ID_ED25519 => {
                if raw.len() != 32 {
                    return Err(KeyError::Malformed);
                }
                KeyType::Ed25519
            }
            RSA_ENCRYPTION => {
                let (n, _) = der::rsa_public_key_components(&raw).ok_or(KeyError::Malformed)?;
                let bits = (n.len() * 8) as u32 - n.first().map_or(0, |b| b.leading_zeros());
                KeyType::Rsa(bits)
            }
            other => return Err(KeyError::Unsupported(format!("algorithm {other}"))),
        };
        Ok(SubjectKey {
            key_type,
            raw,
            spki_der: spki.to_der().map_err(|_| KeyError::Malformed)?,
        })
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-256 of the SubjectPublicKeyInfo, hex: the key's identity across certificates.
    pub fn fingerprint(&self) -> String {
        kizuna_core::secret::hex(&kizuna_core::secret::sha256(&self.spki_der))
    }

    /// Verifies `signature` over `message` made with this key and the named algorithm.
    pub fn verify(&self, signature_oid: &str, message: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let algorithm: &dyn signature::VerificationAlgorithm = match (self.key_type, signature_oid)
        {
            (KeyType::P256, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyType::P256, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyType::P384, "1.2.840.10045.4.3.3") => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyType::P384, "1.2.840.10045.4.3.2") => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyType::Ed25519, ID_ED25519) => &signature::ED25519,
            (KeyType::Rsa(_), "1.2.840.113549.1.1.11") => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyType::Rsa(_), "1.2.840.113549.1.1.12") => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyType::Rsa(_), "1.2.840.113549.1.1.13") => &signature::RSA_PKCS1_2048_8192_SHA512,
            (_, other) => return Err(KeyError::SignatureAlgorithm(other.to_string())),
        };
        UnparsedPublicKey::new(algorithm, &self.raw)
            .verify(message, sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.key_type {
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
            // P-521 never reaches issuance (no profile allows it); RSA keys are rsaEncryption.
            KeyType::P521 | KeyType::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        }
    }
}
