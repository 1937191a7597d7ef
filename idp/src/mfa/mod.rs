//! Multi-factor authentication: passkeys (WebAuthn L2 through webauthn-rs), TOTP (RFC 6238),
//! single-use recovery codes, the assurance rules that decide which factor a sign-in needs
//! (`policy`), pending second-factor steps, new-device detection, notification mail, and
//! the helpdesk reset. The pages live in `pages::mfa` and `pages::account`.

pub mod config;
pub mod devices;
pub mod notify;
pub mod pending;
pub mod policy;
pub mod recovery;
pub mod reset;
pub mod totp;
pub mod webauthn;

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::db::AnyConnection;

use crate::Idp;
use crate::store::{mfa as store, users as store_users};
use crate::users;
use policy::{Aal, Factor};

/// Why a factor was refused or a change not made.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("the code is not correct")]
    WrongCode,
    #[error("too many wrong codes; wait and try again")]
    Throttled,
    #[error("this factor is not set up")]
    NotEnrolled,
    #[error("{0} is already set up")]
    AlreadyEnrolled(&'static str),
    #[error("passkeys need a domain name in public_url (localhost works for development)")]
    PasskeysUnavailable,
    #[error("the passkey response was refused: {0}")]
    Rejected(String),
    #[error("this passkey may have been copied (its counter went backwards); it is blocked")]
    PossiblyCloned,
    #[error("this passkey belongs to another account")]
    ForeignCredential,
    #[error("this authenticator model is not allowed for staff accounts")]
    AuthenticatorNotAllowed,
    #[error("the sign-in step expired; start again")]
    Expired,
    #[error(
        "this account must keep a second factor (its policy requires AAL{0}); add another before removing this one"
    )]
    LastFactor(u8),
    #[error("no account {0:?}")]
    NoAccount(String),
    #[error("the name must be 1 to 64 characters")]
    InvalidName,
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("key custody failed: {0}")]
    Custody(#[from] kizuna_core::custody::CustodyError),
}

impl MfaError {
    /// True for failures on our side (shown as an internal error, not a message).
    pub fn is_internal(&self) -> bool {
        matches!(self, MfaError::Storage(_) | MfaError::Custody(_))
    }
}

/// The second factors an account has, and its own assurance rule.
#[derive(Debug, Clone, Default)]
pub struct Enrolled {
    pub factors: Vec<Factor>,
    pub passkeys: usize,
    pub totp: bool,
    pub recovery_codes_left: usize,
    /// The level the account must reach (its own setting or its staff role).
    pub min_aal: u8,
    pub staff: bool,
}

