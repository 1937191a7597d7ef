//! EST simpleenroll/simplereenroll bodies (RFC 7030 §4.2): the base64 decoding the endpoints
//! do (whitespace anywhere), then the PKCS#10 parse enrollment runs on the DER.
#![no_main]

use kizuna_ca::csr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = kizuna_ca::fuzzing::est_body(data) {
        let _ = csr::parse(&der, |_| Ok(()));
    }
});
