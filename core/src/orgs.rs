//! Organizations: the city's stakeholders (the city itself, service and data providers,
//! device vendors, the city-OS operator). Users, clients, upstream IdPs, devices and
//! certificates each belong to one, and administrators' rights are scoped to one.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::{AnyConnection, Db, is_unique_violation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrgKind {
    City,
    ServiceProvider,
    DataProvider,
    DeviceVendor,
    PlatformOperator,
    Other,
}

impl OrgKind {
    pub const ALL: [OrgKind; 6] = [
        OrgKind::City,
        OrgKind::ServiceProvider,
        OrgKind::DataProvider,
        OrgKind::DeviceVendor,
        OrgKind::PlatformOperator,
        OrgKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::City => "city",
            OrgKind::ServiceProvider => "service-provider",
            OrgKind::DataProvider => "data-provider",
            OrgKind::DeviceVendor => "device-vendor",
            OrgKind::PlatformOperator => "platform-operator",
            OrgKind::Other => "other",
        }
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgKind {
    type Err = OrgError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| OrgError::UnknownKind(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub name_ja: Option<String>,
    pub kind: OrgKind,
    pub status: String,
    pub created_at: i64,
    /// Counts edits, so an edit made on a stale copy can be refused.
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: String,
    pub name_ja: Option<String>,
    pub kind: OrgKind,
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("organization name {0}")]
    InvalidName(&'static str),
    #[error("an organization named {0:?} already exists")]
    NameTaken(String),
    #[error(
        "unknown organization kind {0:?}: use city, service-provider, data-provider, device-vendor, platform-operator or other"
    )]
    UnknownKind(String),
    #[error("no organization with id or name {0:?}")]
    NotFound(String),
    /// The organization changed since the caller read it; here is the current one.
    #[error("the organization was changed by someone else since it was read")]
    Stale(Box<Organization>),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Checks a display name: trimmed, 1–200 characters, no control characters.
fn clean_name(name: &str) -> Result<String, OrgError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(OrgError::InvalidName("must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(OrgError::InvalidName("must be at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(OrgError::InvalidName("must not contain control characters"));
    }
    Ok(name.to_string())
}

type OrgRow = (String, String, Option<String>, String, String, i64, i64);

fn from_row((id, name, name_ja, kind, status, created_at, version): OrgRow) -> Organization {
    Organization {
        id,
        name,
        name_ja,
        kind: kind.parse().unwrap_or(OrgKind::Other),
        status,
        created_at,
        version,
    }
}

const COLUMNS: &str = "id, name, name_ja, kind, status, created_at, version";

/// Creates an organization and audits it, in one transaction.
pub async fn create(db: &Db, actor: Actor, new: NewOrganization) -> Result<Organization, OrgError> {
    let name = clean_name(&new.name)?;
    let name_ja = new.name_ja.as_deref().map(clean_name).transpose()?;
    let org = Organization {
        id: crate::secret::new_id(),
        name,
        name_ja,
        kind: new.kind,
        status: "active".into(),
        created_at: crate::time::now_unix(),
        version: 0,
    };
    let mut tx = db.begin().await?;
    insert(tx.conn(), &org).await.map_err(|e| {
        if is_unique_violation(&e) {
            OrgError::NameTaken(org.name.clone())
        } else {
            OrgError::Storage(e)
        }
    })?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "org.create", format!("org:{}", org.id)).details(json!({
                "name": org.name, "name_ja": org.name_ja, "kind": org.kind,
            })),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(org)
}