impl Enrolled {
    /// True when a second factor exists besides recovery codes (which only back them up).
    pub fn has_strong_factor(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// What the account has enrolled and must reach.
pub async fn enrolled(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Enrolled, sqlx::Error> {
    let factors = factors(conn, user_id).await?;
    with_rule(idp, conn, user_id, factors).await
}

/// What the account has enrolled, without its rule yet (`min_aal` 0, not staff): for a
/// caller that needs the rule only when a second factor exists ([`with_rule`] adds it).
pub async fn factors(conn: &mut AnyConnection, user_id: &str) -> Result<Enrolled, sqlx::Error> {
    let counts = store::factor_counts(&mut *conn, user_id).await?;
    let totp = counts.confirmed_totp > 0;
    let mut factors = Vec::new();
    if totp {
        factors.push(Factor::Totp);
    }
    for (count, hardware) in [
        (counts.other_passkeys, false),
        (counts.hardware_passkeys, true),
    ] {
        if count > 0 {
            factors.push(Factor::Passkey { hardware });
        }
    }
    if counts.recovery_codes > 0 {
        factors.push(Factor::RecoveryCode);
    }
    Ok(Enrolled {
        factors,
        passkeys: (counts.hardware_passkeys + counts.other_passkeys) as usize,
        totp,
        recovery_codes_left: counts.recovery_codes as usize,
        min_aal: 0,
        staff: false,
    })
}

/// Completes what [`factors`] read with the account's rule.
pub async fn with_rule(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    factors: Enrolled,
) -> Result<Enrolled, sqlx::Error> {
    let (min_aal, staff) = account_rule(idp, conn, user_id).await?;
    Ok(Enrolled {
        min_aal,
        staff,
        ..factors
    })
}

/// The level the account must reach (its own setting, or the staff rule when it holds a
/// role), and whether it is a staff account.
async fn account_rule(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<(u8, bool), sqlx::Error> {
    let rule = store_users::assurance_rule(conn, user_id)
        .await?
        .unwrap_or((0, 0));
    Ok(apply_rule(idp, rule))
}

/// The level and staff flag from an account's own rule and its number of roles.
fn apply_rule(idp: &Idp, (own, roles): (i64, i64)) -> (u8, bool) {
    let staff = roles > 0;
    let staff_min = if staff { idp.mfa.staff_min_aal } else { 0 };
    ((own.clamp(0, 3) as u8).max(staff_min), staff)
}

/// The level the account must reach at every sign-in (from the rule read with the session
/// when there is one).
pub async fn account_min_aal(
    idp: &Idp,
    conn: &mut AnyConnection,
    session: &crate::sessions::Session,
) -> Result<u8, sqlx::Error> {
    Ok(match session.account_rule {
        Some(rule) => apply_rule(idp, rule).0,
        None => account_rule(idp, conn, &session.user_id).await?.0,
    })
}

/// Refuses removing the last strong factor of an account whose rule needs one.
pub fn check_removal(enrolled: &Enrolled, removing: Factor) -> Result<(), MfaError> {
    let passkeys_left = enrolled.passkeys - usize::from(matches!(removing, Factor::Passkey { .. }));
    let totp_left = enrolled.totp && removing != Factor::Totp;
    if enrolled.min_aal >= Aal::Two.level() && passkeys_left == 0 && !totp_left {
        return Err(MfaError::LastFactor(enrolled.min_aal));
    }
    Ok(())
}

/// Sets the account's own assurance rule (0 to 3); audited. For staff whose role demands
/// more, the role's level still applies.
pub async fn set_account_min_aal(
    idp: &Idp,
    actor: Actor,
    login: &str,
    min_aal: u8,
) -> Result<users::UserRecord, MfaError> {
    let mut tx = idp.core.db.begin().await?;
    let user = users::find_by_login(tx.conn(), login)
        .await?
        .ok_or_else(|| MfaError::NoAccount(login.to_string()))?;
    store_users::set_min_aal(
        tx.conn(),
        &user.id,
        min_aal.min(3) as i64,
        kizuna_core::time::now_unix(),
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "user.set_min_aal", format!("user:{}", user.id))
                .details(json!({"min_aal": min_aal})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(user)
}

/// Ends a factor change: audits it and queues its notice inside the change's transaction,
/// commits, and publishes the audit entry.
pub(crate) async fn commit_change(
    mut tx: kizuna_core::db::WriteTx,
    event: AuditEvent,
    user_id: &str,
    change: notify::Change,
) -> Result<(), MfaError> {
    let entries = audit::append_in(tx.conn(), &[event]).await?;
    notify::factor_changed(tx.conn(), user_id, change).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}

/// Audits a refused second factor (outside any transaction: nothing else is written).
pub async fn audit_failure(idp: &Idp, user_id: &str, action: &str, reason: &str, outcome: Outcome) {
    let event = AuditEvent::new(Actor::anonymous(), action, format!("user:{user_id}"))
        .outcome(outcome)
        .details(json!({"reason": reason}));
    if let Err(e) = idp.core.audit.record(event).await {
        tracing::error!(error = %e, "auditing a refused second factor");
    }
}

/// Counts a wrong code for the account; refuses when the window's budget is spent.
pub async fn check_code_budget(idp: &Idp, user_id: &str) -> Result<(), MfaError> {
    let used = crate::throttle::count(idp, &code_key(user_id), idp.mfa.code_window_secs).await?;
    if used >= idp.mfa.code_max_failures {
        audit_failure(idp, user_id, "mfa.code", "throttled", Outcome::Denied).await;
        return Err(MfaError::Throttled);
    }
    Ok(())
}

/// Records a wrong code against the account's budget.
pub async fn spend_code_budget(idp: &Idp, user_id: &str) {
    if let Err(e) = crate::throttle::hit(idp, &code_key(user_id), idp.mfa.code_window_secs).await {
        tracing::error!(error = %e, "counting a wrong second-factor code");
    }
}

fn code_key(user_id: &str) -> String {
    format!("mfa-code:{user_id}")
}
