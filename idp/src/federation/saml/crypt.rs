//! Encrypted assertions (SAML core §2.3.4, XML Encryption 1.1): the content key comes in
//! an `EncryptedKey` under RSA-OAEP to the SP's encryption key (never RSA PKCS#1 v1.5,
//! whose padding oracle gives the key away), and the assertion under AES-CBC or AES-GCM.
//! Every cryptographic failure answers the same, so no oracle is offered.

use aes::cipher::consts::U16;
use aes::cipher::{BlockCipherDecrypt, BlockModeDecrypt as _, KeyInit, KeyIvInit as _};
use ring::aead;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::{Oaep, RsaPrivateKey};
use sha2::digest::DynDigest;
use uppsala::{Document, NodeId};

use super::error::SamlError;
use super::xml::{self, DSIG, XMLENC, XMLENC11};

const FAILED: SamlError = SamlError::Decryption("the ciphertext does not decrypt with our key");

/// Decrypts the `EncryptedData` inside `encrypted_assertion` and returns the plaintext
/// (the `Assertion` element's text), not yet parsed.
pub(super) fn decrypt(
    doc: &Document,
    encrypted_assertion: NodeId,
    key_pkcs8: &[u8],
) -> Result<Vec<u8>, SamlError> {
    let data = xml::child(doc, encrypted_assertion, XMLENC, "EncryptedData")
        .ok_or(SamlError::Decryption("no EncryptedData"))?;
    if let Some(kind) = xml::attr(doc, data, "Type")
        && kind != "http://www.w3.org/2001/04/xmlenc#Element"
    {
        return Err(SamlError::Decryption("the EncryptedData is not an element"));
    }
    let content = Content::from_uri(method(doc, data)?)?;
    // The EncryptedKey sits in the EncryptedData's KeyInfo, or beside the EncryptedData.
    let encrypted_key = xml::child(doc, data, DSIG, "KeyInfo")
        .and_then(|info| xml::child(doc, info, XMLENC, "EncryptedKey"))
        .or_else(|| xml::child(doc, encrypted_assertion, XMLENC, "EncryptedKey"))
        .ok_or(SamlError::Decryption("no EncryptedKey"))?;

    let private = RsaPrivateKey::from_pkcs8_der(key_pkcs8)
        .map_err(|_| SamlError::Decryption("the SP's decryption key is not an RSA PKCS#8 key"))?;
    let padding = oaep(doc, encrypted_key)?;
    let wrapped = cipher_value(doc, encrypted_key)?;
    let content_key = private.decrypt(padding, &wrapped).map_err(|_| FAILED)?;
    content.open(&content_key, &cipher_value(doc, data)?)
}

/// The `Algorithm` of an element's `xenc:EncryptionMethod`.
fn method<'d>(doc: &'d Document, id: NodeId) -> Result<&'d str, SamlError> {
    xml::child(doc, id, XMLENC, "EncryptionMethod")
        .and_then(|m| xml::attr(doc, m, "Algorithm"))
        .ok_or(SamlError::Decryption("no EncryptionMethod"))
}

fn cipher_value(doc: &Document, id: NodeId) -> Result<Vec<u8>, SamlError> {
    xml::child(doc, id, XMLENC, "CipherData")
        .and_then(|d| xml::child(doc, d, XMLENC, "CipherValue"))
        .and_then(|v| xml::base64(doc, v))
        .ok_or(SamlError::Decryption("no base64 CipherValue"))
}

