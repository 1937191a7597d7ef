//! Public JWKs (client JWKS, upstream JWKS, ACME account keys): parsed, their RFC 7638
//! thumbprint taken, converted to the SubjectPublicKeyInfo custody writes, and used to verify.
#![no_main]

use kizuna_core::jose::{PublicJwk, thumbprint};
use libfuzzer_sys::fuzz_target;

const ALGORITHMS: &[&str] = &[
    "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = thumbprint(&value);
    let Ok(key) = PublicJwk::parse(&value) else {
        return;
    };
    let _ = key.public_key().spki_der();
    for alg in ALGORITHMS {
        let _ = key.verify(alg, b"message", &[0u8; 64]);
    }
});
