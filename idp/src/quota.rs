//! Per-client request quotas (the guideline's per-consumer API limits): a client may be given
//! a number of requests per minute at the endpoints it calls itself — token, PAR,
//! introspection, revocation, device authorization (counted once the client is
//! authenticated) and UserInfo (counted for the access token's client). Counts live in the
//! database in one-minute windows, so every replica enforces the same budget; a request over
//! it gets 429 with `Retry-After`, and the first refusal in a window is audited. The table of
//! limits is read by each replica at most every two seconds, so an unlimited client costs no
//! database work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::db::Db;
use kizuna_core::time::Stamp;

use crate::error::OAuthError;
use crate::store::clients;
use crate::{Idp, throttle};

/// How long a replica trusts its copy of the limits.
const TABLE_TTL: Duration = Duration::from_secs(2);
/// The counting window.
pub const WINDOW_SECS: i64 = 60;
/// The highest limit that can be set.
pub const MAX_PER_MINUTE: i64 = 10_000_000;

type Table = Arc<HashMap<String, i64>>;

#[derive(Default)]
pub struct Quotas {
    table: Mutex<Option<(Stamp, Table)>>,
}

/// A client's quota as `kizuna client quota` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Quota {
    pub client_id: String,
    /// Requests per minute; `None` when the client is not limited.
    pub requests_per_minute: Option<i64>,
}

impl Quotas {
    async fn limits(&self, db: &Db) -> Result<Table, sqlx::Error> {
        if let Some((at, table)) = self.table.lock().ok().and_then(|t| t.clone())
            && at.age() < TABLE_TTL
        {
            return Ok(table);
        }
        let table: Table = Arc::new(clients::quotas(db).await?.into_iter().collect());
        if let Ok(mut cached) = self.table.lock() {
            *cached = Some((Stamp::now(), table.clone()));
        }
        Ok(table)
    }

    /// Counts one request of `client_id`; refuses it when the client is over its quota.
    pub async fn admit(&self, idp: &Idp, client_id: &str) -> Result<(), OAuthError> {
        let Some(&limit) = self.limits(&idp.core.db).await?.get(client_id) else {
            return Ok(());
        };
        let used = throttle::hit(idp, &format!("quota:{client_id}"), WINDOW_SECS).await?;
        if used <= limit {
            return Ok(());
        }
        if used == limit + 1 {
            idp.core
                .audit
                .record(
                    AuditEvent::new(
                        Actor::client(client_id),
                        "client.quota_exceeded",
                        format!("client:{client_id}"),
                    )
                    .outcome(Outcome::Failure)
                    .details(json!({"requests_per_minute": limit})),
                )
                .await?;
        }
        Err(OAuthError::rate_limited(format!(
            "this client may make {limit} requests per minute"
        )))
    }

    /// Forgets the limits read on this replica (after a change here).
    fn forget(&self) {
        if let Ok(mut cached) = self.table.lock() {
            *cached = None;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("{0}")]
    Invalid(String),
    #[error("no client with id {0}")]
    UnknownClient(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] kizuna_core::audit::AuditError),
}

/// A client's quota as stored now.
pub async fn get(idp: &Idp, client_id: &str) -> Result<Quota, sqlx::Error> {
    let requests_per_minute = clients::quota(&idp.core.db, client_id).await?;
    Ok(Quota {
        client_id: client_id.to_string(),
        requests_per_minute,
    })
}

/// Sets (`Some`) or removes (`None`) a client's quota, audited.
pub async fn set(
    idp: &Idp,
    client_id: &str,
    requests_per_minute: Option<i64>,
    actor: Actor,
) -> Result<Quota, QuotaError> {
    if let Some(n) = requests_per_minute
        && !(1..=MAX_PER_MINUTE).contains(&n)
    {
        return Err(QuotaError::Invalid(format!(
            "requests per minute must be between 1 and {MAX_PER_MINUTE}"
        )));
    }
    if crate::clients::get(&idp.core.db, client_id)
        .await?
        .is_none()
    {
        return Err(QuotaError::UnknownClient(client_id.to_string()));
    }
    let mut tx = idp.core.db.begin().await?;
    match requests_per_minute {
        Some(n) => {
            clients::set_quota(tx.conn(), client_id, n, kizuna_core::time::now_unix()).await?;
        }
        None => clients::remove_quota(tx.conn(), client_id).await?,
    }
    let entries = kizuna_core::audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "client.quota", format!("client:{client_id}"))
                .details(json!({"requests_per_minute": requests_per_minute})),
        ],
    )
    .await?;
    tx.commit().await?;
    kizuna_core::audit::publish(&entries);
    idp.quotas.forget();
    Ok(Quota {
        client_id: client_id.to_string(),
        requests_per_minute,
    })
}
