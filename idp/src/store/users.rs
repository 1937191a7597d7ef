//! Accounts and their staff role assignments (`users`, `role_assignments`).

use serde::Serialize;

use kizuna_core::access::{Reach, Role};
use kizuna_core::db::{AnyConnection, Column, Db, OneRead, like_containing, org_clause};

/// A new account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub status: String,
    pub org_id: Option<String>,
    pub created_at: i64,
}

/// A stored account with what sign-in and claims need.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    #[serde(skip)]
    pub email_verified_int: i64,
    pub name: Option<String>,
    pub status: String,
    pub org_id: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    #[serde(skip)]
    pub failed_logins: i64,
    #[serde(skip)]
    pub locked_until: i64,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[sqlx(skip)]
    pub email_verified: bool,
}

const RECORD_COLUMNS: &str = "id, username, email, email_verified AS email_verified_int, name, status, org_id, \
    password_hash, failed_logins, locked_until, last_login_at, created_at, updated_at";

/// Reads the stored integer flag into `email_verified`.
fn finish(mut record: UserRecord) -> UserRecord {
    record.email_verified = record.email_verified_int != 0;
    record
}

/// Stores a new account with its password hash and name.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    user: &User,
    password_hash: Option<&str>,
    name: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, status, org_id, created_at, updated_at, name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(password_hash)
    .bind(&user.status)
    .bind(&user.org_id)
    .bind(user.created_at)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The account with this id.
pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<UserRecord>, sqlx::Error> {
    let row: Option<UserRecord> =
        sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(finish))
}

/// The account whose username, email address or id is `login` (already lower-case),
/// preferring a username match.
pub(crate) async fn find_by_login(
    conn: &mut AnyConnection,
    login: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let row: Option<UserRecord> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM users WHERE username = $1 OR email = $1 OR id = $1 ORDER BY (username = $1) DESC LIMIT 1"
    ))
    .bind(login)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(finish))
}

/// Every account, by username.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<UserRecord>, sqlx::Error> {
    let rows: Vec<UserRecord> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM users ORDER BY username"
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(finish).collect())
}

/// Accounts within `reach` whose username, email address, name or id contains `text` (every
/// one without a text), by username, at most `limit`.
pub async fn search(
    db: &Db,
    reach: &Reach,
    text: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRecord>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 3);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM users WHERE ($1 IS NULL OR username LIKE $1 OR LOWER(email) LIKE $1 \
         OR LOWER(name) LIKE $1 OR id LIKE $1) AND {org_in} ORDER BY username LIMIT $2"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(text.map(like_containing))
        .bind(limit);
    for org in &orgs {
        query = query.bind(org);
    }
    let rows: Vec<UserRecord> = query.fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(finish).collect())
}

/// How many accounts `reach` covers.
pub async fn count(db: &Db, reach: &Reach) -> Result<i64, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 1);
    let sql = format!("SELECT COUNT(*) FROM users WHERE {org_in}");
    let mut query = sqlx::query_scalar(&sql);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_one(db.pool()).await
}

/// The ids of the accounts `reach` covers (for narrowing another store's rows to them).
pub async fn ids(db: &Db, reach: &Reach) -> Result<Vec<String>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 1);
    let sql = format!("SELECT id FROM users WHERE {org_in} ORDER BY id");
    let mut query = sqlx::query_scalar(&sql);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_all(db.pool()).await
}

/// Active accounts within `reach` not signed in since `cutoff` (never signed in counts from
/// creation), by username, at most `limit`.
pub async fn inactive_since(
    db: &Db,
    reach: &Reach,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<UserRecord>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 3);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM users WHERE status = 'active' AND COALESCE(last_login_at, created_at) < $1 \
         AND {org_in} ORDER BY username LIMIT $2"
    );
    let mut query = sqlx::query_as(&sql).bind(cutoff).bind(limit);
    for org in &orgs {
        query = query.bind(org);
    }
    let rows: Vec<UserRecord> = query.fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(finish).collect())
}

/// The account whose id, or else whose username, is `text`.
pub async fn find_by_id_or_username(
    db: &Db,
    text: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let row: Option<UserRecord> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM users WHERE id = $1 OR username = LOWER($1) \
         ORDER BY (id = $1) DESC LIMIT 1"
    ))
    .bind(text)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(finish))
}

