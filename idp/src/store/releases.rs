//! Each release of a person's data to a service (`releases`): written in the transaction of
//! the release itself, read by the person's history page and its export, deleted once older
//! than the retention period.

use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use kizuna_core::db::{AnyConnection, Db};

use super::{DAY, list_from_json, list_to_json, split_scope};

/// A release to record.
#[derive(Debug, Clone)]
pub(crate) struct NewRelease<'a> {
    pub user_id: &'a str,
    pub client_id: &'a str,
    pub claims: &'a [String],
    /// The token's scope (space-separated); stored as a list.
    pub scope: &'a str,
    pub purpose: Option<&'a str>,
    /// `id_token`, `userinfo`, `introspection` or `token_exchange`.
    pub how: &'a str,
    pub at: i64,
    /// The audit entry written in the same transaction, when there is one.
    pub audit_id: Option<&'a str>,
    /// The token an introspection answered about: one row per client and token.
    pub token_ref: Option<&'a str>,
}

/// A recorded release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    pub client_id: String,
    pub claims: Vec<String>,
    pub scopes: Vec<String>,
    pub purpose: Option<String>,
    pub how: String,
    pub at: i64,
}

/// Which of a person's releases to read; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub client_id: Option<String>,
    /// Releases at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Releases before this time (unix seconds).
    pub until: Option<i64>,
}

const COLUMNS: &str = "id, client_id, claims, scopes, purpose, how, at";

/// `user_id = $1` and the filter as `$2`..`$4`.
const MATCHING: &str = "user_id = $1 AND ($2 IS NULL OR client_id = $2) \
    AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4)";

type Row = (String, String, String, String, Option<String>, String, i64);

fn release((id, client_id, claims, scopes, purpose, how, at): Row) -> Release {
    Release {
        id,
        client_id,
        claims: list_from_json(&claims),
        scopes: list_from_json(&scopes),
        purpose,
        how,
        at,
    }
}

const INSERT: &str = "INSERT INTO releases (id, user_id, client_id, claims, scopes, purpose, \
    how, at, audit_id, token_ref) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// `sql` (an [`INSERT`]) with the release's values bound.
fn bind<'q>(sql: &'q str, r: &NewRelease<'q>) -> Query<'q, Any, AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(kizuna_core::secret::new_id())
        .bind(r.user_id)
        .bind(r.client_id)
        .bind(list_to_json(r.claims))
        .bind(list_to_json(&split_scope(r.scope)))
        .bind(r.purpose)
        .bind(r.how)
        .bind(r.at)
        .bind(r.audit_id)
        .bind(r.token_ref)
}

/// Records a release on the caller's connection (inside the release's transaction).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    r: &NewRelease<'_>,
) -> Result<(), sqlx::Error> {
    bind(INSERT, r).execute(&mut *conn).await?;
    Ok(())
}

/// Records a release about a token (`token_ref`) unless this client already has one for it;
/// true when a row was written. A repeat costs one read and no write.
pub(crate) async fn insert_once(db: &Db, r: &NewRelease<'_>) -> Result<bool, sqlx::Error> {
    let known: Option<String> =
        sqlx::query_scalar("SELECT id FROM releases WHERE client_id = $1 AND token_ref = $2")
            .bind(r.client_id)
            .bind(r.token_ref)
            .fetch_optional(db.pool())
            .await?;
    if known.is_some() {
        return Ok(false);
    }
    let sql = format!("{INSERT} ON CONFLICT (client_id, token_ref) DO NOTHING");
    let mut writer = db.writer().await?;
    let written = bind(&sql, r).execute(writer.conn()).await?;
    Ok(written.rows_affected() == 1)
}

/// How many of the person's releases match.
pub(crate) async fn count(db: &Db, user_id: &str, filter: &Filter) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM releases WHERE {MATCHING}"))
        .bind(user_id)
        .bind(&filter.client_id)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_one(db.pool())
        .await
}

/// The person's matching releases, newest first (ids are time-ordered, so releases within
/// one second keep their order): at most `limit` of them after skipping `offset`.
pub(crate) async fn list(
    db: &Db,
    user_id: &str,
    filter: &Filter,
    offset: i64,
    limit: i64,
) -> Result<Vec<Release>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM releases WHERE {MATCHING} \
         ORDER BY at DESC, id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(user_id)
    .bind(&filter.client_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(release).collect())
}

/// The services the person's data was ever released to (within the retention period).
pub(crate) async fn clients(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT client_id FROM releases WHERE user_id = $1 ORDER BY client_id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// Deletes releases older than `retention_days` before `now`.
pub(crate) async fn purge(db: &Db, now: i64, retention_days: i64) {
    super::delete_expired(
        db,
        &[(
            "DELETE FROM releases WHERE at < $1",
            now - retention_days * DAY,
        )],
    )
    .await;
}
