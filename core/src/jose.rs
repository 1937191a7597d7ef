//! JOSE (RFC 7515 JWS compact serialization, RFC 7517 JWK, RFC 7518 algorithms) over ring:
//! signing through key custody, and verifying with keys from a JWK or JWK Set. `alg: none`
//! and algorithms that do not match the key are always refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::custody::{CustodyError, KeyHandle};

/// Tokens larger than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoseError {
    #[error("the token is not a compact JWS")]
    Malformed,
    #[error("the token is too large")]
    TooLarge,
    #[error("the algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("no usable key for this token")]
    NoKey,
    #[error("the key is not a usable public JWK: {0}")]
    BadKey(&'static str),
    #[error("the signature does not verify")]
    BadSignature,
}

/// The protected header fields Kizuna reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// ACME carries the account key in the header (RFC 8555 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    pub header: Header,
    pub payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn unb64(text: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JoseError::Malformed)
}

/// Signs `claims` as a compact JWS with a custody key.
pub fn sign(
    key: &KeyHandle,
    kid: &str,
    typ: Option<&str>,
    claims: &impl Serialize,
) -> Result<String, CustodyError> {
    let header = Header {
        alg: key.algorithm().jws_alg().to_string(),
        kid: Some(kid.to_string()),
        typ: typ.map(str::to_string),
        ..Header::default()
    };
    // Serializing these plain structures cannot fail.
    let header = serde_json::to_vec(&header).expect("header serializes");
    let payload = serde_json::to_vec(claims).map_err(|_| CustodyError::SignFailed)?;
    let signing_input = format!("{}.{}", b64(&header), b64(&payload));
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

impl Jws {
    pub fn parse(token: &str) -> Result<Jws, JoseError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JoseError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::Malformed);
        };
        let header: Header =
            serde_json::from_slice(&unb64(h)?).map_err(|_| JoseError::Malformed)?;
        Ok(Jws {
            header,
            payload: unb64(p)?,
            signing_input: format!("{h}.{p}"),
            signature: unb64(s)?,
        })
    }

    /// Verifies with one public JWK, accepting only the listed algorithms.
    pub fn verify(&self, jwk: &serde_json::Value, allowed: &[&str]) -> Result<(), JoseError> {
        let alg = self.header.alg.as_str();
        if alg.eq_ignore_ascii_case("none") || !allowed.contains(&alg) {
            return Err(JoseError::AlgorithmNotAllowed(alg.to_string()));
        }
        let key = PublicJwk::parse(jwk)?;
        key.verify(alg, self.signing_input.as_bytes(), &self.signature)
    }

    /// Verifies with the key of a JWK Set that matches the header's `kid` (or, with no `kid`,
    /// the only key that fits the algorithm).
    pub fn verify_with_set(
        &self,
        set: &serde_json::Value,
        allowed: &[&str],
    ) -> Result<(), JoseError> {
        let keys = set["keys"].as_array().ok_or(JoseError::NoKey)?;
        let candidates: Vec<&serde_json::Value> = keys
            .iter()
            .filter(|k| match &self.header.kid {
                Some(kid) => k["kid"].as_str() == Some(kid.as_str()),
                None => true,
            })
            .filter(|k| k["use"].as_str().is_none_or(|u| u == "sig"))
            .filter(|k| PublicJwk::parse(k).is_ok_and(|p| p.fits(&self.header.alg)))
            .collect();
        match candidates.as_slice() {
            [one] => self.verify(one, allowed),
            _ => Err(JoseError::NoKey),
        }
    }

    /// Verifies a MAC with a shared key (HS256/HS384/HS512), as ACME external account
    /// binding uses (RFC 8555 §7.3.4).
    pub fn verify_hmac(&self, key: &[u8]) -> Result<(), JoseError> {
        let algorithm = match self.header.alg.as_str() {
            "HS256" => ring::hmac::HMAC_SHA256,
            "HS384" => ring::hmac::HMAC_SHA384,
            "HS512" => ring::hmac::HMAC_SHA512,
            other => return Err(JoseError::AlgorithmNotAllowed(other.to_string())),
        };
        ring::hmac::verify(
            &ring::hmac::Key::new(algorithm, key),
            self.signing_input.as_bytes(),
            &self.signature,
        )
        .map_err(|_| JoseError::BadSignature)
    }

    /// The payload as JSON claims.
    pub fn claims<T: for<'de> Deserialize<'de>>(&self) -> Result<T, JoseError> {
        serde_json::from_slice(&self.payload).map_err(|_| JoseError::Malformed)
    }
}

