//! Federation: the upstream providers Kizuna brokers, authorizations waiting at an upstream,
//! accounts linked to upstream identities, federated sessions, identities waiting to be
//! linked, and logouts waiting for the upstream's return (`upstreams`,
//! `upstream_authorizations`, `federated_identities`, `federated_sessions`,
//! `federation_link_requests`, `federation_logouts`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use kizuna_core::db::{AnyConnection, Db};

use super::{IN_LIST_MAX, placeholders};

mod rows;
pub(crate) use rows::UpstreamRow;

// ---------------------------------------------------------------------------------------------
// Upstreams

const UPSTREAM_COLUMNS: &str = "id, alias, name, org_id, issuer, client_id, client_auth, client_secret, key_id, saml, \
    scopes, acr_values, claim_map, acr_map, max_ial, max_aal, jit, email_domains, propagate_logout, status, created_at, version";

/// Stores a new upstream; fails with a unique violation when its alias is taken.
pub(crate) async fn insert_upstream(
    conn: &mut AnyConnection,
    u: &UpstreamRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO upstreams (id, alias, name, org_id, issuer, client_id, client_auth, client_secret, key_id, \
         scopes, acr_values, claim_map, acr_map, max_ial, max_aal, jit, email_domains, propagate_logout, status, \
         created_at, updated_at, version, saml) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20, $21, $22)",
    )
    .bind(&u.id)
    .bind(&u.alias)
    .bind(&u.name)
    .bind(&u.org_id)
    .bind(&u.issuer)
    .bind(&u.client_id)
    .bind(&u.client_auth)
    .bind(&u.client_secret)
    .bind(&u.key_id)
    .bind(&u.scopes)
    .bind(&u.acr_values)
    .bind(&u.claim_map)
    .bind(&u.acr_map)
    .bind(u.max_ial)
    .bind(u.max_aal)
    .bind(u.jit)
    .bind(&u.email_domains)
    .bind(u.propagate_logout)
    .bind(&u.status)
    .bind(u.created_at)
    .bind(u.version)
    .bind(&u.saml)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every upstream, by alias.
pub(crate) async fn upstreams(db: &Db) -> Result<Vec<UpstreamRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {UPSTREAM_COLUMNS} FROM upstreams ORDER BY alias"
    ))
    .fetch_all(db.pool())
    .await
}

/// The upstream with this alias or id.
pub(crate) async fn find_upstream(
    db: &Db,
    alias_or_id: &str,
) -> Result<Option<UpstreamRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {UPSTREAM_COLUMNS} FROM upstreams WHERE alias = $1 OR id = $1"
    ))
    .bind(alias_or_id)
    .fetch_optional(db.pool())
    .await
}

/// Sets an upstream's status at `now`, counting a new version.
pub(crate) async fn set_upstream_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE upstreams SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores an edited upstream (its settings and new version) at `now`, when its version is
/// still `expected`; false when someone else was first.
pub(crate) async fn update_upstream(
    conn: &mut AnyConnection,
    next: &UpstreamRow,
    expected: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE upstreams SET name = $1, client_secret = $2, scopes = $3, acr_values = $4, claim_map = $5, \
         acr_map = $6, max_ial = $7, max_aal = $8, jit = $9, email_domains = $10, propagate_logout = $11, \
         updated_at = $12, version = $13 WHERE id = $14 AND version = $15",
    )
    .bind(&next.name)
    .bind(&next.client_secret)
    .bind(&next.scopes)
    .bind(&next.acr_values)
    .bind(&next.claim_map)
    .bind(&next.acr_map)
    .bind(next.max_ial)
    .bind(next.max_aal)
    .bind(next.jit)
    .bind(&next.email_domains)
    .bind(next.propagate_logout)
    .bind(now)
    .bind(next.version)
    .bind(&next.id)
    .bind(expected)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// Every upstream's sealed client secret (upstream id, sealed secret), for re-sealing under a
/// new KEK.
pub(crate) async fn sealed_client_secrets(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, client_secret FROM upstreams WHERE client_secret IS NOT NULL ORDER BY id",
    )
    .fetch_all(conn)
    .await
}

/// Replaces an upstream's sealed secret with the same secret sealed under another KEK, if it
/// is still `was`; false when it changed meanwhile.
pub(crate) async fn reseal_client_secret(
    conn: &mut AnyConnection,
    id: &str,
    was: &[u8],
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query("UPDATE upstreams SET client_secret = $1 WHERE id = $2 AND client_secret = $3")
            .bind(sealed)
            .bind(id)
            .bind(was)
            .execute(conn)
            .await?;
    Ok(updated.rows_affected() == 1)
}

// ---------------------------------------------------------------------------------------------
// Authorizations waiting at an upstream

/// An authorization sent to an upstream: state (as its hash), the browser it is bound to,
/// nonce, PKCE verifier and what to do once back (JSON).
#[derive(sqlx::FromRow)]
pub(crate) struct Authorization {
    pub upstream_id: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub continuation: String,
    pub expires_at: i64,
}

