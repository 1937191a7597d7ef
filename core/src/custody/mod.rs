//! Key custody: the only place private keys exist. Callers ask custody for a key by id and get
//! a [`KeyHandle`] that signs and publishes its public key; no caller ever sees key bytes.
//! Backends ([`KeyBackend`]) hold the keys: the software backend keeps them in the database
//! sealed with AES-256-GCM under the key-encryption key (KEK); an HSM backend keeps only a
//! handle there.

mod kek;
pub mod pkcs11;
mod public_key;
mod rcgen_signer;
mod rotate;
mod software;

pub use kek::{
    Kek, KekId, KekSource, Keyring, has_kek_check, kek_opens_check, new_kek, open_kek,
    open_keyring, read_kek_file, sealed_kek_id, write_new_kek_file,
};
pub use public_key::{KeyAlgorithm, PublicKey};
pub use rcgen_signer::CustodySigner;
pub use rotate::{Count, Rotation, reseal_keys};
pub use software::{SoftwareBackend, rsa_pkcs8};

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use self::public_key::OID_ED25519;
use crate::db::{AnyConnection, Db};
use crate::der;

#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    #[error("unknown key algorithm {0:?}: use p256, p384, ed25519, rsa2048, rsa3072 or rsa4096")]
    UnknownAlgorithm(String),
    #[error("no key with id {0}")]
    NotFound(String),
    #[error("key {0} lives in backend {1:?}, which is not configured")]
    BackendMissing(String, String),
    #[error(
        "the key-encryption key does not match this database: stored keys cannot be decrypted with it. Start with the KEK this database was created with"
    )]
    WrongKek,
    #[error("key-encryption key file {0} does not exist")]
    KekFileMissing(PathBuf),
    #[error("{0} already exists: refusing to overwrite it (a KEK file is never replaced)")]
    KekFileExists(PathBuf),
    #[error(
        "this database was initialized with a key-encryption key, but the KEK file {0} is missing. Restore it (or set kek_file / KIZUNA_KEK_FILE to where it is); refusing to create a new KEK over existing keys"
    )]
    KekMissingForExistingData(PathBuf),
    #[error("the key-encryption key is malformed: {0}")]
    MalformedKek(String),
    #[error("could not read or write the KEK file {path}: {source}")]
    KekIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored key {0} could not be decrypted or parsed")]
    CorruptKey(String),
    #[error("signing failed")]
    SignFailed,
    #[error("no configured key backend seals data")]
    SealUnavailable,
    #[error("sealed data for {0} could not be decrypted")]
    CorruptData(String),
    #[error(
        "{0} could not be opened with the configured key-encryption keys (KEK ids {1}): nothing was changed. Add the KEK it was sealed with to kek_open_only_files"
    )]
    ResealFailed(String, String),
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("key storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

// ---------------------------------------------------------------------------------------------
// Backends

/// A private key inside a backend. It can sign; it cannot be read.
pub trait SigningKey: Send + Sync {
    /// Signs `message`: ECDSA as fixed-width r‖s, EdDSA, or RSASSA-PKCS1-v1_5 with SHA-256.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CustodyError>;
}

/// Where keys live. A PKCS#11 backend implements this beside the software one; callers do
/// not change.
pub trait KeyBackend: Send + Sync {
    /// The name stored with each key (`software`, `pkcs11`).
    fn name(&self) -> &'static str;
    /// Creates a key and returns its public half and the material to store: the sealed key,
    /// or a reference to it inside the device.
    fn generate(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<(PublicKey, Vec<u8>), CustodyError>;
    fn load(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
        material: &[u8],
    ) -> Result<Arc<dyn SigningKey>, CustodyError>;
    /// Encrypts a small secret that is not a key (a TOTP seed) bound to `context`; `None` when
    /// this backend does not seal data.
    fn seal_data(&self, _context: &str, _plaintext: &[u8]) -> Option<Vec<u8>> {
        None
    }
    /// Decrypts what [`seal_data`](Self::seal_data) sealed under the same `context`.
    fn open_data(&self, _context: &str, _sealed: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// A record key custody keeps beside its keys in `meta` (the KEK check value; the
/// reference to the TLS listener's own key and certificate). Custody owns the table.
pub async fn meta_value(db: &Db, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_optional(db.pool())
        .await
}

/// Stores (or replaces) a [`meta_value`].
pub async fn set_meta_value(db: &Db, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
    )
    .bind(key)
    .bind(value)
    .execute(db.pool())
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Custody

/// A usable key: signs, and tells its public key. Cheap to clone.
#[derive(Clone)]
pub struct KeyHandle {
    id: String,
    public: PublicKey,
    key: Arc<dyn SigningKey>,
}

impl fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHandle")
            .field("id", &self.id)
            .field("algorithm", &self.public.algorithm())
            .finish_non_exhaustive()
    }
}

impl KeyHandle {
    /// Wraps a key a backend loaded. Custody builds these; tests of signing code may too.
    pub fn new(id: String, public: PublicKey, key: Arc<dyn SigningKey>) -> Self {
        KeyHandle { id, public, key }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A signature in the JOSE form (ECDSA r‖s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.key.sign(message)
    }

    /// The AlgorithmIdentifier (DER) of this key's X.509 signatures.
    pub fn x509_signature_algorithm(&self) -> Vec<u8> {
        match self.public.algorithm() {
            KeyAlgorithm::P256 => {
                der::sequence(&[&der::oid(&der::oid_content(&[1, 2, 840, 10045, 4, 3, 2]))])
            }
            KeyAlgorithm::P384 => {
                der::sequence(&[&der::oid(&der::oid_content(&[1, 2, 840, 10045, 4, 3, 3]))])
            }
            KeyAlgorithm::Ed25519 => der::sequence(&[&der::oid(OID_ED25519)]),
            _ => der::sequence(&[
                &der::oid(&der::oid_content(&[1, 2, 840, 113549, 1, 1, 11])),
                &der::null(),
            ]),
        }
    }

    /// A signature in the X.509 / CMS form (ECDSA as a DER ECDSA-Sig-Value).
    pub fn sign_der(&self, message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        let sig = self.key.sign(message)?;
        Ok(match self.public.algorithm() {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => der::ecdsa_fixed_to_der(&sig),
            _ => sig,
        })
    }
}

/// What is known about a stored key, for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub purpose: String,
    pub algorithm: String,
    pub backend: String,
    pub status: String,
    pub created_at: i64,
}

/// The key store. Cheap to clone; loaded keys are cached (stored keys never change).
#[derive(Clone)]
pub struct KeyCustody {
    inner: Arc<CustodyInner>,
}

struct CustodyInner {
    db: Db,
    backends: HashMap<&'static str, Arc<dyn KeyBackend>>,
    default_backend: &'static str,
    cache: RwLock<HashMap<String, KeyHandle>>,
}

impl KeyCustody {
    pub fn new(db: Db, default_backend: Arc<dyn KeyBackend>) -> Self {
        Self::with_backends(db, default_backend, Vec::new())
    }

    /// Custody with further backends (e.g. PKCS#11) that keys can be generated in by name.
    pub fn with_backends(
        db: Db,
        default_backend: Arc<dyn KeyBackend>,
        others: Vec<Arc<dyn KeyBackend>>,
    ) -> Self {
        let name = default_backend.name();
        let mut backends = HashMap::new();
        for other in others {
            backends.insert(other.name(), other);
        }
        backends.insert(name, default_backend);
        KeyCustody {
            inner: Arc::new(CustodyInner {
                db,
                backends,
                default_backend: name,
                cache: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Creates a key in the default backend and stores it.
    pub async fn generate(
        &self,
        purpose: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyHandle, CustodyError> {
        let mut conn = self.inner.db.conn().await?;
        self.generate_in(&mut conn, purpose, algorithm).await
    }

    /// Creates a key inside the caller's transaction (so a key and the record that uses it
    /// commit together).
    pub async fn generate_in(
        &self,
        conn: &mut AnyConnection,
        purpose: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyHandle, CustodyError> {
        self.generate_in_backend(conn, self.inner.default_backend, purpose, algorithm)
            .await
    }

    /// Like [`generate_in`](Self::generate_in), in a named backend (`software`, `pkcs11`).
    pub async fn generate_in_backend(
        &self,
        conn: &mut AnyConnection,
        backend: &str,
        purpose: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyHandle, CustodyError> {
        let backend = self.backend(backend)?;
        let id = crate::secret::new_id();
        let (public, material) = {
            let backend = backend.clone();
            let id = id.clone();
            tokio::task::spawn_blocking(move || backend.generate(&id, algorithm))
                .await
                .map_err(|e| CustodyError::Generate(e.to_string()))??
        };
        sqlx::query(
            "INSERT INTO keys (id, purpose, algorithm, backend, public_key, material, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7)",
        )
        .bind(&id)
        .bind(purpose)
        .bind(algorithm.as_str())
        .bind(backend.name())
        .bind(public.raw().to_vec())
        .bind(material.clone())
        .bind(crate::time::now_unix())
        .execute(&mut *conn)
        .await?;
        let handle = KeyHandle {
            key: backend.load(&id, algorithm, &material)?,
            id,
            public,
        };
        Ok(handle)
    }

    /// The key with this id, loaded once and then served from memory.
    pub async fn get(&self, id: &str) -> Result<KeyHandle, CustodyError> {
        if let Some(handle) = self.cached(id) {
            return Ok(handle);
        }
        let row: Option<(String, String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT algorithm, backend, public_key, material FROM keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.inner.db.pool())
        .await?;
        let (algorithm, backend_name, public, material) =
            row.ok_or_else(|| CustodyError::NotFound(id.to_string()))?;
        let algorithm: KeyAlgorithm = algorithm.parse()?;
        let backend = self
            .inner
            .backends
            .get(backend_name.as_str())
            .ok_or_else(|| CustodyError::BackendMissing(id.to_string(), backend_name.clone()))?;
        let handle = KeyHandle {
            key: backend.load(id, algorithm, &material)?,
            id: id.to_string(),
            public: PublicKey::new(algorithm, public),
        };
        if let Ok(mut cache) = self.inner.cache.write() {
            cache.insert(id.to_string(), handle.clone());
        }
        Ok(handle)
    }

    /// Seals a small secret that is not a signing key (a TOTP seed) under the key-encryption
    /// key, bound to `context` (e.g. `totp:<user id>`): the KEK never leaves custody, and a
    /// sealed value copied to another context does not open.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.sealing_backends()
            .find_map(|b| b.seal_data(context, plaintext))
            .ok_or(CustodyError::SealUnavailable)
    }

    /// Opens what [`seal`](Self::seal) sealed under the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.sealing_backends()
            .find_map(|b| b.open_data(context, sealed))
            .ok_or_else(|| CustodyError::CorruptData(context.to_string()))
    }

    /// The default backend first, then the others.
    fn sealing_backends(&self) -> impl Iterator<Item = &Arc<dyn KeyBackend>> {
        let default = self.inner.backends.get(self.inner.default_backend);
        default.into_iter().chain(
            self.inner
                .backends
                .iter()
                .filter(|(name, _)| **name != self.inner.default_backend)
                .map(|(_, b)| b),
        )
    }

    fn cached(&self, id: &str) -> Option<KeyHandle> {
        self.inner.cache.read().ok()?.get(id).cloned()
    }

    fn backend(&self, name: &str) -> Result<Arc<dyn KeyBackend>, CustodyError> {
        self.inner
            .backends
            .get(name)
            .cloned()
            .ok_or_else(|| CustodyError::BackendMissing(String::new(), name.to_string()))
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, CustodyError> {
        let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, purpose, algorithm, backend, status, created_at FROM keys ORDER BY created_at, id",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, purpose, algorithm, backend, status, created_at)| KeyInfo {
                    id,
                    purpose,
                    algorithm,
                    backend,
                    status,
                    created_at,
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    fn backend() -> SoftwareBackend {
        SoftwareBackend::new(Kek::from_bytes(&[7u8; 32]))
    }

    #[test]
    fn every_algorithm_signs_and_verifies() {
        let backend = backend();
        for algorithm in [
            KeyAlgorithm::P256,
            KeyAlgorithm::P384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let (public, material) = backend.generate("k1", algorithm).unwrap();
            let key = backend.load("k1", algorithm, &material).unwrap();
            let sig = key.sign(b"hello").unwrap();
            assert!(public.verify(b"hello", &sig), "{algorithm}");
            assert!(!public.verify(b"hellO", &sig), "{algorithm}");
        }
    }

    #[test]
    fn sealed_keys_are_bound_to_their_id_and_kek() {
        let backend = backend();
        let (_, material) = backend.generate("k1", KeyAlgorithm::P256).unwrap();
        assert!(backend.load("k2", KeyAlgorithm::P256, &material).is_err());
        let other = SoftwareBackend::new(Kek::from_bytes(&[8u8; 32]));
        assert!(matches!(
            other.load("k1", KeyAlgorithm::P256, &material),
            Err(CustodyError::CorruptKey(_))
        ));
    }

    #[test]
    fn spki_and_jwk_have_the_expected_shape() {
        let backend = backend();
        let (public, _) = backend.generate("k", KeyAlgorithm::P256).unwrap();
        let spki = public.spki_der();
        assert_eq!(spki.len(), 91, "P-256 SPKI is 91 bytes");
        let jwk = public.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        let (rsa, _) = backend.generate("r", KeyAlgorithm::Rsa2048).unwrap();
        let jwk = rsa.jwk();
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
    }

    #[test]
    fn ecdsa_der_signatures_parse_as_two_integers() {
        let backend = backend();
        let (_, material) = backend.generate("k", KeyAlgorithm::P256).unwrap();
        let key = backend.load("k", KeyAlgorithm::P256, &material).unwrap();
        let handle = KeyHandle {
            id: "k".into(),
            public: PublicKey::new(KeyAlgorithm::P256, vec![]),
            key,
        };
        let sig = handle.sign_der(b"m").unwrap();
        let (body, rest) = der::read_tlv(&sig, 0x30).unwrap();
        assert!(rest.is_empty());
        let (_, rest) = der::read_tlv(body, 0x02).unwrap();
        let (_, rest) = der::read_tlv(rest, 0x02).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn sealed_data_opens_only_in_its_context_and_never_as_a_key() {
        let backend = backend();
        let sealed = backend.seal_data("totp:u1", b"seed").unwrap();
        assert_eq!(backend.open_data("totp:u1", &sealed).unwrap(), b"seed");
        assert!(backend.open_data("totp:u2", &sealed).is_none());
        let (_, material) = backend.generate("k1", KeyAlgorithm::P256).unwrap();
        assert!(backend.open_data("k1", &material).is_none());
    }

    #[test]
    fn kek_text_must_be_32_bytes_of_base64() {
        assert!(Kek::parse(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(matches!(
            Kek::parse("not base64!"),
            Err(CustodyError::MalformedKek(_))
        ));
        assert!(matches!(
            Kek::parse(&STANDARD.encode([1u8; 16])),
            Err(CustodyError::MalformedKek(_))
        ));
    }
}
