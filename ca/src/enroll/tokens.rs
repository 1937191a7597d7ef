//! One-time enrollment tokens: created by an installer or organization administrator for
//! one registered device or for a batch (N devices of a model for an organization), with an
//! expiry, a profile and an allowed subject pattern. The token itself is shown once; only its
//! SHA-256 is stored. A token is consumed atomically, so it enrolls exactly one device.

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::Db;

use crate::devices::{self, DeviceStatus};
use crate::{Ca, CaError};

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "kzet_";
/// The longest lifetime a token may have.
pub const MAX_TTL_SECS: i64 = 30 * 86_400;
/// The most tokens one request creates.
pub const MAX_COUNT: usize = 100_000;

/// What tokens to create.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub org_id: String,
    pub profile: String,
    /// Bind the token to this registered device (then `count` is 1).
    pub device_id: Option<String>,
    /// For batch tokens: the model of the devices they register.
    pub model: Option<String>,
    /// A glob (`*`, `?`) the request's subject common name must match.
    pub subject_pattern: String,
    pub ttl_secs: i64,
    pub count: usize,
}

/// A token as shown once at creation.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub org_id: String,
    pub profile: String,
    pub device_id: Option<String>,
    pub batch_id: String,
    pub expires_at: i64,
}

/// A stored token (without its hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: String,
    pub org_id: String,
    pub profile: String,
    pub device_id: Option<String>,
    pub batch_id: Option<String>,
    pub model: Option<String>,
    pub subject_pattern: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_device_id: Option<String>,
    pub used_serial: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, org_id, profile, device_id, batch_id, model, subject_pattern, expires_at, used_at, \
    used_device_id, used_serial, created_by, created_at";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the enrollment token is not known")]
    Unknown,
    #[error("the enrollment token has already been used")]
    Used,
    #[error("the enrollment token has expired")]
    Expired,
}

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer match with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

async fn check_spec(ca: &Ca, spec: &TokenSpec) -> Result<(), CaError> {
    let profile = ca
        .profiles
        .get(&spec.profile)
        .ok_or_else(|| CaError::UnknownProfile(spec.profile.clone()))?;
    if profile.internal {
        return Err(CaError::Forbidden(format!(
            "profile {} is issued by Kizuna itself only",
            profile.name
        )));
    }
    if !(60..=MAX_TTL_SECS).contains(&spec.ttl_secs) {
        return Err(CaError::Invalid(format!(
            "a token lives between 60 seconds and {} days",
            MAX_TTL_SECS / 86_400
        )));
    }
    if spec.count == 0 || spec.count > MAX_COUNT {
        return Err(CaError::Invalid(format!(
            "create between 1 and {MAX_COUNT} tokens at a time"
        )));
    }
    if spec.subject_pattern.is_empty()
        || spec.subject_pattern.len() > 200
        || spec.subject_pattern.chars().any(char::is_control)
    {
        return Err(CaError::Invalid(
            "the subject pattern must be 1-200 characters (a glob with * and ?)".into(),
        ));
    }
    if let Some(device_id) = &spec.device_id {
        if spec.count != 1 {
            return Err(CaError::Invalid(
                "a token bound to a device enrolls that one device: use --count 1".into(),
            ));
        }
        let device = devices::find(&ca.core.db, device_id).await?;
        if device.org_id != spec.org_id {
            return Err(CaError::Invalid(format!(
                "device {device_id} belongs to another organization"
            )));
        }
        if matches!(
            device.status,
            DeviceStatus::Suspended | DeviceStatus::Retired
        ) {
            return Err(CaError::Conflict(format!(
                "device {device_id} is {}",
                device.status
            )));
        }
        if !profile.device_uri {
            return Err(CaError::Invalid(format!(
                "profile {} does not name devices; bind device tokens to a device profile",
                profile.name
            )));
        }
    }
    Ok(())
}

/// Creates tokens in one transaction, audited as one `enroll.tokens.create` event; calls
/// `progress` with the number created so far.
pub async fn create(
    ca: &Ca,
    actor: Actor,
    spec: &TokenSpec,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<Vec<CreatedToken>, CaError> {
    check_spec(ca, spec).await?;
    let now = kizuna_core::time::now_unix();
    let expires_at = now + spec.ttl_secs;
    let batch_id = kizuna_core::secret::new_id();
    let created_by = format!("{}:{}", actor.kind.as_str(), actor.id);
    let tokens: Vec<CreatedToken> = (0..spec.count)
        .map(|_| CreatedToken {
            id: kizuna_core::secret::new_id(),
            token: format!("{TOKEN_PREFIX}{}", kizuna_core::secret::random_token()),
            org_id: spec.org_id.clone(),
            profile: spec.profile.clone(),
            device_id: spec.device_id.clone(),
            batch_id: batch_id.clone(),
            expires_at,
        })
        .collect();
    let mut tx = ca.core.db.begin().await?;
    let sizes = kizuna_core::db::batch_sizes(tx.conn());
    let mut done = 0;
    for chunk in kizuna_core::db::chunks(&tokens, sizes) {
        let sql = kizuna_core::db::insert_sql(
            "enrollment_tokens (id, token_hash, org_id, profile, device_id, batch_id, model, subject_pattern, \
             expires_at, created_by, created_at)",
            11,
            chunk.len(),
        );
        let mut query = sqlx::query(&sql);
        for t in chunk {
            query = query
                .bind(&t.id)
                .bind(kizuna_core::secret::token_hash(&t.token))
                .bind(&t.org_id)
                .bind(&t.profile)
                .bind(&t.device_id)
                .bind(&batch_id)
                .bind(&spec.model)
                .bind(&spec.subject_pattern)
                .bind(expires_at)
                .bind(&created_by)
                .bind(now);
        }
        query.execute(tx.conn()).await?;
        done += chunk.len();
        progress(done);
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "enroll.tokens.create",
            format!("org:{}", spec.org_id),
        )
        .details(json!({
            "batch_id": batch_id, "count": spec.count, "profile": spec.profile,
            "device_id": spec.device_id, "model": spec.model,
            "subject_pattern": spec.subject_pattern, "expires_at": expires_at,
        }))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(tokens)
}

/// The token behind `token` if it can still enroll (unused, unexpired); else why not.
/// Nothing is changed: every check of a request is made before the token is spent.
pub async fn usable(db: &Db, token: &str) -> Result<Result<TokenRecord, TokenRefusal>, CaError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(Err(TokenRefusal::Unknown));
    }
    let found: Option<TokenRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE token_hash = $1"
    ))
    .bind(kizuna_core::secret::token_hash(token))
    .fetch_optional(db.pool())
    .await?;
    Ok(match found {
        None => Err(TokenRefusal::Unknown),
        Some(t) if t.used_at.is_some() => Err(TokenRefusal::Used),
        Some(t) if t.expires_at <= kizuna_core::time::now_unix() => Err(TokenRefusal::Expired),
        Some(t) => Ok(t),
    })
}

