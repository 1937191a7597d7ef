//! The software key backend: keys generated with ring (RSA with the `rsa` crate) and stored
//! sealed under the KEK.

use std::fmt;
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::{CustodyError, KeyAlgorithm, KeyBackend, Keyring, PublicKey, SigningKey};

/// Keys generated with ring (RSA with the `rsa` crate, then used through ring), stored in the
/// database sealed under the KEK with the key id and algorithm as associated data. Seals with
/// the keyring's current KEK; opens with any of its KEKs.
pub struct SoftwareBackend {
    kek: Keyring,
    rng: SystemRandom,
}

impl SoftwareBackend {
    pub fn new(kek: impl Into<Keyring>) -> Self {
        SoftwareBackend {
            kek: kek.into(),
            rng: SystemRandom::new(),
        }
    }

    pub(super) fn aad(key_id: &str, algorithm: KeyAlgorithm) -> Vec<u8> {
        format!("kizuna-key:{key_id}:{algorithm}").into_bytes()
    }

    /// Data is bound to its context under a prefix keys never use, so sealed key material
    /// cannot be opened as data or the other way round.
    pub(super) fn data_aad(context: &str) -> Vec<u8> {
        format!("kizuna-data:{context}").into_bytes()
    }
}

enum SoftwareKey {
    Ecdsa(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, SystemRandom),
}

impl SigningKey for SoftwareKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        match self {
            SoftwareKey::Ecdsa(kp, rng) => kp
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CustodyError::SignFailed),
            SoftwareKey::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            SoftwareKey::Rsa(kp, rng) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, rng, message, &mut sig)
                    .map_err(|_| CustodyError::SignFailed)?;
                Ok(sig)
            }
        }
    }
}

fn ecdsa_alg(algorithm: KeyAlgorithm) -> &'static signature::EcdsaSigningAlgorithm {
    if algorithm == KeyAlgorithm::P384 {
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING
    } else {
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING
    }
}

fn parse_software_key(
    algorithm: KeyAlgorithm,
    pkcs8: &[u8],
    rng: &SystemRandom,
) -> Option<(SoftwareKey, PublicKey)> {
    match algorithm {
        KeyAlgorithm::P256 | KeyAlgorithm::P384 => {
            let kp = EcdsaKeyPair::from_pkcs8(ecdsa_alg(algorithm), pkcs8, rng).ok()?;
            let public = PublicKey::new(algorithm, kp.public_key().as_ref().to_vec());
            Some((SoftwareKey::Ecdsa(kp, rng.clone()), public))
        }
        KeyAlgorithm::Ed25519 => {
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
            let public = PublicKey::new(algorithm, kp.public_key().as_ref().to_vec());
            Some((SoftwareKey::Ed25519(kp), public))
        }
        _ => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
            let public = PublicKey::new(algorithm, kp.public().as_ref().to_vec());
            Some((SoftwareKey::Rsa(kp, rng.clone()), public))
        }
    }
}

/// Adapts ring's system RNG to the `rand_core` traits the `rsa` crate asks for.
struct RingRng(SystemRandom);

impl rsa::rand_core::RngCore for RingRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(crate::secret::random_bytes::<4>())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(crate::secret::random_bytes::<8>())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use ring::rand::SecureRandom;
        self.0.fill(dest).expect("system RNG");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for RingRng {}

/// A new RSA private key of `bits` bits as PKCS#8 DER, from the system RNG (ring cannot make
/// RSA keys). For keys that must decrypt, which custody keys never do.
pub fn rsa_pkcs8(bits: usize) -> Result<Vec<u8>, CustodyError> {
    use rsa::pkcs8::EncodePrivateKey;
    let generate_err = |e: &dyn fmt::Display| CustodyError::Generate(e.to_string());
    let key = rsa::RsaPrivateKey::new(&mut RingRng(SystemRandom::new()), bits)
        .map_err(|e| generate_err(&e))?;
    Ok(key
        .to_pkcs8_der()
        .map_err(|e| generate_err(&e))?
        .as_bytes()
        .to_vec())
}

impl KeyBackend for SoftwareBackend {
    fn name(&self) -> &'static str {
        "software"
    }

    fn generate(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<(PublicKey, Vec<u8>), CustodyError> {
        let generate_err = |e: &dyn fmt::Display| CustodyError::Generate(e.to_string());
        let pkcs8: Vec<u8> = match algorithm {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => {
                EcdsaKeyPair::generate_pkcs8(ecdsa_alg(algorithm), &self.rng)
                    .map_err(|e| generate_err(&e))?
                    .as_ref()
                    .to_vec()
            }
            KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&self.rng)
                .map_err(|e| generate_err(&e))?
                .as_ref()
                .to_vec(),
            _ => rsa_pkcs8(algorithm.rsa_bits().unwrap_or(2048))?,
        };
        let (_, public) = parse_software_key(algorithm, &pkcs8, &self.rng)
            .ok_or_else(|| CustodyError::Generate("generated key did not parse".into()))?;
        let sealed = self.kek.seal(&Self::aad(key_id, algorithm), &pkcs8);
        Ok((public, sealed))
    }

    fn load(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
        material: &[u8],
    ) -> Result<Arc<dyn SigningKey>, CustodyError> {
        let pkcs8 = self
            .kek
            .open(&Self::aad(key_id, algorithm), material)
            .ok_or_else(|| CustodyError::CorruptKey(key_id.to_string()))?;
        let (key, _) = parse_software_key(algorithm, &pkcs8, &self.rng)
            .ok_or_else(|| CustodyError::CorruptKey(key_id.to_string()))?;
        Ok(Arc::new(key))
    }

    fn seal_data(&self, context: &str, plaintext: &[u8]) -> Option<Vec<u8>> {
        Some(self.kek.seal(&Self::data_aad(context), plaintext))
    }

    fn open_data(&self, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        self.kek.open(&Self::data_aad(context), sealed)
    }
}