/// A new authorization to store: the state (as its hash), the browser's cookie (as its
/// hash), nonce, PKCE verifier and what to do once back.
pub(crate) struct NewAuthorization<'a, T> {
    pub state_hash: &'a str,
    pub upstream_id: &'a str,
    pub browser_hash: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub continuation: &'a T,
}

/// Stores an authorization, from `now` to `expires_at`.
pub(crate) async fn insert_authorization<T: Serialize>(
    db: &Db,
    new: &NewAuthorization<'_, T>,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO upstream_authorizations (state_hash, upstream_id, browser_hash, nonce, pkce_verifier, continuation, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.state_hash)
    .bind(new.upstream_id)
    .bind(new.browser_hash)
    .bind(new.nonce)
    .bind(new.pkce_verifier)
    .bind(serde_json::to_string(new.continuation).unwrap_or_default())
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The authorization stored under this state hash (expired too).
pub(crate) async fn find_authorization(
    db: &Db,
    state_hash: &str,
) -> Result<Option<Authorization>, sqlx::Error> {
    sqlx::query_as(
        "SELECT upstream_id, browser_hash, nonce, pkce_verifier, continuation, expires_at \
         FROM upstream_authorizations WHERE state_hash = $1",
    )
    .bind(state_hash)
    .fetch_optional(db.pool())
    .await
}

/// Deletes the authorization stored under this state hash; false when another request took
/// it first.
pub(crate) async fn delete_authorization(db: &Db, state_hash: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM upstream_authorizations WHERE state_hash = $1")
            .bind(state_hash)
            .execute(db.pool())
            .await?
            .rows_affected()
            == 1,
    )
}

// ---------------------------------------------------------------------------------------------
// Linked identities

/// The account linked to the upstream identity `subject`.
pub(crate) async fn linked_account(
    conn: &mut AnyConnection,
    upstream_id: &str,
    subject: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM federated_identities WHERE upstream_id = $1 AND subject = $2",
    )
    .bind(upstream_id)
    .bind(subject)
    .fetch_optional(conn)
    .await
}

/// Links the upstream identity to the account at `now` with its mapped attributes; fails
/// with a unique violation when either is linked already.
pub(crate) async fn insert_identity<T: Serialize>(
    conn: &mut AnyConnection,
    upstream_id: &str,
    subject: &str,
    user_id: &str,
    attributes: &T,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO federated_identities (upstream_id, subject, user_id, attributes, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(upstream_id)
    .bind(subject)
    .bind(user_id)
    .bind(serde_json::to_string(attributes).unwrap_or_else(|_| "{}".into()))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a sign-in with the upstream identity at `now`, with its latest attributes.
pub(crate) async fn record_identity_login<T: Serialize>(
    conn: &mut AnyConnection,
    upstream_id: &str,
    subject: &str,
    attributes: &T,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE federated_identities SET attributes = $1, last_login_at = $2 WHERE upstream_id = $3 AND subject = $4",
    )
    .bind(serde_json::to_string(attributes).unwrap_or_else(|_| "{}".into()))
    .bind(now)
    .bind(upstream_id)
    .bind(subject)
    .execute(conn)
    .await?;
    Ok(())
}

/// An account's link to an upstream, as `/account` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Link {
    pub alias: String,
    pub name: String,
    pub subject: String,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// The account's links, by upstream name.
pub(crate) async fn links(db: &Db, user_id: &str) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.alias, u.name, f.subject, f.created_at, f.last_login_at FROM federated_identities f \
         JOIN upstreams u ON u.id = f.upstream_id WHERE f.user_id = $1 ORDER BY u.name",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// How many links the account has to upstreams other than `alias`.
pub(crate) async fn links_except(
    conn: &mut AnyConnection,
    user_id: &str,
    alias: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM federated_identities f JOIN upstreams u ON u.id = f.upstream_id \
         WHERE f.user_id = $1 AND u.alias <> $2",
    )
    .bind(user_id)
    .bind(alias)
    .fetch_one(conn)
    .await
}

/// Removes the account's link to the upstream `alias`; returns the upstream id and subject,
/// `None` when there was none.
pub(crate) async fn delete_identity(
    conn: &mut AnyConnection,
    user_id: &str,
    alias: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM federated_identities WHERE user_id = $1 AND upstream_id = (SELECT id FROM upstreams WHERE alias = $2) \
         RETURNING upstream_id, subject",
    )
    .bind(user_id)
    .bind(alias)
    .fetch_optional(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// Federated sessions

/// What a federated sign-in leaves for its session: the upstream identity, its session and
/// ID token (for logout in both directions), and the levels after the ceiling.
pub(crate) struct FederatedSession<'a> {
    pub sid: &'a str,
    pub upstream_id: &'a str,
    pub subject: &'a str,
    pub upstream_sid: Option<&'a str>,
    pub id_token: &'a str,
    pub ial: i64,
    pub aal: i64,
    pub created_at: i64,
}

