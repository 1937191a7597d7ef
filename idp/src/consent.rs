//! Consent (remembered per person, client and scope set): a client that asks for scopes the
//! person already granted it does not ask again; asking for more shows the consent page. A
//! person can see what they granted and withdraw it, and see every release of their data
//! (read from the audit log's `token.issue` and `userinfo.release` entries).

use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::AnyConnection;

use crate::Idp;

/// A service the person has granted scopes to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Granted {
    pub client_id: String,
    pub client_name: String,
    pub organization: Option<String>,
    pub scopes: String,
    pub updated_at: i64,
}

impl Granted {
    pub fn scope_list(&self) -> Vec<String> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }
}

/// One release of the person's data to a service.
#[derive(Debug, Clone)]
pub struct Release {
    pub at: String,
    pub client_id: String,
    pub client_name: Option<String>,
    /// `token.issue` (tokens with claims) or `userinfo.release`.
    pub action: String,
    pub claims: Vec<String>,
}

/// What the person has granted, newest first.
pub async fn list(idp: &Idp, user_id: &str) -> Result<Vec<Granted>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.client_id, COALESCE(k.name, c.client_id) AS client_name, o.name AS organization, \
         c.scopes, c.updated_at FROM consents c \
         LEFT JOIN clients k ON k.id = c.client_id \
         LEFT JOIN organizations o ON o.id = k.org_id \
         WHERE c.user_id = $1 ORDER BY c.updated_at DESC",
    )
    .bind(user_id)
    .fetch_all(idp.core.db.pool())
    .await
}

/// Withdraws the person's consent to a client: the consent is forgotten (the next sign-in
/// asks again) and the grants the client holds for the person end (refresh tokens, and access
/// tokens at introspection and UserInfo), audited, in one transaction. False when there was
/// no consent to withdraw.
pub async fn withdraw(idp: &Idp, user_id: &str, client_id: &str) -> Result<bool, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let scopes: Option<String> = sqlx::query_scalar(
        "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 RETURNING scopes",
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(scopes) = scopes else {
        return Ok(false);
    };
    let ended = sqlx::query(
        "UPDATE grants SET revoked_at = $1, revoked_reason = 'consent withdrawn' \
         WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(client_id)
    .execute(tx.conn())
    .await?
    .rows_affected();
    let scopes: Value = serde_json::from_str(&scopes).unwrap_or(Value::Null);
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(user_id),
            "consent.withdraw",
            format!("client:{client_id}"),
        )
        .details(json!({"scopes": scopes, "grants_ended": ended}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(true)
}

/// The latest releases of the person's data, newest first.
pub async fn releases(idp: &Idp, user_id: &str, limit: i64) -> Result<Vec<Release>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT a.at, a.actor_id, a.action, a.details, k.name FROM audit_log a \
         LEFT JOIN clients k ON k.id = a.actor_id \
         WHERE a.target = $1 AND a.actor_kind = 'client' \
         AND a.action IN ('token.issue', 'userinfo.release') \
         ORDER BY a.seq DESC LIMIT $2",
    )
    .bind(format!("user:{user_id}"))
    .bind(limit)
    .fetch_all(idp.core.db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at, client_id, action, details, client_name)| {
            let details: Value = serde_json::from_str(&details).unwrap_or(Value::Null);
            let claims = details["claims"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Release {
                at,
                client_id,
                client_name,
                action,
                claims,
            }
        })
        .collect())
}

/// True when the person has granted `client_id` every scope in `scopes`.
pub async fn covers(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<bool, sqlx::Error> {
    let granted: Option<String> =
        sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(idp.core.db.pool())
            .await?;
    // A row means the person answered the consent page for this client at least once.
    Ok(match granted {
        None => false,
        Some(text) => {
            let granted: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
            scopes.iter().all(|s| granted.contains(s))
        }
    })
}

/// Adds `scopes` to what the person has granted the client.
pub async fn grant(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&mut *conn)
            .await?;
    let mut all: Vec<String> = existing
        .and_then(|g| serde_json::from_str(&g).ok())
        .unwrap_or_default();
    all.extend(scopes.iter().cloned());
    all.sort();
    all.dedup();
    let now = kizuna_core::time::now_unix();
    sqlx::query(
        "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = $3, updated_at = $4",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(serde_json::to_string(&all).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(all)
}
