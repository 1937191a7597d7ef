//! Single-use codes and the requests waiting for the person: authorization codes, stored and
//! pushed authorization requests, device codes (`authorization_codes`, `auth_requests`,
//! `device_codes`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kizuna_core::db::{AnyConnection, Db};

use super::{DAY, list_from_json, list_to_json, split_scope};

/// An authorization request as stored: its parameters (any serializable value), whether it
/// was pushed (RFC 9126), and its lifetime.
pub(crate) async fn insert_request<T: Serialize>(
    db: &Db,
    id: &str,
    client_id: &str,
    params: &T,
    pushed: bool,
    created_at: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_requests (id, client_id, params, pushed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(client_id)
    .bind(serde_json::to_string(params).unwrap_or_default())
    .bind(pushed as i64)
    .bind(created_at)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Replaces an unused request's parameters.
pub(crate) async fn update_request<T: Serialize>(
    db: &Db,
    id: &str,
    params: &T,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auth_requests SET params = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(serde_json::to_string(params).unwrap_or_default())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The parameters of an unexpired, unused request that was not pushed (`None` also when they
/// no longer read as `T`).
pub(crate) async fn live_request<T: DeserializeOwned>(
    db: &Db,
    id: &str,
    now: i64,
) -> Result<Option<T>, sqlx::Error> {
    let params: Option<String> = sqlx::query_scalar(
        "SELECT params FROM auth_requests WHERE id = $1 AND pushed = 0 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(params.and_then(|p| serde_json::from_str(&p).ok()))
}

/// Marks a request used at `now`; false when it already was.
pub(crate) async fn consume_request(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE auth_requests SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(done == 1)
}

/// Takes a live pushed request of `client_id` (once, in one transaction): its parameters,
/// `None` when it is unknown, expired, used, or no longer reads as `T`.
pub(crate) async fn take_pushed_request<T: DeserializeOwned>(
    db: &Db,
    id: &str,
    client_id: &str,
    now: i64,
) -> Result<Option<T>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let params: Option<String> = sqlx::query_scalar(
        "SELECT params FROM auth_requests WHERE id = $1 AND client_id = $2 AND pushed = 1 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(id)
    .bind(client_id)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    if params.is_some() && !consume_request(tx.conn(), id, now).await? {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(params.and_then(|p| serde_json::from_str(&p).ok()))
}

/// An authorization code: what it was issued for and whether it was used.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub sid: Option<String>,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub expires_at: i64,
    /// The request's `claims` parameter.
    pub claims: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    grant_id: String,
    client_id: String,
    user_id: String,
    sid: Option<String>,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    acr: Option<String>,
    amr: String,
    expires_at: i64,
    claims: Option<String>,
}

/// Stores a new (unused) code under its hash, issued at `created_at`.
pub(crate) async fn insert_code(
    conn: &mut AnyConnection,
    code_hash: &str,
    code: &Code,
    created_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id, sid, redirect_uri, scope, nonce, \
         code_challenge, auth_time, acr, amr, created_at, expires_at, claims) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(code_hash)
    .bind(&code.grant_id)
    .bind(&code.client_id)
    .bind(&code.user_id)
    .bind(&code.sid)
    .bind(&code.redirect_uri)
    .bind(code.scope.join(" "))
    .bind(&code.nonce)
    .bind(&code.code_challenge)
    .bind(code.auth_time)
    .bind(&code.acr)
    .bind(list_to_json(&code.amr))
    .bind(created_at)
    .bind(code.expires_at)
    .bind(code.claims.as_ref().map(|c| c.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

const CODE_COLUMNS: &str = "grant_id, client_id, user_id, sid, redirect_uri, scope, nonce, \
    code_challenge, auth_time, acr, amr, expires_at, claims";

impl From<CodeRow> for Code {
    fn from(r: CodeRow) -> Code {
        Code {
            grant_id: r.grant_id,
            client_id: r.client_id,
            user_id: r.user_id,
            sid: r.sid,
            redirect_uri: r.redirect_uri,
            scope: split_scope(&r.scope),
            nonce: r.nonce,
            code_challenge: r.code_challenge,
            auth_time: r.auth_time,
            acr: r.acr,
            amr: list_from_json(&r.amr),
            expires_at: r.expires_at,
            claims: r.claims.and_then(|c| serde_json::from_str(&c).ok()),
        }
    }
}

/// The code stored under this hash, used or not (only a used one is looked up this way).
pub(crate) async fn find_code(
    conn: &mut AnyConnection,
    code_hash: &str,
) -> Result<Option<Code>, sqlx::Error> {
    let row: Option<CodeRow> = sqlx::query_as(&format!(
        "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"
    ))
    .bind(code_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Code::from))
}

/// Marks an unused code used at `now` and returns it as it was before; `None` when there is
/// no such code or it was used before (tell them apart with [`find_code`]).
pub(crate) async fn take_code(
    conn: &mut AnyConnection,
    code_hash: &str,
    now: i64,
) -> Result<Option<Code>, sqlx::Error> {
    let row: Option<CodeRow> = sqlx::query_as(&format!(
        "UPDATE authorization_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
         RETURNING {CODE_COLUMNS}"
    ))
    .bind(now)
    .bind(code_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Code::from))
}

/// A new device authorization: the device code (as its hash), the code the person types,
/// the client, what it asks for and how often it may poll.
pub(crate) struct NewDeviceCode<'a> {
    pub device_code_hash: &'a str,
    pub user_code: &'a str,
    pub client_id: &'a str,
    pub scope: &'a [String],
    pub poll_interval: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores a new device authorization (pending).
pub(crate) async fn insert_device_code(
    db: &Db,
    new: &NewDeviceCode<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO device_codes (device_code_hash, user_code, client_id, scope, poll_interval, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new.device_code_hash)
    .bind(new.user_code)
    .bind(new.client_id)
    .bind(new.scope.join(" "))
    .bind(new.poll_interval)
    .bind(new.created_at)
    .bind(new.expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A device authorization as the token endpoint reads it: its state (`pending`, `approved`,
/// `denied`, `consumed`), polling, and the person's sign-in once answered.
pub(crate) struct DeviceCode {
    pub client_id: String,
    pub scope: Vec<String>,
    pub status: String,
    pub poll_interval: i64,
    pub last_polled_at: Option<i64>,
    pub user_id: Option<String>,
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    client_id: String,
    scope: String,
    status: String,
    poll_interval: i64,
    last_polled_at: Option<i64>,
    user_id: Option<String>,
    sid: Option<String>,
    auth_time: Option<i64>,
    acr: Option<String>,
    amr: String,
    expires_at: i64,
}

/// The device authorization stored under this device code hash.
pub(crate) async fn find_device_code(
    conn: &mut AnyConnection,
    hash: &str,
) -> Result<Option<DeviceCode>, sqlx::Error> {
    let row: Option<DeviceRow> = sqlx::query_as(
        "SELECT client_id, scope, status, poll_interval, last_polled_at, user_id, sid, auth_time, acr, amr, expires_at \
         FROM device_codes WHERE device_code_hash = $1",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| DeviceCode {
        client_id: r.client_id,
        scope: split_scope(&r.scope),
        status: r.status,
        poll_interval: r.poll_interval,
        last_polled_at: r.last_polled_at,
        user_id: r.user_id,
        sid: r.sid,
        auth_time: r.auth_time,
        acr: r.acr,
        amr: list_from_json(&r.amr),
        expires_at: r.expires_at,
    }))
}

/// Records a poll at `now` and the interval the device must keep from now on.
pub(crate) async fn record_poll(
    conn: &mut AnyConnection,
    hash: &str,
    now: i64,
    interval: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE device_codes SET last_polled_at = $1, poll_interval = $2 WHERE device_code_hash = $3")
        .bind(now)
        .bind(interval)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends an approved device code; false when it was not (or no longer) approved.
pub(crate) async fn consume_device_code(
    conn: &mut AnyConnection,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query("UPDATE device_codes SET status = 'consumed' WHERE device_code_hash = $1 AND status = 'approved'")
        .bind(hash)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(claimed == 1)
}

/// The client and scopes of a pending, unexpired device authorization by its user code.
pub(crate) async fn pending_device_code(
    db: &Db,
    user_code: &str,
    now: i64,
) -> Result<Option<(String, Vec<String>)>, sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT client_id, scope FROM device_codes WHERE user_code = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(user_code)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(client_id, scope)| (client_id, split_scope(&scope))))
}

/// The person's answer to a device authorization, with the sign-in that gave it.
pub(crate) struct DeviceAnswer<'a> {
    pub approve: bool,
    pub user_id: &'a str,
    pub sid: &'a str,
    pub auth_time: i64,
    pub acr: Option<&'a str>,
    pub amr: &'a [String],
}

/// Records the answer on a pending, unexpired device authorization; false when it is no
/// longer pending.
pub(crate) async fn answer_device_code(
    conn: &mut AnyConnection,
    user_code: &str,
    answer: &DeviceAnswer<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE device_codes SET status = $1, user_id = $2, sid = $3, auth_time = $4, acr = $5, amr = $6 \
         WHERE user_code = $7 AND status = 'pending' AND expires_at > $8",
    )
    .bind(if answer.approve { "approved" } else { "denied" })
    .bind(answer.user_id)
    .bind(answer.sid)
    .bind(answer.auth_time)
    .bind(answer.acr)
    .bind(list_to_json(answer.amr))
    .bind(user_code)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Deletes codes and requests that expired more than a day ago.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[
            (
                "DELETE FROM authorization_codes WHERE expires_at < $1",
                now - DAY,
            ),
            ("DELETE FROM auth_requests WHERE expires_at < $1", now - DAY),
            ("DELETE FROM device_codes WHERE expires_at < $1", now - DAY),
        ],
    )
    .await;
}
