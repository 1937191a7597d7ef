//! A sign-in waiting for its second factor: after the password (no session yet), or a
//! step-up of an existing session (`sid`). Kept in the database under a random cookie so any
//! replica continues it; single use, short-lived.

use axum::http::{HeaderMap, HeaderValue};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::cookie;

use super::policy::Aal;
use crate::Idp;

#[derive(Debug, Clone)]
pub struct PendingMfa {
    pub user_id: String,
    /// The session to raise (a step-up); `None` after a password, before any session.
    pub sid: Option<String>,
    /// The methods used so far.
    pub amr: Vec<String>,
    /// The authorization request to continue, or the local page to return to.
    pub req: Option<String>,
    pub next: Option<String>,
    /// The level the second factor must bring the sign-in to.
    pub target: Aal,
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_mfa"
    } else {
        "kizuna_mfa"
    }
}

/// Stores the pending step; returns the `Set-Cookie` that names it.
pub async fn start(idp: &Idp, pending: &PendingMfa) -> Result<HeaderValue, sqlx::Error> {
    let token = secret::random_token();
    let now = kizuna_core::time::now_unix();
    sqlx::query(
        "INSERT INTO mfa_pending (id_hash, user_id, sid, amr, req, next, target_aal, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(secret::token_hash(&token))
    .bind(&pending.user_id)
    .bind(&pending.sid)
    .bind(serde_json::to_string(&pending.amr).unwrap_or_else(|_| "[]".into()))
    .bind(&pending.req)
    .bind(&pending.next)
    .bind(pending.target.level() as i64)
    .bind(now)
    .bind(now + idp.mfa.pending_ttl_secs)
    .execute(idp.core.db.pool())
    .await?;
    let secure = idp.core.secure_cookies;
    Ok(HeaderValue::from_str(&format!(
        "{}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        cookie_name(secure),
        idp.mfa.pending_ttl_secs,
        if secure { "; Secure" } else { "" }
    ))
    .expect("cookie value is URL-safe base64"))
}

fn token(idp: &Idp, headers: &HeaderMap) -> Option<String> {
    cookie(headers, cookie_name(idp.core.secure_cookies))
        .filter(|v| v.len() == 43)
        .map(secret::token_hash)
}

type Row = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
);

fn from_row((user_id, sid, amr, req, next, target): Row) -> PendingMfa {
    PendingMfa {
        user_id,
        sid,
        amr: serde_json::from_str(&amr).unwrap_or_default(),
        req,
        next,
        target: Aal::from_level(target).unwrap_or(Aal::Two),
    }
}

/// The browser's pending step, if live.
pub async fn current(idp: &Idp, headers: &HeaderMap) -> Result<Option<PendingMfa>, sqlx::Error> {
    let Some(hash) = token(idp, headers) else {
        return Ok(None);
    };
    let row: Option<Row> = sqlx::query_as(
        "SELECT user_id, sid, amr, req, next, target_aal FROM mfa_pending WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(hash)
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(row.map(from_row))
}

/// Ends the browser's pending step inside the caller's transaction; false when it was
/// already used (a second, concurrent finish).
pub async fn finish(
    idp: &Idp,
    conn: &mut AnyConnection,
    headers: &HeaderMap,
) -> Result<bool, sqlx::Error> {
    let Some(hash) = token(idp, headers) else {
        return Ok(false);
    };
    let done = sqlx::query("DELETE FROM mfa_pending WHERE id_hash = $1")
        .bind(hash)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(done == 1)
}

pub fn clear_cookie(idp: &Idp) -> HeaderValue {
    let secure = idp.core.secure_cookies;
    HeaderValue::from_str(&format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    ))
    .expect("static cookie")
}
