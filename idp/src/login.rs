//! Password sign-in with throttling: per account (lock after repeated failures) and per
//! source address (a fixed window shared by all replicas). Every attempt is audited; the
//! answer never says whether the account exists.

use std::sync::OnceLock;

use axum::http::HeaderMap;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::web::RequestContext;

use crate::Idp;
use crate::password;
use crate::sessions::{self, Session};
use crate::throttle;
use crate::users;

#[derive(Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown account, wrong password, or disabled account (never told apart).
    BadCredentials,
    /// The account is locked for a while after repeated failures.
    Locked,
    /// Too many failures from this address.
    Throttled,
}

/// A stored value to verify against when the account does not exist, so both cases take as
/// long: our parameters, a random salt and a random hash that no password matches.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::{Output, SaltString};
        let salt = SaltString::encode_b64(&kizuna_core::secret::random_bytes::<16>())
            .expect("16-byte salt");
        let output =
            Output::new(&kizuna_core::secret::random_bytes::<32>()).expect("32-byte output");
        format!("$argon2id$v=19$m=19456,t=2,p=1${}${output}", salt.as_str())
    })
}

fn ip_key() -> String {
    let ip = RequestContext::current()
        .and_then(|c| c.peer_ip)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    format!("login-ip:{ip}")
}

/// Checks a username (or email) and password; on success starts a session.
pub async fn sign_in(
    idp: &Idp,
    login: &str,
    password_text: &str,
    acr: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Session, String), LoginFailure> {
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
        let _ = password::verify(password_text, decoy_hash()).await;
        let _ = throttle::hit(idp, &key, cfg.login_ip_window_secs).await;
        audit_attempt(idp, None, login, "bad credentials").await;
        return Err(LoginFailure::BadCredentials);
    };
    if user.locked_until > now {
        let _ = throttle::hit(idp, &key, cfg.login_ip_window_secs).await;
        audit_attempt(idp, Some(&user.id), login, "account locked").await;
        return Err(LoginFailure::Locked);
    }
    let ok = match &user.password_hash {
        Some(phc) => password::verify(password_text, phc).await,
        None => {
            let _ = password::verify(password_text, decoy_hash()).await;
            false
        }
    };
    let mut tx = idp.core.db.begin().await.map_err(storage)?;
    if !ok {
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
        return Err(if locked {
            LoginFailure::Locked
        } else {
            LoginFailure::BadCredentials
        });
    }
    users::record_success(tx.conn(), &user.id)
        .await
        .map_err(storage)?;
    let (session, cookie) = sessions::create(idp, tx.conn(), &user.id, &["pwd"], acr, headers)
        .await
        .map_err(storage)?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(Actor::user(&user.id), "login", format!("user:{}", user.id))
                .details(json!({"method": "pwd", "sid": session.sid})),
        ],
    )
    .await
    .map_err(storage)?;
    tx.commit().await.map_err(storage)?;
    audit::publish(&entries);
    Ok((session, cookie))
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
