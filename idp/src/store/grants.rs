//! Grants (the authorization every token of one sign-in belongs to), their rotating refresh
//! tokens, and revoked access tokens (`grants`, `refresh_tokens`, `revoked_tokens`).

use serde_json::Value;

use kizuna_core::db::{AnyConnection, Column, Db, OneRead};

use super::{list_from_json, list_to_json, split_scope};

/// A grant as it is recorded.
pub(crate) struct NewGrant<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub sid: Option<&'a str>,
    pub scope: &'a [String],
    pub auth_time: Option<i64>,
    pub acr: Option<&'a str>,
    pub amr: &'a [String],
    pub created_at: i64,
    pub expires_at: i64,
    /// The request's `claims` parameter.
    pub claims: Option<&'a Value>,
}

/// Records a grant.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    grant: &NewGrant<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grants (id, client_id, user_id, sid, scope, auth_time, acr, amr, created_at, expires_at, claims) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(grant.id)
    .bind(grant.client_id)
    .bind(grant.user_id)
    .bind(grant.sid)
    .bind(grant.scope.join(" "))
    .bind(grant.auth_time)
    .bind(grant.acr)
    .bind(list_to_json(grant.amr))
    .bind(grant.created_at)
    .bind(grant.expires_at)
    .bind(grant.claims.map(|c| c.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// The `claims` parameter a grant was made with.
pub(crate) async fn claims(
    conn: &mut AnyConnection,
    grant_id: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let claims: Option<Option<String>> =
        sqlx::query_scalar("SELECT claims FROM grants WHERE id = $1")
            .bind(grant_id)
            .fetch_optional(conn)
            .await?;
    Ok(claims.flatten().and_then(|c| serde_json::from_str(&c).ok()))
}

/// Revokes a grant at `now` for `reason`; false when it already was.
pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    grant_id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(reason)
        .bind(grant_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(done > 0)
}

/// Revokes every grant of an account at `now`, for `reason`.
pub(crate) async fn revoke_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(reason)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every grant of a client at `now`, for `reason`.
pub(crate) async fn revoke_for_client(
    conn: &mut AnyConnection,
    client_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = $2 WHERE client_id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(reason)
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes the grants a client holds for an account at `now`, for `reason`; returns how
/// many.
pub(crate) async fn revoke_for_user_client(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    reason: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE grants SET revoked_at = $1, revoked_reason = $2 \
         WHERE user_id = $3 AND client_id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id)
    .bind(client_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Revokes the grants of a session that ended at `now`, except those with `offline_access`.
pub(crate) async fn revoke_for_session(
    conn: &mut AnyConnection,
    sid: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE grants SET revoked_at = $1, revoked_reason = 'signed out' \
         WHERE sid = $2 AND revoked_at IS NULL AND ' ' || scope || ' ' NOT LIKE '% offline_access %'",
    )
    .bind(now)
    .bind(sid)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many times the access token `jti` was revoked, itself or through its grant
/// `grant_id`: above zero means revoked. One value of a read with other owners' checks.
pub(crate) fn access_token_revocations<'q>(
    read: &mut OneRead<'q>,
    jti: &'q str,
    grant_id: &'q str,
) -> Column<i64> {
    read.column(|p| {
        format!(
            "SELECT (SELECT COUNT(*) FROM revoked_tokens WHERE jti = {}) + \
                    (SELECT COUNT(*) FROM grants WHERE id = {} AND revoked_at IS NOT NULL)",
            p.param(jti),
            p.param(grant_id)
        )
    })
}

/// Blocks an access token until it would expire; false when it already was.
pub(crate) async fn revoke_access_token(
    conn: &mut AnyConnection,
    jti: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Stores a new refresh token (by its hash) in a grant, issued at `now`; it expires with
/// the grant.
pub(crate) async fn insert_refresh_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    grant_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
         SELECT $1, id, $2, expires_at FROM grants WHERE id = $3",
    )
    .bind(token_hash)
    .bind(now)
    .bind(grant_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A refresh token with its grant, as the refresh token grant reads it.
pub(crate) struct RefreshGrant {
    pub grant_id: String,
    /// The earlier of the token's and the grant's expiry.
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub client_id: String,
    pub user_id: String,
    pub revoked_at: Option<i64>,
    pub scope: Vec<String>,
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub claims: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    grant_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    client_id: String,
    user_id: String,
    revoked_at: Option<i64>,
    scope: String,
    sid: Option<String>,
    auth_time: Option<i64>,
    acr: Option<String>,
    amr: String,
    claims: Option<String>,
}

/// The refresh token stored under this hash, with its grant (used, revoked or expired too).
pub(crate) async fn refresh_grant(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<RefreshGrant>, sqlx::Error> {
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT r.grant_id, CASE WHEN r.expires_at < g.expires_at THEN r.expires_at ELSE g.expires_at END AS expires_at, r.used_at, g.client_id, g.user_id, g.revoked_at, g.scope, g.sid, \
         g.auth_time, g.acr, g.amr, g.claims FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| RefreshGrant {
        grant_id: r.grant_id,
        expires_at: r.expires_at,
        used_at: r.used_at,
        client_id: r.client_id,
        user_id: r.user_id,
        revoked_at: r.revoked_at,
        scope: split_scope(&r.scope),
        sid: r.sid,
        auth_time: r.auth_time,
        acr: r.acr,
        amr: list_from_json(&r.amr),
        claims: r.claims.and_then(|c| serde_json::from_str(&c).ok()),
    }))
}

/// Marks a refresh token used at `now`; false when it already was.
pub(crate) async fn use_refresh_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// The grant and client of the refresh token stored under this hash.
pub(crate) async fn refresh_token_owner(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.id, g.client_id FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// An unused, unexpired refresh token of an unrevoked, unexpired grant, as introspection
/// describes it.
pub(crate) struct LiveRefreshToken {
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The live refresh token stored under this hash.
pub(crate) async fn live_refresh_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<LiveRefreshToken>, sqlx::Error> {
    let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT g.client_id, g.user_id, g.scope, r.created_at, r.expires_at FROM refresh_tokens r \
         JOIN grants g ON g.id = r.grant_id \
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND g.revoked_at IS NULL \
         AND r.expires_at > $2 AND g.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(client_id, user_id, scope, created_at, expires_at)| LiveRefreshToken {
            client_id,
            user_id,
            scope,
            created_at,
            expires_at,
        },
    ))
}

/// Deletes revoked access tokens and refresh tokens past their expiry.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[
            ("DELETE FROM revoked_tokens WHERE expires_at < $1", now),
            ("DELETE FROM refresh_tokens WHERE expires_at < $1", now),
        ],
    )
    .await;
}
