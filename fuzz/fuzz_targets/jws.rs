//! Compact JWS/JWT (client assertions, upstream ID tokens, logout tokens, request objects):
//! parsed, its claims read, and verified against a fixed key set and a fixed HMAC key. The
//! corpus seeds are signed with the private halves of these keys, so the fuzzer starts from
//! tokens that verify.
#![no_main]

use std::sync::LazyLock;

use kizuna_core::jose::Jws;
use libfuzzer_sys::fuzz_target;

/// Public keys (P-256, P-384, Ed25519, RSA-2048) of the seeds in corpus/jws.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"Z0tB0asAzFhuDXo3vtT1ANW2kHlYoRa3cfAvTxqScOY","y":"7pxglE5Nlg-ItK28R5gxcUhKaueazT6fSgAZhjrtCrI","kid":"ec","use":"sig"},{"kty":"EC","crv":"P-384","x":"Ki_EBUPfCeEenRR_96FIdjunbKkFbl1A7M4APHFPLgxPQ98GlVhZ5z2opF2lT6z3","y":"8q0liB9Aj0kZWouOeFEuM6QOTTHqZptuMpmaPS8DL9SFUDEreb-NhS2kOoaJ5_5p","kid":"ec384","use":"sig"},{"kty":"OKP","crv":"Ed25519","x":"05qskDPqLIa2c3sARgcXBE8MQ8idgOFoL5_7FP0xbJE","kid":"ed","use":"sig"},{"kty":"RSA","n":"q9zx8Hme-Bb0oItF77JEmApz45JUkzkgzudg48W9059qJKjOmm8BTsx0AA-u6ajDElgQCu-2KKncQOQxd6Az5JWHTNv-ngxecIdR45pnoQMAs4V0Qb_32CzIJXNX27wpYfcQJN_lznc4vFlLPZhXtmRe1UVXnEbrMdjWCCh_og6n4fHiWIPqX1tP40YhoTJIy34ME4lvB2CFAp2ZVe84V1smqQR2Z2UAe6wi2SjNh34-X4l8Fcwsm16IMfAgh8GFhcgsjpk2dFuwJ3u7Soty0Fcd7Rdq82LhU2h7ZDYRANCI080BjEKOeaQQ_mdKijriI2NEe2cCFNdMz-jdR2UsNw","e":"AQAB","kid":"rsa","use":"sig"}]}"#;
const HMAC_KEY: &[u8] = b"fuzzing-hmac-key";
const ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "RS256", "PS256"];

static SET: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_json::from_str(JWKS).expect("the fixed key set is JSON"));

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jws) = Jws::parse(token) else {
        return;
    };
    let _ = jws.claims::<serde_json::Value>();
    let _ = jws.verify_with_set(&SET, ALGORITHMS);
    if let Some(keys) = SET["keys"].as_array() {
        for key in keys {
            let _ = jws.verify(key, ALGORITHMS);
        }
    }
    let _ = jws.verify_hmac(HMAC_KEY);
});