/// Spends token `id` in one statement, just before its certificate is issued: marks it used
/// by `serial` and (for a batch token) by `device`. False when another request spent it
/// first, or it expired meanwhile.
pub async fn spend(db: &Db, id: &str, device: Option<&str>, serial: &str) -> Result<bool, CaError> {
    let spent = sqlx::query(
        "UPDATE enrollment_tokens SET used_at = $2, used_device_id = COALESCE(device_id, $3), used_serial = $4 \
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(id)
    .bind(kizuna_core::time::now_unix())
    .bind(device)
    .bind(serial)
    .execute(db.writer().await?.conn())
    .await?
    .rows_affected();
    Ok(spent == 1)
}

/// Gives a spent token back (its enrollment was refused or failed after spending it).
pub async fn release(db: &Db, id: &str, serial: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE enrollment_tokens SET used_at = NULL, used_device_id = NULL, used_serial = NULL \
         WHERE id = $1 AND used_serial = $2",
    )
    .bind(id)
    .bind(serial)
    .execute(db.writer().await?.conn())
    .await?;
    Ok(())
}

/// Tokens of an organization (or of a batch), newest first; never their secrets.
pub async fn list(
    db: &Db,
    org_id: Option<&str>,
    batch_id: Option<&str>,
    limit: i64,
) -> Result<Vec<TokenRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR batch_id = $2) \
         ORDER BY created_at DESC, id LIMIT $3"
    ))
    .bind(org_id)
    .bind(batch_id)
    .bind(if limit > 0 { limit.min(100_000) } else { 100 })
    .fetch_all(db.pool())
    .await
}

/// Writes tokens as CSV: a header row, then one row per token.
pub fn write_csv(out: &mut impl std::io::Write, tokens: &[CreatedToken]) -> std::io::Result<()> {
    writeln!(
        out,
        "token,token_id,org_id,profile,device_id,batch_id,expires_at"
    )?;
    for t in tokens {
        // Every field is an id, a token or a profile name: no commas or quotes to escape.
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            t.token,
            t.id,
            t.org_id,
            t.profile,
            t.device_id.as_deref().unwrap_or(""),
            t.batch_id,
            kizuna_core::time::unix_to_rfc3339(t.expires_at)
        )?;
    }
    Ok(())
}

/// Voids an unused token: it expires now (a device presenting it is refused as it would be
/// for an expired token); audited. Refuses a token already used or expired.
pub async fn void(db: &Db, actor: Actor, id: &str) -> Result<TokenRecord, CaError> {
    let now = kizuna_core::time::now_unix();
    let mut tx = db.begin().await?;
    let voided: Option<TokenRecord> = sqlx::query_as(&format!(
        "UPDATE enrollment_tokens SET expires_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let Some(record) = voided else {
        let exists: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM enrollment_tokens WHERE id = $1")
                .bind(id)
                .fetch_one(tx.conn())
                .await?;
        return Err(if exists == 0 {
            CaError::NotFound(format!("no enrollment token {id}"))
        } else {
            CaError::Conflict(format!("enrollment token {id} is already used or expired"))
        });
    };
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "enroll.token.void", format!("enroll-token:{id}"))
                .details(json!({"org_id": record.org_id, "device_id": record.device_id})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(record)
}

/// One token (without its hash).
pub async fn get(db: &Db, id: &str) -> Result<Option<TokenRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("SL-*", "SL-0042"));
        assert!(!glob_matches("SL-*", "XL-0042"));
        assert!(glob_matches("SL-????", "SL-0042"));
        assert!(!glob_matches("SL-????", "SL-00420"));
        assert!(glob_matches("*-lamp-*", "north-lamp-7"));
        assert!(!glob_matches("*-lamp-*", "north-lamp"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn csv_has_a_header_and_a_token_column() {
        let mut out = Vec::new();
        write_csv(
            &mut out,
            &[CreatedToken {
                id: "i".into(),
                token: "kzet_x".into(),
                org_id: "o".into(),
                profile: "device".into(),
                device_id: None,
                batch_id: "b".into(),
                expires_at: 0,
            }],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("token,"));
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("kzet_x,i,o,device,,b,1970-01-01")
        );
    }
}
