//! Issued certificates: every one is stored (the revocation responders and the console read
//! them). Inserts go through one writer task that commits whatever is waiting — the
//! certificates and their `cert.issue` audit entries — in a single transaction.

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use kizuna_core::access::Reach;
use kizuna_core::audit::{self, AuditEvent};
use kizuna_core::db::{AnyConnection, Db, OneCall, like_containing, org_clause};
use kizuna_core::pki::CertStatus;

use crate::names::San;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CertRecord {
    pub serial: String,
    pub ca_id: String,
    pub subject: String,
    #[sqlx(try_from = "String")]
    pub sans: Sans,
    pub profile: String,
    pub org_id: Option<String>,
    pub device_id: Option<String>,
    pub key_sha256: String,
    pub not_before: i64,
    pub not_after: i64,
    #[sqlx(try_from = "String")]
    pub status: CertStatus,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    /// When the status last changed (held, released, revoked), if ever.
    pub status_changed_at: Option<i64>,
    pub requested_by: String,
    #[serde(skip)]
    pub der: Vec<u8>,
    pub created_at: i64,
}

/// Subject alternative names as stored (a JSON list).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Sans(pub Vec<San>);

impl TryFrom<String> for Sans {
    type Error = serde_json::Error;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(Sans)
    }
}

const COLUMNS: &str = "serial, ca_id, subject, sans, profile, org_id, device_id, key_sha256, not_before, not_after, \
    status, revoked_at, revocation_reason, status_changed_at, requested_by, der, created_at";

pub async fn get(db: &Db, serial: &str) -> Result<Option<CertRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE serial = $1"
    ))
    .bind(serial.to_ascii_lowercase())
    .fetch_optional(db.pool())
    .await
}

/// A certificate's status, when it was revoked or held, and why (`None`: never issued here).
pub(crate) async fn standing(
    db: &Db,
    ca_id: &str,
    serial: &str,
) -> Result<Option<(String, Option<i64>, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, revoked_at, revocation_reason FROM certificates WHERE ca_id = $1 AND serial = $2",
    )
    .bind(ca_id)
    .bind(serial)
    .fetch_optional(db.pool())
    .await
}

/// The standings of several of a CA's certificates at once (those it never issued are
/// missing), read in chunks of at most 500 serials per query.
pub(crate) async fn standings(
    db: &Db,
    ca_id: &str,
    serials: &[&str],
) -> Result<Vec<(String, String, Option<i64>, Option<String>)>, sqlx::Error> {
    let mut out = Vec::with_capacity(serials.len());
    for chunk in serials.chunks(500) {
        let marks: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT serial, status, revoked_at, revocation_reason FROM certificates \
             WHERE ca_id = $1 AND serial IN ({})",
            marks.join(", ")
        );
        let mut query = sqlx::query_as(&sql).bind(ca_id);
        for serial in chunk {
            query = query.bind(*serial);
        }
        out.extend(query.fetch_all(db.pool()).await?);
    }
    Ok(out)
}

/// Serials of a CA's certificates that have not expired at `now`.
pub(crate) async fn current_serials(
    db: &Db,
    ca_id: &str,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    use futures_util::TryStreamExt;
    let mut conn = db.conn().await?;
    sqlx::query_scalar("SELECT serial FROM certificates WHERE ca_id = $1 AND not_after > $2")
        .bind(ca_id)
        .bind(now)
        .fetch(&mut *conn)
        .try_collect()
        .await
}

/// How many certificates issued by the CAs `ca_ids` are still valid at `now` (not expired,
/// not revoked; a hold may be released), leaving out the CAs' own delegated OCSP signers, and
/// the last notAfter among them.
pub(crate) async fn count_still_valid(
    db: &Db,
    ca_ids: &[String],
    now: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    let (mut count, mut last) = (0, None);
    for ca_id in ca_ids {
        let (n, max): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MAX(not_after) FROM certificates \
             WHERE ca_id = $1 AND not_after > $2 AND status <> 'revoked' AND profile <> 'ocsp-signer'",
        )
        .bind(ca_id)
        .bind(now)
        .fetch_one(db.pool())
        .await?;
        count += n;
        last = last.max(max);
    }
    Ok((count, last))
}

/// Which certificates.
#[derive(Debug, Clone)]
pub enum Selector {
    Serial(String),
    /// A device's certificates. Device ids are unique within their organization; see
    /// `revoke::device` to resolve one.
    Device {
        org_id: String,
        device_id: String,
    },
    Organization(String),
}

impl Selector {
    /// The WHERE clause, its parameters numbered from `$first`, and their values.
    fn clause(&self, first: usize) -> (String, Vec<String>) {
        match self {
            Selector::Serial(s) => (format!("serial = ${first}"), vec![s.to_ascii_lowercase()]),
            Selector::Device { org_id, device_id } => (
                format!("org_id = ${first} AND device_id = ${}", first + 1),
                vec![org_id.clone(), device_id.clone()],
            ),
            Selector::Organization(o) => (format!("org_id = ${first}"), vec![o.clone()]),
        }
    }

