//! The first administrator. On a fresh install `kizuna serve` prints a one-time link; whoever
//! holds it creates the city administrator. Tokens are valid for one hour, single use, and
//! stored only as hashes; once an administrator exists no token works and none is printed.

use serde_json::json;

use kizuna_core::Core;
use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::secret;
use kizuna_idp::password::{self, PasswordError};
use kizuna_idp::users::{self, CITY_WIDE, NewUser, Role, User, UserError};

/// How long a bootstrap token is valid, in seconds.
pub const TOKEN_TTL_SECS: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the bootstrap token is unknown, expired or already used")]
    InvalidToken,
    #[error("an administrator already exists")]
    AlreadyDone,
    #[error("the passwords do not match")]
    PasswordMismatch,
    #[error(transparent)]
    User(#[from] UserError),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

impl From<PasswordError> for BootstrapError {
    fn from(e: PasswordError) -> Self {
        BootstrapError::User(UserError::Password(e))
    }
}

impl From<audit::AuditError> for BootstrapError {
    fn from(e: audit::AuditError) -> Self {
        match e {
            audit::AuditError::Storage(e) => BootstrapError::Storage(e),
            audit::AuditError::WriterStopped => BootstrapError::Storage(sqlx::Error::PoolClosed),
        }
    }
}

/// Issues a new bootstrap token when no administrator exists yet; `None` otherwise.
/// Earlier unused tokens stay valid until they expire (replicas starting together each print
/// one); the first one redeemed voids the rest.
pub async fn issue_if_needed(core: &Core) -> Result<Option<String>, BootstrapError> {
    let mut tx = core.db.begin().await?;
    if users::role_exists(tx.conn(), Role::CityAdmin).await? {
        return Ok(None);
    }
    let token = secret::random_token();
    let id = secret::new_id();
    let now = kizuna_core::time::now_unix();
    sqlx::query(
        "INSERT INTO bootstrap_tokens (id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(secret::token_hash(&token))
    .bind(now)
    .bind(now + TOKEN_TTL_SECS)
    .execute(tx.conn())
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::system("kizuna"),
            "bootstrap.token_issue",
            format!("bootstrap:{id}"),
        )
        .details(json!({"expires_in_secs": TOKEN_TTL_SECS}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(Some(token))
}

/// True when the token may still be redeemed (for showing the form).
pub async fn token_is_usable(core: &Core, token: &str) -> Result<bool, BootstrapError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bootstrap_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(secret::token_hash(token))
    .bind(kizuna_core::time::now_unix())
    .fetch_one(core.db.pool())
    .await?;
    Ok(count > 0)
}

pub async fn administrator_exists(core: &Core) -> Result<bool, BootstrapError> {
    let mut conn = core.db.conn().await?;
    Ok(users::role_exists(&mut conn, Role::CityAdmin).await?)
}

/// What the person at the bootstrap page submits.
pub struct NewAdministrator {
    pub username: String,
    pub email: Option<String>,
    pub password: String,
    pub password_confirm: String,
}

/// Creates the city administrator with a valid token, in one transaction: the account, its
/// role, the token marked used (and every other token voided), and the audit entry.
pub async fn redeem(
    core: &Core,
    token: &str,
    admin: NewAdministrator,
) -> Result<User, BootstrapError> {
    let result = redeem_inner(core, token, admin).await;
    if let Err(e @ (BootstrapError::InvalidToken | BootstrapError::AlreadyDone)) = &result {
        core.audit
            .record(
                AuditEvent::new(Actor::anonymous(), "bootstrap.redeem", "bootstrap")
                    .outcome(Outcome::Denied)
                    .details(json!({"reason": e.to_string()})),
            )
            .await?;
    }
    result
}

async fn redeem_inner(
    core: &Core,
    token: &str,
    admin: NewAdministrator,
) -> Result<User, BootstrapError> {
    if !secret::constant_time_eq(admin.password.as_bytes(), admin.password_confirm.as_bytes()) {
        return Err(BootstrapError::PasswordMismatch);
    }
    users::normalize_username(&admin.username)?;
    let email = admin.email.filter(|e| !e.trim().is_empty());
    if let Some(email) = &email {
        users::normalize_email(email)?;
    }
    // Hash before taking the write lock: it is the slow part.
    let password_hash = password::hash(&admin.password).await?;
    let now = kizuna_core::time::now_unix();

    let mut tx = core.db.begin().await?;
    let token_id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM bootstrap_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(secret::token_hash(token))
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let token_id = token_id.ok_or(BootstrapError::InvalidToken)?;
    if users::role_exists(tx.conn(), Role::CityAdmin).await? {
        return Err(BootstrapError::AlreadyDone);
    }
    let user = users::insert(
        tx.conn(),
        NewUser {
            username: admin.username,
            email,
            name: None,
            password_hash: Some(password_hash),
            org_id: None,
        },
    )
    .await?;
    users::grant_role(tx.conn(), &user.id, Role::CityAdmin, CITY_WIDE).await?;
    sqlx::query("UPDATE bootstrap_tokens SET used_at = $1, used_by = $2 WHERE id = $3")
        .bind(now)
        .bind(&user.id)
        .bind(&token_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE bootstrap_tokens SET used_at = $1 WHERE used_at IS NULL")
        .bind(now)
        .execute(tx.conn())
        .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(
                Actor::user(&user.id),
                "bootstrap.redeem",
                format!("bootstrap:{token_id}"),
            ),
            AuditEvent::new(
                Actor::user(&user.id),
                "user.create",
                format!("user:{}", user.id),
            )
            .details(json!({"username": user.username, "roles": [Role::CityAdmin.as_str()]})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(user)
}
