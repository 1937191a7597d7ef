//! Issued certificates: search, look up, revoke (one, a device's or an organization's) and
//! release from hold.

use serde::Serialize;

use kizuna_ca::revoke::{self, Reason, RevokeReport, Selector};
use kizuna_ca::store::{self as cert_store, CertRecord};
use kizuna_core::orgs;
use kizuna_core::pki::CertStatus;

use crate::Console;
use crate::error::ConsoleError;
use crate::store::{self, CertSearch};
use kizuna_core::access::{Action, Caller, Reach};

pub async fn search_certificates(
    c: &Console,
    who: &Caller,
    search: CertSearch,
) -> Result<Vec<CertRecord>, ConsoleError> {
    let reach = who.require(Action::ViewDevices)?;
    Ok(store::certificates(&c.idp.core.db, &reach, &search).await?)
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
        .filter(|r| r.status != CertStatus::Revoked)
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
