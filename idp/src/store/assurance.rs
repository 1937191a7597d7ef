//! Identity assurance: proofing records, one-person-one-account bindings, open proofing
//! attempts, vendor result ids already seen, and what each client asks of assurance
//! (`identity_proofing`, `identity_bindings`, `proofing_attempts`, `proofing_result_ids`,
//! `client_assurance`).

use std::collections::BTreeMap;

use kizuna_core::db::{AnyConnection, Db};

use super::{DAY, list_from_json, list_to_json};

/// A proofing record as stored (levels 1 to 3, verified attributes by claim name).
#[derive(Debug, Clone)]
pub(crate) struct ProofingRow {
    pub id: String,
    pub user_id: String,
    pub provider: String,
    pub trust_framework: String,
    pub level: i64,
    pub claimed_level: i64,
    pub evidence_type: String,
    pub evidence_method: Option<String>,
    pub evidence_issuer: Option<String>,
    pub evidence_document: Option<String>,
    pub evidence_time: i64,
    pub attributes: BTreeMap<String, String>,
    pub verifier_kind: String,
    pub verifier_id: String,
    pub verified_at: i64,
    pub expires_at: i64,
}

type RecordRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    String,
    String,
    String,
    i64,
    i64,
);

const RECORD_COLUMNS: &str = "id, user_id, provider, trust_framework, level, claimed_level, evidence_type, \
    evidence_method, evidence_issuer, evidence_document, evidence_time, verified_claims, verifier_kind, \
    verifier_id, verified_at, expires_at";

/// A stored row read into a record.
fn to_row(r: RecordRow) -> ProofingRow {
    ProofingRow {
        id: r.0,
        user_id: r.1,
        provider: r.2,
        trust_framework: r.3,
        level: r.4,
        claimed_level: r.5,
        evidence_type: r.6,
        evidence_method: r.7,
        evidence_issuer: r.8,
        evidence_document: r.9,
        evidence_time: r.10,
        attributes: serde_json::from_str(&r.11).unwrap_or_default(),
        verifier_kind: r.12,
        verifier_id: r.13,
        verified_at: r.14,
        expires_at: r.15,
    }
}

/// The person's best record live at `now` (highest level, then newest).
pub(crate) async fn best_live(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Option<ProofingRow>, sqlx::Error> {
    let row: Option<RecordRow> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM identity_proofing WHERE user_id = $1 AND superseded_at IS NULL \
         AND expires_at > $2 ORDER BY level DESC, verified_at DESC LIMIT 1"
    ))
    .bind(user_id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(to_row))
}

