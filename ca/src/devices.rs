//! The device registry: every device the city runs, with its owner organization, model,
//! hardware serial, location, installer and lifecycle status (`pending` → `active` ⇄
//! `suspended` → `retired`), and its certificates over time. Suspending a device holds its
//! certificates and retiring one revokes them, in the same transaction as the status change.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::json;

use kizuna_core::access::Reach;
use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::{AnyConnection, Db, is_unique_violation, like_containing, org_clause};

use crate::revoke::{self, Reason, Selector};
use crate::store::{self, CertRecord, Filter};
use crate::{Ca, CaError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Registered, not enrolled yet.
    Pending,
    /// Enrolled; its certificates are in use.
    Active,
    /// Temporarily out of service: certificates on hold (`certificateHold`).
    Suspended,
    /// Removed for good: certificates revoked (`cessationOfOperation`).
    Retired,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 4] = [
        DeviceStatus::Pending,
        DeviceStatus::Active,
        DeviceStatus::Suspended,
        DeviceStatus::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Active => "active",
            DeviceStatus::Suspended => "suspended",
            DeviceStatus::Retired => "retired",
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceStatus {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        DeviceStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                CaError::Invalid(format!(
                    "unknown device status {s:?}: use pending, active, suspended or retired"
                ))
            })
    }
}

impl TryFrom<String> for DeviceStatus {
    type Error = CaError;
    fn try_from(s: String) -> Result<Self, CaError> {
        s.parse()
    }
}

/// A device as registered.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Device {
    pub id: String,
    pub org_id: String,
    pub model: String,
    pub hardware_serial: Option<String>,
    pub location: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub installer: String,
    #[sqlx(try_from = "String")]
    pub status: DeviceStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub enrolled_at: Option<i64>,
    /// The last enrollment or re-enrollment (liveness).
    pub last_seen_at: Option<i64>,
}

/// What registering a device takes.
#[derive(Debug, Clone, Default)]
pub struct NewDevice {
    /// Chosen by the registrant, or generated (UUIDv7).
    pub id: Option<String>,
    pub org_id: String,
    pub model: String,
    pub hardware_serial: Option<String>,
    pub location: String,
    pub coordinates: Option<(f64, f64)>,
    pub installer: String,
}

const COLUMNS: &str = "id, org_id, model, hardware_serial, location, latitude, longitude, installer, status, \
    created_at, updated_at, enrolled_at, last_seen_at";

/// Devices within `reach` whose id, hardware serial, model or location contains `text`,
/// narrowed by organization and status, newest first, at most `limit`.
pub async fn search(
    db: &Db,
    reach: &Reach,
    text: Option<&str>,
    org_id: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Device>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 5);
    let sql = format!(
        "SELECT {COLUMNS} FROM devices WHERE ($1 IS NULL OR LOWER(id) LIKE $1 OR LOWER(hardware_serial) LIKE $1 \
         OR LOWER(model) LIKE $1 OR LOWER(location) LIKE $1) AND ($2 IS NULL OR org_id = $2) AND ($3 IS NULL OR status = $3) \
         AND {org_in} ORDER BY created_at DESC, id LIMIT $4"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(text.map(like_containing))
        .bind(org_id)
        .bind(status)
        .bind(limit);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_all(db.pool()).await
}

/// How many devices within `reach` are in each status.
pub async fn count_by_status(db: &Db, reach: &Reach) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 1);
    let sql = format!(
        "SELECT status, COUNT(*) FROM devices WHERE {org_in} GROUP BY status ORDER BY status"
    );
    let mut query = sqlx::query_as(&sql);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_all(db.pool()).await
}

/// A device id: 1–64 letters, digits, `-`, `_`, `.`, not `.` or `..` (it is a segment of
/// the device's SPIFFE ID).
pub fn valid_device_id(id: &str) -> bool {
    crate::device_name::segment(id).is_ok()
}

fn text_field(name: &str, value: &str, max: usize) -> Result<String, CaError> {
    let value = value.trim();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(CaError::Invalid(format!(
            "{name} must be at most {max} characters without control characters"
        )));
    }
    Ok(value.to_string())
}

