//! Authorization requests waiting for the person (sign-in, consent), and pushed requests
//! (RFC 9126). Stored in the database so any replica can continue them; each is single use.

use serde::{Deserialize, Serialize};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;

use super::request::AuthorizationRequest;
use crate::Idp;

/// The URN prefix of `request_uri` values (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub request: AuthorizationRequest,
    /// The person signed in for this request (satisfies prompt=login and max_age).
    #[serde(default)]
    pub login_done: bool,
    /// The person answered the consent page for this request (satisfies prompt=consent).
    #[serde(default)]
    pub consent_done: bool,
}

impl Pending {
    pub fn new(request: AuthorizationRequest) -> Self {
        Pending {
            request,
            login_done: false,
            consent_done: false,
        }
    }
}

pub async fn store(idp: &Idp, pending: &Pending, pushed: bool) -> Result<String, sqlx::Error> {
    let id = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let ttl = if pushed {
        idp.config.par_ttl_secs
    } else {
        idp.config.auth_request_ttl_secs
    };
    sqlx::query(
        "INSERT INTO auth_requests (id, client_id, params, pushed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&pending.request.client_id)
    .bind(serde_json::to_string(pending).unwrap_or_default())
    .bind(pushed as i64)
    .bind(now)
    .bind(now + ttl)
    .execute(idp.core.db.pool())
    .await?;
    Ok(id)
}

pub async fn update(idp: &Idp, id: &str, pending: &Pending) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auth_requests SET params = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(serde_json::to_string(pending).unwrap_or_default())
        .bind(id)
        .execute(idp.core.db.pool())
        .await?;
    Ok(())
}

/// A live (unexpired, unused, not pushed) request waiting for the person.
pub async fn load(idp: &Idp, id: &str) -> Result<Option<Pending>, sqlx::Error> {
    if id.len() != 43 {
        return Ok(None);
    }
    let params: Option<String> = sqlx::query_scalar(
        "SELECT params FROM auth_requests WHERE id = $1 AND pushed = 0 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(id)
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(params.and_then(|p| serde_json::from_str(&p).ok()))
}

/// Marks a request used; false when it already was.
pub async fn consume(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE auth_requests SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(kizuna_core::time::now_unix())
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(done == 1)
}

/// Redeems a pushed request for `client_id` (once).
pub async fn take_pushed(
    idp: &Idp,
    request_uri: &str,
    client_id: &str,
) -> Result<Option<AuthorizationRequest>, sqlx::Error> {
    let Some(id) = request_uri.strip_prefix(REQUEST_URI_PREFIX) else {
        return Ok(None);
    };
    let mut tx = idp.core.db.begin().await?;
    let params: Option<String> = sqlx::query_scalar(
        "SELECT params FROM auth_requests WHERE id = $1 AND client_id = $2 AND pushed = 1 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(id)
    .bind(client_id)
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(tx.conn())
    .await?;
    if params.is_some() && !consume(tx.conn(), id).await? {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(params
        .and_then(|p| serde_json::from_str::<Pending>(&p).ok())
        .map(|p| p.request))
}
