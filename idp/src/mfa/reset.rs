//! The helpdesk reset of a person who lost every factor. Never weaker than enrollment: for an
//! account proven at IAL2 or above it names a proofing record of that account, at the
//! account's level or higher, made within `mfa.reset_proofing_max_age_secs` (the person's
//! identity checked again: at the counter, or by JPKI); for a self-asserted (IAL1) account,
//! the reference of the helpdesk's check. It ends every session and grant and is audited with
//! that reference. See `docs/mfa.md`.

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};

use super::{MfaError, notify};
use crate::Idp;
use crate::store::{assurance as store_assurance, grants, mfa as store, sessions};
use crate::users::{self, UserRecord};

/// What the reset removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResetReport {
    pub user_id: String,
    pub username: String,
    pub passkeys: u64,
    pub totp: u64,
    pub recovery_codes: u64,
    pub sessions_ended: u64,
}

/// Checks a re-proofing reference: 3 to 128 printable characters.
pub fn valid_reference(reference: &str) -> bool {
    let r = reference.trim();
    (3..=128).contains(&r.chars().count()) && !r.chars().any(char::is_control)
}

/// The re-proofing a reset of an account at `level` (IAL2 or above) names: a proofing record
/// of this account, live, at `level` or higher, made within the configured age. Returns what
/// the audit entry says of it.
async fn check_reproofing(
    idp: &Idp,
    conn: &mut kizuna_core::db::AnyConnection,
    user_id: &str,
    level: crate::assurance::Ial,
    reference: &str,
    now: i64,
) -> Result<serde_json::Value, MfaError> {
    let found = store_assurance::live_record(conn, reference, user_id, now).await?;
    let oldest = now - idp.mfa.reset_proofing_max_age_secs;
    match found {
        Some((reached, verified_at, provider, verifier)) if reached >= level.level() as i64 => {
            if verified_at < oldest {
                return Err(MfaError::Rejected(format!(
                    "the proofing record {reference} is older than {} hours: check the person's identity again first",
                    idp.mfa.reset_proofing_max_age_secs / 3600
                )));
            }
            Ok(
                json!({"id": reference, "level": reached, "provider": provider, "verifier": verifier, "verified_at": verified_at}),
            )
        }
        Some((reached, ..)) => Err(MfaError::Rejected(format!(
            "the account is proven at IAL{}; the proofing record {reference} reached only IAL{reached}",
            level.level()
        ))),
        None => Err(MfaError::Rejected(format!(
            "the account is proven at IAL{}: give the id of this person's proofing record from a fresh identity check at that level (a registrar's in-person check, or JPKI), not {reference:?}",
            level.level()
        ))),
    }
}

/// Removes every second factor of the account, ends its sessions and grants; audited with
/// the re-proofing reference, and the person notified.
pub async fn reset(
    idp: &Idp,
    actor: Actor,
    login: &str,
    reproofing_reference: &str,
    reason: Option<&str>,
) -> Result<ResetReport, MfaError> {
    if !valid_reference(reproofing_reference) {
        return Err(MfaError::Rejected(
            "a re-proofing reference (3 to 128 characters) is required: record the identity check first".into(),
        ));
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let user: UserRecord = users::find_by_login(tx.conn(), login)
        .await?
        .ok_or_else(|| MfaError::NoAccount(login.to_string()))?;
    let reference = reproofing_reference.trim();
    let level = crate::assurance::level(tx.conn(), &user.id).await?;
    let reproofing = if level > crate::assurance::Ial::One {
        Some(check_reproofing(idp, tx.conn(), &user.id, level, reference, now).await?)
    } else {
        None
    };
    let passkeys = store::delete_passkeys(tx.conn(), &user.id).await?;
    let totp = store::delete_totp(tx.conn(), &user.id).await?;
    let recovery_codes = store::delete_recovery_codes(tx.conn(), &user.id).await?;
    store::delete_pending_of(tx.conn(), &user.id).await?;
    let sessions_ended = sessions::end_all_of(tx.conn(), &user.id, now).await?;
    grants::revoke_for_user(tx.conn(), &user.id, "factors reset", now).await?;
    let report = ResetReport {
        user_id: user.id.clone(),
        username: user.username.clone(),
        passkeys,
        totp,
        recovery_codes,
        sessions_ended,
    };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "mfa.reset", format!("user:{}", user.id)).details(json!({
            "reproofing_reference": reference,
            "reproofing_record": reproofing,
            "ial": level.level(),
            "reason": reason,
            "removed": {"passkeys": report.passkeys, "totp": report.totp, "recovery_codes": report.recovery_codes},
            "sessions_ended": sessions_ended,
        }))],
    )
    .await?;
    notify::factor_changed(tx.conn(), &user.id, notify::Change::FactorsReset).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(report)
}
