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
    /// Access tokens bound to those certificates (RFC 8705) that were still within their
    /// lifetime and ended with them.
    pub tokens_ended: i64,
}

/// How many certificates a selector would revoke now (for a confirmation prompt).
pub async fn count(ca: &Ca, selector: &Selector) -> Result<i64, CaError> {
    let mut conn = ca.core.db.conn().await?;
    Ok(crate::store::count(&mut conn, selector, &[CertStatus::Valid, CertStatus::Hold]).await?)
}

/// The access tokens bound to certificate `serial` that are still alive — within their
/// lifetime (`token_ttl_secs`) and issued since the certificate's last status change
/// (`changed_at`; a token from before a hold stays dead) — and when it last got one.
async fn bound_tokens(
    conn: &mut AnyConnection,
    ca: &Ca,
    serial: &str,
    changed_at: Option<i64>,
) -> Result<audit::Tally, CaError> {
    let since =
        (kizuna_core::time::now_unix() - ca.core.token_ttl_secs).max(changed_at.unwrap_or(0));
    let since = kizuna_core::time::unix_to_rfc3339_micros(since);
    Ok(audit::tally(conn, &format!("cert:{serial}"), "token.issue", &since).await?)
}

/// The live access tokens bound to each selected certificate that is valid now: what
/// revoking (or holding) them ends. A held certificate's tokens ended when it was held.
async fn live_tokens(
    conn: &mut AnyConnection,
    ca: &Ca,
    selector: &Selector,
) -> Result<Vec<(String, audit::Tally)>, CaError> {
    let mut live = Vec::new();
    for (serial, changed_at) in crate::store::serials(conn, selector, &[CertStatus::Valid]).await? {
        let tokens = bound_tokens(conn, ca, &serial, changed_at).await?;
        live.push((serial, tokens));
    }
    Ok(live)
}

/// The access tokens bound to the selected certificates: how many are alive (what revoking
/// them would end), and when the newest of all was issued.
pub async fn tokens_of(ca: &Ca, selector: &Selector) -> Result<audit::Tally, CaError> {
    let mut conn = ca.core.db.conn().await?;
    let any = [CertStatus::Valid, CertStatus::Hold, CertStatus::Revoked];
    let mut tokens = audit::Tally::default();
    for (_, one) in live_tokens(&mut conn, ca, selector).await? {
        tokens.recent += one.recent;
    }
    for (serial, _) in crate::store::serials(&mut conn, selector, &any).await? {
        let one = audit::tally(&mut conn, &format!("cert:{serial}"), "token.issue", "").await?;
        tokens.newest = tokens.newest.max(one.newest);
    }
    Ok(tokens)
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
    let changed = revoke_in(tx.conn(), ca, selector, reason, &actor).await?;
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
/// Each certificate's entry names the bound access tokens that ended with it (RFC 8705:
/// they stop working because the certificate did, in this same commit).
pub async fn revoke_in(
    conn: &mut AnyConnection,
    ca: &Ca,
    selector: &Selector,
    reason: Reason,
    actor: &Actor,
) -> Result<Changed, CaError> {
    let status = if reason == Reason::CertificateHold {
        CertStatus::Hold
    } else {
        CertStatus::Revoked
    };
    let live = live_tokens(conn, ca, selector).await?;
    let changed = crate::store::set_revoked(conn, selector, status, reason).await?;
    let already = crate::store::count(conn, selector, &[CertStatus::Revoked]).await?
        - if status == CertStatus::Revoked {
            changed.len() as i64
        } else {
            0
        };
    let mut entries = Vec::new();
    let mut tokens_ended = 0;
    if !changed.is_empty() {
        crate::changes::record(conn, "status", &changed).await?;
        let mut events = Vec::with_capacity(changed.len());
        for (ca_id, serial) in &changed {
            let tokens = live
                .iter()
                .find(|(s, _)| s == serial)
                .map_or(0, |(_, t)| t.recent);
            tokens_ended += tokens;
            events.push(
                AuditEvent::new(
                    actor.clone(),
                    if status == CertStatus::Hold {
                        "cert.hold"
                    } else {
                        "cert.revoke"
                    },
                    format!("cert:{serial}"),
                )
                .details(json!({
                    "reason": reason.as_str(), "ca": ca_id, "selector": selector.target(),
                    "ended": {"bound_access_tokens": tokens, "certificate_client": true},
                })),
            );
        }
        entries = audit::append_in(conn, &events).await?;
    }
    Ok(Changed {
        report: RevokeReport {
            revoked: changed.iter().map(|(_, s)| s.clone()).collect(),
            already,
            tokens_ended,
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
            tokens_ended: 0,
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
