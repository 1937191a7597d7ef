//! Issued certificates: search, look up, revoke (one, a device's or an organization's) and
//! release from hold.

use serde::Serialize;

use kizuna_ca::revoke::{self, Reason, RevokeReport, Selector};
use kizuna_ca::store::{self as cert_store, CertRecord};
use kizuna_core::orgs;
use kizuna_core::pki::CertStatus;

use super::require_in;
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
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
    let missing = Msg::NoCertificate {
        serial: serial.into(),
    };
    let cert = cert_store::get(&c.idp.core.db, serial)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, Action::ViewDevices, cert.org_id.as_deref(), missing)?;
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
    /// Live access tokens bound to those certificates, which end with them (RFC 8705).
    pub tokens: i64,
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
    let missing = match kind {
        "certificate" => Msg::NoCertificate { serial: id.clone() },
        "device" => Msg::NoDevice { id: id.clone() },
        _ => Msg::NoOrg { id: id.clone() },
    };
    require_in(who, Action::RevokeCertificates, org_id.as_deref(), missing)?;
    let count = revoke::count(&c.ca, &selector).await?;
    let serials = affected(c, &selector).await?;
    let tokens = revoke::tokens_of(&c.ca, &selector).await?.recent;
    Ok(RevokePlan {
        selector,
        kind,
        id,
        org_id,
        count,
        serials,
        tokens,
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
        let (kind, id) = (plan.kind.to_string(), plan.id);
        return Err(ConsoleError::Conflict(
            if reason == Reason::CertificateHold {
                Msg::AlreadyRevokedOrHeld { kind, id }
            } else {
                Msg::AlreadyRevoked { kind, id }
            }
            .into(),
        ));
    }
    Ok(report)
}

pub async fn unhold(c: &Console, who: &Caller, serial: &str) -> Result<(), ConsoleError> {
    let cert = certificate(c, who, serial).await?;
    require_in(
        who,
        Action::RevokeCertificates,
        cert.org_id.as_deref(),
        Msg::NoCertificate {
            serial: serial.into(),
        },
    )?;
    Ok(revoke::unhold(&c.ca, &cert.serial, who.actor.clone()).await?)
}
