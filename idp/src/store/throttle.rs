//! Fixed-window counters shared by every replica (`throttle`).

use kizuna_core::db::Db;

use super::DAY;

/// Counts one event for `key` at `now`, starting a new window when the current one began at
/// or before `window_start_before`; returns the count in the window.
pub(crate) async fn hit(
    db: &Db,
    key: &str,
    now: i64,
    window_start_before: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO throttle (key, window_start, count) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           count = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.count + 1 END, \
           window_start = CASE WHEN throttle.window_start <= $3 THEN $2 ELSE throttle.window_start END \
         RETURNING count",
    )
    .bind(key)
    .bind(now)
    .bind(window_start_before)
    .fetch_one(db.pool())
    .await
}

/// The count for `key` in a window that began after `since` (0 without one).
pub(crate) async fn count(db: &Db, key: &str, since: i64) -> Result<i64, sqlx::Error> {
    let count: Option<i64> =
        sqlx::query_scalar("SELECT count FROM throttle WHERE key = $1 AND window_start > $2")
            .bind(key)
            .bind(since)
            .fetch_optional(db.pool())
            .await?;
    Ok(count.unwrap_or(0))
}

/// Deletes counters whose window began more than a day ago.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[("DELETE FROM throttle WHERE window_start < $1", now - DAY)],
    )
    .await;
}
