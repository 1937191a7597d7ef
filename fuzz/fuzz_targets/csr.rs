//! PKCS#10 requests as the issuance API, EST and ACME finalization receive them: PEM, DER or
//! base64 DER, every key type allowed, then the subject attributes enrollment reads.
#![no_main]

use kizuna_ca::csr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = csr::parse(data, |_| Ok(())) {
        let _ = csr::attribute(&request.subject, csr::SERIAL_NUMBER);
        let _ = csr::attribute(&request.subject, csr::CN);
    }
});
