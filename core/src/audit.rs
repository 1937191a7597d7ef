//! The tamper-evident audit log: one append-only table whose entries form a SHA-256 hash chain
//! (each entry stores the previous entry's hash). `verify` recomputes the chain and names the
//! first broken link. The encoding is described in `docs/design/audit-chain.md`.

use std::io::Write;

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::db::{AnyConnection, Backend, Db, OneCall};

mod event;
mod writer;
pub use event::{Actor, ActorKind, AuditEvent, Outcome};
pub use writer::AuditLog;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const DOMAIN: &[u8] = b"kizuna-audit-v1";
/// A stored entry, as exported.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub id: String,
    pub at: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    #[serde(serialize_with = "raw_json")]
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

fn raw_json<S: serde::Serializer>(details: &str, s: S) -> Result<S::Ok, S::Error> {
    match RawValue::from_string(details.to_string()) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_str(details),
    }
}

impl AuditEntry {
    /// Recomputes this entry's hash from its fields and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(DOMAIN);
        let mut field = |value: Option<&str>| match value {
            Some(v) => {
                ctx.update(&[1]);
                ctx.update(&(v.len() as u64).to_be_bytes());
                ctx.update(v.as_bytes());
            }
            None => ctx.update(&[0]),
        };
        field(Some(&self.prev_hash));
        field(Some(&self.seq.to_string()));
        field(Some(&self.id));
        field(Some(&self.at));
        field(Some(&self.actor_kind));
        field(Some(&self.actor_id));
        field(Some(&self.action));
        field(Some(&self.target));
        field(Some(&self.outcome));
        field(self.source_ip.as_deref());
        field(self.request_id.as_deref());
        field(Some(&self.details));
        crate::secret::hex(ctx.finish().as_ref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("the audit writer has stopped")]
    WriterStopped,
}

/// The chain head this process wrote last, `(seq, hash)`: a guess the database checks, so
/// an append that finds the head where it left it moves it in one statement.
static LAST_HEAD: std::sync::Mutex<Option<(i64, String)>> = std::sync::Mutex::new(None);

/// Appends events inside the caller's transaction, so the audit entry commits (or rolls back)
/// with the change it describes. Takes the chain head's row lock: appends never fork. When
/// the head is where this process left it (the usual case on one replica), one call checks
/// that, moves it and inserts the entries ([`Guess`]); otherwise the head is locked and read
/// first. The head row always holds the last entry's hash, so replicas of every version
/// chain alike.
pub async fn append_in(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(guess) = Guess::new(events)
        && guess
            .call(Backend::of(conn))
            .run_guarded_in(&mut *conn)
            .await?
    {
        return Ok(guess.committed());
    }
    let at = crate::time::now_rfc3339_micros();
    let (last_seq, prev_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(events.len() as i64)
            .fetch_one(&mut *conn)
            .await?;
    let entries = chain(events, last_seq - events.len() as i64 + 1, prev_hash, &at);
    insert_entries(conn, &entries).await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&entries.last().expect("at least one event").hash)
        .execute(&mut *conn)
        .await?;
    remember_head(&entries);
    Ok(entries)
}

fn remember_head(entries: &[AuditEntry]) {
    if let (Some(last), Ok(mut head)) = (entries.last(), LAST_HEAD.lock()) {
        *head = Some((last.seq, last.hash.clone()));
    }
}

/// The entries for `events`, numbered from `first_seq`, each linked to the one before.
fn chain(
    events: &[AuditEvent],
    first_seq: i64,
    mut prev_hash: String,
    at: &str,
) -> Vec<AuditEntry> {
    let mut entries = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let mut entry = AuditEntry {
            seq: first_seq + i as i64,
            id: crate::secret::new_id(),
            at: at.to_string(),
            actor_kind: event.actor.kind.as_str().to_string(),
            actor_id: event.actor.id.clone(),
            action: event.action.clone(),
            target: event.target.clone(),
            outcome: event.outcome.as_str().to_string(),
            source_ip: event.source_ip.clone(),
            request_id: event.request_id.clone(),
            details: event.details.to_string(),
            prev_hash: std::mem::take(&mut prev_hash),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        prev_hash = entry.hash.clone();
        entries.push(entry);
    }
    entries
}

/// Appends `events` as a transaction of their own, committed when it returns: the audit
/// writer's group commit.
pub async fn append_alone(db: &Db, events: &[AuditEvent]) -> Result<Vec<AuditEntry>, sqlx::Error> {
    append_alone_with(db, events, &(), |_, _| {}).await
}

