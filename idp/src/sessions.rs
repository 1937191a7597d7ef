//! Single sign-on sessions: a random 256-bit cookie value whose SHA-256 is the row id, so a
//! database reader cannot hijack sessions. Sessions live in the database, so any replica
//! serves any request.

use axum::http::{HeaderMap, HeaderValue};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::cookie;

use crate::Idp;
use crate::mfa::policy::Aal;
use crate::store::{sessions as store, users};

pub use crate::store::sessions::{Session, SessionInfo};

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
    let now = kizuna_core::time::now_unix();
    let Some(session) =
        store::live_by_cookie(&idp.core.db, &secret::token_hash(value), now).await?
    else {
        return Ok(None);
    };
    // Only an active account's session counts; its assurance rule comes in the same read.
    Ok(users::active_rule(&idp.core.db, &session.user_id)
        .await?
        .map(|rule| Session {
            account_rule: Some(rule),
            ..session
        }))
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
        acr,
        expires_at: now + idp.config.session_ttl_secs,
        account_rule: None,
    };
    let ctx = kizuna_core::web::RequestContext::current();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect::<String>());
    store::insert(
        conn,
        &secret::token_hash(&value),
        &session,
        ctx.and_then(|c| c.peer_ip.map(|ip| ip.to_string())),
        user_agent,
    )
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
    store::elevate(
        conn,
        sid,
        amr,
        Aal::from_amr(amr).map(|a| a.uri()),
        kizuna_core::time::now_unix(),
    )
    .await
}

/// One of the account's live sessions, by its `sid`.
pub async fn find_live(
    idp: &Idp,
    user_id: &str,
    sid: &str,
) -> Result<Option<Session>, sqlx::Error> {
    store::find_live(&idp.core.db, user_id, sid, kizuna_core::time::now_unix()).await
}

/// The account's live sessions, newest first.
pub async fn list_live(idp: &Idp, user_id: &str) -> Result<Vec<SessionInfo>, sqlx::Error> {
    store::list_live(&idp.core.db, user_id, kizuna_core::time::now_unix()).await
}

/// Ends a session; returns whether it was live.
pub async fn end(conn: &mut AnyConnection, sid: &str) -> Result<bool, sqlx::Error> {
    store::end(conn, sid, kizuna_core::time::now_unix()).await
}

/// Records that the session signed in to a client (for back-channel logout).
pub async fn add_client(
    conn: &mut AnyConnection,
    sid: &str,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    store::add_client(conn, sid, client_id).await
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
    let ended = store::end_all_of(tx.conn(), user_id, kizuna_core::time::now_unix()).await?;
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