/// One of the person's records live at `now`, by id: its level, when and by which provider
/// and verifier it was made.
pub(crate) async fn live_record(
    conn: &mut AnyConnection,
    id: &str,
    user_id: &str,
    now: i64,
) -> Result<Option<(i64, i64, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT level, verified_at, provider, verifier_id FROM identity_proofing \
         WHERE id = $1 AND user_id = $2 AND superseded_at IS NULL AND expires_at > $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Stores a record, with the keyed hash of the evidence's document number.
pub(crate) async fn insert_record(
    conn: &mut AnyConnection,
    record: &ProofingRow,
    number_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO identity_proofing ({RECORD_COLUMNS}, evidence_number_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&record.id)
    .bind(&record.user_id)
    .bind(&record.provider)
    .bind(&record.trust_framework)
    .bind(record.level)
    .bind(record.claimed_level)
    .bind(&record.evidence_type)
    .bind(&record.evidence_method)
    .bind(&record.evidence_issuer)
    .bind(&record.evidence_document)
    .bind(record.evidence_time)
    .bind(serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into()))
    .bind(&record.verifier_kind)
    .bind(&record.verifier_id)
    .bind(record.verified_at)
    .bind(record.expires_at)
    .bind(number_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Supersedes the person's live records at `level` or below (a new proofing outranks them)
/// at `now`.
pub(crate) async fn supersede_up_to(
    conn: &mut AnyConnection,
    user_id: &str,
    level: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE identity_proofing SET superseded_at = $1, superseded_reason = 're-proofed' \
         WHERE user_id = $2 AND superseded_at IS NULL AND level <= $3",
    )
    .bind(now)
    .bind(user_id)
    .bind(level)
    .execute(conn)
    .await?;
    Ok(())
}

/// Supersedes every live record of the person at `now`: a verified attribute was edited.
pub(crate) async fn supersede_edited(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE identity_proofing SET superseded_at = $1, superseded_reason = 'attribute edited' \
         WHERE user_id = $2 AND superseded_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Binds an identity (its keyed hash) to the account at `now` through `provider`, unless it
/// is bound already (to any account).
pub(crate) async fn bind_identity(
    conn: &mut AnyConnection,
    identifier_hash: &str,
    user_id: &str,
    provider: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identity_bindings (identifier_hash, user_id, provider, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (identifier_hash) DO NOTHING",
    )
    .bind(identifier_hash)
    .bind(user_id)
    .bind(provider)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Binds a new identity (its keyed hash) to the account at `now` through `provider`.
pub(crate) async fn insert_binding(
    conn: &mut AnyConnection,
    identifier_hash: &str,
    user_id: &str,
    provider: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identity_bindings (identifier_hash, user_id, provider, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(identifier_hash)
    .bind(user_id)
    .bind(provider)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The account an identity (its keyed hash) is bound to.
pub(crate) async fn binding_owner(
    conn: &mut AnyConnection,
    identifier_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT user_id FROM identity_bindings WHERE identifier_hash = $1")
        .bind(identifier_hash)
        .fetch_optional(conn)
        .await
}

/// How many of the person's attempts are unused and unexpired at `now`.
pub(crate) async fn open_attempts(db: &Db, user_id: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM proofing_attempts WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(user_id)
    .bind(now)
    .fetch_one(db.pool())
    .await
}

/// A new proofing attempt.
pub(crate) struct NewAttempt<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub provider: &'a str,
    pub challenge: Option<&'a str>,
    pub req: Option<&'a str>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores a new proofing attempt.
pub(crate) async fn insert_attempt(db: &Db, new: &NewAttempt<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO proofing_attempts (id, user_id, provider, challenge, req, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.provider)
    .bind(new.challenge)
    .bind(new.req)
    .bind(new.created_at)
    .bind(new.expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// An unused attempt of `provider` live at `now`: its person, challenge and request.
pub(crate) async fn live_attempt(
    conn: &mut AnyConnection,
    id: &str,
    provider: &str,
    now: i64,
) -> Result<Option<(String, Option<String>, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, challenge, req FROM proofing_attempts WHERE id = $1 AND provider = $2 \
         AND used_at IS NULL AND expires_at > $3",
    )
    .bind(id)
    .bind(provider)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Spends an attempt at `now`; false when it was already used.
pub(crate) async fn use_attempt(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE proofing_attempts SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Records a vendor result id of `provider` until `expires_at`; false when it was seen
/// before (a replay).
pub(crate) async fn record_result_id(
    db: &Db,
    provider: &str,
    jti: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO proofing_result_ids (provider, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (provider, jti) DO NOTHING",
    )
    .bind(provider)
    .bind(jti)
    .bind(expires_at)
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1)
}

/// A client's assurance settings as stored: minimum level, verified claims it may receive,
/// proofing providers its residents may use.
pub(crate) async fn client_settings(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<(i64, Vec<String>, Vec<String>)>, sqlx::Error> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT min_ial, verified_claims, proofing_providers FROM client_assurance WHERE client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    Ok(row
        .map(|(min, claims, providers)| (min, list_from_json(&claims), list_from_json(&providers))))
}

/// Stores a client's assurance settings at `now`.
pub(crate) async fn set_client_settings(
    conn: &mut AnyConnection,
    client_id: &str,
    min_ial: i64,
    verified_claims: &[String],
    proofing_providers: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_assurance (client_id, min_ial, verified_claims, proofing_providers, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO UPDATE SET min_ial = $2, \
         verified_claims = $3, proofing_providers = $4, updated_at = $5",
    )
    .bind(client_id)
    .bind(min_ial)
    .bind(list_to_json(verified_claims))
    .bind(list_to_json(proofing_providers))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes attempts that expired more than a day ago and result ids past their expiry.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[
            (
                "DELETE FROM proofing_attempts WHERE expires_at < $1",
                now - DAY,
            ),
            ("DELETE FROM proofing_result_ids WHERE expires_at < $1", now),
        ],
    )
    .await;
}