/// Appends `events` as a transaction of their own together with the rows `add` takes from
/// `rows` into the same call (each owner adds its own tables' rows: the certificate writer its
/// certificates and their changes). When the chain head is where this process left it, the
/// head's move, the entries and the rows reach the database in one call ([`Guess`]);
/// otherwise the rows are written and the head is locked and read first ([`append_in`]), in
/// one transaction.
pub async fn append_alone_with<R: ?Sized>(
    db: &Db,
    events: &[AuditEvent],
    rows: &R,
    add: impl for<'c> Fn(&mut OneCall<'c>, &'c R),
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    if let Some(guess) = Guess::new(events) {
        let mut call = guess.call(db.backend());
        add(&mut call, rows);
        if db.write_in_one_call(call).await? {
            return Ok(guess.committed());
        }
    }
    let mut tx = db.begin().await?;
    let mut call = OneCall::new(db.backend());
    add(&mut call, rows);
    call.run_in(tx.conn()).await?;
    let entries = append_in(tx.conn(), events).await?;
    tx.commit().await?;
    Ok(entries)
}

/// An append prepared on the guess that the chain head is where this process left it (the
/// usual case on one replica): the entries the events become then, written in one call with
/// whatever other rows the caller adds to [`Guess::call`], and only if the guess was right.
struct Guess {
    seq: i64,
    hash: String,
    entries: Vec<AuditEntry>,
}

impl Guess {
    /// None for no events, or before this process's first append.
    fn new(events: &[AuditEvent]) -> Option<Guess> {
        if events.is_empty() {
            return None;
        }
        let (seq, hash) = LAST_HEAD.lock().ok().and_then(|head| head.clone())?;
        let entries = chain(
            events,
            seq + 1,
            hash.clone(),
            &crate::time::now_rfc3339_micros(),
        );
        Some(Guess { seq, hash, entries })
    }

    /// A call that moves the head from the guessed place to the last entry and inserts the
    /// entries; it writes nothing (neither they nor rows added to it) if the head was elsewhere.
    fn call(&self, backend: Backend) -> OneCall<'_> {
        let last = self.entries.last().expect("at least one event");
        let mut call = OneCall::guarded_by(
            backend,
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4",
            // Only this append can have given the head the last entry's (random) hash.
            "audit_head WHERE id = 1 AND hash = $2",
            |b| {
                b.bind(last.seq)
                    .bind(&last.hash)
                    .bind(self.seq)
                    .bind(&self.hash);
            },
        );
        add_entries(&mut call, &self.entries);
        call
    }

    /// The entries, once the call wrote them; the next guess starts from the last.
    fn committed(self) -> Vec<AuditEntry> {
        remember_head(&self.entries);
        self.entries
    }
}

async fn insert_entries(
    conn: &mut AnyConnection,
    entries: &[AuditEntry],
) -> Result<(), sqlx::Error> {
    let mut call = OneCall::new(Backend::of(conn));
    add_entries(&mut call, entries);
    call.run_in(conn).await
}

fn add_entries<'q>(call: &mut OneCall<'q>, entries: &'q [AuditEntry]) {
    call.insert(
        &format!("audit_log ({ENTRY_COLUMNS})"),
        13,
        entries,
        |b, entry| {
            b.bind(entry.seq)
                .bind(&entry.id)
                .bind(&entry.at)
                .bind(&entry.actor_kind)
                .bind(&entry.actor_id)
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.outcome)
                .bind(&entry.source_ip)
                .bind(&entry.request_id)
                .bind(&entry.details)
                .bind(&entry.prev_hash)
                .bind(&entry.hash);
        },
    );
}

/// Emits committed entries on the `kizuna::audit` log target, one JSON object each, for a SIEM.
pub fn publish(entries: &[AuditEntry]) {
    if !tracing::enabled!(target: "kizuna::audit", tracing::Level::INFO) {
        return;
    }
    for entry in entries {
        if let Ok(json) = serde_json::to_string(entry) {
            tracing::info!(target: "kizuna::audit", audit = %json);
        }
    }
}

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// `entry <id> (seq <n>): <reason>`, with `-` for an entry without an id (the chain head).
impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = if self.id.is_empty() { "-" } else { &self.id };
        write!(f, "entry {id} (seq {}): {}", self.seq, self.reason)
    }
}

