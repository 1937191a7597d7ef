//! Every console action, as one function each: check the caller's role and scope, validate
//! the input, call the domain function. The pages and the admin API both call these, so a
//! page and its API call always allow, refuse and audit the same way.

use serde::Serialize;

use kizuna_ca::devices::{self, Device, NewDevice};
use kizuna_ca::enroll::tokens::{self as enroll_tokens, CreatedToken, TokenRecord, TokenSpec};
use kizuna_ca::revoke::{self, Reason, RevokeReport, Selector};
use kizuna_ca::store::{self as cert_store, CertRecord};
use kizuna_core::audit::{self, AuditEntry, VerifyReport};
use kizuna_core::orgs::{self, NewOrganization, Organization};
use kizuna_idp::assurance;
use kizuna_idp::clients::{self, Client, ClientEdit, ClientStatus, CreatedClient, NewClient};
use kizuna_idp::federation::upstreams::{self, Registration};
use kizuna_idp::federation::{NewUpstream, Upstream, UpstreamEdit, UpstreamStatus};
use kizuna_idp::mfa;
use kizuna_idp::sessions;
use kizuna_idp::users::{self, CITY_WIDE, Role};

use crate::Console;
use crate::error::ConsoleError;
use crate::store::{self, AuditSearch, CertSearch, Counts, DeviceSearch, MAX_SEARCH, UserRow};
use kizuna_core::access::{ADMIN_SCOPE, Action, Caller, ROLE_SCOPE_PREFIX, Reach};

/// Refuses search text longer than [`MAX_SEARCH`]; empty means no filter.
pub fn search_text(text: Option<String>) -> Result<Option<String>, ConsoleError> {
    match text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > MAX_SEARCH => Err(ConsoleError::Invalid(format!(
            "the search text is {} characters long; at most {MAX_SEARCH} are accepted",
            t.chars().count()
        ))),
        other => Ok(other),
    }
}

#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub counts: Counts,
    /// Only for callers who may read the audit log.
    pub security_events: Vec<AuditEntry>,
    /// Clients and upstreams waiting for the caller's approval (city administrators).
    pub pending: Vec<PendingApproval>,
}

/// Something an organization registered that waits for a city administrator.
#[derive(Debug, Serialize)]
pub struct PendingApproval {
    /// `client` or `upstream`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub org_id: Option<String>,
}

pub async fn dashboard(c: &Console, who: &Caller) -> Result<Dashboard, ConsoleError> {
    let reach = who.require(Action::ViewDashboard)?;
    let counts = store::counts(&c.idp.core.db, &reach).await?;
    let security_events = if who.may_in(Action::ViewAudit, None) {
        store::security_events(&c.idp.core.db).await?
    } else {
        Vec::new()
    };
    let mut pending = Vec::new();
    if who.may_in(Action::ApproveClients, None) {
        pending.extend(
            clients::list(&c.idp.core.db)
                .await?
                .into_iter()
                .filter(|cl| cl.status == ClientStatus::Pending.as_str())
                .map(|cl| PendingApproval {
                    kind: "client",
                    id: cl.client_id,
                    name: cl.name,
                    org_id: cl.org_id,
                }),
        );
    }
    if who.may_in(Action::ApproveUpstreams, None) {
        pending.extend(
            upstreams::list(&c.idp)
                .await?
                .into_iter()
                .filter(|u| u.status == UpstreamStatus::Pending.as_str())
                .map(|u| PendingApproval {
                    kind: "upstream",
                    id: u.alias,
                    name: u.name,
                    org_id: Some(u.org_id),
                }),
        );
    }
    Ok(Dashboard {
        counts,
        security_events,
        pending,
    })
}

// Devices and certificates.

pub async fn search_devices(
    c: &Console,
    who: &Caller,
    search: DeviceSearch,
) -> Result<Vec<Device>, ConsoleError> {
    let reach = who.require(Action::ViewDevices)?;
    Ok(store::devices(&c.idp.core.db, &reach, &search).await?)
}

pub async fn search_certificates(
    c: &Console,
    who: &Caller,
    search: CertSearch,
) -> Result<Vec<CertRecord>, ConsoleError> {
    let reach = who.require(Action::ViewDevices)?;
    Ok(store::certificates(&c.idp.core.db, &reach, &search).await?)
}

#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub device: Device,
    pub certificates: Vec<CertRecord>,
}

