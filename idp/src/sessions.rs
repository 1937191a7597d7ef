//! Single sign-on sessions: a random 256-bit cookie value whose SHA-256 is the row id, so a
//! database reader cannot hijack sessions. Sessions live in the database, so any replica
//! serves any request.

use axum::http::{HeaderMap, HeaderValue};
use serde::Serialize;

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::cookie;

use crate::Idp;

#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub sid: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub expires_at: i64,
}

pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_session"
    } else {
        "kizuna_session"
    }
}

/// The session the browser's cookie names, if it is live and its account active.
pub async fn current(idp: &Idp, headers: &HeaderMap) -> Result<Option<Session>, sqlx::Error> {
    let Some(value) = cookie(headers, cookie_name(idp.core.secure_cookies)) else {
        return Ok(None);
    };
    if value.len() != 43 {
        return Ok(None);
    }
    let row: Option<(String, String, i64, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT s.sid, s.user_id, s.auth_time, s.amr, s.acr, s.expires_at FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND u.status = 'active'",
    )
    .bind(secret::token_hash(value))
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(
        row.map(|(sid, user_id, auth_time, amr, acr, expires_at)| Session {
            sid,
            user_id,
            auth_time,
            amr: serde_json::from_str(&amr).unwrap_or_default(),
            acr,
            expires_at,
        }),
    )
}

/// Starts a session inside the caller's transaction; returns it and the cookie value.
pub async fn create(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    amr: &[&str],
    acr: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Session, String), sqlx::Error> {
    let value = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let session = Session {
        sid: secret::new_id(),
        user_id: user_id.to_string(),
        auth_time: now,
        amr: amr.iter().map(|s| s.to_string()).collect(),
        acr: acr.map(str::to_string),
        expires_at: now + idp.config.session_ttl_secs,
    };
    let ctx = kizuna_core::web::RequestContext::current();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect::<String>());
    sqlx::query(
        "INSERT INTO sessions (id, sid, user_id, auth_time, amr, acr, ip, user_agent, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, $4, $9)",
    )
    .bind(secret::token_hash(&value))
    .bind(&session.sid)
    .bind(user_id)
    .bind(now)
    .bind(serde_json::to_string(&session.amr).unwrap_or_else(|_| "[]".into()))
    .bind(acr)
    .bind(ctx.and_then(|c| c.peer_ip.map(|ip| ip.to_string())))
    .bind(user_agent)
    .bind(session.expires_at)
    .execute(conn)
    .await?;
    Ok((session, value))
}

/// The `Set-Cookie` value for a new session (`HttpOnly`, `SameSite=Lax` so the cookie comes
/// along when a relying party sends the browser to the authorization endpoint).
pub fn set_cookie(idp: &Idp, value: &str) -> HeaderValue {
    let secure = idp.core.secure_cookies;
    let attrs = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{attrs}",
        cookie_name(secure),
        idp.config.session_ttl_secs
    ))
    .expect("cookie value is URL-safe base64")
}

pub fn clear_cookie(idp: &Idp) -> HeaderValue {
    let secure = idp.core.secure_cookies;
    let attrs = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{attrs}",
        cookie_name(secure)
    ))
    .expect("static cookie")
}

/// Ends a session; returns whether it was live.
pub async fn end(conn: &mut AnyConnection, sid: &str) -> Result<bool, sqlx::Error> {
    let ended =
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE sid = $2 AND ended_at IS NULL")
            .bind(kizuna_core::time::now_unix())
            .bind(sid)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(ended > 0)
}

/// Records that the session signed in to a client (for back-channel logout).
pub async fn add_client(
    conn: &mut AnyConnection,
    sid: &str,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO session_clients (sid, client_id) VALUES ($1, $2) ON CONFLICT (sid, client_id) DO NOTHING")
        .bind(sid)
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}
