//! Consent (remembered per person, client and scope set): a client that asks for scopes the
//! person already granted it does not ask again; asking for more shows the consent page.

use kizuna_core::db::AnyConnection;

use crate::Idp;

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
