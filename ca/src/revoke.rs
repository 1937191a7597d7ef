//! Revoking certificates (RFC 5280 §5.3.1 reason codes): one by serial, or all of a device's
//! or an organization's, in one transaction; `certificateHold` suspends and `unhold`
//! releases. A revocation is committed, audited and announced (to this process's OCSP
//! responder at once, to replicas through `cert_changes`) before it is acknowledged.

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::db::AnyConnection;
use kizuna_core::events::CertChange;

use crate::{Ca, CaError};

pub use kizuna_core::pki::Reason;

/// Which certificates.
#[derive(Debug, Clone)]
pub enum Selector {
    Serial(String),
    /// A device's certificates. Device ids are unique within their organization; see
    /// [`device`] to resolve one.
    Device {
        org_id: String,
        device_id: String,
    },
    Organization(String),
}

impl Selector {
    /// The WHERE clause, its parameters numbered from `$first`, and their values.
    fn clause(&self, first: usize) -> (String, Vec<String>) {
        match self {
            Selector::Serial(s) => (format!("serial = ${first}"), vec![s.to_ascii_lowercase()]),
            Selector::Device { org_id, device_id } => (
                format!("org_id = ${first} AND device_id = ${}", first + 1),
                vec![org_id.clone(), device_id.clone()],
            ),
            Selector::Organization(o) => (format!("org_id = ${first}"), vec![o.clone()]),
        }
    }

    fn target(&self) -> String {
        match self {
            Selector::Serial(s) => format!("cert:{}", s.to_ascii_lowercase()),
            Selector::Device { device_id, .. } => format!("device:{device_id}"),
            Selector::Organization(o) => format!("org:{o}"),
        }
    }
}

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
    let orgs: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT org_id FROM certificates WHERE device_id = $1 ORDER BY org_id",
    )
    .bind(device_id)
    .fetch_all(ca.core.db.pool())
    .await?;
    let orgs: Vec<String> = orgs.into_iter().flatten().collect();
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
    let (clause, values) = selector.clause(1);
    let query_sql =
        format!("SELECT COUNT(*) FROM certificates WHERE {clause} AND status IN ('valid', 'hold')");
    let mut query = sqlx::query_scalar(&query_sql);
    for value in values {
        query = query.bind(value);
    }
    Ok(query.fetch_one(ca.core.db.pool()).await?)
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
        if let Selector::Serial(serial) = selector {
            let exists: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE serial = $1")
                    .bind(serial.to_ascii_lowercase())
                    .fetch_one(tx.conn())
                    .await?;
            if exists == 0 {
                return Err(CaError::NotFound(format!(
                    "no certificate with serial {serial}"
                )));
            }
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
    let (clause, values) = selector.clause(4);
    let status = if reason == Reason::CertificateHold {
        "hold"
    } else {
        "revoked"
    };
    // A held certificate may be revoked for good; a revoked one never changes again.
    let from = if reason == Reason::CertificateHold {
        "('valid')"
    } else {
        "('valid', 'hold')"
    };
    let now = kizuna_core::time::now_unix();
    let update_sql = format!(
        "UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3 \
         WHERE {clause} AND status IN {from} RETURNING ca_id, serial"
    );
    let mut update = sqlx::query_as(&update_sql)
        .bind(status)
        .bind(now)
        .bind(reason.as_str());
    for value in &values {
        update = update.bind(value);
    }
    let changed: Vec<(String, String)> = update.fetch_all(&mut *conn).await?;
    let (clause, values) = selector.clause(1);
    let revoked_sql =
        format!("SELECT COUNT(*) FROM certificates WHERE {clause} AND status = 'revoked'");
    let mut revoked = sqlx::query_scalar(&revoked_sql);
    for value in values {
        revoked = revoked.bind(value);
    }
    let already: i64 = revoked.fetch_one(&mut *conn).await?;
    let already = already
        - if status == "revoked" {
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
                    if status == "hold" {
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
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM certificates WHERE serial = $1")
                .bind(&serial)
                .fetch_optional(tx.conn())
                .await?;
        return Err(match status {
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
    let (clause, values) = selector.clause(1);
    let update_sql = format!(
        "UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL \
         WHERE {clause} AND status = 'hold' RETURNING ca_id, serial"
    );
    let mut update = sqlx::query_as(&update_sql);
    for value in values {
        update = update.bind(value);
    }
    let changed: Vec<(String, String)> = update.fetch_all(&mut *conn).await?;
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
