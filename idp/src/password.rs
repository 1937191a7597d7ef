//! Password hashing with argon2id at OWASP's recommended parameters (19 MiB, 2 passes,
//! 1 lane), stored as PHC strings. At most one hash per CPU runs at once, on the blocking
//! pool, each with a pooled hasher that keeps its 19 MiB work area: a sign-in storm queues
//! instead of growing memory.
//!
//! The implementation is `argon2-rust`, which picks its SIMD code at run time (AVX-512,
//! AVX2, SSE2, NEON): 1.6–1.7 times as fast here as the `argon2` crate (docs/performance.md),
//! which the tests keep as an independent check. Hashes made by either verify with the
//! other, and both match RFC 9106's test vector.

use std::sync::{Mutex, OnceLock};

use argon2_rust::params::{Memory, TagLen};
use argon2_rust::{Algorithm, Argon2, Hasher, Params, Version};
use tokio::sync::Semaphore;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must be at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("password hashing failed")]
    Hashing,
}

/// OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1; a 32-byte tag.
const PARAMS: Params = Params::builder()
    .memory(Memory::kib(19 * 1024))
    .passes(2)
    .lanes(1)
    .tag_len(TagLen::bytes(32))
    .build_or_panic();

/// What a stored value may ask for at most: more would let one value exhaust memory or time.
const CEILING_KIB: u32 = 256 * 1024;
const CEILING_PASSES: u32 = 16;
const CEILING_LANES: u32 = 4;

fn ours() -> Argon2 {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS)
}

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    })
}

/// Runs `work` on the blocking pool once a hashing slot is free, with a hasher at our
/// parameters whose work area is kept between hashes (at most one per slot stays allocated).
async fn in_slot<T: Send + 'static>(
    work: impl FnOnce(&mut Hasher) -> T + Send + 'static,
) -> Option<T> {
    static HASHERS: Mutex<Vec<Hasher>> = Mutex::new(Vec::new());
    let _slot = slots().acquire().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let mut hasher = HASHERS
            .lock()
            .ok()
            .and_then(|mut h| h.pop())
            .unwrap_or_else(|| ours().hasher());
        let done = work(&mut hasher);
        if let Ok(mut hashers) = HASHERS.lock() {
            hashers.push(hasher);
        }
        done
    })
    .await
    .ok()
}

/// Checks the length rules (NIST SP 800-63B: length, not composition).
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        Err(PasswordError::TooShort)
    } else if chars > MAX_LENGTH {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

/// Hashes a password that passed [`check_policy`]; returns the PHC string.
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    check_policy(password)?;
    let password = password.to_string();
    in_slot(move |hasher| {
        let salt = kizuna_core::secret::random_bytes::<16>();
        hasher.hash_password(password.as_bytes(), &salt)
    })
    .await
    .and_then(Result::ok)
    .ok_or(PasswordError::Hashing)
}

