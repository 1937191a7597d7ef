//! The key-encryption key (KEK): AES-256-GCM sealing, where it comes from, its file, and the
//! keyring a process seals and opens with, checked against the database it was created for.
//!
//! A sealed value names the KEK that sealed it: `KZK\x01`, the KEK's 4-byte id, then
//! nonce ‖ ciphertext ‖ tag, the header bound as associated data. Values written before KEK
//! ids existed (nonce ‖ ciphertext ‖ tag alone) still open: the keyring tries its KEKs.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{CustodyError, meta_value};
use crate::db::Db;

/// The AES-256 key-encryption key, with its id.
pub struct Kek {
    key: LessSafeKey,
    id: KekId,
}

/// A short name for a KEK: the first 4 bytes of SHA-256 over a label and the key. Names which
/// KEK sealed a value and shows operators which KEK a file holds; says nothing usable about
/// the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId([u8; 4]);

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::secret::hex(&self.0))
    }
}

impl serde::Serialize for KekId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The first bytes of a value sealed with its KEK's id.
const TAG_MAGIC: &[u8; 4] = b"KZK\x01";
const HEADER_LEN: usize = 8;

const KEK_CHECK_AAD: &[u8] = b"kizuna-kek-check";
const KEK_CHECK_PLAINTEXT: &[u8] = b"kizuna-kek-check-v1";
/// The `meta` key of the KEK check value.
pub(super) const KEK_CHECK_KEY: &str = "kek_check";

/// The KEK id a sealed value names, if it was sealed with one.
pub fn sealed_kek_id(sealed: &[u8]) -> Option<KekId> {
    if sealed.len() < HEADER_LEN + NONCE_LEN || !sealed.starts_with(TAG_MAGIC) {
        return None;
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&sealed[TAG_MAGIC.len()..HEADER_LEN]);
    Some(KekId(id))
}

impl Kek {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // AES-256 takes any 32-byte key.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"kizuna-kek-id\0");
        ctx.update(bytes);
        let mut id = [0u8; 4];
        id.copy_from_slice(&ctx.finish().as_ref()[..4]);
        Kek {
            key: LessSafeKey::new(unbound),
            id: KekId(id),
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

    pub fn id(&self) -> KekId {
        self.id
    }

    /// Seals `plaintext` bound to `aad`, naming this KEK in the header.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut header = TAG_MAGIC.to_vec();
        header.extend_from_slice(&self.id.0);
        let sealed = self.seal_raw(&[header.as_slice(), aad].concat(), plaintext);
        [header, sealed].concat()
    }

