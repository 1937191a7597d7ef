//! Revoking certificates (RFC 5280 §5.3.1 reason codes): one by serial, or all of a device's
//! or an organization's, in one transaction; `certificateHold` suspends and `unhold`
//! releases. A revocation is committed, audited and announced (to this process's OCSP
//! responder at once, to replicas through `cert_changes`) before it is acknowledged.

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::db::AnyConnection;
use kizuna_core::events::CertChange;
use kizuna_core::pki::CertStatus;

use crate::{Ca, CaError};

pub use kizuna_core::pki::Reason;

pub use crate::store::Selector;

/// The selector for a device's certificates. Without `org_id`, the device id must name
/// certificates of one organization only; the same id in several organizations needs the
/// organization, so a revocation never reaches another organization's device.
pub async fn device(ca: &Ca, device_id: &str, org_id: Option<&str>) -> Result<Selector, CaError> {
    if let Some(org_id) = org_id {
        return Ok(Selector::Device {
            org_id: org_id.to_string(),
            device_id: device_id.to_string(),
        });
    }
    let orgs = crate::store::device_orgs(&ca.core.db, device_id).await?;
    match orgs.as_slice() {
        [] => match crate::devices::get(&ca.core.db, device_id).await? {
            Some(device) => Ok(Selector::Device {
                org_id: device.org_id,
                device_id: device_id.to_string(),
            }),
            None => Err(CaError::NotFound(format!(
                "no certificate or device with id {device_id}"
            ))),
        },
        [org] => Ok(Selector::Device {
            org_id: org.clone(),
            device_id: device_id.to_string(),
        }),
        several => Err(CaError::Invalid(format!(
            "device id {device_id} exists in several organizations ({}): name the organization",
            several.join(", ")
        ))),
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RevokeReport {
    /// Serials revoked (or put on hold) now.
    pub revoked: Vec<String>,
    /// How many were already revoked and stayed as they were.
    pub already: i64,
}

/// How many certificates a selector would revoke now (for a confirmation prompt).
pub async fn count(ca: &Ca, selector: &Selector) -> Result<i64, CaError> {
    let mut conn = ca.core.db.conn().await?;
    Ok(crate::store::count(&mut conn, selector, &[CertStatus::Valid, CertStatus::Hold]).await?)
}

/// What a revocation inside a caller's transaction changed, to announce once it commits.
#[must_use = "announce the changes after the transaction commits"]
pub struct Changed {
    pub report: RevokeReport,
    changed: Vec<(String, String)>,
    entries: Vec<audit::AuditEntry>,
}

impl Changed {
    /// Publishes the audit entries and tells this process's OCSP responder; call after commit.
    pub fn announce(self, ca: &Ca) -> RevokeReport {
        audit::publish(&self.entries);
        for (ca_id, serial) in self.changed {
            ca.core.changes.publish(CertChange { ca_id, serial });
        }
        self.report
    }
}

/// Revokes (or, with `certificateHold`, suspends) the selected certificates.
pub async fn revoke(
    ca: &Ca,
    selector: &Selector,
    reason: Reason,
    actor: Actor,
) -> Result<RevokeReport, CaError> {
    let mut tx = ca.core.db.begin().await?;
    let changed = revoke_in(tx.conn(), selector, reason, &actor).await?;
    if changed.report.revoked.is_empty() {
        if let Selector::Serial(serial) = selector
            && crate::store::status_of(tx.conn(), serial).await?.is_none()
        {
            return Err(CaError::NotFound(format!(
                "no certificate with serial {serial}"
            )));
        }
        // Nothing changed: say so in the audit log once.
        let entries = audit::append_in(
            tx.conn(),
            &[AuditEvent::new(actor, "cert.revoke", selector.target())
                .outcome(Outcome::Failure)
                .details(json!({"reason": reason.as_str(), "result": "already revoked", "already": changed.report.already}))],
        )
        .await?;
        tx.commit().await?;
        audit::publish(&entries);
        return Ok(changed.report);
    }
    tx.commit().await?;
    Ok(changed.announce(ca))
}

/// Revokes (or holds) inside the caller's transaction: status, change feed and audit entries
/// commit with whatever else the caller changes (a device retired with its certificates).
pub async fn revoke_in(
    conn: &mut AnyConnection,
    selector: &Selector,
    reason: Reason,
    actor: &Actor,
) -> Result<Changed, CaError> {
    let status = if reason == Reason::CertificateHold {
        CertStatus::Hold
    } else {
        CertStatus::Revoked
    };
    let changed = crate::store::set_revoked(conn, selector, status, reason).await?;
    let already = crate::store::count(conn, selector, &[CertStatus::Revoked]).await?
        - if status == CertStatus::Revoked {
            changed.len() as i64
        } else {
            0
        };
    let mut entries = Vec::new();
    if !changed.is_empty() {
        crate::changes::record(conn, "status", &changed).await?;
        let events: Vec<AuditEvent> = changed
            .iter()
            .map(|(ca_id, serial)| {
                AuditEvent::new(
                    actor.clone(),
                    if status == CertStatus::Hold {
                        "cert.hold"
                    } else {
                        "cert.revoke"
                    },
                    format!("cert:{serial}"),
                )
                .details(
                    json!({"reason": reason.as_str(), "ca": ca_id, "selector": selector.target()}),
                )
            })
            .collect();
        entries = audit::append_in(conn, &events).await?;
    }
    Ok(Changed {
        report: RevokeReport {
            revoked: changed.iter().map(|(_, s)| s.clone()).collect(),
            already,
        },
        changed,
        entries,
    })
}

/// Releases a certificate from `certificateHold`.
pub async fn unhold(ca: &Ca, serial: &str, actor: Actor) -> Result<(), CaError> {
    let serial = serial.to_ascii_lowercase();
    let mut tx = ca.core.db.begin().await?;
    let changed = unhold_in(tx.conn(), &Selector::Serial(serial.clone()), &actor).await?;
    if changed.report.revoked.is_empty() {
        return Err(match crate::store::status_of(tx.conn(), &serial).await? {
            None => CaError::NotFound(format!("no certificate with serial {serial}")),
            Some(s) => CaError::Invalid(format!("certificate {serial} is {s}, not on hold")),
        });
    }
    tx.commit().await?;
    changed.announce(ca);
    Ok(())
}

/// Releases the selected certificates that are on hold, inside the caller's transaction
/// (the report's `revoked` lists the serials released).
pub async fn unhold_in(
    conn: &mut AnyConnection,
    selector: &Selector,
    actor: &Actor,
) -> Result<Changed, CaError> {
    let changed = crate::store::release_held(conn, selector).await?;
    let mut entries = Vec::new();
    if !changed.is_empty() {
        crate::changes::record(conn, "status", &changed).await?;
        let events: Vec<AuditEvent> = changed
            .iter()
            .map(|(_, serial)| {
                AuditEvent::new(actor.clone(), "cert.unhold", format!("cert:{serial}"))
                    .details(json!({"selector": selector.target()}))
            })
            .collect();
        entries = audit::append_in(conn, &events).await?;
    }
    Ok(Changed {
        report: RevokeReport {
            revoked: changed.iter().map(|(_, s)| s.clone()).collect(),
            already: 0,
        },
        changed,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_by_rfc_name() {
        assert_eq!("keyCompromise".parse::<Reason>().unwrap().code(), 1);
        assert_eq!(
            "KEYCOMPROMISE".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        assert_eq!("privilegeWithdrawn".parse::<Reason>().unwrap().code(), 9);
        assert!(
            "stolen"
                .parse::<Reason>()
                .unwrap_err()
                .contains("keyCompromise")
        );
    }
}