/// True when `password` matches the stored PHC string (argon2id/i/d with the parameters it
/// records, up to the ceiling above); compared in constant time.
pub async fn verify(password: &str, phc: &str) -> bool {
    if password.chars().count() > MAX_LENGTH {
        return false;
    }
    let Ok(stored) = argon2_rust::decode_phc(phc) else {
        return false;
    };
    let p = &stored.params;
    if p.memory_kib() > CEILING_KIB || p.passes() > CEILING_PASSES || p.lanes() > CEILING_LANES {
        return false;
    }
    let password = password.to_string();
    in_slot(move |hasher| {
        let pwd = password.as_bytes();
        // Associated data comes from a `data=` field (node-argon2 writes one); we write none.
        let (salt, ad, tag) = (&stored.salt, &stored.ad, &stored.hash);
        let argon2 = Argon2::new(stored.algorithm, stored.version, stored.params);
        if argon2 == ours() {
            hasher.verify_with_ad(pwd, salt, &[], ad, tag)
        } else {
            // Other parameters (an older policy, an import): a work area of their own,
            // freed afterwards, so a stored value cannot grow the pooled ones.
            argon2.verify_with_ad(pwd, salt, &[], ad, tag)
        }
        .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A stored value with our parameters that no password matches (random salt and tag):
/// verified against when an account does not exist or has no password, so the answer takes
/// as long as for one that does.
pub fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        argon2_rust::encode_string_alloc(
            Algorithm::Argon2id,
            Version::V0x13,
            &PARAMS,
            &kizuna_core::secret::random_bytes::<16>(),
            &kizuna_core::secret::random_bytes::<32>(),
        )
        .expect("constant parameters, 16-byte salt, 32-byte tag")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let phc = hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc).await);
        assert!(!verify("correct horse batterY", &phc).await);
        assert!(!verify("correct horse battery", "not a phc string").await);
        assert_ne!(
            phc,
            hash("correct horse battery").await.unwrap(),
            "a fresh salt"
        );
    }

    /// A password over the maximum length is refused before any work, even where the stored
    /// value was made from it (elsewhere, by a policy without the limit).
    #[tokio::test]
    async fn a_password_over_the_maximum_length_is_refused() {
        let stored = |password: &str| {
            ours()
                .hash_password(password.as_bytes(), b"0123456789abcdef")
                .unwrap()
        };
        let longest = "x".repeat(MAX_LENGTH);
        assert!(verify(&longest, &stored(&longest)).await);
        let over = "x".repeat(MAX_LENGTH + 1);
        assert!(!verify(&over, &stored(&over)).await);
    }

    /// Our own hashes, and the decoy, verify with the pooled hasher (the fast path).
    #[test]
    fn our_hashes_and_the_decoy_decode_to_our_parameters() {
        let mut hasher = ours().hasher();
        let phc = hasher.hash_password(b"a password of ours", b"0123456789abcdef");
        for value in [phc.unwrap().as_str(), decoy()] {
            let d = argon2_rust::decode_phc(value).unwrap();
            assert_eq!(
                Argon2::new(d.algorithm, d.version, d.params),
                ours(),
                "{value}"
            );
        }
    }

    #[tokio::test]
    async fn the_decoy_matches_no_password() {
        assert!(!verify("correct horse battery", decoy()).await);
        assert!(!verify("", decoy()).await);
    }

    /// The `argon2` crate, an independent implementation: hashes it makes (other
    /// parameters too, four lanes, argon2i) verify here, and ours verify there.
    #[tokio::test]
    async fn hashes_verify_across_implementations() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for (algorithm, m, t, p) in [
            (argon2::Algorithm::Argon2id, 8 * 1024, 3, 1),
            (argon2::Algorithm::Argon2id, 4 * 1024, 1, 4),
            (argon2::Algorithm::Argon2i, 1024, 2, 1),
        ] {
            let other = argon2::Argon2::new(
                algorithm,
                argon2::Version::V0x13,
                argon2::Params::new(m, t, p, None).unwrap(),
            )
            .hash_password(b"interoperable password", &salt)
            .unwrap()
            .to_string();
            assert!(verify("interoperable password", &other).await, "{other}");
            assert!(!verify("interoperable passworD", &other).await, "{other}");
        }
        let mine = hash("interoperable password").await.unwrap();
        let parsed = PasswordHash::new(&mine).expect("a standard PHC string");
        let other = argon2::Argon2::default();
        assert!(
            other
                .verify_password(b"interoperable password", &parsed)
                .is_ok()
        );
        assert!(
            other
                .verify_password(b"interoperable passworD", &parsed)
                .is_err()
        );
    }

    /// RFC 9106, section 5.3: the argon2id test vector (secret and associated data included).
    #[test]
    fn the_implementation_matches_rfc_9106() {
        let params = Params::builder()
            .memory(Memory::kib(32))
            .passes(3)
            .lanes(4)
            .tag_len(TagLen::bytes(32))
            .build()
            .unwrap();
        let mut tag = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_into_with_ad(&[1; 32], &[2; 16], &[3; 8], &[4; 12], &mut tag)
            .unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    /// A value the ceiling refuses would match its password: only the ceiling says no.
    #[tokio::test]
    async fn a_stored_value_over_the_ceiling_is_refused() {
        for (m, t, p) in [
            (CEILING_KIB + 8, 1, 1),
            (64, CEILING_PASSES + 1, 1),
            (64, 1, 5),
        ] {
            let params = Params::builder()
                .memory(Memory::kib(u64::from(m)))
                .passes(t)
                .lanes(p)
                .build()
                .unwrap();
            let salt = b"0123456789abcdef";
            let mut tag = [0u8; 32];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_into(b"whatever password", salt, &mut tag)
                .unwrap();
            let phc = argon2_rust::encode_string_alloc(
                Algorithm::Argon2id,
                Version::V0x13,
                &params,
                salt,
                &tag,
            )
            .unwrap();
            assert!(!verify("whatever password", &phc).await, "{phc}");
        }
    }

    /// node-argon2 writes the associated data into the PHC string as `data=`.
    #[tokio::test]
    async fn a_stored_value_with_associated_data_verifies_with_it() {
        let params = Params::builder()
            .memory(Memory::kib(64))
            .passes(1)
            .lanes(1)
            .build()
            .unwrap();
        let mut tag = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_into_with_ad(
                b"whatever password",
                b"0123456789abcdef",
                &[],
                b"abc",
                &mut tag,
            )
            .unwrap();
        let tag = argon2_rust::encode_base64(&tag).unwrap();
        let with = format!("$argon2id$v=19$m=64,t=1,p=1,data=YWJj$MDEyMzQ1Njc4OWFiY2RlZg${tag}");
        assert!(verify("whatever password", &with).await, "{with}");
        let without = with.replace(",data=YWJj", "");
        assert!(!verify("whatever password", &without).await, "{without}");
    }

    #[tokio::test]
    async fn policy_bounds_length() {
        assert_eq!(hash("short").await, Err(PasswordError::TooShort));
        assert_eq!(hash(&"x".repeat(257)).await, Err(PasswordError::TooLong));
        assert!(check_policy("パスワードは十二文字以上です").is_ok());
    }
}
