//! Encrypted assertions built here (xmlsec1 1.2 only does SHA-1 OAEP): OAEP with SHA-256,
//! the EncryptedKey beside the EncryptedData, and plaintexts that must be refused as if
//! they had come in the clear.

use aes::cipher::{BlockModeEncrypt as _, KeyIvInit as _};
use base64::Engine as _;
use ring::rand::SecureRandom as _;
use rsa::pkcs8::DecodePrivateKey as _;

use super::tests::*;
use super::*;

/// ring's system RNG for the `rsa` crate.
struct Rng(ring::rand::SystemRandom);

impl rsa::rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng {}

impl Rng {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        self.0.fill(&mut b).unwrap();
        b
    }
}

#[derive(Clone, Copy)]
enum Content {
    Aes256Cbc,
    Aes128Gcm,
}

/// `SIGNED_ASSERTION` with its Assertion replaced by `plaintext` encrypted to the SP's
/// key under RSA-OAEP (SHA-256, MGF1-SHA-256) and `content`.
fn encrypted(plaintext: &str, content: Content, key_beside_data: bool) -> String {
    let mut rng = Rng(ring::rand::SystemRandom::new());
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let (uri, value, content_key) = match content {
        Content::Aes256Cbc => {
            let key: [u8; 32] = rng.bytes();
            let iv: [u8; 16] = rng.bytes();
            let mut data = plaintext.as_bytes().to_vec();
            let pad = 16 - data.len() % 16;
            data.extend(std::iter::repeat_n(pad as u8, pad));
            let mut enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv).unwrap();
            for chunk in data.chunks_exact_mut(16) {
                enc.encrypt_block(chunk.try_into().unwrap());
            }
            (
                "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                [&iv[..], &data].concat(),
                key.to_vec(),
            )
        }
        Content::Aes128Gcm => {
            let key: [u8; 16] = rng.bytes();
            let nonce: [u8; 12] = rng.bytes();
            let sealing = ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &key).unwrap(),
            );
            let mut data = plaintext.as_bytes().to_vec();
            sealing
                .seal_in_place_append_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::empty(),
                    &mut data,
                )
                .unwrap();
            (
                "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                [&nonce[..], &data].concat(),
                key.to_vec(),
            )
        }
    };
    let public = rsa::RsaPrivateKey::from_pkcs8_der(SP_KEY)
        .unwrap()
        .to_public_key();
    let padding = rsa::Oaep::new_with_mgf_hash::<sha2::Sha256, sha2::Sha256>();
    let wrapped = public.encrypt(&mut rng, padding, &content_key).unwrap();
    let encrypted_key = format!(
        "<xenc:EncryptedKey xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\">\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\">\
         <ds:DigestMethod xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
         <xenc11:MGF xmlns:xenc11=\"http://www.w3.org/2009/xmlenc11#\" Algorithm=\"http://www.w3.org/2009/xmlenc11#mgf1sha256\"/>\
         </xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>",
        b64(&wrapped)
    );
    let (inside, beside) = if key_beside_data {
        (String::new(), encrypted_key)
    } else {
        (
            format!(
                "<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">{encrypted_key}</ds:KeyInfo>"
            ),
            String::new(),
        )
    };
    let element = format!(
        "<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" \
         Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><xenc:EncryptionMethod Algorithm=\"{uri}\"/>\
         {inside}<xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\
         </xenc:EncryptedData>{beside}</saml:EncryptedAssertion>",
        b64(&value)
    );
    SIGNED_ASSERTION.replace(signed_assertion_element(), &element)
}

#[test]
fn oaep_sha256_with_aes128_gcm_is_accepted() {
    let xml = encrypted(signed_assertion_element(), Content::Aes128Gcm, false);
    let a = verify(&xml).unwrap();
    assert!(a.encrypted);
    assert_eq!(a.name_id, "alice");
}

#[test]
fn oaep_sha256_with_aes256_cbc_and_the_key_beside_the_data_is_accepted() {
    let xml = encrypted(signed_assertion_element(), Content::Aes256Cbc, true);
    assert!(verify(&xml).unwrap().encrypted);
}

#[test]
fn a_decrypted_assertion_must_still_be_signed() {
    let signed = signed_assertion_element();
    let unsigned = signed.replace(cut(signed, "<ds:Signature", "</ds:Signature>"), "");
    let xml = encrypted(&unsigned, Content::Aes128Gcm, false);
    assert!(matches!(verify(&xml), Err(SamlError::Unsigned)));
}

#[test]
fn a_decrypted_assertion_that_was_tampered_before_encryption_fails_the_digest() {
    let tampered = signed_assertion_element().replace(">alice<", ">admin<");
    let xml = encrypted(&tampered, Content::Aes256Cbc, false);
    assert!(matches!(verify(&xml), Err(SamlError::Digest)));
}

#[test]
fn a_plaintext_with_two_assertions_is_refused() {
    let signed = signed_assertion_element();
    let two = format!("{}{signed}", evil_assertion("_evil"));
    let xml = encrypted(&two, Content::Aes128Gcm, false);
    assert!(matches!(verify(&xml), Err(SamlError::AssertionCount(2))));
}

#[test]
fn a_plaintext_with_a_dtd_or_a_processing_instruction_is_refused() {
    let signed = signed_assertion_element();
    let xml = encrypted(
        &format!("<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{signed}"),
        Content::Aes128Gcm,
        false,
    );
    assert!(matches!(verify(&xml), Err(SamlError::Dtd)));
    let xml = encrypted(&format!("<?pi x?>{signed}"), Content::Aes128Gcm, false);
    assert!(matches!(
        verify(&xml),
        Err(SamlError::ProcessingInstruction)
    ));
}

#[test]
fn a_plaintext_that_is_not_an_assertion_is_refused() {
    let xml = encrypted("<saml:Other/>", Content::Aes128Gcm, false);
    assert!(matches!(verify(&xml), Err(SamlError::AssertionCount(0))));
    // An encrypted assertion inside an encrypted assertion is not unwrapped twice.
    let xml = encrypted("<saml:EncryptedAssertion/>", Content::Aes128Gcm, false);
    refused(verify(&xml), "decryption");
    // Or that breaks out of its place in the document.
    let xml = encrypted(
        "</samlp:Response><samlp:Response>",
        Content::Aes128Gcm,
        false,
    );
    refused(verify(&xml), "not well-formed");
}