    /// The audit target the selector names.
    pub(crate) fn target(&self) -> String {
        match self {
            Selector::Serial(s) => format!("cert:{}", s.to_ascii_lowercase()),
            Selector::Device { device_id, .. } => format!("device:{device_id}"),
            Selector::Organization(o) => format!("org:{o}"),
        }
    }
}

/// How many of the selected certificates are in one of `statuses`.
pub(crate) async fn count(
    conn: &mut AnyConnection,
    selector: &Selector,
    statuses: &[CertStatus],
) -> Result<i64, sqlx::Error> {
    let (clause, values) = selector.clause(1);
    let sql = format!(
        "SELECT COUNT(*) FROM certificates WHERE {clause} AND status IN ({})",
        in_list(statuses)
    );
    let mut query = sqlx::query_scalar(&sql);
    for value in values {
        query = query.bind(value);
    }
    query.fetch_one(conn).await
}

/// The serials of the selected certificates that are in one of `statuses`, with when their
/// status last changed.
pub(crate) async fn serials(
    conn: &mut AnyConnection,
    selector: &Selector,
    statuses: &[CertStatus],
) -> Result<Vec<(String, Option<i64>)>, sqlx::Error> {
    let (clause, values) = selector.clause(1);
    let sql = format!(
        "SELECT serial, status_changed_at FROM certificates WHERE {clause} AND status IN ({})",
        in_list(statuses)
    );
    let mut query = sqlx::query_as(&sql);
    for value in values {
        query = query.bind(value);
    }
    query.fetch_all(conn).await
}

/// The statuses as a SQL list of literals (they are fixed words, never input).
fn in_list(statuses: &[CertStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The status of the certificate with `serial`, if there is one.
pub(crate) async fn status_of(
    conn: &mut AnyConnection,
    serial: &str,
) -> Result<Option<CertStatus>, sqlx::Error> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM certificates WHERE serial = $1")
            .bind(serial.to_ascii_lowercase())
            .fetch_optional(conn)
            .await?;
    Ok(status.and_then(|s| s.parse().ok()))
}

/// Organizations whose certificates carry device id `device_id`.
pub(crate) async fn device_orgs(db: &Db, device_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let orgs: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT org_id FROM certificates WHERE device_id = $1 ORDER BY org_id",
    )
    .bind(device_id)
    .fetch_all(db.pool())
    .await?;
    Ok(orgs.into_iter().flatten().collect())
}

/// Puts the selected certificates on hold or revokes them, now, for `reason`: a held one
/// may be revoked for good, a revoked one never changes again. Returns `(ca_id, serial)` of
/// each one changed.
pub(crate) async fn set_revoked(
    conn: &mut AnyConnection,
    selector: &Selector,
    status: CertStatus,
    reason: kizuna_core::pki::Reason,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let (clause, values) = selector.clause(4);
    let from = if status == CertStatus::Hold {
        in_list(&[CertStatus::Valid])
    } else {
        in_list(&[CertStatus::Valid, CertStatus::Hold])
    };
    let sql = format!(
        "UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3, status_changed_at = $2 \
         WHERE {clause} AND status IN ({from}) RETURNING ca_id, serial"
    );
    let mut update = sqlx::query_as(&sql)
        .bind(status.as_str())
        .bind(kizuna_core::time::now_unix())
        .bind(reason.as_str());
    for value in values {
        update = update.bind(value);
    }
    update.fetch_all(conn).await
}

/// Releases the selected certificates that are on hold. Returns `(ca_id, serial)` of each.
pub(crate) async fn release_held(
    conn: &mut AnyConnection,
    selector: &Selector,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let (clause, values) = selector.clause(2);
    let sql = format!(
        "UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL, \
         status_changed_at = $1 WHERE {clause} AND status = 'hold' RETURNING ca_id, serial"
    );
    let mut update = sqlx::query_as(&sql).bind(kizuna_core::time::now_unix());
    for value in values {
        update = update.bind(value);
    }
    update.fetch_all(conn).await
}

/// Where certificate `serial` stands for the tokens bound to it: its status and when that
/// last changed.
pub(crate) async fn binding(
    db: &Db,
    serial: &str,
) -> Result<Option<(String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as("SELECT status, status_changed_at FROM certificates WHERE serial = $1")
        .bind(serial)
        .fetch_optional(db.pool())
        .await
}