/// Recomputes every entry's hash and link, in order, and checks the chain head.
pub async fn verify(db: &Db) -> Result<VerifyReport, sqlx::Error> {
    let mut conn = db.conn().await?;
    let mut rows = sqlx::query_as::<_, AuditEntry>(
        "SELECT seq, id, at, actor_kind, actor_id, action, target, outcome, source_ip, \
         request_id, details, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch(&mut *conn);
    let mut expected_prev = GENESIS_HASH.to_string();
    let mut expected_seq = 1i64;
    let mut count = 0u64;
    while let Some(entry) = rows.try_next().await? {
        let problem = if entry.seq != expected_seq {
            Some(format!(
                "sequence jumps from {} to {}: entries are missing",
                expected_seq - 1,
                entry.seq
            ))
        } else if entry.prev_hash != expected_prev {
            Some("prev_hash does not match the previous entry's hash".to_string())
        } else if entry.compute_hash() != entry.hash {
            Some("hash does not match the entry's contents: the entry was altered".to_string())
        } else {
            None
        };
        if let Some(reason) = problem {
            return Ok(VerifyReport {
                entries: count,
                broken: Some(BrokenLink {
                    seq: entry.seq,
                    id: entry.id,
                    reason,
                }),
            });
        }
        expected_prev = entry.hash;
        expected_seq += 1;
        count += 1;
    }
    drop(rows);
    let (head_seq, head_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    let broken = (head_seq != expected_seq - 1 || head_hash != expected_prev).then(|| BrokenLink {
        seq: expected_seq,
        id: String::new(),
        reason: format!(
            "the chain ends at entry {} but its head records entry {head_seq}: entries were removed from the end",
            expected_seq - 1
        ),
    });
    Ok(VerifyReport {
        entries: count,
        broken,
    })
}

/// Writes entries at or after `since` (an RFC 3339 time) as JSON lines. Returns how many.
pub async fn export_jsonl(
    db: &Db,
    since: Option<&str>,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut conn = db.conn().await?;
    let since = since.unwrap_or("");
    let mut rows = sqlx::query_as::<_, AuditEntry>(
        "SELECT seq, id, at, actor_kind, actor_id, action, target, outcome, source_ip, \
         request_id, details, prev_hash, hash FROM audit_log WHERE at >= $1 ORDER BY seq",
    )
    .bind(since)
    .fetch(&mut *conn);
    let mut count = 0;
    while let Some(entry) = rows.try_next().await? {
        serde_json::to_writer(&mut *out, &entry).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

/// What an audit search asks; every field narrows. Times are RFC 3339 (a prefix such as a
/// date works: entries are stored with RFC 3339 UTC times, which sort as text).
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    pub actor: Option<String>,
    /// An action, or a prefix ending in `.` (`cert.`).
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// At most this many (default 200, at most 100,000), newest first.
    pub limit: i64,
}

const ENTRY_COLUMNS: &str = "seq, id, at, actor_kind, actor_id, action, target, outcome, source_ip, \
    request_id, details, prev_hash, hash";

/// Entries matching a search, newest first.
pub async fn search(db: &Db, s: &AuditSearch) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let action_like = s.action.as_deref().map(|a| {
        if a.ends_with('.') {
            format!("{}%", a.replace('%', ""))
        } else {
            a.replace('%', "")
        }
    });
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action LIKE $2) \
         AND ($3 IS NULL OR target = $3) AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
         ORDER BY seq DESC LIMIT $6"
    ))
    .bind(&s.actor)
    .bind(action_like)
    .bind(&s.target)
    .bind(&s.since)
    .bind(&s.until)
    .bind(if s.limit > 0 { s.limit.min(100_000) } else { 200 })
    .fetch_all(db.pool())
    .await
}

/// One entry by its id.
pub async fn entry(db: &Db, id: &str) -> Result<Option<AuditEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// The ten newest refusals and security changes (revocations, holds, account and console
/// events), for a dashboard.
pub async fn security_events(db: &Db) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE outcome <> 'success' OR action LIKE 'cert.revoke%' \
         OR action LIKE 'cert.hold%' OR action LIKE 'user.%' OR action LIKE 'console.%' ORDER BY seq DESC LIMIT 10"
    ))
    .fetch_all(db.pool())
    .await
}

/// How many `action` entries about `target` were recorded at or after `since` (RFC 3339,
/// as entries are stamped), and when the newest of all of them was: the tokens bound to a
/// certificate (`cert:<serial>`, `token.issue`) that are still within their lifetime, and
/// when it last got one. Read on the caller's connection (inside its transaction).
pub async fn tally(
    conn: &mut AnyConnection,
    target: &str,
    action: &str,
    since: &str,
) -> Result<Tally, sqlx::Error> {
    let (recent, newest): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(CASE WHEN at >= $3 THEN 1 END), MAX(at) FROM audit_log \
         WHERE target = $1 AND action = $2",
    )
    .bind(target)
    .bind(action)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Tally { recent, newest })
}

/// What [`tally`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Entries at or after the time asked for.
    pub recent: i64,
    /// The newest entry's time, if there is any.
    pub newest: Option<String>,
}

/// The latest entries about `target` (`user:<id>`) whose action is one of `actions`, and
/// with `actor_kind` only those by that kind of actor; newest first, at most `limit`.
pub async fn recent_about(
    db: &Db,
    target: &str,
    actor_kind: Option<ActorKind>,
    actions: &[&str],
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    if actions.is_empty() {
        return Ok(Vec::new());
    }
    let first_action = if actor_kind.is_some() { 4 } else { 3 };
    let marks: Vec<String> = (first_action..first_action + actions.len())
        .map(|n| format!("${n}"))
        .collect();
    let by_kind = if actor_kind.is_some() {
        " AND actor_kind = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE target = $1{by_kind} \
         AND action IN ({}) ORDER BY seq DESC LIMIT $2",
        marks.join(", ")
    );
    let mut query = sqlx::query_as::<_, AuditEntry>(&sql)
        .bind(target)
        .bind(limit);
    if let Some(kind) = actor_kind {
        query = query.bind(kind.as_str());
    }
    for action in actions {
        query = query.bind(*action);
    }
    query.fetch_all(db.pool()).await
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the audit log failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
}
