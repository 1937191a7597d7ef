//! The console's read models: searches and counts across the stores, narrowed to the
//! organizations the caller reaches. Changes never happen here; they go through the domain
//! functions of `idp`, `ca` and `core`.

use serde::Serialize;

use kizuna_ca::devices::Device;
use kizuna_ca::store::CertRecord;
use kizuna_core::audit::AuditEntry;
use kizuna_core::db::Db;

use kizuna_core::access::Reach;

/// The longest search text accepted (longer is refused, not cut).
pub const MAX_SEARCH: usize = 256;
/// Rows a listing returns at most.
pub const PAGE: i64 = 200;

/// `column IN (…)` for an organization-scoped caller (parameters numbered from `first`), or
/// nothing for a city-wide one.
fn org_clause(column: &str, reach: &Reach, first: usize) -> (String, Vec<String>) {
    match reach.org_filter() {
        None => ("1 = 1".into(), Vec::new()),
        Some(orgs) if orgs.is_empty() => ("1 = 0".into(), Vec::new()),
        Some(orgs) => {
            let marks: Vec<String> = (0..orgs.len()).map(|i| format!("${}", first + i)).collect();
            (format!("{column} IN ({})", marks.join(", ")), orgs)
        }
    }
}

/// A LIKE pattern containing `text` (wildcards in the text itself are dropped).
fn contains(text: &str) -> String {
    format!("%{}%", text.replace(['%', '_', '\\'], "").to_lowercase())
}

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
    let mut conn = db.conn().await?;
    let (users_in, users_orgs) = org_clause("org_id", reach, 1);
    let sql = format!("SELECT COUNT(*) FROM users WHERE {users_in}");
    let mut q = sqlx::query_scalar(&sql);
    for o in &users_orgs {
        q = q.bind(o);
    }
    let users: i64 = q.fetch_one(&mut *conn).await?;
    let (sess_in, sess_orgs) = org_clause("u.org_id", reach, 2);
    let sql = format!(
        "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.ended_at IS NULL AND s.expires_at > $1 AND {sess_in}"
    );
    let mut q = sqlx::query_scalar(&sql).bind(now);
    for o in &sess_orgs {
        q = q.bind(o);
    }
    let active_sessions: i64 = q.fetch_one(&mut *conn).await?;
    let (dev_in, dev_orgs) = org_clause("org_id", reach, 1);
    let sql = format!(
        "SELECT status, COUNT(*) FROM devices WHERE {dev_in} GROUP BY status ORDER BY status"
    );
    let mut q = sqlx::query_as(&sql);
    for o in &dev_orgs {
        q = q.bind(o);
    }
    let devices_by_status: Vec<(String, i64)> = q.fetch_all(&mut *conn).await?;
    let (cert_in, cert_orgs) = org_clause("org_id", reach, 3);
    let sql = format!(
        "SELECT COUNT(*) FROM certificates WHERE status = 'valid' AND not_after >= $1 AND not_after < $2 AND {cert_in}"
    );
    let mut q = sqlx::query_scalar(&sql).bind(now).bind(now + 30 * 86_400);
    for o in &cert_orgs {
        q = q.bind(o);
    }
    let certificates_expiring_30d: i64 = q.fetch_one(&mut *conn).await?;
    let (rev_in, rev_orgs) = org_clause("org_id", reach, 2);
    let sql = format!(
        "SELECT COUNT(*) FROM certificates WHERE status IN ('revoked', 'hold') AND revoked_at >= $1 AND {rev_in}"
    );
    let mut q = sqlx::query_scalar(&sql).bind(now - now.rem_euclid(86_400));
    for o in &rev_orgs {
        q = q.bind(o);
    }
    let revocations_today: i64 = q.fetch_one(&mut *conn).await?;
    Ok(Counts {
        users,
        active_sessions,
        devices_by_status,
        certificates_expiring_30d,
        revocations_today,
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

const DEVICE_COLUMNS: &str = "id, org_id, model, hardware_serial, location, latitude, longitude, installer, status, \
    created_at, updated_at, enrolled_at, last_seen_at";

pub async fn devices(db: &Db, reach: &Reach, s: &DeviceSearch) -> Result<Vec<Device>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 5);
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE ($1 IS NULL OR LOWER(id) LIKE $1 OR LOWER(hardware_serial) LIKE $1 \
         OR LOWER(model) LIKE $1 OR LOWER(location) LIKE $1) AND ($2 IS NULL OR org_id = $2) AND ($3 IS NULL OR status = $3) \
         AND {org_in} ORDER BY created_at DESC, id LIMIT $4"
    );
    let mut q = sqlx::query_as(&sql)
        .bind(s.text.as_deref().map(contains))
        .bind(&s.org_id)
        .bind(&s.status)
        .bind(PAGE);
    for o in &orgs {
        q = q.bind(o);
    }
    q.fetch_all(db.pool()).await
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