pub async fn device(c: &Console, who: &Caller, id: &str) -> Result<DeviceView, ConsoleError> {
    let what = format!("device {id}");
    let device = devices::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ViewDevices, Some(&device.org_id), &what)?;
    let certificates = store::certificates(
        &c.idp.core.db,
        &Reach::Orgs([device.org_id.clone()].into()),
        &CertSearch {
            device_id: Some(device.id.clone()),
            ..CertSearch::default()
        },
    )
    .await?;
    Ok(DeviceView {
        device,
        certificates,
    })
}

pub async fn create_device(
    c: &Console,
    who: &Caller,
    new: NewDevice,
) -> Result<Device, ConsoleError> {
    who.require_in(
        Action::ManageDevices,
        Some(&new.org_id),
        &format!("organization {}", new.org_id),
    )?;
    Ok(devices::create(&c.idp.core.db, who.actor.clone(), new).await?)
}

/// What can happen to a registered device (its certificates follow: held, released,
/// revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChange {
    Suspend,
    Resume,
    Retire,
}

pub async fn change_device(
    c: &Console,
    who: &Caller,
    id: &str,
    change: DeviceChange,
) -> Result<devices::StatusChange, ConsoleError> {
    let what = format!("device {id}");
    let device = devices::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::RevokeCertificates, Some(&device.org_id), &what)?;
    let actor = who.actor.clone();
    Ok(match change {
        DeviceChange::Suspend => devices::suspend(&c.ca, id, actor).await?,
        DeviceChange::Resume => devices::resume(&c.ca, id, actor).await?,
        DeviceChange::Retire => devices::retire(&c.ca, id, actor).await?,
    })
}

pub async fn certificate(
    c: &Console,
    who: &Caller,
    serial: &str,
) -> Result<CertRecord, ConsoleError> {
    let what = format!("certificate {serial}");
    let cert = cert_store::get(&c.idp.core.db, serial)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ViewDevices, cert.org_id.as_deref(), &what)?;
    Ok(cert)
}

/// What a revocation names: one certificate, a device's, or an organization's.
#[derive(Debug, Clone)]
pub enum Target {
    Serial(String),
    Device {
        device_id: String,
        org_id: Option<String>,
    },
    Org(String),
}

/// A resolved revocation: the selector, its organization, and what it will change.
#[derive(Debug, Serialize)]
pub struct RevokePlan {
    #[serde(skip)]
    pub selector: Selector,
    pub kind: &'static str,
    pub id: String,
    pub org_id: Option<String>,
    /// Certificates valid or on hold now, which the revocation changes.
    pub count: i64,
    pub serials: Vec<String>,
}

/// Resolves a target and checks the caller may revoke there; nothing changes yet.
pub async fn plan_revocation(
    c: &Console,
    who: &Caller,
    target: Target,
) -> Result<RevokePlan, ConsoleError> {
    who.require(Action::RevokeCertificates)?;
    let (selector, kind, id, org_id) = match target {
        Target::Serial(serial) => {
            let cert = certificate(c, who, &serial).await?;
            (
                Selector::Serial(cert.serial.clone()),
                "certificate",
                cert.serial,
                cert.org_id,
            )
        }
        Target::Device { device_id, org_id } => {
            let selector = revoke::device(&c.ca, &device_id, org_id.as_deref()).await?;
            let Selector::Device { org_id, .. } = &selector else {
                return Err(ConsoleError::Internal("device selector expected".into()));
            };
            let org = org_id.clone();
            (selector, "device", device_id, Some(org))
        }
        Target::Org(org) => {
            let found = orgs::find(&c.idp.core.db, &org).await?;
            (
                Selector::Organization(found.id.clone()),
                "organization",
                found.id.clone(),
                Some(found.id),
            )
        }
    };
    who.require_in(
        Action::RevokeCertificates,
        org_id.as_deref(),
        &format!("{kind} {id}"),
    )?;
    let count = revoke::count(&c.ca, &selector).await?;
    let serials = affected(c, &selector).await?;
    Ok(RevokePlan {
        selector,
        kind,
        id,
        org_id,
        count,
        serials,
    })
}

