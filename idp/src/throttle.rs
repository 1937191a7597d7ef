//! Fixed-window counters in the database (so every replica sees the same count), for
//! throttling failed sign-ins per source address and guesses at device user codes.

use crate::Idp;

/// Counts one event for `key`; returns the count in the current window.
pub async fn hit(idp: &Idp, key: &str, window_secs: i64) -> Result<i64, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let count: i64 = sqlx::query_scalar(
        "INSERT INTO throttle (key, window_start, count) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           count = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.count + 1 END, \
           window_start = CASE WHEN throttle.window_start <= $3 THEN $2 ELSE throttle.window_start END \
         RETURNING count",
    )
    .bind(key)
    .bind(now)
    .bind(now - window_secs)
    .fetch_one(idp.core.db.pool())
    .await?;
    Ok(count)
}

/// The count in the current window without adding to it.
pub async fn count(idp: &Idp, key: &str, window_secs: i64) -> Result<i64, sqlx::Error> {
    let count: Option<i64> =
        sqlx::query_scalar("SELECT count FROM throttle WHERE key = $1 AND window_start > $2")
            .bind(key)
            .bind(kizuna_core::time::now_unix() - window_secs)
            .fetch_optional(idp.core.db.pool())
            .await?;
    Ok(count.unwrap_or(0))
}
