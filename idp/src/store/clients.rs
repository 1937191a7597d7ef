//! Relying parties, their request quotas, and the client assertion ids already seen
//! (`clients`, `client_quotas`, `client_assertion_jtis`).

use std::collections::HashMap;

use kizuna_core::db::{AnyConnection, Column, Db, OneRead};

use super::{IN_LIST_MAX, placeholders};

/// A client as stored: lists and the JWK Set as JSON text, flags as integers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub org_id: Option<String>,
    pub secret_hash: Option<String>,
    pub auth_method: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub tls_client_auth: Option<String>,
    pub certificate_bound: i64,
    pub id_token_alg: String,
    pub require_par: i64,
    pub require_consent: i64,
    pub backchannel_logout_uri: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub min_aal: i64,
    pub version: i64,
}

const COLUMNS: &str = "id, name, description, org_id, secret_hash, auth_method, redirect_uris, \
    post_logout_redirect_uris, grant_types, scopes, jwks, jwks_uri, tls_client_auth, \
    certificate_bound, id_token_alg, require_par, require_consent, backchannel_logout_uri, status, \
    created_at, min_aal, version";

/// Stores a new client (its version starts at 0).
pub(crate) async fn insert(conn: &mut AnyConnection, c: &ClientRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO clients (id, name, description, org_id, secret_hash, auth_method, redirect_uris, \
         post_logout_redirect_uris, grant_types, scopes, jwks, jwks_uri, id_token_alg, require_par, \
         require_consent, backchannel_logout_uri, status, created_at, updated_at, min_aal, \
         tls_client_auth, certificate_bound) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19, $20, $21)",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.description)
    .bind(&c.org_id)
    .bind(&c.secret_hash)
    .bind(&c.auth_method)
    .bind(&c.redirect_uris)
    .bind(&c.post_logout_redirect_uris)
    .bind(&c.grant_types)
    .bind(&c.scopes)
    .bind(&c.jwks)
    .bind(&c.jwks_uri)
    .bind(&c.id_token_alg)
    .bind(c.require_par)
    .bind(c.require_consent)
    .bind(&c.backchannel_logout_uri)
    .bind(&c.status)
    .bind(c.created_at)
    .bind(c.min_aal)
    .bind(&c.tls_client_auth)
    .bind(c.certificate_bound)
    .execute(conn)
    .await?;
    Ok(())
}

/// The client with this id.
pub(crate) async fn find(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM clients WHERE id = $1"))
        .bind(client_id)
        .fetch_optional(conn)
        .await
}

/// Every client, oldest first.
pub(crate) async fn list(db: &Db) -> Result<Vec<ClientRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clients ORDER BY created_at, id"
    ))
    .fetch_all(db.pool())
    .await
}

/// The name and organization of each client among `ids` that exists.
pub(crate) async fn names(
    db: &Db,
    ids: &[String],
) -> Result<HashMap<String, (String, Option<String>)>, sqlx::Error> {
    let mut names = HashMap::new();
    for chunk in ids.chunks(IN_LIST_MAX) {
        let sql = format!(
            "SELECT id, name, org_id FROM clients WHERE id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        let rows: Vec<(String, String, Option<String>)> = query.fetch_all(db.pool()).await?;
        names.extend(rows.into_iter().map(|(id, name, org)| (id, (name, org))));
    }
    Ok(names)
}

/// The client's status as stored (`None`: no such client).
pub(crate) async fn status(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let mut read = OneRead::new();
    let status = status_of(&mut read, client_id);
    read.fetch(conn).await?.get(status)
}

/// A client's status (none for an unknown client), as one value of a read with other
/// owners' checks.
pub(crate) fn status_of<'q>(read: &mut OneRead<'q>, client_id: &'q str) -> Column<Option<String>> {
    read.column(|p| {
        format!(
            "SELECT status FROM clients WHERE id = {}",
            p.param(client_id)
        )
    })
}

/// A change to a registered client.
pub(crate) enum ClientUpdate<'a> {
    /// New redirect URIs (JSON text).
    RedirectUris(&'a str),
    /// New redirect URIs (JSON text), minimum assurance level and status.
    Reach {
        redirect_uris: &'a str,
        min_aal: i64,
        status: &'a str,
    },
    SecretHash(&'a str),
    Status(&'a str),
}

/// Applies `update` and counts a new version, when the client's version is still `expected`
/// (any version without one); returns whether it changed.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    client_id: &str,
    expected: Option<i64>,
    update: ClientUpdate<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let set = match update {
        ClientUpdate::RedirectUris(_) => "redirect_uris = $4",
        ClientUpdate::Reach { .. } => "redirect_uris = $4, min_aal = $5, status = $6",
        ClientUpdate::SecretHash(_) => "secret_hash = $4",
        ClientUpdate::Status(_) => "status = $4",
    };
    let sql = format!(
        "UPDATE clients SET {set}, version = version + 1, updated_at = $1 WHERE id = $2 AND ($3 IS NULL OR version = $3)"
    );
    let query = sqlx::query(&sql).bind(now).bind(client_id).bind(expected);
    let query = match update {
        ClientUpdate::RedirectUris(uris) => query.bind(uris),
        ClientUpdate::Reach {
            redirect_uris,
            min_aal,
            status,
        } => query.bind(redirect_uris).bind(min_aal).bind(status),
        ClientUpdate::SecretHash(hash) => query.bind(hash),
        ClientUpdate::Status(status) => query.bind(status),
    };
    Ok(query.execute(conn).await?.rows_affected() > 0)
}

/// Deletes a client with its quota; false when there was none.
pub(crate) async fn delete(conn: &mut AnyConnection, client_id: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    remove_quota(conn, client_id).await?;
    Ok(true)
}

/// Every client's quota: requests per minute by client id.
pub(crate) async fn quotas(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT client_id, requests_per_minute FROM client_quotas")
        .fetch_all(db.pool())
        .await
}

/// A client's quota in requests per minute, if it has one.
pub(crate) async fn quota(db: &Db, client_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT requests_per_minute FROM client_quotas WHERE client_id = $1")
        .bind(client_id)
        .fetch_optional(db.pool())
        .await
}

/// Sets a client's quota.
pub(crate) async fn set_quota(
    conn: &mut AnyConnection,
    client_id: &str,
    requests_per_minute: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_quotas (client_id, requests_per_minute, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id) DO UPDATE SET requests_per_minute = $2, updated_at = $3",
    )
    .bind(client_id)
    .bind(requests_per_minute)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a client's quota.
pub(crate) async fn remove_quota(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM client_quotas WHERE client_id = $1")
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a signed assertion's `jti` for `issuer` (a client id, or `upstream:<id>` for an
/// upstream's logout token) until `expires_at`; fails with a unique violation when it was
/// already seen.
pub(crate) async fn record_jti(
    db: &Db,
    issuer: &str,
    jti: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(issuer)
    .bind(jti)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes assertion ids past their expiry.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[(
            "DELETE FROM client_assertion_jtis WHERE expires_at < $1",
            now,
        )],
    )
    .await;
}
