//! The console's read models: searches and counts across the stores, narrowed to the
//! organizations the caller reaches. No SQL here: each read is the owning module's function
//! (`idp`'s stores, `ca::store` and `ca::devices`, `core::audit`). Changes never happen here
//! either; they go through the domain functions of `idp`, `ca` and `core`.

use serde::Serialize;

use kizuna_ca::devices::{self as ca_devices, Device};
use kizuna_ca::store::{self as cert_store, CertRecord};
use kizuna_core::access::Reach;
use kizuna_core::audit::{self, AuditEntry};
use kizuna_core::db::Db;
use kizuna_idp::store::{
    consents as consent_store, sessions as session_store, users as user_store,
};

pub use kizuna_core::audit::AuditSearch;

/// The longest search text accepted (longer is refused, not cut).
pub const MAX_SEARCH: usize = 256;
/// Rows a listing returns at most.
pub const PAGE: i64 = 200;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub users: i64,
    pub active_sessions: i64,
    pub devices_by_status: Vec<(String, i64)>,
    pub certificates_expiring_30d: i64,
    pub revocations_today: i64,
}

pub async fn counts(db: &Db, reach: &Reach) -> Result<Counts, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let of_users = match reach {
        Reach::City => None,
        _ => Some(user_store::ids(db, reach).await?),
    };
    Ok(Counts {
        users: user_store::count(db, reach).await?,
        active_sessions: session_store::count_live(db, now, of_users.as_deref()).await?,
        devices_by_status: ca_devices::count_by_status(db, reach).await?,
        certificates_expiring_30d: cert_store::count_expiring(db, reach, now, now + 30 * 86_400)
            .await?,
        revocations_today: cert_store::count_revoked_since(db, reach, now - now.rem_euclid(86_400))
            .await?,
    })
}

/// What a device search asks; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct DeviceSearch {
    /// A device id, hardware serial, model or location (substring).
    pub text: Option<String>,
    pub org_id: Option<String>,
    pub status: Option<String>,
}

pub async fn devices(db: &Db, reach: &Reach, s: &DeviceSearch) -> Result<Vec<Device>, sqlx::Error> {
    ca_devices::search(
        db,
        reach,
        s.text.as_deref(),
        s.org_id.as_deref(),
        s.status.as_deref(),
        PAGE,
    )
    .await
}

/// What a certificate search asks; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct CertSearch {
    /// A serial (exact, hex), or a substring of the subject, a SAN or the device id.
    pub text: Option<String>,
    pub org_id: Option<String>,
    pub device_id: Option<String>,
    pub status: Option<String>,
}

pub async fn certificates(
    db: &Db,
    reach: &Reach,
    s: &CertSearch,
) -> Result<Vec<CertRecord>, sqlx::Error> {
    cert_store::search(
        db,
        reach,
        s.text.as_deref(),
        s.org_id.as_deref(),
        s.device_id.as_deref(),
        s.status.as_deref(),
        PAGE,
    )
    .await
}

pub async fn audit(db: &Db, s: &AuditSearch) -> Result<Vec<AuditEntry>, sqlx::Error> {
    audit::search(db, s).await
}

pub async fn audit_entry(db: &Db, id: &str) -> Result<Option<AuditEntry>, sqlx::Error> {
    audit::entry(db, id).await
}

/// Recent refusals and security changes, newest first, for the dashboard.
pub async fn security_events(db: &Db) -> Result<Vec<AuditEntry>, sqlx::Error> {
    audit::security_events(db).await
}

/// An account as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: String,
    pub org_id: Option<String>,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
}

impl From<user_store::UserRecord> for UserRow {
    fn from(u: user_store::UserRecord) -> Self {
        UserRow {
            id: u.id,
            username: u.username,
            email: u.email,
            name: u.name,
            status: u.status,
            org_id: u.org_id,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
        }
    }
}

/// Accounts whose username, email, name or id contains `text`.
pub async fn users(
    db: &Db,
    reach: &Reach,
    text: Option<&str>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let found = user_store::search(db, reach, text, PAGE).await?;
    Ok(found.into_iter().map(UserRow::from).collect())
}

/// The account with this id, or else this username.
pub async fn user(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    Ok(user_store::find_by_id_or_username(db, id)
        .await?
        .map(UserRow::from))
}

/// A consent an account gave a client.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentRow {
    pub client_id: String,
    /// The scopes granted, space-separated.
    pub scopes: String,
    pub updated_at: i64,
}

/// The account's consents, by client.
pub async fn consents(db: &Db, user_id: &str) -> Result<Vec<ConsentRow>, sqlx::Error> {
    let mut rows: Vec<ConsentRow> = consent_store::for_user(db, user_id)
        .await?
        .into_iter()
        .map(|c| ConsentRow {
            client_id: c.client_id,
            scopes: c.scopes.join(" "),
            updated_at: c.updated_at,
        })
        .collect();
    rows.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(rows)
}

/// Active accounts not signed in for `days` (never signed in counts from creation), for the
/// periodic review.
pub async fn unused(db: &Db, reach: &Reach, days: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let cutoff = kizuna_core::time::now_unix() - days * 86_400;
    let found = user_store::inactive_since(db, reach, cutoff, PAGE).await?;
    Ok(found.into_iter().map(UserRow::from).collect())
}
