//! Single sign-on sessions and the clients each signed in to (`sessions`, `session_clients`).

use std::collections::HashSet;

use serde::Serialize;

use kizuna_core::db::{AnyConnection, Db};

use super::{DAY, IN_LIST_MAX, list_from_json, list_to_json, placeholders};

/// A session: who, when and how the person signed in, and until when it lasts.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub sid: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub expires_at: i64,
    /// The account's own assurance rule and how many roles it holds, when read with the
    /// session (by [`crate::sessions::current`]).
    #[serde(skip)]
    pub account_rule: Option<(i64, i64)>,
}

type SessionRow = (String, String, i64, String, Option<String>, i64);

/// A stored row read into a session.
fn to_session((sid, user_id, auth_time, amr, acr, expires_at): SessionRow) -> Session {
    Session {
        sid,
        user_id,
        auth_time,
        amr: list_from_json(&amr),
        acr,
        expires_at,
        account_rule: None,
    }
}

/// A live session as the account page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionInfo {
    pub sid: String,
    pub amr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub auth_time: i64,
}

/// Stores a new session under the hash of its cookie value, with where it started.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    id_hash: &str,
    session: &Session,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, sid, user_id, auth_time, amr, acr, ip, user_agent, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, $4, $9)",
    )
    .bind(id_hash)
    .bind(&session.sid)
    .bind(&session.user_id)
    .bind(session.auth_time)
    .bind(list_to_json(&session.amr))
    .bind(&session.acr)
    .bind(ip)
    .bind(user_agent)
    .bind(session.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The unended, unexpired session stored under the hash of a cookie value.
pub(crate) async fn live_by_cookie(
    db: &Db,
    id_hash: &str,
    now: i64,
) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT sid, user_id, auth_time, amr, acr, expires_at FROM sessions \
         WHERE id = $1 AND ended_at IS NULL AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(to_session))
}

/// One of the account's unended, unexpired sessions, by its `sid`.
pub async fn find_live(
    db: &Db,
    user_id: &str,
    sid: &str,
    now: i64,
) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT sid, user_id, auth_time, amr, acr, expires_at FROM sessions \
         WHERE sid = $1 AND user_id = $2 AND ended_at IS NULL AND expires_at > $3",
    )
    .bind(sid)
    .bind(user_id)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(to_session))
}

/// The account's unended, unexpired sessions, newest first.
pub async fn list_live(db: &Db, user_id: &str, now: i64) -> Result<Vec<SessionInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sid, amr, ip, user_agent, created_at, auth_time FROM sessions \
         WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, sid",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(db.pool())
    .await
}

/// How many unended, unexpired sessions there are: of every account, or of the accounts
/// `of_users` names.
pub async fn count_live(
    db: &Db,
    now: i64,
    of_users: Option<&[String]>,
) -> Result<i64, sqlx::Error> {
    let Some(users) = of_users else {
        return sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(db.pool())
        .await;
    };
    let mut total = 0;
    for chunk in users.chunks(IN_LIST_MAX) {
        let sql = format!(
            "SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL AND expires_at > $1 AND user_id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query_scalar(&sql).bind(now);
        for user in chunk {
            query = query.bind(user);
        }
        let count: i64 = query.fetch_one(db.pool()).await?;
        total += count;
    }
    Ok(total)
}

/// The account of each unended session among `sids`: `(sid, user_id)`.
pub(crate) async fn unended_owners(
    db: &Db,
    sids: &[String],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut owners = Vec::new();
    for chunk in sids.chunks(IN_LIST_MAX) {
        let sql = format!(
            "SELECT sid, user_id FROM sessions WHERE ended_at IS NULL AND sid IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as(&sql);
        for sid in chunk {
            query = query.bind(sid);
        }
        owners.extend(query.fetch_all(db.pool()).await?);
    }
    Ok(owners)
}

/// Which of `sids` are still stored (ended or not).
pub(crate) async fn stored_among(db: &Db, sids: &[String]) -> Result<HashSet<String>, sqlx::Error> {
    let mut stored = HashSet::new();
    for chunk in sids.chunks(IN_LIST_MAX) {
        let sql = format!(
            "SELECT sid FROM sessions WHERE sid IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_scalar(&sql);
        for sid in chunk {
            query = query.bind(sid);
        }
        let found: Vec<String> = query.fetch_all(db.pool()).await?;
        stored.extend(found);
    }
    Ok(stored)
}

/// Raises an unended session after a further factor: its methods, level and authentication
/// time; false when it was not live.
pub(crate) async fn elevate(
    conn: &mut AnyConnection,
    sid: &str,
    amr: &[String],
    acr: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET amr = $1, acr = $2, auth_time = $3 WHERE sid = $4 AND ended_at IS NULL",
    )
    .bind(list_to_json(amr))
    .bind(acr)
    .bind(now)
    .bind(sid)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Ends a session at `now`; false when it had already ended.
pub(crate) async fn end(
    conn: &mut AnyConnection,
    sid: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let ended =
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE sid = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(sid)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(ended > 0)
}

/// Ends every unended session of an account at `now`; returns how many.
pub(crate) async fn end_all_of(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Records that the session signed in to a client (once).
pub(crate) async fn add_client(
    conn: &mut AnyConnection,
    sid: &str,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO session_clients (sid, client_id) VALUES ($1, $2) ON CONFLICT (sid, client_id) DO NOTHING")
        .bind(sid)
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The clients the session signed in to.
pub(crate) async fn clients_of(
    conn: &mut AnyConnection,
    sid: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT client_id FROM session_clients WHERE sid = $1")
        .bind(sid)
        .fetch_all(conn)
        .await
}

/// Deletes sessions that expired more than a day ago.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[("DELETE FROM sessions WHERE expires_at < $1", now - DAY)],
    )
    .await;
}