/// Certificates within `reach` matching `text` — a serial (exact, any spelling) or a
/// substring of the subject, a SAN or the device id — narrowed by organization, device and
/// status, newest first, at most `limit`.
pub async fn search(
    db: &Db,
    reach: &Reach,
    text: Option<&str>,
    org_id: Option<&str>,
    device_id: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<CertRecord>, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 7);
    let serial = text.and_then(|t| t.parse::<kizuna_core::pki::Serial>().ok());
    let sql = format!(
        "SELECT {COLUMNS} FROM certificates WHERE ($1 IS NULL OR serial = $2 OR LOWER(subject) LIKE $1 \
         OR LOWER(sans) LIKE $1 OR LOWER(device_id) LIKE $1) AND ($3 IS NULL OR org_id = $3) \
         AND ($4 IS NULL OR device_id = $4) AND ($5 IS NULL OR status = $5) AND {org_in} \
         ORDER BY created_at DESC, serial LIMIT $6"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(text.map(like_containing))
        .bind(serial.map(String::from))
        .bind(org_id)
        .bind(device_id)
        .bind(status)
        .bind(limit);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_all(db.pool()).await
}

/// How many valid certificates within `reach` expire in `[from, until)`.
pub async fn count_expiring(
    db: &Db,
    reach: &Reach,
    from: i64,
    until: i64,
) -> Result<i64, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 3);
    let sql = format!(
        "SELECT COUNT(*) FROM certificates WHERE status = 'valid' AND not_after >= $1 AND not_after < $2 AND {org_in}"
    );
    let mut query = sqlx::query_scalar(&sql).bind(from).bind(until);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_one(db.pool()).await
}

/// How many certificates within `reach` were revoked or held since `since`.
pub async fn count_revoked_since(db: &Db, reach: &Reach, since: i64) -> Result<i64, sqlx::Error> {
    let (org_in, orgs) = org_clause("org_id", reach, 2);
    let sql = format!(
        "SELECT COUNT(*) FROM certificates WHERE status IN ('revoked', 'hold') AND revoked_at >= $1 AND {org_in}"
    );
    let mut query = sqlx::query_scalar(&sql).bind(since);
    for org in &orgs {
        query = query.bind(org);
    }
    query.fetch_one(db.pool()).await
}

/// Certificates revoked or put on hold at or after `since` (unix seconds), oldest first, as
/// `(serial, ca_id, revoked_at, reason)`: what an operator re-applies after restoring a
/// backup taken before them.
pub async fn revoked_since(
    db: &Db,
    since: i64,
) -> Result<Vec<(String, String, i64, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT serial, ca_id, revoked_at, revocation_reason FROM certificates \
         WHERE status IN ('revoked', 'hold') AND revoked_at >= $1 ORDER BY revoked_at, serial",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await
}

/// Filters for listings; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub ca_id: Option<String>,
    pub org_id: Option<String>,
    pub device_id: Option<String>,
    pub profile: Option<String>,
    pub status: Option<String>,
    /// Only certificates that expire before this unix time.
    pub expiring_before: Option<i64>,
    /// A substring of the subject or of a subject alternative name.
    pub name: Option<String>,
    pub limit: i64,
}

pub async fn list(db: &Db, f: &Filter) -> Result<Vec<CertRecord>, sqlx::Error> {
    let name = f
        .name
        .as_ref()
        .map(|n| format!("%{}%", n.replace(['%', '_'], "")));
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE \
         ($1 IS NULL OR ca_id = $1) AND ($2 IS NULL OR org_id = $2) AND ($3 IS NULL OR device_id = $3) AND \
         ($4 IS NULL OR profile = $4) AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR not_after < $6) AND \
         ($7 IS NULL OR subject LIKE $7 OR sans LIKE $7) \
         ORDER BY created_at DESC, serial LIMIT $8"
    ))
    .bind(&f.ca_id)
    .bind(&f.org_id)
    .bind(&f.device_id)
    .bind(&f.profile)
    .bind(&f.status)
    .bind(f.expiring_before)
    .bind(name)
    .bind(if f.limit > 0 { f.limit.min(10_000) } else { 100 })
    .fetch_all(db.pool())
    .await
}