async fn insert(conn: &mut AnyConnection, org: &Organization) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organizations (id, name, name_ja, kind, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&org.id)
    .bind(&org.name)
    .bind(&org.name_ja)
    .bind(org.kind.as_str())
    .bind(&org.status)
    .bind(org.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The names an organization may put in certificates, as stored (JSON; `None` when never
/// set or no such organization). The CA gives the JSON its meaning.
pub async fn allowed_names(db: &Db, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT allowed_names FROM organizations WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map(Option::flatten)
}

/// Replaces the names an organization may put in certificates; audited.
pub async fn set_allowed_names(
    db: &Db,
    actor: Actor,
    id: &str,
    names: serde_json::Value,
) -> Result<(), OrgError> {
    let mut tx = db.begin().await?;
    let changed =
        sqlx::query("UPDATE organizations SET allowed_names = $1, updated_at = $2 WHERE id = $3")
            .bind(names.to_string())
            .bind(crate::time::now_unix())
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    if changed == 0 {
        return Err(OrgError::NotFound(id.to_string()));
    }
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "org.allowed_names", format!("org:{id}"))
                .details(json!({"allowed_names": names})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}

/// Renames an organization or changes its kind, when nobody changed it since `expected_version`
/// was read; audited.
pub async fn update(
    db: &Db,
    actor: Actor,
    id: &str,
    expected_version: i64,
    new: NewOrganization,
) -> Result<Organization, OrgError> {
    let name = clean_name(&new.name)?;
    let name_ja = new.name_ja.as_deref().map(clean_name).transpose()?;
    let mut tx = db.begin().await?;
    let changed = sqlx::query(
        "UPDATE organizations SET name = $1, name_ja = $2, kind = $3, version = version + 1, updated_at = $4 \
         WHERE id = $5 AND version = $6",
    )
    .bind(&name)
    .bind(&name_ja)
    .bind(new.kind.as_str())
    .bind(crate::time::now_unix())
    .bind(id)
    .bind(expected_version)
    .execute(tx.conn())
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            OrgError::NameTaken(name.clone())
        } else {
            OrgError::Storage(e)
        }
    })?
    .rows_affected();
    let current = find_in(tx.conn(), id).await?;
    if changed == 0 {
        return Err(OrgError::Stale(Box::new(current)));
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "org.update", format!("org:{id}")).details(json!({
            "name": current.name, "name_ja": current.name_ja, "kind": current.kind, "version": current.version,
        }))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(current)
}

/// Disables or re-enables an organization; audited.
pub async fn set_status(
    db: &Db,
    actor: Actor,
    id: &str,
    active: bool,
) -> Result<Organization, OrgError> {
    let status = if active { "active" } else { "disabled" };
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE organizations SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(crate::time::now_unix())
        .bind(id)
        .execute(tx.conn())
        .await?;
    let current = find_in(tx.conn(), id).await?;
    let action = if active { "org.enable" } else { "org.disable" };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, action, format!("org:{id}"))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(current)
}

async fn find_in(conn: &mut AnyConnection, id: &str) -> Result<Organization, OrgError> {
    let row: Option<OrgRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(from_row)
        .ok_or_else(|| OrgError::NotFound(id.to_string()))
}

pub async fn list(db: &Db) -> Result<Vec<Organization>, OrgError> {
    let rows: Vec<OrgRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations ORDER BY name"
    ))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Finds an organization by id, or else by exact name.
pub async fn find(db: &Db, id_or_name: &str) -> Result<Organization, OrgError> {
    let row: Option<OrgRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1"
    ))
    .bind(id_or_name)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row)
        .ok_or_else(|| OrgError::NotFound(id_or_name.to_string()))
}

/// True when an organization with this id exists (read inside the caller's transaction).
pub async fn exists_in(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(count > 0)
}

/// The names of the organizations among `ids` that exist, by id.
pub async fn names(db: &Db, ids: &[String]) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut names = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id, name FROM organizations WHERE id IN ({})",
            marks.join(", ")
        );
        let mut query = sqlx::query_as(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        let rows: Vec<(String, String)> = query.fetch_all(db.pool()).await?;
        names.extend(rows);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(clean_name("  Kizuna City ").unwrap(), "Kizuna City");
        assert!(clean_name("   ").is_err());
        assert!(clean_name(&"x".repeat(201)).is_err());
        assert!(clean_name("a\u{0}b").is_err());
        assert_eq!(clean_name(&"市".repeat(200)).unwrap().chars().count(), 200);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in OrgKind::ALL {
            assert_eq!(kind.as_str().parse::<OrgKind>().unwrap(), kind);
        }
        assert!(matches!(
            "bank".parse::<OrgKind>(),
            Err(OrgError::UnknownKind(_))
        ));
    }
}
