//! Installation-wide values the server records for the CLI and other processes: what a
//! command run beside a server needs to agree with it on (the public URL it serves under).

use crate::db::Db;

/// The public URL the full server last started with.
pub const PUBLIC_URL: &str = "public_url";

pub async fn get(db: &Db, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(db.pool())
        .await
}

pub async fn set(db: &Db, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
    )
    .bind(key)
    .bind(value)
    .bind(crate::time::now_unix())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Stores `value` under `key` unless a value is already stored there (the first writer wins).
pub async fn set_if_absent(db: &Db, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(value)
    .bind(crate::time::now_unix())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// [`get`] inside the caller's transaction.
pub async fn get_in(
    conn: &mut crate::db::AnyConnection,
    key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
}

/// Replaces the value under `key` with `value` if it still is `was` (compare and set, in the
/// caller's transaction); false when it changed meanwhile or is gone.
pub async fn replace_in(
    conn: &mut crate::db::AnyConnection,
    key: &str,
    was: &str,
    value: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(
            "UPDATE settings SET value = $1, updated_at = $2 WHERE key = $3 AND value = $4",
        )
        .bind(value)
        .bind(crate::time::now_unix())
        .bind(key)
        .bind(was)
        .execute(conn)
        .await?
        .rows_affected()
            == 1,
    )
}
