//! Password hashing with argon2id at OWASP's recommended parameters (19 MiB, 2 passes,
//! 1 lane), stored as PHC strings. At most one hash per CPU runs at once, on the blocking
//! pool, each in a reused 19 MiB work area: a sign-in storm queues instead of growing memory.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 256;
const OUTPUT_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must be at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("password hashing failed")]
    Hashing,
}

/// OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(OUTPUT_LEN)).expect("constant argon2 parameters")
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

/// Work areas kept between hashes (at most one per slot stays allocated).
fn work_areas() -> &'static Mutex<Vec<Vec<Block>>> {
    static AREAS: OnceLock<Mutex<Vec<Vec<Block>>>> = OnceLock::new();
    AREAS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs argon2 with `params` in a pooled work area.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    let blocks = params.block_count();
    let mut area = work_areas()
        .lock()
        .ok()
        .and_then(|mut a| a.pop())
        .unwrap_or_default();
    if area.len() < blocks {
        area = vec![Block::default(); blocks];
    }
    let ok = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut area[..blocks])
        .is_ok();
    if let Ok(mut areas) = work_areas().lock() {
        areas.push(area);
    }
    ok
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
    let _slot = slots()
        .acquire()
        .await
        .map_err(|_| PasswordError::Hashing)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&kizuna_core::secret::random_bytes::<16>())
            .map_err(|_| PasswordError::Hashing)?;
        let mut salt_bytes = [0u8; 16];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|_| PasswordError::Hashing)?;
        let mut out = [0u8; OUTPUT_LEN];
        if !compute(
            Algorithm::Argon2id,
            Version::V0x13,
            params(),
            password.as_bytes(),
            salt_bytes,
            &mut out,
        ) {
            return Err(PasswordError::Hashing);
        }
        let output =
            argon2::password_hash::Output::new(&out).map_err(|_| PasswordError::Hashing)?;
        let p = params();
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.m_cost(),
            p.t_cost(),
            p.p_cost(),
            salt.as_str(),
            output
        ))
    })
    .await
    .map_err(|_| PasswordError::Hashing)?
}

/// True when `password` matches the stored PHC string (argon2id/i/d with the parameters it
/// records); compared in constant time.
pub async fn verify(password: &str, phc: &str) -> bool {
    if password.chars().count() > MAX_LENGTH {
        return false;
    }
    let Ok(_slot) = slots().acquire().await else {
        return false;
    };
    let (password, phc) = (password.to_string(), phc.to_string());
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = parsed
            .version
            .and_then(|v| Version::try_from(v).ok())
            .unwrap_or_default();
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(stored) = Params::try_from(&parsed) else {
            return false;
        };
        // Refuse parameters that would let a stored value exhaust memory or time.
        if stored.m_cost() > 256 * 1024 || stored.t_cost() > 16 || stored.p_cost() > 4 {
            return false;
        }
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        let Ok(params) = Params::new(
            stored.m_cost(),
            stored.t_cost(),
            stored.p_cost(),
            Some(expected.len()),
        ) else {
            return false;
        };
        compute(
            algorithm,
            version,
            params,
            password.as_bytes(),
            salt,
            &mut out,
        ) && kizuna_core::secret::constant_time_eq(&out, expected.as_bytes())
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let phc = hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc).await);
        assert!(!verify("correct horse batterY", &phc).await);
        assert!(!verify("correct horse battery", "not a phc string").await);
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_verify() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 3, 1, None).unwrap(),
        )
        .hash_password(b"interoperable password", &salt)
        .unwrap()
        .to_string();
        assert!(verify("interoperable password", &other).await);
        assert!(!verify("interoperable passworD", &other).await);
        let mine = hash("interoperable password").await.unwrap();
        assert!(PasswordHash::new(&mine).is_ok(), "a standard PHC string");
    }

    #[tokio::test]
    async fn a_stored_value_with_huge_parameters_is_refused() {
        let phc = "$argon2id$v=19$m=4194304,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify("whatever password", phc).await);
    }

    #[tokio::test]
    async fn policy_bounds_length() {
        assert_eq!(hash("short").await, Err(PasswordError::TooShort));
        assert_eq!(hash(&"x".repeat(257)).await, Err(PasswordError::TooLong));
        assert!(check_policy("パスワードは十二文字以上です").is_ok());
    }
}
