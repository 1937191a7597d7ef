//! Accounts: search, look up, enable and disable, end sessions, reset factors, change roles,
//! and identity proofing at the counter.

use serde::Serialize;

use kizuna_core::audit::AuditEntry;
use kizuna_core::orgs;
use kizuna_idp::assurance;
use kizuna_idp::mfa;
use kizuna_idp::sessions;
use kizuna_idp::users::{self, CITY_WIDE, Role};

use super::{require_in, search_text};
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::store::{self, AuditSearch, UserRow};
use kizuna_core::access::{Action, Caller};

pub async fn search_users(
    c: &Console,
    who: &Caller,
    text: Option<String>,
) -> Result<Vec<UserRow>, ConsoleError> {
    let reach = who.require(Action::ViewUsers)?;
    let text = search_text(text)?;
    Ok(store::users(&c.idp.core.db, &reach, text.as_deref()).await?)
}

#[derive(Debug, Serialize)]
pub struct UserView {
    pub user: UserRow,
    pub roles: Vec<(Role, String)>,
    pub passkeys: usize,
    pub totp: bool,
    pub recovery_codes_left: usize,
    pub min_aal: u8,
    pub sessions: Vec<SessionView>,
    pub consents: Vec<store::ConsentRow>,
    /// Identity assurance: the level and the current proofing record behind it.
    pub ial: u8,
    pub proofing: Option<assurance::Record>,
    /// Upstream identity providers the account signs in through.
    pub linked: Vec<kizuna_idp::federation::accounts::Link>,
    /// The account's audit trail, for callers who may read the audit log.
    pub trail: Vec<AuditEntry>,
}

#[derive(Debug, Serialize)]
pub struct SessionView {
    pub sid: String,
    pub amr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
}

pub(super) async fn user_in_reach(
    c: &Console,
    who: &Caller,
    action: Action,
    id: &str,
) -> Result<UserRow, ConsoleError> {
    let missing = Msg::NoAccount { id: id.into() };
    let user = store::user(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, action, user.org_id.as_deref(), missing)?;
    Ok(user)
}

pub async fn user(c: &Console, who: &Caller, id: &str) -> Result<UserView, ConsoleError> {
    let user = user_in_reach(c, who, Action::ViewUsers, id).await?;
    let mut conn = c.idp.core.db.conn().await?;
    let roles = users::assignments(&mut conn, &user.id).await?;
    let enrolled = mfa::enrolled(&c.idp, &mut conn, &user.id).await?;
    let proofing = assurance::current(&mut conn, &user.id).await?;
    drop(conn);
    let linked = kizuna_idp::federation::accounts::links(&c.idp, &user.id).await?;
    let sessions = sessions::list_live(&c.idp, &user.id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            sid: s.sid,
            amr: s.amr,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
        })
        .collect();
    let consents = store::consents(&c.idp.core.db, &user.id).await?;
    let trail = if who.may_in(Action::ViewAudit, None) {
        store::audit(
            &c.idp.core.db,
            &AuditSearch {
                target: Some(format!("user:{}", user.id)),
                limit: 50,
                ..AuditSearch::default()
            },
        )
        .await?
    } else {
        Vec::new()
    };
    Ok(UserView {
        user,
        roles,
        passkeys: enrolled.passkeys,
        totp: enrolled.totp,
        recovery_codes_left: enrolled.recovery_codes_left,
        min_aal: enrolled.min_aal,
        sessions,
        consents,
        ial: proofing.as_ref().map(|r| r.level).unwrap_or(1),
        proofing,
        linked,
        trail,
    })
}

pub async fn set_user_status(
    c: &Console,
    who: &Caller,
    id: &str,
    active: bool,
) -> Result<(), ConsoleError> {
    let user = user_in_reach(c, who, Action::ManageUsers, id).await?;
    if !active && who.user_id.as_deref() == Some(user.id.as_str()) {
        return Err(ConsoleError::Invalid(Msg::CannotDisableSelf.into()));
    }
    users::change_status(&c.idp.core, who.actor.clone(), &user.id, active).await?;
    Ok(())
}

pub async fn end_sessions(c: &Console, who: &Caller, id: &str) -> Result<u64, ConsoleError> {
    let user = user_in_reach(c, who, Action::EndSessions, id).await?;
    Ok(sessions::end_all(&c.idp.core, who.actor.clone(), &user.id).await?)
}

pub async fn reset_factors(
    c: &Console,
    who: &Caller,
    id: &str,
    reproofing_reference: &str,
    reason: Option<&str>,
) -> Result<mfa::reset::ResetReport, ConsoleError> {
    let user = user_in_reach(c, who, Action::ResetFactors, id).await?;
    Ok(mfa::reset::reset(
        &c.idp,
        who.actor.clone(),
        &user.id,
        reproofing_reference,
        reason,
    )
    .await?)
}

/// Grants or withdraws a role. Organization administrators hand out their organization's
/// roles (org-admin, registrar, installer) there only; the rest is for city administrators.
pub async fn change_role(
    c: &Console,
    who: &Caller,
    id: &str,
    role: Role,
    scope: &str,
    granted: bool,
) -> Result<(), ConsoleError> {
    let user = user_in_reach(c, who, Action::ManageUsers, id).await?;
    let org_role = matches!(role, Role::OrgAdmin | Role::Registrar | Role::Installer);
    let allowed = if scope == CITY_WIDE {
        who.may_in(Action::ManageOrgs, None)
    } else {
        orgs::find(&c.idp.core.db, scope).await?;
        who.may_in(Action::ManageOrgs, None)
            || (org_role && who.may_in(Action::ManageUsers, Some(scope)))
    };
    if !allowed {
        let (role, scope) = (role.as_str().to_string(), scope.to_string());
        return Err(ConsoleError::Forbidden(
            if granted {
                Msg::CannotGrantRole { role, scope }
            } else {
                Msg::CannotWithdrawRole { role, scope }
            }
            .into(),
        ));
    }
    if !granted && who.user_id.as_deref() == Some(user.id.as_str()) && role == Role::CityAdmin {
        return Err(ConsoleError::Invalid(
            Msg::CannotWithdrawOwnCityAdmin.into(),
        ));
    }
    Ok(users::change_role(
        &c.idp.core,
        who.actor.clone(),
        &user.id,
        role,
        scope,
        granted,
    )
    .await?)
}

/// A person's identity assurance: their level and current proofing record.
#[derive(Debug, Serialize)]
pub struct ProofingView {
    pub user_id: String,
    pub ial: u8,
    pub record: Option<assurance::Record>,
}

pub async fn proofing(c: &Console, who: &Caller, id: &str) -> Result<ProofingView, ConsoleError> {
    let view = user(c, who, id).await?;
    Ok(ProofingView {
        ial: view.ial,
        user_id: view.user.id,
        record: view.proofing,
    })
}

/// A registrar records an in-person check at the counter, under their own account: an
/// automation client cannot, because a person must have seen the document.
pub async fn record_proofing(
    c: &Console,
    who: &Caller,
    id: &str,
    check: assurance::counter::CounterCheck,
) -> Result<assurance::Record, ConsoleError> {
    let user = user_in_reach(c, who, Action::RecordProofing, id).await?;
    let Some(registrar) = &who.user_id else {
        return Err(ConsoleError::Forbidden(Msg::ProofingByRegistrar.into()));
    };
    Ok(assurance::counter::record_check(&c.idp, registrar, &user.id, check).await?)
}
