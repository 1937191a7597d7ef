//! A sign-in waiting for its second factor: after the password (no session yet), or a
//! step-up of an existing session (`sid`). Kept in the database under a random cookie so any
//! replica continues it; single use, short-lived.

use axum::http::{HeaderMap, HeaderValue};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::cookie;

use super::policy::Aal;
use crate::Idp;
use crate::store::mfa::{self as store, PendingStep};

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
    store::insert_pending(
        &idp.core.db,
        &secret::token_hash(&token),
        &PendingStep {
            user_id: pending.user_id.clone(),
            sid: pending.sid.clone(),
            amr: pending.amr.clone(),
            req: pending.req.clone(),
            next: pending.next.clone(),
            target_aal: pending.target.level() as i64,
        },
        now,
        now + idp.mfa.pending_ttl_secs,
    )
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

fn from_step(step: PendingStep) -> PendingMfa {
    PendingMfa {
        user_id: step.user_id,
        sid: step.sid,
        amr: step.amr,
        req: step.req,
        next: step.next,
        target: Aal::from_level(step.target_aal).unwrap_or(Aal::Two),
    }
}

/// The browser's pending step, if live.
pub async fn current(idp: &Idp, headers: &HeaderMap) -> Result<Option<PendingMfa>, sqlx::Error> {
    let Some(hash) = token(idp, headers) else {
        return Ok(None);
    };
    Ok(
        store::live_pending(&idp.core.db, &hash, kizuna_core::time::now_unix())
            .await?
            .map(from_step),
    )
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
    store::delete_pending(conn, &hash).await
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
