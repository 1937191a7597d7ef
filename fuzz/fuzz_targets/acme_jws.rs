//! ACME request bodies (RFC 8555 §6.2): the flattened JWS every POST carries, then what the
//! endpoints read before touching the database: the payload as JSON, the embedded account
//! key (`jwk`) parsed, thumbprinted and used to verify the request.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The algorithms ACME accounts may sign with (as in kizuna_ca's acme::jws).
const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];

fuzz_target!(|data: &[u8]| {
    let Ok(jws) = kizuna_ca::fuzzing::acme_jws(data) else {
        return;
    };
    let _ = jws.claims::<serde_json::Value>();
    if let Some(jwk) = &jws.header.jwk {
        let _ = kizuna_core::jose::thumbprint(jwk);
        let _ = jws.verify(jwk, ALGORITHMS);
    }
});