impl NewDevice {
    /// Checks every field; returns the device to store.
    pub fn into_device(self, status: DeviceStatus) -> Result<Device, CaError> {
        let id = match self.id {
            Some(id) if valid_device_id(&id) => id,
            Some(id) => {
                return Err(CaError::Invalid(format!(
                    "device id {id:?} must be 1-64 letters, digits, - _ ."
                )));
            }
            None => kizuna_core::secret::new_id(),
        };
        let hardware_serial = self
            .hardware_serial
            .map(|s| text_field("hardware serial", &s, 64))
            .transpose()?
            .filter(|s| !s.is_empty());
        if let Some((lat, lon)) = self.coordinates
            && !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
        {
            return Err(CaError::Invalid(
                "coordinates are latitude -90..90 and longitude -180..180".into(),
            ));
        }
        let now = kizuna_core::time::now_unix();
        Ok(Device {
            id,
            org_id: self.org_id,
            model: text_field("model", &self.model, 100)?,
            hardware_serial,
            location: text_field("location", &self.location, 500)?,
            latitude: self.coordinates.map(|c| c.0),
            longitude: self.coordinates.map(|c| c.1),
            installer: text_field("installer", &self.installer, 200)?,
            status,
            created_at: now,
            updated_at: now,
            enrolled_at: None,
            last_seen_at: None,
        })
    }
}

/// Inserts a device inside the caller's transaction.
pub async fn insert_in(conn: &mut AnyConnection, d: &Device) -> Result<(), CaError> {
    sqlx::query(&format!(
        "INSERT INTO devices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&d.id)
    .bind(&d.org_id)
    .bind(&d.model)
    .bind(&d.hardware_serial)
    .bind(&d.location)
    .bind(d.latitude)
    .bind(d.longitude)
    .bind(&d.installer)
    .bind(d.status.as_str())
    .bind(d.created_at)
    .bind(d.updated_at)
    .bind(d.enrolled_at)
    .bind(d.last_seen_at)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            CaError::Conflict(match &d.hardware_serial {
                Some(serial) => format!(
                    "a device with id {} or hardware serial {serial:?} is already registered",
                    d.id
                ),
                None => format!("a device with id {} is already registered", d.id),
            })
        } else {
            CaError::Db(e)
        }
    })?;
    Ok(())
}

/// The `device.create` audit event; `via` says how it was registered.
pub fn created_event(actor: Actor, d: &Device, via: &str) -> AuditEvent {
    AuditEvent::new(actor, "device.create", format!("device:{}", d.id)).details(json!({
        "org_id": d.org_id, "model": d.model, "hardware_serial": d.hardware_serial,
        "location": d.location, "installer": d.installer, "status": d.status, "via": via,
    }))
}

/// Registers a device (status `pending`); audited.
pub async fn create(db: &Db, actor: Actor, new: NewDevice) -> Result<Device, CaError> {
    let device = new.into_device(DeviceStatus::Pending)?;
    kizuna_core::orgs::find(db, &device.org_id)
        .await
        .map_err(|_| CaError::Invalid(format!("no organization {}", device.org_id)))?;
    let mut tx = db.begin().await?;
    insert_in(tx.conn(), &device).await?;
    let entries = audit::append_in(tx.conn(), &[created_event(actor, &device, "registry")]).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(device)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Device>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// The device, or `NotFound`.
pub async fn find(db: &Db, id: &str) -> Result<Device, CaError> {
    get(db, id)
        .await?
        .ok_or_else(|| CaError::NotFound(format!("no device {id}")))
}

/// Devices with this hardware serial (in any organization).
pub async fn by_hardware_serial(db: &Db, serial: &str) -> Result<Vec<Device>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM devices WHERE hardware_serial = $1 LIMIT 2"
    ))
    .bind(serial)
    .fetch_all(db.pool())
    .await
}

/// Filters for listings; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub org_id: Option<String>,
    pub status: Option<DeviceStatus>,
    pub model: Option<String>,
    pub limit: i64,
}

pub async fn list(db: &Db, f: &DeviceFilter) -> Result<Vec<Device>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM devices WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR model = $3) ORDER BY created_at DESC, id LIMIT $4"
    ))
    .bind(&f.org_id)
    .bind(f.status.map(DeviceStatus::as_str))
    .bind(&f.model)
    .bind(if f.limit > 0 { f.limit.min(10_000) } else { 100 })
    .fetch_all(db.pool())
    .await
}

/// The device's certificates, newest first.
pub async fn certificates(db: &Db, id: &str) -> Result<Vec<CertRecord>, sqlx::Error> {
    store::list(
        db,
        &Filter {
            device_id: Some(id.to_string()),
            limit: 1000,
            ..Filter::default()
        },
    )
    .await
}

/// Removes a device that was registered only for an enrollment that then failed.
pub(crate) async fn remove_in(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a device enrolled (active, seen now) inside the caller's transaction; refuses a
/// suspended or retired one.
pub async fn mark_enrolled_in(conn: &mut AnyConnection, id: &str) -> Result<(), CaError> {
    let now = kizuna_core::time::now_unix();
    let changed = sqlx::query(
        "UPDATE devices SET status = 'active', enrolled_at = COALESCE(enrolled_at, $2), last_seen_at = $2, \
         updated_at = $2 WHERE id = $1 AND status IN ('pending', 'active')",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(CaError::Forbidden(format!(
            "device {id} is not registered, or is suspended or retired"
        )));
    }
    Ok(())
}

/// What a status change did.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    pub device: Device,
    /// Serials held, revoked or released with the change.
    pub certificates: Vec<String>,
    /// Access tokens bound to those certificates that ended with them.
    pub tokens_ended: i64,
}

