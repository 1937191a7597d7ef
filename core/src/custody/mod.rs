//! Key custody: the only place private keys exist. Callers ask custody for a key by id and get
//! a [`KeyHandle`] that signs and publishes its public key; no caller ever sees key bytes.
//! Backends ([`KeyBackend`]) hold the keys: the software backend keeps them in the database
//! sealed with AES-256-GCM under the key-encryption key (KEK); an HSM backend keeps only a
//! handle there.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

use crate::db::{AnyConnection, Db};
use crate::der;

pub mod pkcs11;

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

    fn rsa_bits(self) -> Option<usize> {
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
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("key storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

// ---------------------------------------------------------------------------------------------
// Public keys

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
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
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

/// The AES-256 key-encryption key.
pub struct Kek {
    key: LessSafeKey,
}

const KEK_CHECK_AAD: &[u8] = b"kizuna-kek-check";
const KEK_CHECK_PLAINTEXT: &[u8] = b"kizuna-kek-check-v1";
/// The `meta` key of the KEK check value.
const KEK_CHECK_KEY: &str = "kek_check";

impl Kek {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // AES-256 takes any 32-byte key.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        Kek {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Parses the text form: 32 bytes in base64 (standard or URL-safe).
    pub fn parse(text: &str) -> Result<Self, CustodyError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| CustodyError::MalformedKek("not base64".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            CustodyError::MalformedKek(format!("{} bytes, expected 32", b.len()))
        })?;
        Ok(Kek::from_bytes(&bytes))
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = crate::secret::random_bytes::<NONCE_LEN>();
        let mut out = plaintext.to_vec();
        // Sealing in place only fails for inputs beyond AES-GCM's size limit (~64 GiB).
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut out,
            )
            .expect("plaintext within AES-GCM limits");
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&out);
        sealed
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Where the KEK comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// Given directly (environment variable or config), base64.
    Inline(String),
    /// A file; `explicit` when the operator named it (then it must exist).
    File { path: PathBuf, explicit: bool },
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

/// Opens the KEK and checks it against the database: creates the KEK file (0600) on a fresh
/// install, refuses a wrong or missing KEK on an existing one.
pub async fn open_kek(db: &Db, source: &KekSource) -> Result<Kek, CustodyError> {
    let check = meta_value(db, KEK_CHECK_KEY).await?;
    let kek = match source {
        KekSource::Inline(text) => Kek::parse(text)?,
        KekSource::File { path, explicit } => {
            if path.exists() {
                read_kek_file(path)?
            } else if *explicit {
                return Err(CustodyError::KekFileMissing(path.clone()));
            } else if check.is_some() {
                return Err(CustodyError::KekMissingForExistingData(path.clone()));
            } else {
                create_kek_file(path)?
            }
        }
    };
    let check = match check {
        Some(check) => check,
        None => {
            let sealed = STANDARD.encode(kek.seal(KEK_CHECK_AAD, KEK_CHECK_PLAINTEXT));
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(KEK_CHECK_KEY)
            .bind(sealed)
            .execute(db.pool())
            .await?;
            // Another replica may have initialized the database at the same moment with its
            // own KEK; only the one stored counts.
            meta_value(db, KEK_CHECK_KEY)
                .await?
                .ok_or(CustodyError::WrongKek)?
        }
    };
    let sealed = STANDARD.decode(check).map_err(|_| CustodyError::WrongKek)?;
    match kek.open(KEK_CHECK_AAD, &sealed) {
        Some(plain) if plain == KEK_CHECK_PLAINTEXT => Ok(kek),
        _ => Err(CustodyError::WrongKek),
    }
}

fn read_kek_file(path: &Path) -> Result<Kek, CustodyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the key-encryption key file is readable by other users; run chmod 600 on it"
                );
            }
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| CustodyError::KekIo {
        path: path.to_path_buf(),
        source,
    })?;
    Kek::parse(&text)
}

fn create_kek_file(path: &Path) -> Result<Kek, CustodyError> {
    use std::io::Write;
    let bytes = crate::secret::random_bytes::<32>();
    let io_err = |source| CustodyError::KekIo {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err)?;
    writeln!(file, "{}", STANDARD.encode(bytes)).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    tracing::info!(path = %path.display(), "created the key-encryption key file; back it up: without it the keys in the database cannot be used");
    Ok(Kek::from_bytes(&bytes))
}

/// Keys generated with ring (RSA with the `rsa` crate, then used through ring), stored in the
/// database sealed under the KEK with the key id and algorithm as associated data.
pub struct SoftwareBackend {
    kek: Kek,
    rng: SystemRandom,
}

impl SoftwareBackend {
    pub fn new(kek: Kek) -> Self {
        SoftwareBackend {
            kek,
            rng: SystemRandom::new(),
        }
    }

    fn aad(key_id: &str, algorithm: KeyAlgorithm) -> Vec<u8> {
        format!("kizuna-key:{key_id}:{algorithm}").into_bytes()
    }

    /// Data is bound to its context under a prefix keys never use, so sealed key material
    /// cannot be opened as data or the other way round.
    fn data_aad(context: &str) -> Vec<u8> {
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
            _ => {
                use rsa::pkcs8::EncodePrivateKey;
                let bits = algorithm.rsa_bits().unwrap_or(2048);
                let key = rsa::RsaPrivateKey::new(&mut RingRng(self.rng.clone()), bits)
                    .map_err(|e| generate_err(&e))?;
                key.to_pkcs8_der()
                    .map_err(|e| generate_err(&e))?
                    .as_bytes()
                    .to_vec()
            }
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
            .field("algorithm", &self.public.algorithm)
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
        self.public.algorithm
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
        match self.public.algorithm {
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
        Ok(match self.public.algorithm {
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
