//! What each person granted each client (`consents`).

use kizuna_core::db::{AnyConnection, Db};

use super::{list_from_json, list_to_json};

/// The scopes a person granted a client, and when they last changed.
#[derive(Debug, Clone)]
pub struct Consent {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub updated_at: i64,
}

/// The person's consents, most recently changed first.
pub async fn for_user(db: &Db, user_id: &str) -> Result<Vec<Consent>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT client_id, scopes, updated_at FROM consents WHERE user_id = $1 ORDER BY updated_at DESC",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(client_id, scopes, updated_at)| Consent {
            client_id,
            scopes: list_from_json(&scopes),
            updated_at,
        })
        .collect())
}

/// The scopes the person granted the client; `None` when they never answered for it.
pub(crate) async fn scopes(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let scopes: Option<String> =
        sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(conn)
            .await?;
    Ok(scopes.map(|s| list_from_json(&s)))
}

/// Stores what the person granted the client (replacing what was there).
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = $3, updated_at = $4",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(list_to_json(scopes))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the person's consent to the client; returns the scopes it held, `None` when
/// there was none.
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let scopes: Option<String> = sqlx::query_scalar(
        "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 RETURNING scopes",
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    Ok(scopes.map(|s| list_from_json(&s)))
}

/// Forgets every consent given to a client.
pub(crate) async fn delete_for_client(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM consents WHERE client_id = $1")
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}
