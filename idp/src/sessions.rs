//! Single sign-on sessions: a random 256-bit cookie value whose SHA-256 is the row id, so a
//! database reader cannot hijack sessions. Sessions live in the database, so any replica
//! serves any request.

use axum::http::{HeaderMap, HeaderValue};
use serde::Serialize;

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::cookie;

use crate::Idp;
use crate::mfa::policy::Aal;

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
    Ok(row.map(to_session))
}

impl Session {
    /// The assurance level this session's sign-in reached.
    pub fn aal(&self) -> Aal {
        self.acr
            .as_deref()
            .and_then(Aal::from_uri)
            .or_else(|| Aal::from_amr(&self.amr))
            .unwrap_or(Aal::One)
    }
}

/// Starts a session inside the caller's transaction; returns it and the cookie value. Its
/// `acr` is `level` when given (a federated sign-in, after the upstream's trust ceiling),
/// else the assurance level the methods in `amr` reach.
pub async fn create(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    amr: &[String],
    level: Option<Aal>,
    headers: &HeaderMap,
) -> Result<(Session, String), sqlx::Error> {
    let value = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let acr = level
        .or_else(|| Aal::from_amr(amr))
        .map(|a| a.uri().to_string());
    let session = Session {
        sid: secret::new_id(),
        user_id: user_id.to_string(),
        auth_time: now,
        amr: amr.to_vec(),
        acr: acr.clone(),
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

/// Raises a live session after a further factor (step-up): its methods, level and
/// authentication time change; returns whether it was live.
pub async fn elevate(
    conn: &mut AnyConnection,
    sid: &str,
    amr: &[String],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET amr = $1, acr = $2, auth_time = $3 WHERE sid = $4 AND ended_at IS NULL",
    )
    .bind(serde_json::to_string(amr).unwrap_or_else(|_| "[]".into()))
    .bind(Aal::from_amr(amr).map(|a| a.uri()))
    .bind(kizuna_core::time::now_unix())
    .bind(sid)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// One of the account's live sessions, by its `sid`.
pub async fn find_live(
    idp: &Idp,
    user_id: &str,
    sid: &str,
) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<(String, String, i64, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT sid, user_id, auth_time, amr, acr, expires_at FROM sessions \
         WHERE sid = $1 AND user_id = $2 AND ended_at IS NULL AND expires_at > $3",
    )
    .bind(sid)
    .bind(user_id)
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(row.map(to_session))
}

fn to_session(
    (sid, user_id, auth_time, amr, acr, expires_at): (
        String,
        String,
        i64,
        String,
        Option<String>,
        i64,
    ),
) -> Session {
    Session {
        sid,
        user_id,
        auth_time,
        amr: serde_json::from_str(&amr).unwrap_or_default(),
        acr,
        expires_at,
    }
}

/// A live session as the account page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionInfo {
    pub sid: String,
    pub amr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub auth_time: i64,
}

/// The account's live sessions, newest first.
pub async fn list_live(idp: &Idp, user_id: &str) -> Result<Vec<SessionInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sid, amr, ip, user_agent, created_at, auth_time FROM sessions \
         WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, sid",
    )
    .bind(user_id)
    .bind(kizuna_core::time::now_unix())
    .fetch_all(idp.core.db.pool())
    .await
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

/// Ends every live session of an account (a helpdesk or administrator action); audited.
/// Returns how many were live.
pub async fn end_all(
    core: &kizuna_core::Core,
    actor: kizuna_core::audit::Actor,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    use kizuna_core::audit::{self, AuditEvent};
    let mut tx = core.db.begin().await?;
    let ended =
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(kizuna_core::time::now_unix())
            .bind(user_id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "user.sessions_end", format!("user:{user_id}"))
                .details(serde_json::json!({"sessions_ended": ended})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(ended)
}
