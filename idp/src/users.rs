//! Accounts: residents and staff. Usernames are case-insensitive (stored lower-case);
//! passwords are stored only as argon2id hashes. Staff rights are role assignments, each
//! scoped to one organization or to the whole city (`*`).

use serde::Serialize;

use kizuna_core::db::{AnyConnection, is_unique_violation};

use crate::password::PasswordError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    CityAdmin,
    OrgAdmin,
    Registrar,
    Installer,
    Auditor,
    Helpdesk,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CityAdmin => "city-admin",
            Role::OrgAdmin => "org-admin",
            Role::Registrar => "registrar",
            Role::Installer => "installer",
            Role::Auditor => "auditor",
            Role::Helpdesk => "helpdesk",
        }
    }
}

/// The scope of a role held across every organization.
pub const CITY_WIDE: &str = "*";

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
    #[error("the username {0:?} is taken")]
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
    let email = raw.trim();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_string())
    } else {
        Err(UserError::InvalidEmail)
    }
}

/// A user about to be stored (the password already hashed).
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub org_id: Option<String>,
}

pub async fn insert(conn: &mut AnyConnection, new: NewUser) -> Result<User, UserError> {
    let username = normalize_username(&new.username)?;
    let email = new.email.as_deref().map(normalize_email).transpose()?;
    let user = User {
        id: kizuna_core::secret::new_id(),
        username,
        email,
        status: "active".into(),
        org_id: new.org_id,
        created_at: kizuna_core::time::now_unix(),
    };
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, status, org_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&new.password_hash)
    .bind(&user.status)
    .bind(&user.org_id)
    .bind(user.created_at)
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
