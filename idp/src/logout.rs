//! Signing out: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and back-channel
//! logout (OpenID Connect Back-Channel Logout 1.0): a signed logout token is POSTed to every
//! client the session signed in to, retried with backoff until it is delivered.

use std::time::Duration;

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::{jose, secret};

use crate::Idp;
use crate::clients;
use crate::sessions::{self, Session};

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Delivery attempts before giving up, and the wait after each failure.
const BACKOFF_SECS: [i64; 7] = [5, 30, 120, 600, 1800, 3600, 7200];

/// Ends the session: revokes the grants tied to it (except `offline_access` ones), queues
/// back-channel logout tokens, and audits it — in one transaction.
pub async fn end_session(idp: &Idp, session: &Session) -> Result<(), sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    if !sessions::end(tx.conn(), &session.sid).await? {
        return Ok(());
    }
    sqlx::query(
        "UPDATE grants SET revoked_at = $1, revoked_reason = 'signed out' \
         WHERE sid = $2 AND revoked_at IS NULL AND ' ' || scope || ' ' NOT LIKE '% offline_access %'",
    )
    .bind(now)
    .bind(&session.sid)
    .execute(tx.conn())
    .await?;
    let client_ids: Vec<String> =
        sqlx::query_scalar("SELECT client_id FROM session_clients WHERE sid = $1")
            .bind(&session.sid)
            .fetch_all(tx.conn())
            .await?;
    let mut notified = Vec::new();
    for client_id in client_ids {
        let Some(client) = clients::get(&idp.core.db, &client_id).await? else {
            continue;
        };
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        let claims = json!({
            "iss": idp.issuer(),
            "aud": client.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secret::new_id(),
            "sub": session.user_id,
            "sid": session.sid,
            "events": { LOGOUT_EVENT: {} },
        });
        let token = match idp.keys.active(&client.id_token_alg).await {
            Ok((kid, key)) => match jose::sign(&key, &kid, Some("logout+jwt"), &claims) {
                Ok(token) => token,
                Err(e) => {
                    tracing::error!(error = %e, "signing a logout token");
                    continue;
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "no signing key for a logout token");
                continue;
            }
        };
        sqlx::query(
            "INSERT INTO logout_deliveries (id, client_id, uri, logout_token, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(secret::new_id())
        .bind(&client.client_id)
        .bind(&uri)
        .bind(&token)
        .bind(now)
        .execute(tx.conn())
        .await?;
        notified.push(client.client_id);
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(&session.user_id),
            "logout",
            format!("session:{}", session.sid),
        )
        .details(json!({"backchannel_clients": notified}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    if !notified.is_empty() {
        let idp = idp.clone();
        tokio::spawn(async move { deliver_due(&idp).await });
    }
    Ok(())
}

/// Delivers every queued logout token that is due. Rows are claimed first, so replicas
/// running this at once never deliver one twice.
pub async fn deliver_due(idp: &Idp) {
    let now = kizuna_core::time::now_unix();
    let due: Vec<(String, String, String, String, i64)> = match sqlx::query_as(
        "SELECT id, client_id, uri, logout_token, attempts FROM logout_deliveries \
         WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND attempts < $2 ORDER BY next_attempt_at LIMIT 100",
    )
    .bind(now)
    .bind(BACKOFF_SECS.len() as i64)
    .fetch_all(idp.core.db.pool())
    .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading logout deliveries");
            return;
        }
    };
    for (id, client_id, uri, token, attempts) in due {
        let claimed = sqlx::query("UPDATE logout_deliveries SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at <= $3 AND delivered_at IS NULL")
            .bind(now + 60)
            .bind(&id)
            .bind(now)
            .execute(idp.core.db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
            .unwrap_or(false);
        if !claimed {
            continue;
        }
        let result = idp
            .http
            .post(&uri)
            .timeout(Duration::from_secs(5))
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        let outcome = match result {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        let now = kizuna_core::time::now_unix();
        let update = match &outcome {
            Ok(()) => sqlx::query("UPDATE logout_deliveries SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
                .bind(now)
                .bind(&id),
            Err(e) => sqlx::query(
                "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(now + BACKOFF_SECS[(attempts as usize).min(BACKOFF_SECS.len() - 1)])
            .bind(e.chars().take(500).collect::<String>())
            .bind(&id),
        };
        if let Err(e) = update.execute(idp.core.db.pool()).await {
            tracing::warn!(error = %e, "recording a logout delivery");
        }
        let last_try = attempts + 1 >= BACKOFF_SECS.len() as i64;
        if outcome.is_ok() || last_try {
            let event = AuditEvent::new(
                Actor::system("kizuna"),
                "logout.backchannel",
                format!("client:{client_id}"),
            )
            .outcome(if outcome.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            })
            .details(json!({"attempts": attempts + 1, "error": outcome.err()}));
            let _ = idp.core.audit.record(event).await;
        }
    }
}
