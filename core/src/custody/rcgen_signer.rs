//! rcgen signs certificates, CSRs and CRLs through key custody: the private key never leaves
//! its backend (software or HSM).

use super::{KeyAlgorithm, KeyHandle};

/// A custody key as rcgen's signing key.
pub struct CustodySigner(pub KeyHandle);

impl rcgen::PublicKeyData for CustodySigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key().raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.0.algorithm() {
            KeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                &rcgen::PKCS_RSA_SHA256
            }
        }
    }
}

impl rcgen::SigningKey for CustodySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign_der(message).map_err(|e| {
            tracing::error!(error = %e, key = self.0.id(), "signing through rcgen failed");
            rcgen::Error::RemoteKeyError
        })
    }
}