/// A public key from a JWK, in the form ring verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    Ec { curve: &'static str, point: Vec<u8> },
    Ed25519(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicJwk {
    pub fn parse(jwk: &serde_json::Value) -> Result<PublicJwk, JoseError> {
        if jwk.get("d").is_some() {
            return Err(JoseError::BadKey("it contains a private key"));
        }
        let field = |name: &'static str| -> Result<Vec<u8>, JoseError> {
            jwk[name]
                .as_str()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or(JoseError::BadKey(name))
        };
        match jwk["kty"].as_str() {
            Some("EC") => {
                let (curve, len) = match jwk["crv"].as_str() {
                    Some("P-256") => ("P-256", 32),
                    Some("P-384") => ("P-384", 48),
                    _ => return Err(JoseError::BadKey("unsupported curve")),
                };
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != len || y.len() != len {
                    return Err(JoseError::BadKey("coordinate length"));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok(PublicJwk::Ec { curve, point })
            }
            Some("OKP") if jwk["crv"].as_str() == Some("Ed25519") => {
                let x = field("x")?;
                if x.len() != 32 {
                    return Err(JoseError::BadKey("Ed25519 key length"));
                }
                Ok(PublicJwk::Ed25519(x))
            }
            Some("RSA") => {
                let n = field("n")?;
                if n.len() < 256 {
                    return Err(JoseError::BadKey("RSA keys must be at least 2048 bits"));
                }
                Ok(PublicJwk::Rsa { n, e: field("e")? })
            }
            _ => Err(JoseError::BadKey("unsupported key type")),
        }
    }

    /// True when this key can verify `alg`.
    pub fn fits(&self, alg: &str) -> bool {
        matches!(
            (self, alg),
            (PublicJwk::Ec { curve: "P-256", .. }, "ES256")
                | (PublicJwk::Ec { curve: "P-384", .. }, "ES384")
                | (PublicJwk::Ed25519(_), "EdDSA")
                | (
                    PublicJwk::Rsa { .. },
                    "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
                )
        )
    }

    pub fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> Result<(), JoseError> {
        if !self.fits(alg) {
            return Err(JoseError::AlgorithmNotAllowed(alg.to_string()));
        }
        let ok = match self {
            PublicJwk::Ec { curve, point } => {
                let alg: &dyn signature::VerificationAlgorithm = if *curve == "P-256" {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                UnparsedPublicKey::new(alg, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicJwk::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            PublicJwk::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(JoseError::BadSignature)
        }
    }
}

impl PublicJwk {
    /// The key as custody describes public keys (for its SubjectPublicKeyInfo).
    pub fn public_key(&self) -> crate::custody::PublicKey {
        use crate::custody::{KeyAlgorithm, PublicKey};
        match self {
            PublicJwk::Ec { curve, point } => PublicKey::new(
                if *curve == "P-256" {
                    KeyAlgorithm::P256
                } else {
                    KeyAlgorithm::P384
                },
                point.clone(),
            ),
            PublicJwk::Ed25519(x) => PublicKey::new(KeyAlgorithm::Ed25519, x.clone()),
            PublicJwk::Rsa { n, e } => PublicKey::new(
                KeyAlgorithm::Rsa2048,
                crate::der::sequence(&[
                    &crate::der::unsigned_integer(n),
                    &crate::der::unsigned_integer(e),
                ]),
            ),
        }
    }
}

/// The RFC 7638 thumbprint of a public JWK.
pub fn thumbprint(jwk: &serde_json::Value) -> Result<String, JoseError> {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        _ => return Err(JoseError::BadKey("unsupported key type")),
    };
    let mut canonical = serde_json::Map::new();
    for m in members {
        canonical.insert(
            (*m).to_string(),
            jwk.get(*m)
                .cloned()
                .ok_or(JoseError::BadKey("missing member"))?,
        );
    }
    let text = serde_json::to_string(&canonical).map_err(|_| JoseError::Malformed)?;
    Ok(b64(&crate::secret::sha256(text.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::{Kek, KeyAlgorithm, KeyBackend, SoftwareBackend};
    use serde_json::json;

    fn handle(algorithm: KeyAlgorithm) -> KeyHandle {
        let backend = SoftwareBackend::new(Kek::from_bytes(&[1u8; 32]));
        let (public, material) = backend.generate("k", algorithm).unwrap();
        KeyHandle::new(
            "k".into(),
            public,
            backend.load("k", algorithm, &material).unwrap(),
        )
    }

    #[test]
    fn tokens_signed_by_custody_verify_with_their_jwk() {
        for algorithm in [
            KeyAlgorithm::P256,
            KeyAlgorithm::P384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = handle(algorithm);
            let token = sign(&key, "kid-1", Some("JWT"), &json!({"sub": "alice"})).unwrap();
            let jws = Jws::parse(&token).unwrap();
            assert_eq!(jws.header.kid.as_deref(), Some("kid-1"));
            let mut jwk = key.public_key().jwk();
            jws.verify(&jwk, &["ES256", "ES384", "EdDSA", "RS256"])
                .unwrap();
            jwk["kid"] = json!("kid-1");
            jws.verify_with_set(
                &json!({"keys": [jwk]}),
                &["ES256", "ES384", "EdDSA", "RS256"],
            )
            .unwrap();
            let claims: serde_json::Value = jws.claims().unwrap();
            assert_eq!(claims["sub"], "alice");
        }
    }

    #[test]
    fn alg_none_and_mismatched_algorithms_are_refused() {
        let key = handle(KeyAlgorithm::P256);
        let token = sign(&key, "k", None, &json!({"a": 1})).unwrap();
        let jwk = key.public_key().jwk();
        let (_, rest) = token.split_once('.').unwrap();
        let none = format!("{}.{rest}", b64(br#"{"alg":"none"}"#));
        assert!(matches!(
            Jws::parse(&none).unwrap().verify(&jwk, &["ES256", "none"]),
            Err(JoseError::AlgorithmNotAllowed(_))
        ));
        let rs = format!("{}.{rest}", b64(br#"{"alg":"RS256"}"#));
        assert!(Jws::parse(&rs).unwrap().verify(&jwk, &["RS256"]).is_err());
        assert!(matches!(
            Jws::parse(&token).unwrap().verify(&jwk, &["RS256"]),
            Err(JoseError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn altered_tokens_and_garbage_are_refused() {
        let key = handle(KeyAlgorithm::P256);
        let token = sign(&key, "k", None, &json!({"sub": "alice"})).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(br#"{"sub":"mallory"}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(
            Jws::parse(&forged)
                .unwrap()
                .verify(&key.public_key().jwk(), &["ES256"]),
            Err(JoseError::BadSignature)
        );
        assert_eq!(Jws::parse("a.b").unwrap_err(), JoseError::Malformed);
        assert_eq!(Jws::parse("!!.??.**").unwrap_err(), JoseError::Malformed);
        assert_eq!(
            Jws::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err(),
            JoseError::TooLarge
        );
    }

    #[test]
    fn private_and_weak_keys_are_not_accepted_as_public_jwks() {
        assert!(
            PublicJwk::parse(
                &json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"})
            )
            .is_err()
        );
        assert!(
            PublicJwk::parse(&json!({"kty": "RSA", "n": b64(&[1u8; 128]), "e": "AQAB"})).is_err()
        );
        assert!(PublicJwk::parse(&json!({"kty": "oct", "k": "AA"})).is_err());
    }

    #[test]
    fn hmac_tokens_verify_only_with_their_key() {
        let input = format!("{}.{}", b64(br#"{"alg":"HS256","kid":"k"}"#), b64(b"{}"));
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret"),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64(tag.as_ref()));
        let jws = Jws::parse(&token).unwrap();
        assert!(jws.verify_hmac(b"secret").is_ok());
        assert_eq!(jws.verify_hmac(b"other"), Err(JoseError::BadSignature));
    }

    #[test]
    fn jwks_convert_to_the_spki_custody_writes() {
        let key = handle(KeyAlgorithm::P256);
        let jwk = key.public_key().jwk();
        assert_eq!(
            PublicJwk::parse(&jwk).unwrap().public_key().spki_der(),
            key.public_key().spki_der()
        );
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
