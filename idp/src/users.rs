//! Accounts: residents and staff. Usernames are case-insensitive (stored lower-case);
//! passwords are stored only as argon2id hashes. Staff rights are role assignments, each
//! scoped to one organization or to the whole city (`*`).

use serde::Serialize;

use kizuna_core::db::{AnyConnection, is_unique_violation};

use crate::password::PasswordError;

pub use kizuna_core::access::{CITY_WIDE, Role};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub status: String,
    pub org_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username {0}")]
    InvalidUsername(&'static str),
    #[error("the email address is not valid")]
    InvalidEmail,
    #[error("the name must be at most 200 characters, without control characters")]
    InvalidName,
    #[error("no account {0:?}")]
    NotFound(String),
    #[error("an account with this username or email address already exists: {0}")]
    UsernameTaken(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Usernames: 3–64 characters of lower-case letters, digits and `.`, `_`, `-`, `@`.
pub fn normalize_username(raw: &str) -> Result<String, UserError> {
    let name = raw.trim().to_lowercase();
    let len = name.chars().count();
    if len < 3 {
        return Err(UserError::InvalidUsername("must be at least 3 characters"));
    }
    if len > 64 {
        return Err(UserError::InvalidUsername("must be at most 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(UserError::InvalidUsername(
            "may contain only letters, digits and . _ - @",
        ));
    }
    Ok(name)
}

/// A light syntactic check; ownership of an address is proven by mail, not by syntax.
pub fn normalize_email(raw: &str) -> Result<String, UserError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(UserError::InvalidEmail)
    }
}

/// A user about to be stored (the password already hashed).
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub org_id: Option<String>,
}

pub async fn insert(conn: &mut AnyConnection, new: NewUser) -> Result<User, UserError> {
    let username = normalize_username(&new.username)?;
    let email = new.email.as_deref().map(normalize_email).transpose()?;
    if new
        .name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
    {
        return Err(UserError::InvalidName);
    }
    let user = User {
        id: kizuna_core::secret::new_id(),
        username,
        email,
        status: "active".into(),
        org_id: new.org_id,
        created_at: kizuna_core::time::now_unix(),
    };
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, status, org_id, created_at, updated_at, name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&new.password_hash)
    .bind(&user.status)
    .bind(&user.org_id)
    .bind(user.created_at)
    .bind(&new.name)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            UserError::UsernameTaken(user.username.clone())
        } else {
            UserError::Storage(e)
        }
    })?;
    Ok(user)
}

pub async fn grant_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
    scope: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO role_assignments (user_id, role, scope, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, role, scope) DO NOTHING",
    )
    .bind(user_id)
    .bind(role.as_str())
    .bind(scope)
    .bind(kizuna_core::time::now_unix())
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

/// The account's role assignments: each role with its scope (an organization id, or
/// [`CITY_WIDE`]), for an active account only.
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

/// The scopes a person's token may carry. Management scopes (`kizuna:*`) are dropped unless
/// the account holds a matching role now: `kizuna:admin` needs some staff role,
/// `kizuna:role:<role>` that role; the narrow automation scopes (`kizuna:devices`,
/// `kizuna:cert:*`) are for clients acting for themselves and never go to a person.
pub async fn permitted_scopes(
    conn: &mut AnyConnection,
    user_id: &str,
    scopes: Vec<String>,
) -> Result<Vec<String>, sqlx::Error> {
    use kizuna_core::access::{ADMIN_SCOPE, ROLE_SCOPE_PREFIX, is_management_scope};
    if !scopes.iter().any(|s| is_management_scope(s)) {
        return Ok(scopes);
    }
    let held = assignments(conn, user_id).await?;
    Ok(scopes
        .into_iter()
        .filter(|s| {
            if !is_management_scope(s) {
                return true;
            }
            if s == ADMIN_SCOPE {
                return !held.is_empty();
            }
            s.strip_prefix(ROLE_SCOPE_PREFIX)
                .and_then(|r| r.parse::<Role>().ok())
                .is_some_and(|role| held.iter().any(|(r, _)| *r == role))
        })
        .collect())
}

/// Grants (`granted`) or withdraws a role in a scope; audited as `user.role_grant` or
/// `user.role_revoke` (the periodic review lists these).
pub async fn change_role(
    core: &kizuna_core::Core,
    actor: kizuna_core::audit::Actor,
    user_id: &str,
    role: Role,
    scope: &str,
    granted: bool,
) -> Result<(), UserError> {
    use kizuna_core::audit::{self, AuditEvent};
    let mut tx = core.db.begin().await?;
    if find(tx.conn(), user_id).await?.is_none() {
        return Err(UserError::NotFound(user_id.to_string()));
    }
    if granted {
        grant_role(tx.conn(), user_id, role, scope).await?;
    } else {
        sqlx::query("DELETE FROM role_assignments WHERE user_id = $1 AND role = $2 AND scope = $3")
            .bind(user_id)
            .bind(role.as_str())
            .bind(scope)
            .execute(tx.conn())
            .await?;
    }
    let action = if granted {
        "user.role_grant"
    } else {
        "user.role_revoke"
    };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, action, format!("user:{user_id}"))
            .details(serde_json::json!({"role": role.as_str(), "scope": scope}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_checked() {
        assert_eq!(normalize_username("  Alice.Admin ").unwrap(), "alice.admin");
        assert!(normalize_username("ab").is_err());
        assert!(normalize_username("alice admin").is_err());
        assert!(normalize_username("<script>").is_err());
        assert!(normalize_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn emails_need_a_domain() {
        assert!(normalize_email("taro@city.example.jp").is_ok());
        assert!(normalize_email("taro@localhost").is_err());
        assert!(normalize_email("@city.example").is_err());
        assert!(normalize_email("taro @city.example").is_err());
    }
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

fn finish(mut record: UserRecord) -> UserRecord {
    record.email_verified = record.email_verified_int != 0;
    record
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<UserRecord>, sqlx::Error> {
    let row: Option<UserRecord> =
        sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(finish))
}

/// Finds an account by username, email address, or id.
pub async fn find_by_login(
    conn: &mut AnyConnection,
    login: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let login = login.trim().to_lowercase();
    if login.is_empty() || login.len() > 254 {
        return Ok(None);
    }
    let row: Option<UserRecord> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM users WHERE username = $1 OR email = $1 OR id = $1 ORDER BY (username = $1) DESC LIMIT 1"
    ))
    .bind(&login)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(finish))
}

pub async fn list(conn: &mut AnyConnection) -> Result<Vec<UserRecord>, sqlx::Error> {
    let rows: Vec<UserRecord> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM users ORDER BY username"
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(finish).collect())
}

