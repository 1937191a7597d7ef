//! Back-channel logout tokens waiting for delivery (`logout_deliveries`).

use kizuna_core::db::{AnyConnection, Db};

/// Queues a logout token (`id`) for a client's back-channel logout URI, due at `now`.
pub(crate) async fn queue(
    conn: &mut AnyConnection,
    id: &str,
    client_id: &str,
    uri: &str,
    logout_token: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO logout_deliveries (id, client_id, uri, logout_token, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id)
    .bind(client_id)
    .bind(uri)
    .bind(logout_token)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// An undelivered logout token due for an attempt.
pub(crate) struct Delivery {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    pub logout_token: String,
    pub attempts: i64,
}

/// Undelivered tokens due at `now` with fewer than `max_attempts` attempts, longest waiting
/// first, at most `limit`.
pub(crate) async fn due(
    db: &Db,
    now: i64,
    max_attempts: i64,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, client_id, uri, logout_token, attempts FROM logout_deliveries \
         WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND attempts < $2 ORDER BY next_attempt_at LIMIT $3",
    )
    .bind(now)
    .bind(max_attempts)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, client_id, uri, logout_token, attempts)| Delivery {
            id,
            client_id,
            uri,
            logout_token,
            attempts,
        })
        .collect())
}

/// Claims a due delivery for one sender by moving its next attempt to `until`; false when
/// another sender was first.
pub(crate) async fn claim(db: &Db, id: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("UPDATE logout_deliveries SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at <= $3 AND delivered_at IS NULL")
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await?
        .rows_affected()
        == 1)
}

/// Records the delivery at `now`.
pub(crate) async fn mark_delivered(db: &Db, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE logout_deliveries SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub(crate) async fn mark_failed(
    db: &Db,
    id: &str,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3",
    )
    .bind(next_attempt_at)
    .bind(error)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}