/// True when the account exists and is active.
pub async fn is_active(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let mut read = OneRead::new();
    let active = active_count(&mut read, id);
    Ok(read.fetch(conn).await?.get(active)? > 0)
}

/// 1 when the account `id` exists and is active, else 0: one value of a read with other
/// owners' checks.
pub(crate) fn active_count<'q>(read: &mut OneRead<'q>, id: &'q str) -> Column<i64> {
    read.column(|p| {
        format!(
            "SELECT COUNT(*) FROM users WHERE id = {} AND status = 'active'",
            p.param(id)
        )
    })
}

/// The id of the account using the email address `email`.
pub(crate) async fn id_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(conn)
        .await
}

/// Counts a failed password; returns the failures counted so far.
pub(crate) async fn count_failure(conn: &mut AnyConnection, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Locks the account until `until`, starting a fresh failure count.
pub(crate) async fn lock(
    conn: &mut AnyConnection,
    id: &str,
    until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET locked_until = $1, failed_logins = 0 WHERE id = $2")
        .bind(until)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a sign-in at `now`: the failure count and lock are cleared.
pub(crate) async fn record_login(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = 0, last_login_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the password hash (clearing failures and lock); false when there is no account.
pub(crate) async fn set_password_hash(
    conn: &mut AnyConnection,
    id: &str,
    hash: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = 0, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(done > 0)
}

/// Sets the account's status; false when there is no account.
pub(crate) async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(done > 0)
}

/// Marks the account's email address verified, as an edit at `now`.
pub(crate) async fn mark_email_verified(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_verified = 1, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a just-created account's email address verified (its times stay as inserted).
pub(crate) async fn set_email_verified(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_verified = 1 WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets the account's display name.
pub(crate) async fn set_name(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
        .bind(name)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets the account's own assurance rule (0 to 3).
pub(crate) async fn set_min_aal(
    conn: &mut AnyConnection,
    id: &str,
    min_aal: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET min_aal = $1, updated_at = $2 WHERE id = $3")
        .bind(min_aal)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// An active account's own assurance rule and how many roles it holds; `None` when there is
/// no such account or it is not active.
pub(crate) async fn active_rule(db: &Db, id: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.min_aal, (SELECT COUNT(*) FROM role_assignments r WHERE r.user_id = u.id) FROM users u \
         WHERE u.id = $1 AND u.status = 'active'",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// The account's own assurance rule and how many roles it holds; `None` without an account.
pub(crate) async fn assurance_rule(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.min_aal, (SELECT COUNT(*) FROM role_assignments r WHERE r.user_id = u.id) FROM users u WHERE u.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Assigns a role in a scope (nothing changes when it is already held).
pub(crate) async fn grant_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
    scope: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO role_assignments (user_id, role, scope, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, role, scope) DO NOTHING",
    )
    .bind(user_id)
    .bind(role.as_str())
    .bind(scope)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Withdraws a role in a scope.
pub(crate) async fn revoke_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
    scope: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM role_assignments WHERE user_id = $1 AND role = $2 AND scope = $3")
        .bind(user_id)
        .bind(role.as_str())
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(())
}

/// True when the account holds `role` (in any scope) and is active.
pub async fn has_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM role_assignments r JOIN users u ON u.id = r.user_id \
         WHERE r.user_id = $1 AND r.role = $2 AND u.status = 'active'",
    )
    .bind(user_id)
    .bind(role.as_str())
    .fetch_one(conn)
    .await?;
    Ok(count > 0)
}

/// The role assignments of an active account (role and scope), ordered; unknown roles are
/// left out.
pub async fn assignments(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Vec<(Role, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.role, r.scope FROM role_assignments r JOIN users u ON u.id = r.user_id \
         WHERE r.user_id = $1 AND u.status = 'active' ORDER BY r.role, r.scope",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(role, scope)| Some((role.parse().ok()?, scope)))
        .collect())
}

/// True when an active account holds `role` anywhere.
pub async fn role_exists(conn: &mut AnyConnection, role: Role) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM role_assignments r JOIN users u ON u.id = r.user_id \
         WHERE r.role = $1 AND u.status = 'active'",
    )
    .bind(role.as_str())
    .fetch_one(conn)
    .await?;
    Ok(count > 0)
}