/// Counts a failed password; locks the account for `lockout_secs` once `max_failures` is
/// reached. Returns whether the account is now locked.
pub async fn record_failure(
    conn: &mut AnyConnection,
    id: &str,
    max_failures: i64,
    lockout_secs: i64,
) -> Result<bool, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let failures: i64 = sqlx::query_scalar(
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if failures >= max_failures {
        sqlx::query("UPDATE users SET locked_until = $1, failed_logins = 0 WHERE id = $2")
            .bind(now + lockout_secs)
            .bind(id)
            .execute(conn)
            .await?;
        return Ok(true);
    }
    Ok(false)
}

pub async fn record_success(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = 0, last_login_at = $1 WHERE id = $2",
    )
    .bind(kizuna_core::time::now_unix())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_password_hash(
    conn: &mut AnyConnection,
    id: &str,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = 0, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(kizuna_core::time::now_unix())
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(done > 0)
}

pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(kizuna_core::time::now_unix())
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(done > 0)
}

/// Creates an account (hashing the password first) and audits it, in one transaction.
pub async fn create_account(
    core: &kizuna_core::Core,
    actor: kizuna_core::audit::Actor,
    mut new: NewUser,
    password: Option<&str>,
) -> Result<User, UserError> {
    use kizuna_core::audit::{self, AuditEvent};
    normalize_username(&new.username)?;
    new.password_hash = match password {
        Some(p) => Some(crate::password::hash(p).await?),
        None => None,
    };
    let mut tx = core.db.begin().await?;
    let user = insert(tx.conn(), new).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "user.create", format!("user:{}", user.id)).details(
                serde_json::json!({"username": user.username, "password": password.is_some()}),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(user)
}

/// Sets a new password for the account named by username, email or id; audited.
pub async fn change_password(
    core: &kizuna_core::Core,
    actor: kizuna_core::audit::Actor,
    login: &str,
    password: &str,
) -> Result<UserRecord, UserError> {
    use kizuna_core::audit::{self, AuditEvent};
    let hash = crate::password::hash(password).await?;
    let mut tx = core.db.begin().await?;
    let user = find_by_login(tx.conn(), login)
        .await?
        .ok_or_else(|| UserError::NotFound(login.to_string()))?;
    set_password_hash(tx.conn(), &user.id, &hash).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "user.set_password",
            format!("user:{}", user.id),
        )],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(user)
}

/// Disables or re-enables an account; disabling ends its sessions and revokes its grants.
pub async fn change_status(
    core: &kizuna_core::Core,
    actor: kizuna_core::audit::Actor,
    login: &str,
    active: bool,
) -> Result<UserRecord, UserError> {
    let mut tx = core.db.begin().await?;
    let (user, entries) = change_status_in(tx.conn(), actor, login, active).await?;
    tx.commit().await?;
    kizuna_core::audit::publish(&entries);
    Ok(user)
}

/// [`change_status`] inside the caller's transaction (several accounts at once); returns
/// the audit entries to publish after commit.
pub async fn change_status_in(
    conn: &mut AnyConnection,
    actor: kizuna_core::audit::Actor,
    login: &str,
    active: bool,
) -> Result<(UserRecord, Vec<kizuna_core::audit::AuditEntry>), UserError> {
    use kizuna_core::audit::{self, AuditEvent};
    let now = kizuna_core::time::now_unix();
    let user = find_by_login(&mut *conn, login)
        .await?
        .ok_or_else(|| UserError::NotFound(login.to_string()))?;
    set_status(
        &mut *conn,
        &user.id,
        if active { "active" } else { "disabled" },
    )
    .await?;
    if !active {
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(&user.id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = 'account disabled' WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&user.id)
            .execute(&mut *conn)
            .await?;
    }
    let entries = audit::append_in(
        conn,
        &[AuditEvent::new(
            actor,
            if active {
                "user.enable"
            } else {
                "user.disable"
            },
            format!("user:{}", user.id),
        )],
    )
    .await?;
    Ok((user, entries))
}

/// Records that the account's email address is verified; audited.
pub async fn mark_email_verified(
    core: &kizuna_core::Core,
    actor: kizuna_core::audit::Actor,
    login: &str,
) -> Result<UserRecord, UserError> {
    use kizuna_core::audit::{self, AuditEvent};
    let mut tx = core.db.begin().await?;
    let user = find_by_login(tx.conn(), login)
        .await?
        .filter(|u| u.email.is_some())
        .ok_or_else(|| UserError::NotFound(format!("{login} (with an email address)")))?;
    sqlx::query("UPDATE users SET email_verified = 1, updated_at = $1 WHERE id = $2")
        .bind(kizuna_core::time::now_unix())
        .bind(&user.id)
        .execute(tx.conn())
        .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "user.verify_email",
            format!("user:{}", user.id),
        )],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(user)
}
