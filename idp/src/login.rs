//! Password sign-in with throttling: per account (lock after repeated failures) and per
//! source address (a fixed window shared by all replicas), and the start of a session once
//! every factor the sign-in needs has passed. Every attempt is audited; the answer never
//! says whether the account exists.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::db::AnyConnection;
use kizuna_core::web::RequestContext;

use crate::Idp;
use crate::mfa::devices;
use crate::mfa::policy::Aal;
use crate::password;
use crate::sessions::{self, Session};
use crate::throttle;
use crate::users::{self, UserRecord};

#[derive(Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown account, wrong password, disabled or locked account: never told apart, so
    /// the answer does not say which accounts exist (the audit log tells them apart).
    BadCredentials,
    /// Too many failures from this address.
    Throttled,
}

fn ip_key() -> String {
    let ip = RequestContext::current()
        .and_then(|c| c.peer_ip)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    format!("login-ip:{ip}")
}

/// Checks a username (or email) and password: throttled per address, locked per account
/// after repeated failures, every failure audited. On success the caller either starts a
/// session ([`open_session`]) or, when the account has a second factor, asks for it.
pub async fn check_password(
    idp: &Idp,
    login: &str,
    password_text: &str,
) -> Result<UserRecord, LoginFailure> {
    let storage = |e: sqlx::Error| {
        tracing::error!(error = %e, "sign-in storage failure");
        LoginFailure::BadCredentials
    };
    let key = ip_key();
    let cfg = &idp.config;
    if throttle::count(idp, &key, cfg.login_ip_window_secs)
        .await
        .map_err(storage)?
        >= cfg.login_ip_max_failures
    {
        audit_attempt(idp, None, login, "throttled").await;
        return Err(LoginFailure::Throttled);
    }
    let mut conn = idp.core.db.conn().await.map_err(storage)?;
    let user = users::find_by_login(&mut conn, login)
        .await
        .map_err(storage)?;
    drop(conn);
    let now = kizuna_core::time::now_unix();
    let Some(user) = user.filter(|u| u.status == "active") else {
        let _ = password::verify(password_text, password::decoy()).await;
        let _ = throttle::hit(idp, &key, cfg.login_ip_window_secs).await;
        audit_attempt(idp, None, login, "bad credentials").await;
        return Err(LoginFailure::BadCredentials);
    };
    if user.locked_until > now {
        // As long as a password check, as for an unknown account.
        let _ = password::verify(password_text, password::decoy()).await;
        let _ = throttle::hit(idp, &key, cfg.login_ip_window_secs).await;
        audit_attempt(idp, Some(&user.id), login, "account locked").await;
        return Err(LoginFailure::BadCredentials);
    }
    let ok = match &user.password_hash {
        Some(phc) => password::verify(password_text, phc).await,
        None => {
            let _ = password::verify(password_text, password::decoy()).await;
            false
        }
    };
    if !ok {
        let mut tx = idp.core.db.begin().await.map_err(storage)?;
        let locked = users::record_failure(
            tx.conn(),
            &user.id,
            cfg.login_max_failures,
            cfg.login_lockout_secs,
        )
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        let _ = throttle::hit(idp, &key, cfg.login_ip_window_secs).await;
        audit_attempt(
            idp,
            Some(&user.id),
            login,
            if locked {
                "bad password; account locked"
            } else {
                "bad password"
            },
        )
        .await;
        return Err(LoginFailure::BadCredentials);
    }
    Ok(user)
}

/// A session just started, the cookies that carry it (session, and the device cookie when
/// new), and the audit entries to publish once the caller commits.
pub struct SignedIn {
    pub session: Session,
    pub cookies: Vec<HeaderValue>,
    pub entries: Vec<audit::AuditEntry>,
}

/// Starts a session inside the caller's transaction after every factor the sign-in needs
/// passed: resets the failure count, remembers the device (notifying when it is new) and
/// audits the sign-in with its `method` (e.g. `pwd`, `pwd+otp`, `passkey`, `fed`). `level`
/// overrides the level `amr` reaches (a federated sign-in's, after the trust ceiling).
pub async fn open_session(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    amr: &[String],
    level: Option<Aal>,
    method: &str,
    headers: &HeaderMap,
) -> Result<SignedIn, sqlx::Error> {
    users::record_success(conn, user_id).await?;
    // Signing in again on this browser replaces its session (a re-authentication).
    if let Some(old) = sessions::current(idp, headers).await? {
        sessions::end(conn, &old.sid).await?;
    }
    let (session, value) = sessions::create(idp, conn, user_id, amr, level, headers).await?;
    let mut cookies = vec![sessions::set_cookie(idp, &value)];
    cookies.extend(devices::remember(conn, idp.core.secure_cookies, user_id, headers).await?);
    let entries = audit::append_in(
        conn,
        &[
            AuditEvent::new(Actor::user(user_id), "login", format!("user:{user_id}"))
                .details(json!({"method": method, "sid": session.sid, "amr": session.amr, "acr": session.acr})),
        ],
    )
    .await?;
    Ok(SignedIn {
        session,
        cookies,
        entries,
    })
}

/// Starts a session for a sign-in that needs nothing more; commits and publishes.
pub async fn sign_in_with(
    idp: &Idp,
    user_id: &str,
    amr: &[String],
    method: &str,
    headers: &HeaderMap,
) -> Result<SignedIn, sqlx::Error> {
    let mut tx = idp.core.db.begin().await?;
    let signed_in = open_session(idp, tx.conn(), user_id, amr, None, method, headers).await?;
    tx.commit().await?;
    audit::publish(&signed_in.entries);
    Ok(signed_in)
}

async fn audit_attempt(idp: &Idp, user_id: Option<&str>, login: &str, reason: &str) {
    let target = match user_id {
        Some(id) => format!("user:{id}"),
        None => "user:unknown".to_string(),
    };
    let login: String = login.chars().take(64).collect();
    let event = AuditEvent::new(Actor::anonymous(), "login", target)
        .outcome(if reason == "throttled" {
            Outcome::Denied
        } else {
            Outcome::Failure
        })
        .details(json!({"login": login, "reason": reason}));
    if let Err(e) = idp.core.audit.record(event).await {
        tracing::error!(error = %e, "auditing a failed sign-in");
    }
}