    /// Opens a value this KEK sealed, with or without its id in front.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed_kek_id(sealed) == Some(self.id) {
            let (header, rest) = sealed.split_at(HEADER_LEN);
            if let Some(plain) = self.open_raw(&[header, aad].concat(), rest) {
                return Some(plain);
            }
            // A value from before KEK ids whose random nonce happens to start like a header.
        }
        self.open_raw(aad, sealed)
    }

    /// nonce ‖ ciphertext ‖ tag: the layout before KEK ids.
    fn seal_raw(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
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

    fn open_raw(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
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

/// The KEKs a process holds: the current one, which seals, and any open-only ones
/// (`kek_open_only_files`), which only open — what a replica needs while the KEK is rotated.
pub struct Keyring {
    current: Kek,
    open_only: Vec<Kek>,
    /// Whether new values name their KEK. Off while the database's check value is from before
    /// KEK ids, so replicas of the previous release (during a rolling upgrade) can still open
    /// what this one seals; `kizuna kek rotate` turns it on.
    tag: bool,
}

impl From<Kek> for Keyring {
    fn from(current: Kek) -> Self {
        Keyring {
            current,
            open_only: Vec::new(),
            tag: true,
        }
    }
}

impl Keyring {
    /// Adds KEKs that open but never seal (one with the current KEK's id is dropped).
    pub fn with_open_only(mut self, keks: Vec<Kek>) -> Self {
        for kek in keks {
            if !self.ids().contains(&kek.id) {
                self.open_only.push(kek);
            }
        }
        self
    }

    /// The KEK that seals.
    pub fn current(&self) -> &Kek {
        &self.current
    }

    /// Every KEK's id, the current one first.
    pub fn ids(&self) -> Vec<KekId> {
        self.keks().map(Kek::id).collect()
    }

    fn keks(&self) -> impl Iterator<Item = &Kek> {
        std::iter::once(&self.current).chain(&self.open_only)
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        if self.tag {
            self.current.seal(aad, plaintext)
        } else {
            self.current.seal_raw(aad, plaintext)
        }
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.open_with(aad, sealed).map(|(plain, _)| plain)
    }

    /// Opens a value and tells which KEK did: the one its header names, else (a value from
    /// before KEK ids) whichever opens it.
    pub fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Option<(Vec<u8>, KekId)> {
        if let Some(id) = sealed_kek_id(sealed)
            && let Some(kek) = self.keks().find(|k| k.id == id)
            && let Some(plain) = kek.open(aad, sealed)
        {
            return Some((plain, id));
        }
        self.keks()
            .find_map(|k| k.open_raw(aad, sealed).map(|plain| (plain, k.id)))
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
pub async fn open_kek(db: &Db, source: &KekSource) -> Result<Keyring, CustodyError> {
    open_keyring(db, source, &[]).await
}

/// [`open_kek`] with open-only KEKs (`kek_open_only_files`, during a rotation): the check
/// value must open with one of the keyring's KEKs.
pub async fn open_keyring(
    db: &Db,
    source: &KekSource,
    open_only: &[PathBuf],
) -> Result<Keyring, CustodyError> {
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
                let kek = write_new_kek_file(path)?;
                tracing::info!(path = %path.display(), kek_id = %kek.id(), "created the key-encryption key file; back it up: without it the keys in the database cannot be used");
                kek
            }
        }
    };
    let others = open_only
        .iter()
        .map(|path| read_kek_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut keyring = Keyring::from(kek).with_open_only(others);
    let check = match check {
        Some(check) => check,
        None => {
            let sealed = STANDARD.encode(keyring.seal(KEK_CHECK_AAD, KEK_CHECK_PLAINTEXT));
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
    let opened_by = match keyring.open_with(KEK_CHECK_AAD, &sealed) {
        Some((plain, id)) if crate::secret::constant_time_eq(&plain, KEK_CHECK_PLAINTEXT) => id,
        _ => return Err(CustodyError::WrongKek),
    };
    keyring.tag = sealed_kek_id(&sealed).is_some();
    let current = keyring.current.id;
    if opened_by != current {
        tracing::info!(database_kek = %opened_by, sealing_kek = %current, "the database is sealed under an open-only KEK; new values are sealed under the current one (finish the rotation with kizuna kek rotate)");
    } else if !keyring.open_only.is_empty() {
        tracing::info!(sealing_kek = %current, open_only = ?keyring.ids()[1..].iter().map(ToString::to_string).collect::<Vec<_>>(), "open-only key-encryption keys configured (a KEK rotation)");
    }
    Ok(keyring)
}

/// True when the database has a KEK check value (something was sealed in it).
pub async fn has_kek_check(db: &Db) -> Result<bool, CustodyError> {
    Ok(meta_value(db, KEK_CHECK_KEY).await?.is_some())
}

/// True when `kek` opens the database's check value (it is the KEK the database is under).
pub async fn kek_opens_check(db: &Db, kek: &Kek) -> Result<bool, CustodyError> {
    let Some(check) = meta_value(db, KEK_CHECK_KEY).await? else {
        return Ok(false);
    };
    let sealed = STANDARD.decode(check).unwrap_or_default();
    Ok(kek
        .open(KEK_CHECK_AAD, &sealed)
        .is_some_and(|plain| crate::secret::constant_time_eq(&plain, KEK_CHECK_PLAINTEXT)))
}

/// The associated data of the check value (re-sealed by a rotation).
pub(super) fn check_aad() -> &'static [u8] {
    KEK_CHECK_AAD
}

/// Reads a KEK file (32 bytes of base64); warns when others may read it.
pub fn read_kek_file(path: &Path) -> Result<Kek, CustodyError> {
    if !path.exists() {
        return Err(CustodyError::KekFileMissing(path.to_path_buf()));
    }
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
    Kek::parse(&text).map_err(|e| match e {
        CustodyError::MalformedKek(why) => {
            CustodyError::MalformedKek(format!("{}: {why}", path.display()))
        }
        other => other,
    })
}

/// A fresh KEK: 32 random bytes, and their text form (base64) for a file or a secret store.
pub fn new_kek() -> (Kek, String) {
    let bytes = crate::secret::random_bytes::<32>();
    (Kek::from_bytes(&bytes), STANDARD.encode(bytes))
}

/// Writes a fresh KEK to a new file, mode 0600; refuses an existing file.
pub fn write_new_kek_file(path: &Path) -> Result<Kek, CustodyError> {
    use std::io::Write;
    let (kek, text) = new_kek();
    let io_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CustodyError::KekFileExists(path.to_path_buf())
        } else {
            CustodyError::KekIo {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err)?;
    writeln!(file, "{text}").map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(kek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_name_their_kek_and_open_with_it_alone() {
        let a = Kek::from_bytes(&[1u8; 32]);
        let b = Kek::from_bytes(&[2u8; 32]);
        assert_ne!(a.id(), b.id());
        let sealed = a.seal(b"ctx", b"secret");
        assert_eq!(sealed_kek_id(&sealed), Some(a.id()));
        assert_eq!(a.open(b"ctx", &sealed).unwrap(), b"secret");
        assert!(a.open(b"other", &sealed).is_none());
        assert!(b.open(b"ctx", &sealed).is_none());
        let mut forged = sealed.clone();
        forged[4..8].copy_from_slice(&b.id().0);
        assert!(Keyring::from(b).open(b"ctx", &forged).is_none());
    }

    #[test]
    fn a_keyring_opens_values_of_every_kek_it_holds_and_seals_with_the_current() {
        let ring = Keyring::from(Kek::from_bytes(&[2u8; 32]))
            .with_open_only(vec![Kek::from_bytes(&[1u8; 32])]);
        let old = Kek::from_bytes(&[1u8; 32]);
        let tagged = old.seal(b"ctx", b"one");
        let legacy = old.seal_raw(b"ctx", b"two");
        assert_eq!(sealed_kek_id(&legacy), None);
        assert_eq!(
            ring.open_with(b"ctx", &tagged),
            Some((b"one".to_vec(), old.id()))
        );
        assert_eq!(
            ring.open_with(b"ctx", &legacy),
            Some((b"two".to_vec(), old.id()))
        );
        let fresh = ring.seal(b"ctx", b"three");
        assert_eq!(sealed_kek_id(&fresh), Some(ring.current().id()));
        assert!(old.open(b"ctx", &fresh).is_none());
        assert!(Keyring::from(old).open(b"ctx", &fresh).is_none());
    }

    #[test]
    fn values_from_before_kek_ids_open_even_when_their_nonce_looks_like_a_header() {
        let kek = Kek::from_bytes(&[3u8; 32]);
        // A legacy value whose random nonce starts with the magic and this KEK's id.
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(TAG_MAGIC);
        nonce[4..8].copy_from_slice(&kek.id().0);
        let mut body = b"v".to_vec();
        kek.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"ctx"),
                &mut body,
            )
            .unwrap();
        let legacy = [nonce.to_vec(), body].concat();
        assert_eq!(sealed_kek_id(&legacy), Some(kek.id()));
        assert_eq!(kek.open(b"ctx", &legacy).unwrap(), b"v");
        assert_eq!(Keyring::from(kek).open(b"ctx", &legacy).unwrap(), b"v");
    }

    #[test]
    fn kek_ids_are_stable_and_print_as_hex() {
        let id = Kek::from_bytes(&[0u8; 32]).id();
        assert_eq!(id, Kek::from_bytes(&[0u8; 32]).id());
        assert_eq!(id.to_string().len(), 8);
    }
}
