//! Key algorithms and public keys, in the form each consumer needs (SPKI DER for X.509, JWK
//! for JOSE).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde_json::json;

use super::CustodyError;
use crate::der;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    P256,
    P384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::P256,
        KeyAlgorithm::P384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::P256 => "p256",
            KeyAlgorithm::P384 => "p384",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::Rsa3072 => "rsa3072",
            KeyAlgorithm::Rsa4096 => "rsa4096",
        }
    }

    /// The JWS `alg` a key of this type signs with.
    pub fn jws_alg(self) -> &'static str {
        match self {
            KeyAlgorithm::P256 => "ES256",
            KeyAlgorithm::P384 => "ES384",
            KeyAlgorithm::Ed25519 => "EdDSA",
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => "RS256",
        }
    }

    pub(super) fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyAlgorithm::Rsa2048 => Some(2048),
            KeyAlgorithm::Rsa3072 => Some(3072),
            KeyAlgorithm::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CustodyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| CustodyError::UnknownAlgorithm(s.to_string()))
    }
}

/// A public key in the form each consumer needs (SPKI DER for X.509, JWK for JOSE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    /// EC: the uncompressed point; Ed25519: the 32-byte key; RSA: a PKCS#1 RSAPublicKey.
    raw: Vec<u8>,
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
pub(super) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

impl PublicKey {
    pub fn new(algorithm: KeyAlgorithm, raw: Vec<u8>) -> Self {
        PublicKey { algorithm, raw }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key as ring's verifiers take it.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// SubjectPublicKeyInfo (RFC 5280), DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let algorithm_id = match self.algorithm {
            KeyAlgorithm::P256 => {
                der::sequence(&[&der::oid(OID_EC_PUBLIC_KEY), &der::oid(OID_P256)])
            }
            KeyAlgorithm::P384 => {
                der::sequence(&[&der::oid(OID_EC_PUBLIC_KEY), &der::oid(OID_P384)])
            }
            KeyAlgorithm::Ed25519 => der::sequence(&[&der::oid(OID_ED25519)]),
            _ => der::sequence(&[&der::oid(OID_RSA_ENCRYPTION), &der::null()]),
        };
        der::sequence(&[&algorithm_id, &der::bit_string(&self.raw)])
    }

    /// The public JWK (RFC 7517), without `kid`, `use` or `alg`.
    pub fn jwk(&self) -> serde_json::Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self.algorithm {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => {
                let crv = if self.algorithm == KeyAlgorithm::P256 {
                    "P-256"
                } else {
                    "P-384"
                };
                // Uncompressed point: 0x04 || X || Y.
                let coords = &self.raw[1..];
                let (x, y) = coords.split_at(coords.len() / 2);
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
            }
            KeyAlgorithm::Ed25519 => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&self.raw)}),
            _ => {
                let (n, e) = der::rsa_public_key_components(&self.raw).unwrap_or((&[], &[]));
                json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
            }
        }
    }

    /// The RFC 7638 thumbprint, a stable key id.
    pub fn thumbprint(&self) -> String {
        // A JWK built from our own key always has the members the thumbprint needs.
        crate::jose::thumbprint(&self.jwk()).unwrap_or_default()
    }

    /// Verifies a signature made by [`KeyHandle::sign`] (the JOSE form).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            KeyAlgorithm::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            KeyAlgorithm::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            KeyAlgorithm::Ed25519 => &signature::ED25519,
            _ => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, sig)
            .is_ok()
    }
}