async fn affected(c: &Console, selector: &Selector) -> Result<Vec<String>, ConsoleError> {
    let search = match selector {
        Selector::Serial(s) => return Ok(vec![s.clone()]),
        Selector::Device { org_id, device_id } => CertSearch {
            org_id: Some(org_id.clone()),
            device_id: Some(device_id.clone()),
            ..CertSearch::default()
        },
        Selector::Organization(o) => CertSearch {
            org_id: Some(o.clone()),
            ..CertSearch::default()
        },
    };
    Ok(store::certificates(&c.idp.core.db, &Reach::City, &search)
        .await?
        .into_iter()
        .filter(|r| r.status == "valid" || r.status == "hold")
        .map(|r| r.serial)
        .collect())
}

/// Revokes (or with `certificateHold` suspends) what the target names. A target with
/// nothing left to revoke is refused as a conflict.
pub async fn revoke(
    c: &Console,
    who: &Caller,
    target: Target,
    reason: Reason,
) -> Result<RevokeReport, ConsoleError> {
    let plan = plan_revocation(c, who, target).await?;
    let report = revoke::revoke(&c.ca, &plan.selector, reason, who.actor.clone()).await?;
    if report.revoked.is_empty() {
        return Err(ConsoleError::Conflict(format!(
            "nothing to revoke: the {} {}'s certificates are already revoked{}",
            plan.kind,
            plan.id,
            if reason == Reason::CertificateHold {
                " or on hold"
            } else {
                ""
            }
        )));
    }
    Ok(report)
}

pub async fn unhold(c: &Console, who: &Caller, serial: &str) -> Result<(), ConsoleError> {
    let cert = certificate(c, who, serial).await?;
    who.require_in(
        Action::RevokeCertificates,
        cert.org_id.as_deref(),
        &format!("certificate {serial}"),
    )?;
    Ok(revoke::unhold(&c.ca, &cert.serial, who.actor.clone()).await?)
}

pub async fn create_enrollment_token(
    c: &Console,
    who: &Caller,
    spec: TokenSpec,
) -> Result<CreatedToken, ConsoleError> {
    who.require_in(
        Action::ManageDevices,
        Some(&spec.org_id),
        &format!("organization {}", spec.org_id),
    )?;
    if spec.count != 1 {
        return Err(ConsoleError::Invalid(
            "the console creates one token at a time; use `kizuna enroll tokens` for batches"
                .into(),
        ));
    }
    let mut created = enroll_tokens::create(&c.ca, who.actor.clone(), &spec, &mut |_| {}).await?;
    created
        .pop()
        .ok_or_else(|| ConsoleError::Internal("no token was created".into()))
}

pub async fn enrollment_tokens(
    c: &Console,
    who: &Caller,
    org_id: &str,
) -> Result<Vec<TokenRecord>, ConsoleError> {
    who.require_in(
        Action::ManageDevices,
        Some(org_id),
        &format!("organization {org_id}"),
    )?;
    Ok(enroll_tokens::list(&c.idp.core.db, Some(org_id), None, store::PAGE).await?)
}

pub async fn void_enrollment_token(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<TokenRecord, ConsoleError> {
    let what = format!("enrollment token {id}");
    let token = enroll_tokens::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ManageDevices, Some(&token.org_id), &what)?;
    Ok(enroll_tokens::void(&c.idp.core.db, who.actor.clone(), id).await?)
}

// Audit log.

pub async fn search_audit(
    c: &Console,
    who: &Caller,
    search: AuditSearch,
) -> Result<Vec<AuditEntry>, ConsoleError> {
    who.require_in(Action::ViewAudit, None, "audit log")?;
    for text in [
        &search.actor,
        &search.action,
        &search.target,
        &search.since,
        &search.until,
    ]
    .into_iter()
    .flatten()
    {
        search_text(Some(text.clone()))?;
    }
    Ok(store::audit(&c.idp.core.db, &search).await?)
}

pub async fn audit_entry(c: &Console, who: &Caller, id: &str) -> Result<AuditEntry, ConsoleError> {
    who.require_in(Action::ViewAudit, None, "audit log")?;
    store::audit_entry(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("audit entry {id}")))
}

/// The same check as `kizuna audit verify`.
pub async fn verify_audit(c: &Console, who: &Caller) -> Result<VerifyReport, ConsoleError> {
    who.require_in(Action::ViewAudit, None, "audit log")?;
    Ok(audit::verify(&c.idp.core.db).await?)
}

// Accounts.

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