/// Moves a device to `to`, holding (suspend), revoking (retire) or releasing (resume) its
/// certificates in the same transaction; audited as `device.<verb>`.
async fn change_status(
    ca: &Ca,
    id: &str,
    to: DeviceStatus,
    actor: Actor,
) -> Result<StatusChange, CaError> {
    let device = find(&ca.core.db, id).await?;
    let (verb, allowed_from): (&str, &[DeviceStatus]) = match to {
        DeviceStatus::Suspended => ("suspend", &[DeviceStatus::Pending, DeviceStatus::Active]),
        DeviceStatus::Retired => (
            "retire",
            &[
                DeviceStatus::Pending,
                DeviceStatus::Active,
                DeviceStatus::Suspended,
            ],
        ),
        _ => ("resume", &[DeviceStatus::Suspended]),
    };
    if !allowed_from.contains(&device.status) {
        return Err(CaError::Conflict(format!(
            "device {id} is {}; it cannot be {verb}d",
            device.status
        )));
    }
    // Resuming returns a device to where it was before: enrolled or still pending.
    let to = match (to, device.enrolled_at) {
        (DeviceStatus::Active, None) => DeviceStatus::Pending,
        (to, _) => to,
    };
    let selector = Selector::Device {
        org_id: device.org_id.clone(),
        device_id: id.to_string(),
    };
    let mut tx = ca.core.db.begin().await?;
    let changed = sqlx::query(
        "UPDATE devices SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(kizuna_core::time::now_unix())
    .bind(device.status.as_str())
    .execute(tx.conn())
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(CaError::Conflict(format!(
            "device {id} changed meanwhile; try again"
        )));
    }
    let certs = match to {
        DeviceStatus::Suspended => {
            revoke::revoke_in(tx.conn(), ca, &selector, Reason::CertificateHold, &actor).await?
        }
        DeviceStatus::Retired => {
            revoke::revoke_in(
                tx.conn(),
                ca,
                &selector,
                Reason::CessationOfOperation,
                &actor,
            )
            .await?
        }
        _ => revoke::unhold_in(tx.conn(), &selector, &actor).await?,
    };
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, format!("device.{verb}"), format!("device:{id}")).details(
                json!({"from": device.status, "to": to, "certificates": certs.report.revoked,
                       "tokens_ended": certs.report.tokens_ended}),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    let report = certs.announce(ca);
    Ok(StatusChange {
        device: find(&ca.core.db, id).await?,
        certificates: report.revoked,
        tokens_ended: report.tokens_ended,
    })
}

/// Suspends a device: its valid certificates go on hold.
pub async fn suspend(ca: &Ca, id: &str, actor: Actor) -> Result<StatusChange, CaError> {
    change_status(ca, id, DeviceStatus::Suspended, actor).await
}

/// Brings a suspended device back: its held certificates are valid again.
pub async fn resume(ca: &Ca, id: &str, actor: Actor) -> Result<StatusChange, CaError> {
    change_status(ca, id, DeviceStatus::Active, actor).await
}

/// Retires a device for good: every certificate it holds is revoked.
pub async fn retire(ca: &Ca, id: &str, actor: Actor) -> Result<StatusChange, CaError> {
    change_status(ca, id, DeviceStatus::Retired, actor).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_and_fields_are_checked() {
        assert!(valid_device_id("sl-0042_a.b"));
        assert!(!valid_device_id(""));
        assert!(!valid_device_id("a b"));
        assert!(!valid_device_id(&"x".repeat(65)));
        let bad = NewDevice {
            id: Some("no spaces".into()),
            ..NewDevice::default()
        };
        assert!(bad.into_device(DeviceStatus::Pending).is_err());
        let far = NewDevice {
            coordinates: Some((91.0, 0.0)),
            ..NewDevice::default()
        };
        assert!(far.into_device(DeviceStatus::Pending).is_err());
        let ok = NewDevice {
            org_id: "o".into(),
            hardware_serial: Some("  ".into()),
            coordinates: Some((35.68, 139.76)),
            ..NewDevice::default()
        }
        .into_device(DeviceStatus::Pending)
        .unwrap();
        assert!(ok.hardware_serial.is_none(), "blank serials are none");
        assert_eq!(ok.id.len(), 36);
    }
}
