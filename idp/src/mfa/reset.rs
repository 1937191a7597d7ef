//! The helpdesk reset of a person who lost every factor. Never weaker than enrollment: it
//! needs the reference of a recorded re-proofing (the person's identity checked again at the
//! account's assurance level, e.g. in person with an identity document or by JPKI), ends every
//! session and grant, and is audited with that reference. See `docs/mfa.md`.

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};

use super::{MfaError, notify};
use crate::Idp;
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
    let mut removed = [0u64; 3];
    for (i, table) in ["webauthn_credentials", "totp_credentials", "recovery_codes"]
        .iter()
        .enumerate()
    {
        removed[i] = sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(&user.id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    }
    sqlx::query("DELETE FROM mfa_pending WHERE user_id = $1")
        .bind(&user.id)
        .execute(tx.conn())
        .await?;
    let sessions_ended =
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(&user.id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = 'factors reset' WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&user.id)
        .execute(tx.conn())
        .await?;
    let report = ResetReport {
        user_id: user.id.clone(),
        username: user.username.clone(),
        passkeys: removed[0],
        totp: removed[1],
        recovery_codes: removed[2],
        sessions_ended,
    };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "mfa.reset", format!("user:{}", user.id)).details(json!({
            "reproofing_reference": reproofing_reference.trim(),
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
