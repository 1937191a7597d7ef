//! The certificate change feed (`cert_changes`): every issuance and status change, in
//! sequence, for the OCSP responders of every replica and for the CRL job. This module owns
//! the table.

use kizuna_core::db::{AnyConnection, Backend, Db, OneCall};
use kizuna_core::pki::{Change, Serial};

use crate::Ca;

/// How long the feed keeps a change. Responders poll it every fraction of a second; one that
/// fell further behind than this re-signs everything (see the OCSP responder).
pub const RETENTION_SECS: i64 = 3600;

/// Records changes (`(ca_id, serial)`) inside the caller's transaction. `kind` is `issued`
/// or `status`.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    kind: &str,
    changes: &[(String, String)],
) -> Result<(), sqlx::Error> {
    let mut call = OneCall::new(Backend::of(conn));
    add(&mut call, kind, changes, kizuna_core::time::now_unix());
    call.run_in(conn).await
}

/// Adds the changes (`(ca_id, serial)`, made at `now`) to a call of several owners' rows.
pub(crate) fn add<'q>(
    call: &mut OneCall<'q>,
    kind: &'q str,
    changes: &'q [(String, String)],
    now: i64,
) {
    call.insert(
        "cert_changes (ca_id, serial, kind, created_at)",
        4,
        changes,
        |b, (ca_id, serial)| {
            b.bind(ca_id).bind(serial).bind(kind).bind(now);
        },
    );
}

/// Deletes changes every replica has long since read. One replica at a time.
pub async fn prune(ca: &Ca) -> Result<u64, sqlx::Error> {
    let Some(lock) = ca.core.db.try_job_lock("cert-changes-prune").await? else {
        return Ok(0);
    };
    // The newest change always stays, so a responder can tell how far the feed has moved on.
    let deleted = sqlx::query(
        "DELETE FROM cert_changes WHERE created_at < $1 \
         AND seq < (SELECT MAX(seq) FROM cert_changes)",
    )
    .bind(kizuna_core::time::now_unix() - RETENTION_SECS)
    .execute(ca.core.db.pool())
    .await?
    .rows_affected();
    lock.release().await?;
    Ok(deleted)
}

/// The sequence number of the newest status change (revocation, hold, release), of one CA
/// or of any.
pub async fn last_status_change(db: &Db, ca_id: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) FROM cert_changes WHERE kind = 'status' \
         AND ($1 IS NULL OR ca_id = $1)",
    )
    .bind(ca_id)
    .fetch_one(db.pool())
    .await
}

/// Changes after `after`, and every status change since `since` however far back, in
/// sequence order, at most `limit`.
pub(crate) async fn since(
    db: &Db,
    after: i64,
    since: i64,
    limit: i64,
) -> Result<Vec<Change>, sqlx::Error> {
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT seq, ca_id, serial, created_at FROM cert_changes \
         WHERE seq > $1 OR (kind = 'status' AND created_at >= $2) ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(since)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, ca_id, serial, created_at)| {
            Some(Change {
                seq,
                ca_id,
                serial: serial.parse::<Serial>().ok()?,
                created_at,
            })
        })
        .collect())
}

/// The oldest and newest sequence numbers the feed holds (0, 0 when empty).
pub(crate) async fn bounds(db: &Db) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM cert_changes")
        .fetch_one(db.pool())
        .await
}
