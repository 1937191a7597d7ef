//! Token signing keys and their rotation state (`signing_keys`); the keys themselves live in
//! key custody.

use serde::Serialize;

use kizuna_core::db::{AnyConnection, Db};

/// A signing key as `kizuna key list` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

/// The states (`active`, `next`) that `alg` has keys in.
pub(crate) async fn live_states(
    conn: &mut AnyConnection,
    alg: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT state FROM signing_keys WHERE alg = $1 AND state IN ('active', 'next')",
    )
    .bind(alg)
    .fetch_all(conn)
    .await
}

/// Records a key of custody (`key_id`) as `kid` for `alg` in `state`; an active one is
/// activated at `now`.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    kid: &str,
    key_id: &str,
    alg: &str,
    state: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, key_id, alg, state, created_at, activated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(kid)
    .bind(key_id)
    .bind(alg)
    .bind(state)
    .bind(now)
    .bind((state == "active").then_some(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest active key of `alg`: its kid and custody key id.
pub(crate) async fn active(db: &Db, alg: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, key_id FROM signing_keys WHERE alg = $1 AND state = 'active' ORDER BY activated_at DESC LIMIT 1",
    )
    .bind(alg)
    .fetch_optional(db.pool())
    .await
}

/// The keys JWKS publishes at `now` (next, active, and retired ones still in their window):
/// kid, custody key id and alg, by alg and age.
pub(crate) async fn published(
    db: &Db,
    now: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, key_id, alg FROM signing_keys \
         WHERE state IN ('active', 'next') OR (state = 'retired' AND publish_until > $1) \
         ORDER BY alg, created_at",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await
}

/// The custody key id and alg of the key `kid`, whatever its state.
pub(crate) async fn find(db: &Db, kid: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT key_id, alg FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_optional(db.pool())
        .await
}

/// Retires the active key of `alg` at `now`, published until `publish_until`.
pub(crate) async fn retire_active(
    conn: &mut AnyConnection,
    alg: &str,
    now: i64,
    publish_until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE signing_keys SET state = 'retired', retired_at = $1, publish_until = $2 WHERE alg = $3 AND state = 'active'",
    )
    .bind(now)
    .bind(publish_until)
    .bind(alg)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes the next key of `alg` the active one at `now`.
pub(crate) async fn activate_next(
    conn: &mut AnyConnection,
    alg: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE alg = $2 AND state = 'next'")
        .bind(now)
        .bind(alg)
        .execute(conn)
        .await?;
    Ok(())
}

/// The algorithms whose active key was activated before `before`.
pub(crate) async fn due_for_rotation(db: &Db, before: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT alg FROM signing_keys WHERE state = 'active' AND activated_at < $1")
        .bind(before)
        .fetch_all(db.pool())
        .await
}

/// Every key, by alg and age.
pub(crate) async fn list(db: &Db) -> Result<Vec<SigningKeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, alg, state, created_at, activated_at, retired_at, publish_until FROM signing_keys ORDER BY alg, created_at",
    )
    .fetch_all(db.pool())
    .await
}
