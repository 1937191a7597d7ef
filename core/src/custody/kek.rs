//! The key-encryption key (KEK): AES-256-GCM sealing, where it comes from, and its file,
//! checked against the database it was created for.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{CustodyError, meta_value};
use crate::db::Db;

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