async fn user_in_reach(
    c: &Console,
    who: &Caller,
    action: Action,
    id: &str,
) -> Result<UserRow, ConsoleError> {
    let what = format!("account {id}");
    let user = store::user(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(action, user.org_id.as_deref(), &what)?;
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
        return Err(ConsoleError::Invalid(
            "you cannot disable your own account".into(),
        ));
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
        return Err(ConsoleError::Forbidden(format!(
            "you cannot {} the role {} in scope {scope}",
            if granted { "grant" } else { "withdraw" },
            role.as_str()
        )));
    }
    if !granted && who.user_id.as_deref() == Some(user.id.as_str()) && role == Role::CityAdmin {
        return Err(ConsoleError::Invalid(
            "you cannot withdraw your own city-admin role".into(),
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

/// Disables many accounts after a review, in one transaction (all or none); each is
/// audited. Returns how many.
pub async fn bulk_disable(
    c: &Console,
    who: &Caller,
    ids: &[String],
) -> Result<usize, ConsoleError> {
    let mut found = Vec::new();
    for id in ids {
        let user = user_in_reach(c, who, Action::ManageUsers, id).await?;
        if who.user_id.as_deref() == Some(user.id.as_str()) {
            return Err(ConsoleError::Invalid(
                "you cannot disable your own account".into(),
            ));
        }
        found.push(user.id);
    }
    let mut tx = c.idp.core.db.begin().await?;
    let mut entries = Vec::new();
    for id in &found {
        entries.extend(
            users::change_status_in(tx.conn(), who.actor.clone(), id, false)
                .await?
                .1,
        );
    }
    tx.commit().await?;
    audit::publish(&entries);
    Ok(found.len())
}

#[derive(Debug, Serialize)]
pub struct Review {
    pub days: i64,
    pub unused: Vec<UserRow>,
    /// Role grants and withdrawals in the period.
    pub role_changes: Vec<AuditEntry>,
}

pub async fn review(c: &Console, who: &Caller, days: i64) -> Result<Review, ConsoleError> {
    let reach = who.require(Action::ViewReviews)?;
    if !(1..=3650).contains(&days) {
        return Err(ConsoleError::Invalid("days must be 1 to 3650".into()));
    }
    let since = kizuna_core::time::unix_to_rfc3339(kizuna_core::time::now_unix() - days * 86_400);
    let role_changes = store::audit(
        &c.idp.core.db,
        &AuditSearch {
            action: Some("user.role_".into()),
            since: Some(since),
            limit: store::PAGE,
            ..AuditSearch::default()
        },
    )
    .await?;
    let role_changes = if reach == Reach::City {
        role_changes
    } else {
        role_changes
            .into_iter()
            .filter(|e| {
                serde_json::from_str::<serde_json::Value>(&e.details)
                    .ok()
                    .and_then(|d| {
                        d["scope"]
                            .as_str()
                            .map(|s| who.may_in(Action::ViewReviews, Some(s)))
                    })
                    .unwrap_or(false)
            })
            .collect()
    };
    Ok(Review {
        days,
        unused: store::unused(&c.idp.core.db, &reach, days).await?,
        role_changes,
    })
}

// Clients.

pub async fn list_clients(c: &Console, who: &Caller) -> Result<Vec<Client>, ConsoleError> {
    who.require(Action::ViewClients)?;
    Ok(clients::list(&c.idp.core.db)
        .await?
        .into_iter()
        .filter(|cl| who.may_in(Action::ViewClients, cl.org_id.as_deref()))
        .collect())
}

pub async fn client(c: &Console, who: &Caller, id: &str) -> Result<Client, ConsoleError> {
    let what = format!("client {id}");
    let client = clients::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ViewClients, client.org_id.as_deref(), &what)?;
    Ok(client)
}

async fn managed_client(c: &Console, who: &Caller, id: &str) -> Result<Client, ConsoleError> {
    let client = client(c, who, id).await?;
    who.require_in(
        Action::ManageClients,
        client.org_id.as_deref(),
        &format!("client {id}"),
    )?;
    if client.client_id == crate::auth::CLIENT_ID && !who.may_in(Action::ApproveClients, None) {
        return Err(ConsoleError::Forbidden(
            "the console's own client is for city administrators".into(),
        ));
    }
    Ok(client)
}

/// A client the caller may edit, give a new secret or re-point: one they manage, and for a
/// client carrying admin scopes (`kizuna:admin`, `kizuna:role:*`), a city administrator only.
async fn repointable_client(c: &Console, who: &Caller, id: &str) -> Result<Client, ConsoleError> {
    let client = managed_client(c, who, id).await?;
    if carries_admin_scopes(&client.scopes) && !who.may_in(Action::ApproveClients, None) {
        return Err(ConsoleError::Forbidden(
            "a client with admin scopes is changed by city administrators only".into(),
        ));
    }
    Ok(client)
}

fn carries_admin_scopes(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == ADMIN_SCOPE || s.starts_with(ROLE_SCOPE_PREFIX))
}

/// Registers a client. One an organization administrator registers starts `pending` until
/// a city administrator approves it; only city administrators register admin scopes.
pub async fn create_client(
    c: &Console,
    who: &Caller,
    new: NewClient,
) -> Result<CreatedClient, ConsoleError> {
    who.require_in(
        Action::ManageClients,
        new.org_id.as_deref(),
        &format!(
            "organization {}",
            new.org_id.as_deref().unwrap_or(CITY_WIDE)
        ),
    )?;
    let city = who.may_in(Action::ApproveClients, None);
    if !city && carries_admin_scopes(&new.scopes) {
        return Err(ConsoleError::Forbidden(
            "only city administrators register clients with admin scopes".into(),
        ));
    }
    let status = if city {
        ClientStatus::Active
    } else {
        ClientStatus::Pending
    };
    let created = clients::create_with_status(&c.idp.core, who.actor.clone(), new, status).await?;
    c.idp
        .keys
        .ensure(&created.client.id_token_alg)
        .await
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(created)
}

/// Edits a client. An organization administrator's change of where it redirects or what
/// level it asks for sends it back to `pending` for a city administrator's approval.
pub async fn edit_client(
    c: &Console,
    who: &Caller,
    id: &str,
    edit: ClientEdit,
) -> Result<Client, ConsoleError> {
    repointable_client(c, who, id).await?;
    let review = !who.may_in(Action::ApproveClients, None);
    let client = clients::edit(&c.idp.core, who.actor.clone(), id, edit, review).await?;
    c.idp.clients.forget(id);
    Ok(client)
}

pub async fn rotate_client_secret(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<String, ConsoleError> {
    repointable_client(c, who, id).await?;
    let secret = clients::rotate_secret(&c.idp.core, who.actor.clone(), id).await?;
    c.idp.clients.forget(id);
    Ok(secret)
}

/// What can happen to a client's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientChange {
    Approve,
    Disable,
    Enable,
}

pub async fn change_client(
    c: &Console,
    who: &Caller,
    id: &str,
    change: ClientChange,
) -> Result<Client, ConsoleError> {
    let current = managed_client(c, who, id).await?;
    if current.client_id == crate::auth::CLIENT_ID && change == ClientChange::Disable {
        return Err(ConsoleError::Invalid(
            "disabling the console's own client would lock every administrator out".into(),
        ));
    }
    let (to, action) = match change {
        ClientChange::Approve => {
            who.require_in(Action::ApproveClients, None, &format!("client {id}"))?;
            if current.status != ClientStatus::Pending.as_str() {
                return Err(ConsoleError::Conflict(format!(
                    "client {id} is {}, not pending",
                    current.status
                )));
            }
            (ClientStatus::Active, "client.approve")
        }
        ClientChange::Disable => (ClientStatus::Disabled, "client.disable"),
        ClientChange::Enable => {
            // Re-enabling a pending client would skip the approval.
            if current.status == ClientStatus::Pending.as_str() {
                return Err(ConsoleError::Conflict(format!(
                    "client {id} is pending: a city administrator approves it"
                )));
            }
            let to = if current.status == "disabled" && !who.may_in(Action::ApproveClients, None) {
                ClientStatus::Pending
            } else {
                ClientStatus::Active
            };
            (to, "client.enable")
        }
    };
    let client = clients::set_status(&c.idp.core, who.actor.clone(), id, to, action).await?;
    c.idp.clients.forget(id);
    Ok(client)
}

// Upstream identity providers.

pub async fn list_upstreams(c: &Console, who: &Caller) -> Result<Vec<Upstream>, ConsoleError> {
    who.require(Action::ViewUpstreams)?;
    Ok(upstreams::list(&c.idp)
        .await?
        .into_iter()
        .filter(|u| who.may_in(Action::ViewUpstreams, Some(&u.org_id)))
        .collect())
}

/// An upstream with what its operator registers for Kizuna's client there.
#[derive(Debug, Serialize)]
pub struct UpstreamView {
    #[serde(flatten)]
    pub upstream: Upstream,
    pub registration: Registration,
    /// The public JWK Set of the client-assertion key (private_key_jwt).
    pub jwks: Option<serde_json::Value>,
}

async fn upstream_in(
    c: &Console,
    who: &Caller,
    action: Action,
    id: &str,
) -> Result<Upstream, ConsoleError> {
    let what = format!("upstream {id}");
    let found = upstreams::find(&c.idp, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ViewUpstreams, Some(&found.org_id), &what)?;
    who.require_in(action, Some(&found.org_id), &what)?;
    Ok(found)
}

pub async fn upstream(c: &Console, who: &Caller, id: &str) -> Result<UpstreamView, ConsoleError> {
    let upstream = upstream_in(c, who, Action::ViewUpstreams, id).await?;
    upstream_view(c, upstream).await
}

async fn upstream_view(c: &Console, upstream: Upstream) -> Result<UpstreamView, ConsoleError> {
    Ok(UpstreamView {
        registration: upstreams::registration(&c.idp, &upstream),
        jwks: upstreams::client_jwks(&c.idp, &upstream).await?,
        upstream,
    })
}

/// Registers an upstream (its discovery document is read now). One an organization
/// administrator registers starts `pending` until a city administrator approves it; the trust
/// ceiling they ask for is what the city administrator sees when approving.
pub async fn create_upstream(
    c: &Console,
    who: &Caller,
    mut new: NewUpstream,
) -> Result<UpstreamView, ConsoleError> {
    let what = format!("organization {}", new.org_id);
    let org = orgs::find(&c.idp.core.db, &new.org_id)
        .await
        .map_err(|_| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ManageUpstreams, Some(&org.id), &what)?;
    if org.status != "active" {
        return Err(ConsoleError::Invalid(format!(
            "organization {} is disabled",
            org.name
        )));
    }
    new.org_id = org.id;
    let status = if who.may_in(Action::ApproveUpstreams, None) {
        UpstreamStatus::Active
    } else {
        UpstreamStatus::Pending
    };
    let created = upstreams::create(&c.idp, who.actor.clone(), new, status).await?;
    upstream_view(c, created).await
}

/// Edits an upstream. The trust settings (ceiling, email domains for home-realm discovery)
/// are a city administrator's decision: an organization administrator's edit that changes
/// them is refused.
pub async fn edit_upstream(
    c: &Console,
    who: &Caller,
    id: &str,
    edit: UpstreamEdit,
) -> Result<UpstreamView, ConsoleError> {
    let current = upstream_in(c, who, Action::ManageUpstreams, id).await?;
    let trust_changed = edit.ceiling.is_some_and(|x| x != current.ceiling)
        || edit
            .email_domains
            .as_ref()
            .is_some_and(|d| *d != current.email_domains);
    if trust_changed && !who.may_in(Action::ApproveUpstreams, None) {
        return Err(ConsoleError::Forbidden(
            "the trust ceiling and the email domains are set by a city administrator".into(),
        ));
    }
    let edited = upstreams::edit(&c.idp, who.actor.clone(), &current.id, edit).await?;
    upstream_view(c, edited).await
}

/// What can happen to an upstream's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamChange {
    Approve,
    Disable,
    Enable,
}

pub async fn change_upstream(
    c: &Console,
    who: &Caller,
    id: &str,
    change: UpstreamChange,
) -> Result<UpstreamView, ConsoleError> {
    let current = upstream_in(c, who, Action::ManageUpstreams, id).await?;
    let pending = current.status == UpstreamStatus::Pending.as_str();
    let to = match change {
        UpstreamChange::Approve => {
            who.require_in(Action::ApproveUpstreams, None, &format!("upstream {id}"))?;
            if !pending {
                return Err(ConsoleError::Conflict(format!(
                    "upstream {} is {}, not pending",
                    current.alias, current.status
                )));
            }
            UpstreamStatus::Active
        }
        UpstreamChange::Disable => UpstreamStatus::Disabled,
        UpstreamChange::Enable => {
            if pending {
                return Err(ConsoleError::Conflict(format!(
                    "upstream {} is pending: a city administrator approves it",
                    current.alias
                )));
            }
            // An organization administrator's re-enabled upstream is vetted again.
            if current.status == UpstreamStatus::Disabled.as_str()
                && !who.may_in(Action::ApproveUpstreams, None)
            {
                UpstreamStatus::Pending
            } else {
                UpstreamStatus::Active
            }
        }
    };
    let changed = upstreams::set_status(&c.idp, who.actor.clone(), &current.id, to).await?;
    upstream_view(c, changed).await
}

// Organizations.

pub async fn list_orgs(c: &Console, who: &Caller) -> Result<Vec<Organization>, ConsoleError> {
    who.require(Action::ViewOrgs)?;
    Ok(orgs::list(&c.idp.core.db)
        .await?
        .into_iter()
        .filter(|o| who.may_in(Action::ViewOrgs, Some(&o.id)))
        .collect())
}

pub async fn org(c: &Console, who: &Caller, id: &str) -> Result<Organization, ConsoleError> {
    let what = format!("organization {id}");
    let found = orgs::find(&c.idp.core.db, id)
        .await
        .map_err(|_| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ViewOrgs, Some(&found.id), &what)?;
    Ok(found)
}

pub async fn create_org(
    c: &Console,
    who: &Caller,
    new: NewOrganization,
) -> Result<Organization, ConsoleError> {
    who.require_in(Action::ManageOrgs, None, "organizations")?;
    Ok(orgs::create(&c.idp.core.db, who.actor.clone(), new).await?)
}

pub async fn update_org(
    c: &Console,
    who: &Caller,
    id: &str,
    expected_version: i64,
    new: NewOrganization,
) -> Result<Organization, ConsoleError> {
    who.require_in(Action::ManageOrgs, None, "organizations")?;
    Ok(orgs::update(&c.idp.core.db, who.actor.clone(), id, expected_version, new).await?)
}

pub async fn set_org_status(
    c: &Console,
    who: &Caller,
    id: &str,
    active: bool,
) -> Result<Organization, ConsoleError> {
    who.require_in(Action::ManageOrgs, None, "organizations")?;
    let found = org(c, who, id).await?;
    Ok(orgs::set_status(&c.idp.core.db, who.actor.clone(), &found.id, active).await?)
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
        return Err(ConsoleError::Forbidden(
            "an in-person check is recorded by a registrar's own account".into(),
        ));
    };
    Ok(assurance::counter::record_check(&c.idp, registrar, &user.id, check).await?)
}

