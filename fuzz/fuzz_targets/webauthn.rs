//! Browser WebAuthn responses as Kizuna reads them before webauthn-rs checks them: the JSON of
//! a registration (account page) and of an assertion (second factor, passwordless sign-in).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = std::str::from_utf8(data) else {
        return;
    };
    let _ = kizuna_idp::fuzzing::webauthn_registration(response);
    if let Ok(assertion) = kizuna_idp::fuzzing::webauthn_assertion(response) {
        // What the sign-in looks up next: the credential id and the claimed user handle.
        let _ = (assertion.raw_id.len(), assertion.get_user_unique_id());
    }
});
