//! OCSP requests (RFC 6960 §4.1) as the responder receives them, by POST or decoded from GET.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kizuna_ocsp::codec::parse_request(data);
});
