//! Notification mail waiting for, or done with, delivery (`mail_outbox`).

use kizuna_core::db::{AnyConnection, Db};

use super::DAY;

/// How long mail that is no longer queued is kept.
const KEEP_DONE_SECS: i64 = 90 * DAY;

/// A message to queue for an account.
pub(crate) struct NewMail<'a> {
    pub user_id: &'a str,
    pub recipient: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

/// Queues a message (`id`) at `now`, due at once.
pub(crate) async fn queue(
    conn: &mut AnyConnection,
    id: &str,
    mail: &NewMail<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, user_id, recipient, kind, subject, body, status, created_at, next_attempt) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)",
    )
    .bind(id)
    .bind(mail.user_id)
    .bind(mail.recipient)
    .bind(mail.kind)
    .bind(mail.subject)
    .bind(mail.body)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A message in the outbox, as the account page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxMail {
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub status: String,
    pub created_at: i64,
}

/// The account's latest messages, newest first, at most `limit`.
pub(crate) async fn recent(
    db: &Db,
    user_id: &str,
    limit: i64,
) -> Result<Vec<OutboxMail>, sqlx::Error> {
    sqlx::query_as(
        "SELECT recipient, kind, subject, status, created_at FROM mail_outbox WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// Gives up on queued mail created before `before`.
pub(crate) async fn expire_queued(db: &Db, before: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE mail_outbox SET status = 'expired' WHERE status = 'queued' AND created_at < $1",
    )
    .bind(before)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A queued message due for delivery.
pub(crate) struct DueMail {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

/// Queued messages due at `now`, longest waiting first, at most `limit`.
pub(crate) async fn due(db: &Db, now: i64, limit: i64) -> Result<Vec<DueMail>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, recipient, subject, body, attempts FROM mail_outbox \
         WHERE status = 'queued' AND next_attempt <= $1 ORDER BY next_attempt LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, recipient, subject, body, attempts)| DueMail {
            id,
            recipient,
            subject,
            body,
            attempts,
        })
        .collect())
}

/// Claims a due message for one sender by moving its next attempt to `until`; false when
/// another sender was first.
pub(crate) async fn claim(db: &Db, id: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE mail_outbox SET next_attempt = $1 WHERE id = $2 AND status = 'queued' AND next_attempt <= $3",
    )
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1)
}

/// Records a delivery at `now`.
pub(crate) async fn mark_sent(db: &Db, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE mail_outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records a failed delivery: queued again for `next_attempt`, or given up (`failed`).
pub(crate) async fn mark_failed(
    db: &Db,
    id: &str,
    retry: bool,
    next_attempt: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE mail_outbox SET status = $1, next_attempt = $2, attempts = attempts + 1, last_error = $3 WHERE id = $4")
        .bind(if retry { "queued" } else { "failed" })
        .bind(next_attempt)
        .bind(error)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Deletes mail no longer queued that is older than 90 days.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[(
            "DELETE FROM mail_outbox WHERE status <> 'queued' AND created_at < $1",
            now - KEEP_DONE_SECS,
        )],
    )
    .await;
}