/// Records a federated session.
pub(crate) async fn insert_session(
    conn: &mut AnyConnection,
    s: &FederatedSession<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO federated_sessions (sid, upstream_id, subject, upstream_sid, id_token, ial, aal, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.sid)
    .bind(s.upstream_id)
    .bind(s.subject)
    .bind(s.upstream_sid)
    .bind(s.id_token)
    .bind(s.ial)
    .bind(s.aal)
    .bind(s.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The sessions an upstream's sign-ins started, narrowed to its `subject` and its session
/// `upstream_sid` when given.
pub(crate) async fn session_ids(
    db: &Db,
    upstream_id: &str,
    subject: Option<&str>,
    upstream_sid: Option<&str>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT sid FROM federated_sessions WHERE upstream_id = $1 \
         AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR upstream_sid = $3)",
    )
    .bind(upstream_id)
    .bind(subject)
    .bind(upstream_sid)
    .fetch_all(db.pool())
    .await
}

/// The upstream that started the session `sid`, and its ID token.
pub(crate) async fn session_upstream(
    db: &Db,
    sid: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT upstream_id, id_token FROM federated_sessions WHERE sid = $1")
        .bind(sid)
        .fetch_optional(db.pool())
        .await
}

/// The issuer of the upstream that started the session `sid`.
pub(crate) async fn session_issuer(db: &Db, sid: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT u.issuer FROM federated_sessions f JOIN upstreams u ON u.id = f.upstream_id WHERE f.sid = $1",
    )
    .bind(sid)
    .fetch_optional(db.pool())
    .await
}

/// The federated sessions recorded before `before`.
pub(crate) async fn sessions_before(db: &Db, before: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT sid FROM federated_sessions WHERE created_at < $1")
        .bind(before)
        .fetch_all(db.pool())
        .await
}

/// Forgets the federated sessions `sids`.
pub(crate) async fn delete_sessions(db: &Db, sids: &[String]) -> Result<(), sqlx::Error> {
    for chunk in sids.chunks(IN_LIST_MAX) {
        let sql = format!(
            "DELETE FROM federated_sessions WHERE sid IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for sid in chunk {
            query = query.bind(sid);
        }
        query.execute(db.pool()).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Identities waiting to be linked

/// An upstream identity waiting to be linked (its request id as a hash), with where to
/// continue.
pub(crate) struct NewLinkRequest<'a, I, C> {
    pub id_hash: &'a str,
    pub upstream_id: &'a str,
    pub subject: &'a str,
    pub identity: &'a I,
    pub continuation: &'a C,
}

/// Stores a link request, from `now` to `expires_at`.
pub(crate) async fn insert_link_request<I: Serialize, C: Serialize>(
    conn: &mut AnyConnection,
    new: &NewLinkRequest<'_, I, C>,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO federation_link_requests (id_hash, upstream_id, subject, identity, continuation, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new.id_hash)
    .bind(new.upstream_id)
    .bind(new.subject)
    .bind(serde_json::to_string(new.identity).unwrap_or_default())
    .bind(serde_json::to_string(new.continuation).unwrap_or_default())
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The identity, continuation and creation time of the link request stored under this hash,
/// unexpired at `now` (`None` also when they no longer read as `I` and `C`).
pub(crate) async fn live_link_request<I: DeserializeOwned, C: DeserializeOwned>(
    db: &Db,
    id_hash: &str,
    now: i64,
) -> Result<Option<(I, C, i64)>, sqlx::Error> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT identity, continuation, created_at FROM federation_link_requests WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.and_then(|(identity, continuation, created_at)| {
        Some((
            serde_json::from_str(&identity).ok()?,
            serde_json::from_str(&continuation).ok()?,
            created_at,
        ))
    }))
}

/// Deletes the link request stored under this hash; false when there was none.
pub(crate) async fn delete_link_request(
    conn: &mut AnyConnection,
    id_hash: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM federation_link_requests WHERE id_hash = $1")
            .bind(id_hash)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

// ---------------------------------------------------------------------------------------------
// Logouts waiting for the upstream's return

/// Remembers where to return (`return_to`) after logout at an upstream, under the hash of
/// the state sent there, from `now` to `expires_at`.
pub(crate) async fn insert_logout(
    db: &Db,
    state_hash: &str,
    return_to: Option<&str>,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO federation_logouts (state_hash, return_to, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(state_hash)
    .bind(return_to)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Takes the logout unexpired at `now` stored under this state hash: `Some(return_to)`,
/// `None` for an unknown one.
pub(crate) async fn take_logout(
    db: &Db,
    state_hash: &str,
    now: i64,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "DELETE FROM federation_logouts WHERE state_hash = $1 AND expires_at > $2 RETURNING return_to",
    )
    .bind(state_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(return_to,)| return_to))
}

/// Deletes authorizations, link requests and logouts past their expiry.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[
            (
                "DELETE FROM upstream_authorizations WHERE expires_at < $1",
                now,
            ),
            (
                "DELETE FROM federation_link_requests WHERE expires_at < $1",
                now,
            ),
            ("DELETE FROM federation_logouts WHERE expires_at < $1", now),
        ],
    )
    .await;
}