/// Every revoked and held, unexpired certificate of a CA, as `serial:revoked_at:reason` items
/// joined by commas (so a million entries cross the driver as one value), in no particular
/// order: the database reads them in one pass the cheapest way it knows, through the
/// `certificates_revoked` index when a CA has few, by scanning the table when most of its
/// certificates are revoked. Paging in serial order instead made PostgreSQL visit the table
/// in index order, a random read per entry, whenever autovacuum had not yet marked the pages
/// all-visible after a mass revocation. `None` when there are none.
pub(crate) async fn revoked_entries(
    conn: &mut AnyConnection,
    ca_id: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    refresh_statistics(conn).await?;
    sqlx::query_scalar(
        "SELECT string_agg(serial || ':' || COALESCE(revoked_at, 0) || ':' || \
         COALESCE(revocation_reason, ''), ',') FROM certificates WHERE ca_id = $1 \
         AND status IN ('revoked', 'hold') AND not_after > $2",
    )
    .bind(ca_id)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// On PostgreSQL, gathers the certificate table's statistics when they were never gathered
/// or more than a tenth of the table changed since (a mass revocation, a bulk import) and
/// autovacuum has not caught up yet: without them the planner takes the table for a few rows
/// and chooses the index for a read of most of it.
async fn refresh_statistics(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    if conn.backend_name() == "SQLite" {
        return Ok(());
    }
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT c.reltuples < 0 OR (s.n_mod_since_analyze > 1000 \
         AND s.n_mod_since_analyze * 10 > c.reltuples) \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.relname = 'certificates' AND s.schemaname = current_schema()",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if stale == Some(true) {
        tracing::info!("gathering the certificate table's statistics before reading revocations");
        // Only the planner gains: a role that may not analyze the table still gets its CRL.
        if let Err(e) = sqlx::query("ANALYZE certificates").execute(conn).await {
            tracing::warn!(error = %e, "could not gather the certificate table's statistics");
        }
    }
    Ok(())
}

/// Adds certificates to a call of several owners' rows.
fn insert_all<'q>(call: &mut OneCall<'q>, records: &'q [&CertRecord]) {
    call.insert(
        "certificates (serial, ca_id, subject, sans, profile, org_id, device_id, key_sha256, not_before, \
         not_after, status, requested_by, der, created_at)",
        14,
        records,
        |b, c| {
            b.bind(&c.serial)
                .bind(&c.ca_id)
                .bind(&c.subject)
                .bind(serde_json::to_string(&c.sans).unwrap_or_else(|_| "[]".into()))
                .bind(&c.profile)
                .bind(&c.org_id)
                .bind(&c.device_id)
                .bind(&c.key_sha256)
                .bind(c.not_before)
                .bind(c.not_after)
                .bind(c.status.as_str())
                .bind(&c.requested_by)
                .bind(&c.der)
                .bind(c.created_at);
        },
    );
}

type Pending = (
    CertRecord,
    Vec<AuditEvent>,
    oneshot::Sender<Result<(), String>>,
);
const MAX_BATCH: usize = 256;

/// The certificate writer (group commit). Cheap to clone.
#[derive(Clone)]
pub struct CertWriter {
    sender: mpsc::Sender<Pending>,
}

impl CertWriter {
    /// Issued certificates reach this process's OCSP responder through the change feed like
    /// every replica's (it reads their statuses a poll at a time); until then a request for
    /// one is signed on demand. Only revocations are published in-process, for at once.
    pub fn start(db: Db) -> CertWriter {
        let (sender, mut receiver) = mpsc::channel::<Pending>(MAX_BATCH * 8);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let result = commit(&db, &batch).await;
                let failure = result.as_ref().err().map(|e| e.to_string());
                if let Some(e) = &failure {
                    tracing::error!(error = %e, count = batch.len(), "storing issued certificates failed");
                }
                let entries = result.unwrap_or_default();
                for (_, _, reply) in batch.drain(..) {
                    let _ = reply.send(match &failure {
                        Some(e) => Err(e.clone()),
                        None => Ok(()),
                    });
                }
                audit::publish(&entries);
            }
        });
        CertWriter { sender }
    }

    /// Stores a certificate with its audit entries; returns once all are committed.
    pub async fn store(&self, record: CertRecord, events: Vec<AuditEvent>) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.sender
            .send((record, events, reply))
            .await
            .map_err(|_| "the certificate writer has stopped".to_string())?;
        done.await
            .map_err(|_| "the certificate writer has stopped".to_string())?
    }
}

/// Stores a batch: its certificates, their changes (new certificates are changes too: OCSP
/// responders sign their responses ahead) and their audit entries, in one call to the
/// database when the audit chain's head is where this process left it.
async fn commit(db: &Db, batch: &[Pending]) -> Result<Vec<audit::AuditEntry>, sqlx::Error> {
    let rows = BatchRows {
        records: batch.iter().map(|(r, _, _)| r).collect(),
        changes: batch
            .iter()
            .map(|(r, _, _)| (r.ca_id.clone(), r.serial.clone()))
            .collect(),
        now: kizuna_core::time::now_unix(),
    };
    let events: Vec<AuditEvent> = batch.iter().flat_map(|(_, e, _)| e.clone()).collect();
    audit::append_alone_with(db, &events, &rows, add_batch).await
}

/// A batch's certificates and their `issued` changes.
struct BatchRows<'a> {
    records: Vec<&'a CertRecord>,
    changes: Vec<(String, String)>,
    now: i64,
}

fn add_batch<'q>(call: &mut OneCall<'q>, rows: &'q BatchRows<'_>) {
    insert_all(call, &rows.records);
    crate::changes::add(call, "issued", &rows.changes, rows.now);
}
