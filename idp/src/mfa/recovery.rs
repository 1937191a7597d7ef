//! Recovery codes: ten single-use look-up secrets (NIST SP 800-63B §5.1.2), 80 bits each,
//! shown once and stored as argon2id hashes. The first four characters name the code so one
//! hash is checked per try. Using one is audited, mailed, and shown on the account page.

use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::secret;

use super::{MfaError, audit_failure, check_code_budget, commit_change, notify, spend_code_budget};
use crate::Idp;
use crate::password;
use crate::store::mfa as store;

pub const COUNT: usize = 10;
const LEN: usize = 16;
/// Crockford's base32 alphabet: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new code in its display form, `xxxx-xxxx-xxxx-xxxx`.
pub fn new_code() -> String {
    let bytes = secret::random_bytes::<LEN>();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(*b & 31) as usize] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A typed code in its stored form: lower case, separators dropped, the look-alikes that
/// Crockford's alphabet leaves out read as what they look like.
pub fn normalize(text: &str) -> Option<String> {
    let code: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// Replaces the account's codes with ten new ones; returns them (shown once).
pub async fn regenerate(idp: &Idp, user_id: &str) -> Result<Vec<String>, MfaError> {
    let codes: Vec<String> = (0..COUNT).map(|_| new_code()).collect();
    let mut hashed = Vec::with_capacity(COUNT);
    for code in &codes {
        let normal = normalize(code).ok_or(MfaError::WrongCode)?;
        let hash = password::hash(&normal)
            .await
            .map_err(|e| MfaError::Rejected(e.to_string()))?;
        hashed.push((normal[..4].to_string(), hash));
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    store::replace_recovery_codes(tx.conn(), user_id, &hashed, now).await?;
    commit_change(
        tx,
        AuditEvent::new(
            Actor::user(user_id),
            "mfa.recovery.regenerate",
            format!("user:{user_id}"),
        )
        .details(json!({"count": COUNT})),
        user_id,
        notify::Change::RecoveryCodesRegenerated,
    )
    .await?;
    Ok(codes)
}

/// Uses a code: it works once. Returns how many are left.
pub async fn consume(idp: &Idp, user_id: &str, text: &str) -> Result<usize, MfaError> {
    check_code_budget(idp, user_id).await?;
    let refuse = |reason: &'static str| async move {
        spend_code_budget(idp, user_id).await;
        audit_failure(idp, user_id, "mfa.recovery.use", reason, Outcome::Failure).await;
        Err(MfaError::WrongCode)
    };
    let Some(code) = normalize(text) else {
        return refuse("malformed code").await;
    };
    let Some((hash, used_at)) = store::recovery_code(&idp.core.db, user_id, &code[..4]).await?
    else {
        return refuse("wrong code").await;
    };
    if !password::verify(&code, &hash).await {
        return refuse("wrong code").await;
    }
    if used_at.is_some() {
        return refuse("code already used").await;
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    if !store::use_recovery_code(tx.conn(), user_id, &code[..4], now).await? {
        drop(tx);
        return refuse("code already used").await;
    }
    let left = store::unused_recovery_codes(tx.conn(), user_id).await?;
    commit_change(
        tx,
        AuditEvent::new(
            Actor::user(user_id),
            "mfa.recovery.use",
            format!("user:{user_id}"),
        )
        .details(json!({"left": left})),
        user_id,
        notify::Change::RecoveryCodeUsed {
            left: left as usize,
        },
    )
    .await?;
    Ok(left as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_80_bits_in_a_readable_form() {
        let code = new_code();
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
        assert_eq!(normalize(&code).unwrap().len(), 16);
        assert_ne!(new_code(), new_code());
    }

    #[test]
    fn typing_is_forgiving_but_the_alphabet_is_strict() {
        assert_eq!(
            normalize(" ABCD-efgh-0123-4567 ").as_deref(),
            Some("abcdefgh01234567")
        );
        assert_eq!(
            normalize("abcd efgh O1I2 L567").as_deref(),
            Some("abcdefgh01121567")
        );
        assert_eq!(normalize("abcd-efgh-0123-456"), None);
        assert_eq!(
            normalize("abcd-efgh-0123-456u"),
            None,
            "u is not in the alphabet"
        );
    }
}
