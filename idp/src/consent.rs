//! Consent (remembered per person, client and scope set): a client that asks for scopes the
//! person already granted it does not ask again; asking for more shows the consent page. A
//! person can see what they granted and withdraw it, and see every release of their data
//! (read from the audit log's `token.issue` and `userinfo.release` entries).

use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, ActorKind, AuditEvent};
use kizuna_core::db::AnyConnection;

use crate::Idp;
use crate::store::{clients, consents, grants};

/// A service the person has granted scopes to.
#[derive(Debug, Clone)]
pub struct Granted {
    pub client_id: String,
    /// The client's name (its id once the client is deleted).
    pub client_name: String,
    pub organization: Option<String>,
    pub scopes: Vec<String>,
    pub updated_at: i64,
}

/// One release of the person's data to a service.
#[derive(Debug, Clone)]
pub struct Release {
    pub at: String,
    pub client_id: String,
    pub client_name: Option<String>,
    /// `token.issue` (tokens with claims) or `userinfo.release`.
    pub action: String,
    pub claims: Vec<String>,
}

/// The audit actions that release the person's data to a client.
const RELEASE_ACTIONS: [&str; 2] = ["token.issue", "userinfo.release"];

/// What the person has granted, newest first.
pub async fn list(idp: &Idp, user_id: &str) -> Result<Vec<Granted>, sqlx::Error> {
    let db = &idp.core.db;
    let granted = consents::for_user(db, user_id).await?;
    let ids: Vec<String> = granted.iter().map(|c| c.client_id.clone()).collect();
    let clients = clients::names(db, &ids).await?;
    let org_ids: Vec<String> = clients
        .values()
        .filter_map(|(_, org)| org.clone())
        .collect();
    let orgs = kizuna_core::orgs::names(db, &org_ids).await?;
    Ok(granted
        .into_iter()
        .map(|c| {
            let client = clients.get(&c.client_id);
            Granted {
                client_name: client.map_or_else(|| c.client_id.clone(), |(name, _)| name.clone()),
                organization: client
                    .and_then(|(_, org)| org.as_ref())
                    .and_then(|org| orgs.get(org).cloned()),
                client_id: c.client_id,
                scopes: c.scopes,
                updated_at: c.updated_at,
            }
        })
        .collect())
}

/// Withdraws the person's consent to a client: the consent is forgotten (the next sign-in
/// asks again) and the grants the client holds for the person end (refresh tokens, and access
/// tokens at introspection and UserInfo), audited, in one transaction. False when there was
/// no consent to withdraw.
pub async fn withdraw(idp: &Idp, user_id: &str, client_id: &str) -> Result<bool, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let Some(scopes) = consents::delete(tx.conn(), user_id, client_id).await? else {
        return Ok(false);
    };
    let ended =
        grants::revoke_for_user_client(tx.conn(), user_id, client_id, "consent withdrawn", now)
            .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(user_id),
            "consent.withdraw",
            format!("client:{client_id}"),
        )
        .details(json!({"scopes": scopes, "grants_ended": ended}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(true)
}

/// The latest releases of the person's data, newest first.
pub async fn releases(idp: &Idp, user_id: &str, limit: i64) -> Result<Vec<Release>, sqlx::Error> {
    let db = &idp.core.db;
    let entries = audit::recent_about(
        db,
        &format!("user:{user_id}"),
        Some(ActorKind::Client),
        &RELEASE_ACTIONS,
        limit,
    )
    .await?;
    let mut ids: Vec<String> = entries.iter().map(|e| e.actor_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let names = clients::names(db, &ids).await?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let details: Value = serde_json::from_str(&entry.details).unwrap_or(Value::Null);
            let claims = details["claims"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Release {
                at: entry.at,
                client_name: names.get(&entry.actor_id).map(|(name, _)| name.clone()),
                client_id: entry.actor_id,
                action: entry.action,
                claims,
            }
        })
        .collect())
}

/// True when the person has granted `client_id` every scope in `scopes`.
pub async fn covers(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<bool, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    let granted = consents::scopes(&mut conn, user_id, client_id).await?;
    // A row means the person answered the consent page for this client at least once.
    Ok(granted.is_some_and(|granted| scopes.iter().all(|s| granted.contains(s))))
}

/// Adds `scopes` to what the person has granted the client.
pub async fn grant(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut all = consents::scopes(&mut *conn, user_id, client_id)
        .await?
        .unwrap_or_default();
    all.extend(scopes.iter().cloned());
    all.sort();
    all.dedup();
    consents::upsert(
        conn,
        user_id,
        client_id,
        &all,
        kizuna_core::time::now_unix(),
    )
    .await?;
    Ok(all)
}