/// The OAEP parameters of an `EncryptedKey`: `xmlenc#rsa-oaep-mgf1p` (MGF1 with SHA-1)
/// or `xmlenc11#rsa-oaep` (MGF1 as its `MGF` says, SHA-1 by default); the digest as the
/// `DigestMethod` says, SHA-1 by default. `OAEPparams` (a label) is not accepted.
fn oaep(doc: &Document, encrypted_key: NodeId) -> Result<Oaep, SamlError> {
    let m = xml::child(doc, encrypted_key, XMLENC, "EncryptionMethod")
        .ok_or(SamlError::Decryption("no key EncryptionMethod"))?;
    let digest = match xml::child(doc, m, DSIG, "DigestMethod") {
        Some(d) => xml::attr(doc, d, "Algorithm").unwrap_or_default(),
        None => "http://www.w3.org/2000/09/xmldsig#sha1",
    };
    let mgf = match xml::attr(doc, m, "Algorithm").unwrap_or_default() {
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" => {
            "http://www.w3.org/2009/xmlenc11#mgf1sha1"
        }
        "http://www.w3.org/2009/xmlenc11#rsa-oaep" => xml::child(doc, m, XMLENC11, "MGF")
            .and_then(|g| xml::attr(doc, g, "Algorithm"))
            .unwrap_or("http://www.w3.org/2009/xmlenc11#mgf1sha1"),
        other => return Err(SamlError::Algorithm(format!("key transport {other}"))),
    };
    if xml::child(doc, m, XMLENC, "OAEPparams").is_some() {
        return Err(SamlError::Algorithm("OAEPparams".into()));
    }
    Ok(Oaep {
        digest: hash(
            digest
                .strip_prefix("http://www.w3.org/2000/09/xmldsig#")
                .or_else(|| {
                    digest
                        .strip_prefix("http://www.w3.org/2001/04/xmlenc#")
                        .or_else(|| digest.strip_prefix("http://www.w3.org/2001/04/xmldsig-more#"))
                }),
        )
        .ok_or_else(|| SamlError::Algorithm(format!("OAEP digest {digest}")))?,
        mgf_digest: hash(mgf.strip_prefix("http://www.w3.org/2009/xmlenc11#mgf1"))
            .ok_or_else(|| SamlError::Algorithm(format!("OAEP mask generation {mgf}")))?,
        label: None,
    })
}

fn hash(name: Option<&str>) -> Option<Box<dyn DynDigest + Send + Sync>> {
    Some(match name? {
        "sha1" => Box::new(sha1::Sha1::default()),
        "sha256" => Box::new(sha2::Sha256::default()),
        "sha384" => Box::new(sha2::Sha384::default()),
        "sha512" => Box::new(sha2::Sha512::default()),
        _ => return None,
    })
}

/// A content-encryption algorithm on the allow list.
#[derive(Debug, Clone, Copy)]
enum Content {
    Aes128Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes256Gcm,
}

impl Content {
    fn from_uri(uri: &str) -> Result<Content, SamlError> {
        Ok(match uri {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Content::Aes128Cbc,
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Content::Aes256Cbc,
            "http://www.w3.org/2009/xmlenc11#aes128-gcm" => Content::Aes128Gcm,
            "http://www.w3.org/2009/xmlenc11#aes256-gcm" => Content::Aes256Gcm,
            other => return Err(SamlError::Algorithm(format!("content encryption {other}"))),
        })
    }

    /// Decrypts `IV || ciphertext` (CBC, ISO 10126 padding) or `IV || ciphertext || tag`
    /// (GCM, 96-bit IV).
    fn open(self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, SamlError> {
        match self {
            Content::Aes128Cbc => cbc::<aes::Aes128>(key, value),
            Content::Aes256Cbc => cbc::<aes::Aes256>(key, value),
            Content::Aes128Gcm => gcm(&aead::AES_128_GCM, key, value),
            Content::Aes256Gcm => gcm(&aead::AES_256_GCM, key, value),
        }
    }
}

fn cbc<C>(key: &[u8], value: &[u8]) -> Result<Vec<u8>, SamlError>
where
    C: BlockCipherDecrypt<BlockSize = U16> + KeyInit,
{
    const BLOCK: usize = 16;
    if value.len() < 2 * BLOCK || !value.len().is_multiple_of(BLOCK) {
        return Err(FAILED);
    }
    let (iv, body) = value.split_at(BLOCK);
    let mut decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| FAILED)?;
    let mut plain = body.to_vec();
    for chunk in plain.chunks_exact_mut(BLOCK) {
        let block: &mut aes::Block = chunk.try_into().map_err(|_| FAILED)?;
        decryptor.decrypt_block(block);
    }
    // ISO 10126: the last byte counts the padding bytes; the others are arbitrary.
    let pad = usize::from(*plain.last().ok_or(FAILED)?);
    if pad == 0 || pad > BLOCK {
        return Err(FAILED);
    }
    plain.truncate(plain.len() - pad);
    Ok(plain)
}

fn gcm(alg: &'static aead::Algorithm, key: &[u8], value: &[u8]) -> Result<Vec<u8>, SamlError> {
    if value.len() < aead::NONCE_LEN + alg.tag_len() {
        return Err(FAILED);
    }
    let (nonce, sealed) = value.split_at(aead::NONCE_LEN);
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| FAILED)?;
    let key = aead::UnboundKey::new(alg, key).map_err(|_| FAILED)?;
    let mut in_out = sealed.to_vec();
    let plain = aead::LessSafeKey::new(key)
        .open_in_place(nonce, aead::Aad::empty(), &mut in_out)
        .map_err(|_| FAILED)?;
    Ok(plain.to_vec())
}
