//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, as
//! every authenticator app expects). The seed is sealed by key custody; a code is accepted
//! one step either side of now, and never twice: the last step used is stored and only a
//! later one passes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::custody::{CustodyError, Rotation};
use kizuna_core::db::AnyConnection;
use kizuna_core::secret;

use super::{MfaError, audit_failure, check_code_budget, commit_change, notify, spend_code_budget};
use crate::Idp;
use crate::store::mfa as store;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps accepted before and after the current one (clock drift).
pub const SKEW_STEPS: i64 = 1;

/// The HOTP value (RFC 4226 §5.3) of `counter`, as `DIGITS` digits.
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    binary % 10u32.pow(DIGITS)
}

/// The time step of a Unix time.
pub fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// A code as the person types it: six digits, spaces ignored.
pub fn parse_code(text: &str) -> Option<u32> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The step a code belongs to, among the accepted steps after `last_step`; compared in
/// constant time.
pub fn matching_step(secret: &[u8], code: u32, now: i64, last_step: i64) -> Option<i64> {
    let current = step_at(now);
    let mut found = None;
    for step in (current - SKEW_STEPS)..=(current + SKEW_STEPS) {
        let expected = hotp(secret, step as u64);
        let same = secret::constant_time_eq(&expected.to_be_bytes(), &code.to_be_bytes());
        if same && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as authenticator apps take seeds.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in bytes {
        buffer = (buffer << 8) | *b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Reads base32 as [`base32`] writes it (spaces, padding and case ignored), as a seed
/// typed into an authenticator app is read; `None` for other characters.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = ALPHABET.find(c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The `otpauth://` URI (Key Uri Format) an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// The URI as a QR code, an SVG `data:` URI (the page CSP allows `img-src data:`).
pub fn qr_data_uri(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(svg)
    ))
}

fn context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// Seals every stored seed again under the rotation's new KEK, in the caller's transaction
/// (`kizuna kek rotate`).
pub(crate) async fn reseal(
    conn: &mut AnyConnection,
    rotation: &mut Rotation,
) -> Result<(), CustodyError> {
    for (user_id, sealed) in store::sealed_totp_seeds(conn).await? {
        let what = format!("the TOTP seed of user {user_id}");
        if let Some(next) = rotation.reseal_data("totp_seed", &context(&user_id), &sealed, &what)? {
            let updated = store::reseal_totp_seed(conn, &user_id, &sealed, &next.sealed).await?;
            next.stored(updated);
        }
    }
    Ok(())
}

/// What the enrollment page shows: the seed in text and as a QR code.
pub struct Enrollment {
    pub secret_text: String,
    pub uri: String,
    pub qr: Option<String>,
}

fn enrollment(idp: &Idp, account: &str, seed: &[u8]) -> Enrollment {
    let uri = otpauth_uri(&idp.mfa.totp_issuer, account, seed);
    Enrollment {
        secret_text: base32(seed)
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        qr: qr_data_uri(&uri),
        uri,
    }
}

/// Starts (or shows again) an unconfirmed enrollment: a new seed, sealed and stored.
pub async fn begin(idp: &Idp, user_id: &str, account: &str) -> Result<Enrollment, MfaError> {
    match store::totp(&idp.core.db, user_id).await? {
        Some((_, true, _)) => Err(MfaError::AlreadyEnrolled("an authenticator app")),
        Some((sealed, false, _)) => {
            let seed = idp.core.custody.open(&context(user_id), &sealed)?;
            Ok(enrollment(idp, account, &seed))
        }
        None => {
            let seed = secret::random_bytes::<20>();
            let sealed = idp.core.custody.seal(&context(user_id), &seed)?;
            store::insert_totp(
                &idp.core.db,
                user_id,
                &sealed,
                kizuna_core::time::now_unix(),
            )
            .await?;
            Box::pin(begin(idp, user_id, account)).await
        }
    }
}

/// Checks a code against the account's seed (`confirmed` or pending), throttled; on success
/// marks its step used. Returns whether the seed was already confirmed.
async fn check(idp: &Idp, user_id: &str, code_text: &str, now: i64) -> Result<bool, MfaError> {
    check_code_budget(idp, user_id).await?;
    let (sealed, confirmed, last_step) = store::totp(&idp.core.db, user_id)
        .await?
        .ok_or(MfaError::NotEnrolled)?;
    let seed = idp.core.custody.open(&context(user_id), &sealed)?;
    let code = parse_code(code_text);
    let Some(step) = code.and_then(|c| matching_step(&seed, c, now, last_step)) else {
        // A code already used in its window fails like a wrong one, but is audited as a replay.
        let replay = code.is_some_and(|c| matching_step(&seed, c, now, i64::MIN).is_some());
        spend_code_budget(idp, user_id).await;
        audit_failure(
            idp,
            user_id,
            "mfa.totp.verify",
            if replay {
                "code already used"
            } else {
                "wrong code"
            },
            Outcome::Failure,
        )
        .await;
        return Err(MfaError::WrongCode);
    };
    // Only one request can move last_step past this step: a concurrent replay loses here.
    if !store::use_totp_step(&idp.core.db, user_id, step, now).await? {
        audit_failure(
            idp,
            user_id,
            "mfa.totp.verify",
            "code already used",
            Outcome::Failure,
        )
        .await;
        return Err(MfaError::WrongCode);
    }
    Ok(confirmed)
}

/// Verifies a sign-in code for an enrolled account.
pub async fn verify(idp: &Idp, user_id: &str, code: &str) -> Result<(), MfaError> {
    verify_at(idp, user_id, code, kizuna_core::time::now_unix()).await
}

/// [`verify`] at a given time (for tests of the window rules).
pub async fn verify_at(idp: &Idp, user_id: &str, code: &str, now: i64) -> Result<(), MfaError> {
    let mut conn = idp.core.db.conn().await?;
    let enrolled = store::has_confirmed_totp(&mut conn, user_id).await?;
    drop(conn);
    if !enrolled {
        return Err(MfaError::NotEnrolled);
    }
    check(idp, user_id, code, now).await.map(|_| ())
}

/// Confirms a pending enrollment with its first code; audited, and the person notified.
pub async fn confirm(idp: &Idp, user_id: &str, code: &str) -> Result<(), MfaError> {
    if check(idp, user_id, code, kizuna_core::time::now_unix()).await? {
        return Err(MfaError::AlreadyEnrolled("an authenticator app"));
    }
    let mut tx = idp.core.db.begin().await?;
    store::confirm_totp(tx.conn(), user_id).await?;
    let event = AuditEvent::new(
        Actor::user(user_id),
        "mfa.totp.enroll",
        format!("user:{user_id}"),
    );
    commit_change(tx, event, user_id, notify::Change::TotpAdded).await
}

/// Removes the authenticator app (confirmed or pending); audited and notified.
pub async fn remove(idp: &Idp, user_id: &str) -> Result<bool, MfaError> {
    let mut tx = idp.core.db.begin().await?;
    let removed = store::delete_totp(tx.conn(), user_id).await? > 0;
    if removed {
        let event = AuditEvent::new(
            Actor::user(user_id),
            "mfa.totp.remove",
            format!("user:{user_id}"),
        );
        commit_change(tx, event, user_id, notify::Change::TotpRemoved).await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_test_vectors() {
        // RFC 6238 Appendix B (8 digits there; an authenticator app shows the last 6).
        for (time, eight) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                hotp(RFC_SEED, step_at(time) as u64),
                eight % 1_000_000,
                "T={time}"
            );
        }
    }

    #[test]
    fn codes_are_accepted_one_step_either_side_and_only_after_the_last_used_step() {
        let now = 1_700_000_015;
        let step = step_at(now);
        let code = |s: i64| hotp(RFC_SEED, s as u64);
        assert_eq!(matching_step(RFC_SEED, code(step), now, 0), Some(step));
        assert_eq!(
            matching_step(RFC_SEED, code(step - 1), now, 0),
            Some(step - 1)
        );
        assert_eq!(
            matching_step(RFC_SEED, code(step + 1), now, 0),
            Some(step + 1)
        );
        assert_eq!(
            matching_step(RFC_SEED, code(step - 2), now, 0),
            None,
            "too old"
        );
        assert_eq!(
            matching_step(RFC_SEED, code(step + 2), now, 0),
            None,
            "too new"
        );
        // The previous step's code, once used, cannot be used again in its window.
        assert_eq!(matching_step(RFC_SEED, code(step - 1), now, step - 1), None);
        // Nor can an older code once a newer one was used.
        assert_eq!(matching_step(RFC_SEED, code(step - 1), now, step), None);
    }

    #[test]
    fn codes_are_six_digits() {
        assert_eq!(parse_code("123 456"), Some(123456));
        assert_eq!(parse_code("012345"), Some(12345));
        assert_eq!(parse_code("12345"), None);
        assert_eq!(parse_code("12345a"), None);
        assert_eq!(parse_code("1234567"), None);
    }

    #[test]
    fn base32_and_uri_follow_the_key_uri_format() {
        // RFC 4648 §10.
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(decode_base32("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(decode_base32("MY======").unwrap(), b"f");
        assert!(decode_base32("M1").is_none());
        let uri = otpauth_uri("Kizuna City", "taro@city.example", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/Kizuna%20City:taro%40city.example?secret=MZXW6YTBOI&issuer=Kizuna%20City&algorithm=SHA1&digits=6&period=30"
        );
        let qr = qr_data_uri(&uri).unwrap();
        assert!(qr.starts_with("data:image/svg+xml;base64,"));
    }
}
