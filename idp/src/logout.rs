//! Signing out: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and back-channel
//! logout (OpenID Connect Back-Channel Logout 1.0): a signed logout token is POSTed to every
//! client the session signed in to, retried with backoff until it is delivered.

use std::time::Duration;

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::{jose, secret};

use crate::Idp;
use crate::clients::{self, Client};
use crate::sessions::{self, Session};
use crate::store::{self, grants, logout as deliveries};
use kizuna_core::db::AnyConnection;

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
    grants::revoke_for_session(tx.conn(), &session.sid, now).await?;
    let client_ids = store::sessions::clients_of(tx.conn(), &session.sid).await?;
    let mut notified = Vec::new();
    for client_id in client_ids {
        let Some(client) = clients::get(&idp.core.db, &client_id).await? else {
            continue;
        };
        if queue_logout_token(
            idp,
            tx.conn(),
            &client,
            &session.user_id,
            Some(&session.sid),
            now,
        )
        .await?
        {
            notified.push(client.client_id);
        }
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

/// Queues a back-channel logout token for `client` (when it registered a back-channel logout
/// URI) naming the person and, for one session, its `sid`: inside the caller's transaction,
/// delivered by [`deliver_due`] after it commits. False when the client is not told.
pub(crate) async fn queue_logout_token(
    idp: &Idp,
    conn: &mut AnyConnection,
    client: &Client,
    user_id: &str,
    sid: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let Some(uri) = client.backchannel_logout_uri.as_deref() else {
        return Ok(false);
    };
    let mut claims = json!({
        "iss": idp.issuer(),
        "aud": client.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": secret::new_id(),
        "sub": user_id,
        "events": { LOGOUT_EVENT: {} },
    });
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    let token = match idp.keys.active(&client.id_token_alg).await {
        Ok((kid, key)) => match jose::sign(&key, &kid, Some("logout+jwt"), &claims) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(error = %e, "signing a logout token");
                return Ok(false);
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "no signing key for a logout token");
            return Ok(false);
        }
    };
    deliveries::queue(conn, &secret::new_id(), &client.client_id, uri, &token, now).await?;
    Ok(true)
}

/// Delivers every queued logout token that is due. Rows are claimed first, so replicas
/// running this at once never deliver one twice.
pub async fn deliver_due(idp: &Idp) {
    let now = kizuna_core::time::now_unix();
    let db = &idp.core.db;
    let due = match deliveries::due(db, now, BACKOFF_SECS.len() as i64, 100).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading logout deliveries");
            return;
        }
    };
    for delivery in due {
        let claimed = deliveries::claim(db, &delivery.id, now, now + 60)
            .await
            .unwrap_or(false);
        if !claimed {
            continue;
        }
        let result = idp
            .http
            .post(&delivery.uri)
            .timeout(Duration::from_secs(5))
            .form(&[("logout_token", delivery.logout_token.as_str())])
            .send()
            .await;
        let outcome = match result {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        let now = kizuna_core::time::now_unix();
        let attempts = delivery.attempts;
        let recorded = match &outcome {
            Ok(()) => deliveries::mark_delivered(db, &delivery.id, now).await,
            Err(e) => {
                deliveries::mark_failed(
                    db,
                    &delivery.id,
                    now + BACKOFF_SECS[(attempts as usize).min(BACKOFF_SECS.len() - 1)],
                    &e.chars().take(500).collect::<String>(),
                )
                .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "recording a logout delivery");
        }
        let last_try = attempts + 1 >= BACKOFF_SECS.len() as i64;
        if outcome.is_ok() || last_try {
            let event = AuditEvent::new(
                Actor::system("kizuna"),
                "logout.backchannel",
                format!("client:{}", delivery.client_id),
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