const CERT_COLUMNS: &str = "serial, ca_id, subject, sans, profile, org_id, device_id, key_sha256, not_before, not_after, \
    status, revoked_at, revocation_reason, requested_by, der, created_at";

pub async fn certificates(
    db: &Db,
    reach: &Reach,
    s: &CertSearch,
) -> Result<Vec<CertRecord>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 7);
    let serial = s
        .text
        .as_deref()
        .map(|t| t.trim().to_ascii_lowercase().replace(':', ""));
    let sql = format!(
        "SELECT {CERT_COLUMNS} FROM certificates WHERE ($1 IS NULL OR serial = $2 OR LOWER(subject) LIKE $1 \
         OR LOWER(sans) LIKE $1 OR LOWER(device_id) LIKE $1) AND ($3 IS NULL OR org_id = $3) \
         AND ($4 IS NULL OR device_id = $4) AND ($5 IS NULL OR status = $5) AND {org_in} \
         ORDER BY created_at DESC, serial LIMIT $6"
    );
    let mut q = sqlx::query_as(&sql)
        .bind(s.text.as_deref().map(contains))
        .bind(serial)
        .bind(&s.org_id)
        .bind(&s.device_id)
        .bind(&s.status)
        .bind(PAGE);
    for o in &orgs {
        q = q.bind(o);
    }
    q.fetch_all(db.pool()).await
}

/// What an audit search asks; every field narrows. Times are RFC 3339 (a prefix such as a
/// date works: entries are stored with RFC 3339 UTC times, which sort as text).
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    pub actor: Option<String>,
    /// An action, or a prefix ending in `.` (`cert.`).
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: i64,
}

const AUDIT_COLUMNS: &str = "seq, id, at, actor_kind, actor_id, action, target, outcome, source_ip, \
    request_id, details, prev_hash, hash";

pub async fn audit(db: &Db, s: &AuditSearch) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let action_like = s.action.as_deref().map(|a| {
        if a.ends_with('.') {
            format!("{}%", a.replace('%', ""))
        } else {
            a.replace('%', "")
        }
    });
    sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action LIKE $2) \
         AND ($3 IS NULL OR target = $3) AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
         ORDER BY seq DESC LIMIT $6"
    ))
    .bind(&s.actor)
    .bind(action_like)
    .bind(&s.target)
    .bind(&s.since)
    .bind(&s.until)
    .bind(if s.limit > 0 { s.limit.min(100_000) } else { PAGE })
    .fetch_all(db.pool())
    .await
}

pub async fn audit_entry(db: &Db, id: &str) -> Result<Option<AuditEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// Recent refusals and security changes, newest first, for the dashboard.
pub async fn security_events(db: &Db) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE outcome <> 'success' OR action LIKE 'cert.revoke%' \
         OR action LIKE 'cert.hold%' OR action LIKE 'user.%' OR action LIKE 'console.%' ORDER BY seq DESC LIMIT 10"
    ))
    .fetch_all(db.pool())
    .await
}

/// An account as the console lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

const USER_COLUMNS: &str = "id, username, email, name, status, org_id, last_login_at, created_at";

/// Accounts whose username, email, name or id contains `text`.
pub async fn users(
    db: &Db,
    reach: &Reach,
    text: Option<&str>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 3);
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE ($1 IS NULL OR username LIKE $1 OR LOWER(email) LIKE $1 \
         OR LOWER(name) LIKE $1 OR id LIKE $1) AND {org_in} ORDER BY username LIMIT $2"
    );
    let mut q = sqlx::query_as(&sql).bind(text.map(contains)).bind(PAGE);
    for o in &orgs {
        q = q.bind(o);
    }
    q.fetch_all(db.pool()).await
}

pub async fn user(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 OR username = LOWER($1) ORDER BY (id = $1) DESC LIMIT 1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// A consent an account gave a client.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConsentRow {
    pub client_id: String,
    pub scopes: String,
    pub updated_at: i64,
}

pub async fn consents(db: &Db, user_id: &str) -> Result<Vec<ConsentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT client_id, scopes, updated_at FROM consents WHERE user_id = $1 ORDER BY client_id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// Active accounts not signed in for `days` (never signed in counts from creation), for the
/// periodic review.
pub async fn unused(db: &Db, reach: &Reach, days: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let cutoff = kizuna_core::time::now_unix() - days * 86_400;
    let (org_in, orgs) = org_clause("org_id", reach, 3);
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE status = 'active' AND COALESCE(last_login_at, created_at) < $1 \
         AND {org_in} ORDER BY username LIMIT $2"
    );
    let mut q = sqlx::query_as(&sql).bind(cutoff).bind(PAGE);
    for o in &orgs {
        q = q.bind(o);
    }
    q.fetch_all(db.pool()).await
}
