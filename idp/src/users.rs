//! Accounts: residents and staff. Usernames are case-insensitive (stored lower-case);
//! passwords are stored only as argon2id hashes. Staff rights are role assignments, each
//! scoped to one organization or to the whole city (`*`).

use kizuna_core::db::{AnyConnection, is_unique_violation};

use crate::password::PasswordError;
use crate::store::{grants, sessions, users as store};

pub use crate::store::users::{User, UserRecord, assignments, find, has_role, list, role_exists};
pub use kizuna_core::access::{CITY_WIDE, Role};

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
    store::insert(
        conn,
        &user,
        new.password_hash.as_deref(),
        new.name.as_deref(),
    )
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

/// Assigns a role in a scope (an organization id, or [`CITY_WIDE`]).
pub async fn grant_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
    scope: &str,
) -> Result<(), sqlx::Error> {
    store::grant_role(conn, user_id, role, scope, kizuna_core::time::now_unix()).await
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
        store::revoke_role(tx.conn(), user_id, role, scope).await?;
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

/// Finds an account by username, email address, or id.
pub async fn find_by_login(
    conn: &mut AnyConnection,
    login: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let login = login.trim().to_lowercase();
    if login.is_empty() || login.len() > 254 {
        return Ok(None);
    }
    store::find_by_login(conn, &login).await
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
    let failures = store::count_failure(&mut *conn, id).await?;
    if failures >= max_failures {
        store::lock(conn, id, now + lockout_secs).await?;
        return Ok(true);
    }
    Ok(false)
}

/// Records a sign-in: the failure count and lock are cleared.
pub async fn record_success(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    store::record_login(conn, id, kizuna_core::time::now_unix()).await
}

/// Replaces the account's password hash; false when there is no account.
pub async fn set_password_hash(
    conn: &mut AnyConnection,
    id: &str,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    store::set_password_hash(conn, id, hash, kizuna_core::time::now_unix()).await
}

/// Sets the account's status (`active`, `disabled`); false when there is no account.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    store::set_status(conn, id, status, kizuna_core::time::now_unix()).await
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
        sessions::end_all_of(&mut *conn, &user.id, now).await?;
        grants::revoke_for_user(&mut *conn, &user.id, "account disabled", now).await?;
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
    store::mark_email_verified(tx.conn(), &user.id, kizuna_core::time::now_unix()).await?;
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
