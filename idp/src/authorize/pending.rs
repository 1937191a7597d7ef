//! Authorization requests waiting for the person (sign-in, consent), and pushed requests
//! (RFC 9126). Stored in the database so any replica can continue them; each is single use.

use serde::{Deserialize, Serialize};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;

use super::request::AuthorizationRequest;
use crate::Idp;
use crate::store::codes;

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

    /// The request wants the person to sign in again (`prompt=login` or `select_account`)
    /// or not too long ago (`max_age`): then a sign-in for it must be remembered.
    pub fn asks_for_fresh_sign_in(&self) -> bool {
        let req = &self.request;
        req.has_prompt("login") || req.has_prompt("select_account") || req.max_age.is_some()
    }
}

/// Stores a request waiting for the person (or a pushed one, RFC 9126); returns its id.
pub async fn store(idp: &Idp, pending: &Pending, pushed: bool) -> Result<String, sqlx::Error> {
    let id = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let ttl = if pushed {
        idp.config.par_ttl_secs
    } else {
        idp.config.auth_request_ttl_secs
    };
    codes::insert_request(
        &idp.core.db,
        &id,
        &pending.request.client_id,
        pending,
        pushed,
        now,
        now + ttl,
    )
    .await?;
    Ok(id)
}

/// Replaces what a waiting request remembers (the person signed in, or answered consent).
pub async fn update(idp: &Idp, id: &str, pending: &Pending) -> Result<(), sqlx::Error> {
    codes::update_request(&idp.core.db, id, pending).await
}

/// A live (unexpired, unused, not pushed) request waiting for the person.
pub async fn load(idp: &Idp, id: &str) -> Result<Option<Pending>, sqlx::Error> {
    if id.len() != 43 {
        return Ok(None);
    }
    codes::live_request(&idp.core.db, id, kizuna_core::time::now_unix()).await
}

/// Marks a request used; false when it already was.
pub async fn consume(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    codes::consume_request(conn, id, kizuna_core::time::now_unix()).await
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
    let pending: Option<Pending> =
        codes::take_pushed_request(&idp.core.db, id, client_id, kizuna_core::time::now_unix())
            .await?;
    Ok(pending.map(|p| p.request))
}
