//! The PKCS#11 key backend: CA keys generated inside a hardware security module (or
//! SoftHSM2), non-extractable; Kizuna stores only the key's object id and asks the token to
//! sign. ECDSA P-256/P-384 and RSA; signatures come back in the same forms as the software
//! backend's.

use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use super::{CustodyError, KeyAlgorithm, KeyBackend, PublicKey, SigningKey};
use crate::der;

/// Where the token is and how to log in.
#[derive(Debug, Clone)]
pub struct Pkcs11Settings {
    /// The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    pub module: String,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: String,
}

/// One logged-in session, shared (PKCS#11 sessions run one operation at a time).
pub struct Pkcs11Backend {
    session: Arc<Mutex<Session>>,
    // Keeps the library loaded and initialised for as long as the session lives.
    _context: Pkcs11,
}

fn err(context: &str, e: impl std::fmt::Display) -> CustodyError {
    CustodyError::Generate(format!("PKCS#11 {context}: {e}"))
}

impl Pkcs11Backend {
    pub fn open(settings: &Pkcs11Settings) -> Result<Self, CustodyError> {
        let context = Pkcs11::new(&settings.module)
            .map_err(|e| err(&format!("module {}", settings.module), e))?;
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| err("initialize", e))?;
        let slot = context
            .get_slots_with_token()
            .map_err(|e| err("slots", e))?
            .into_iter()
            .find(|slot| {
                context
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim() == settings.token_label)
            })
            .ok_or_else(|| {
                err(
                    "token",
                    format!("no token labelled {:?}", settings.token_label),
                )
            })?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| err("session", e))?;
        session
            .login(
                UserType::User,
                Some(&AuthPin::new(settings.pin.clone().into())),
            )
            .map_err(|e| err("login", e))?;
        Ok(Pkcs11Backend {
            session: Arc::new(Mutex::new(session)),
            _context: context,
        })
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, CustodyError> {
        self.session.lock().map_err(|_| err("session", "poisoned"))
    }
}

/// The EC parameters (named curve OID, DER) for a curve.
fn ec_params(algorithm: KeyAlgorithm) -> Option<Vec<u8>> {
    let arcs: &[u64] = match algorithm {
        KeyAlgorithm::P256 => &[1, 2, 840, 10045, 3, 1, 7],
        KeyAlgorithm::P384 => &[1, 3, 132, 0, 34],
        _ => return None,
    };
    Some(der::oid(&der::oid_content(arcs)))
}

impl KeyBackend for Pkcs11Backend {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn generate(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<(PublicKey, Vec<u8>), CustodyError> {
        let id = key_id.as_bytes().to_vec();
        let label = format!("kizuna-{key_id}").into_bytes();
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id.clone()),
            Attribute::Label(label.clone()),
        ];
        let session = self.session()?;
        let public = match algorithm {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => {
                let params = ec_params(algorithm).expect("EC algorithm");
                let template = vec![
                    Attribute::Token(true),
                    Attribute::Verify(true),
                    Attribute::EcParams(params),
                    Attribute::Id(id.clone()),
                    Attribute::Label(label),
                ];
                let (public, _) = session
                    .generate_key_pair(&Mechanism::EccKeyPairGen, &template, &private)
                    .map_err(|e| err("generate", e))?;
                let attrs = session
                    .get_attributes(public, &[AttributeType::EcPoint])
                    .map_err(|e| err("public key", e))?;
                let Some(Attribute::EcPoint(point)) = attrs.into_iter().next() else {
                    return Err(err("public key", "no EC point"));
                };
                // CKA_EC_POINT holds the point as a DER OCTET STRING.
                let point = der::read_tlv(&point, 0x04)
                    .map(|(p, _)| p.to_vec())
                    .unwrap_or(point);
                PublicKey::new(algorithm, point)
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits = match algorithm {
                    KeyAlgorithm::Rsa2048 => 2048u64,
                    KeyAlgorithm::Rsa3072 => 3072,
                    _ => 4096,
                };
                let template = vec![
                    Attribute::Token(true),
                    Attribute::Verify(true),
                    Attribute::ModulusBits(bits.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Id(id.clone()),
                    Attribute::Label(label),
                ];
                let (public, _) = session
                    .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &template, &private)
                    .map_err(|e| err("generate", e))?;
                let attrs = session
                    .get_attributes(
                        public,
                        &[AttributeType::Modulus, AttributeType::PublicExponent],
                    )
                    .map_err(|e| err("public key", e))?;
                let (mut n, mut e) = (Vec::new(), Vec::new());
                for attr in attrs {
                    match attr {
                        Attribute::Modulus(m) => n = m,
                        Attribute::PublicExponent(x) => e = x,
                        _ => {}
                    }
                }
                PublicKey::new(
                    algorithm,
                    der::sequence(&[&der::unsigned_integer(&n), &der::unsigned_integer(&e)]),
                )
            }
            KeyAlgorithm::Ed25519 => {
                return Err(err(
                    "generate",
                    "Ed25519 keys are not supported in the HSM backend",
                ));
            }
        };
        Ok((public, id))
    }

    fn load(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
        material: &[u8],
    ) -> Result<Arc<dyn SigningKey>, CustodyError> {
        let class_type = match algorithm {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => KeyType::EC,
            _ => KeyType::RSA,
        };
        let handle = self
            .session()?
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(class_type),
                Attribute::Id(material.to_vec()),
            ])
            .map_err(|e| err("find key", e))?
            .into_iter()
            .next()
            .ok_or_else(|| CustodyError::CorruptKey(format!("{key_id} (not on the token)")))?;
        Ok(Arc::new(HsmKey {
            session: self.session.clone(),
            handle,
            algorithm,
        }))
    }
}

struct HsmKey {
    session: Arc<Mutex<Session>>,
    handle: ObjectHandle,
    algorithm: KeyAlgorithm,
}

impl SigningKey for HsmKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        let session = self.session.lock().map_err(|_| CustodyError::SignFailed)?;
        let signed = match self.algorithm {
            // Hash here, sign the digest in the token: the result is raw r ‖ s.
            KeyAlgorithm::P256 => session.sign(
                &Mechanism::Ecdsa,
                self.handle,
                ring::digest::digest(&ring::digest::SHA256, message).as_ref(),
            ),
            KeyAlgorithm::P384 => session.sign(
                &Mechanism::Ecdsa,
                self.handle,
                ring::digest::digest(&ring::digest::SHA384, message).as_ref(),
            ),
            _ => session.sign(&Mechanism::Sha256RsaPkcs, self.handle, message),
        };
        signed.map_err(|e| {
            tracing::error!(error = %e, "PKCS#11 signing failed");
            CustodyError::SignFailed
        })
    }
}