/// A client with its identity assurance settings and request quota: what its console page
/// shows, read with one client lookup.
#[derive(Debug)]
pub struct ClientPage {
    pub client: Client,
    pub assurance: assurance::ClientAssurance,
    pub quota: kizuna_idp::quota::Quota,
}

pub async fn client_page(c: &Console, who: &Caller, id: &str) -> Result<ClientPage, ConsoleError> {
    let client = client(c, who, id).await?;
    let mut conn = c.idp.core.db.conn().await?;
    let assurance = assurance::client_settings(&mut conn, &client.client_id).await?;
    drop(conn);
    let quota = kizuna_idp::quota::get(&c.idp, &client.client_id).await?;
    Ok(ClientPage {
        client,
        assurance,
        quota,
    })
}

/// A client's identity assurance settings, for whoever may view the client.
pub async fn client_assurance(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<assurance::ClientAssurance, ConsoleError> {
    Ok(client_page(c, who, id).await?.assurance)
}

/// A client's request quota, for whoever may view the client.
pub async fn client_quota(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<kizuna_idp::quota::Quota, ConsoleError> {
    Ok(client_page(c, who, id).await?.quota)
}

/// Sets (`Some`) or removes (`None`) a client's request quota: city administrators.
pub async fn set_client_quota(
    c: &Console,
    who: &Caller,
    id: &str,
    requests_per_minute: Option<i64>,
) -> Result<kizuna_idp::quota::Quota, ConsoleError> {
    who.require_in(Action::ApproveClients, None, &format!("client {id}"))?;
    Ok(kizuna_idp::quota::set(&c.idp, id, requests_per_minute, who.actor.clone()).await?)
}

/// A client's identity assurance settings (minimum IAL, verified claims it may receive, the
/// proofing providers offered to its residents): city administrators.
pub async fn set_client_assurance(
    c: &Console,
    who: &Caller,
    id: &str,
    settings: assurance::ClientAssurance,
) -> Result<assurance::ClientAssurance, ConsoleError> {
    who.require_in(Action::ApproveClients, None, &format!("client {id}"))?;
    Ok(assurance::set_client_settings(&c.idp, who.actor.clone(), id, settings).await?)
}
