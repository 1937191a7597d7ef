//! Certificates as clients of their own (RFC 8705 without a separate registration): which
//! scopes an organization lets its certificates of a profile — and, for devices, of a model
//! — ask for at the mutual-TLS token endpoint. Owns `certificate_client_scopes`. Management
//! scopes (`kizuna:*`) are never granted this way.

use serde::Serialize;
use serde_json::json;

use kizuna_core::access::is_management_scope;
use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::Db;

use crate::{Ca, CaError};

/// One rule: certificates of `org_id` issued under `profile` (and, when `model` is not
/// empty, for devices of that model) may get `scopes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientScopes {
    pub org_id: String,
    pub profile: String,
    /// A device model, or empty for every model (and for certificates of no device).
    pub model: String,
    pub scopes: Vec<String>,
    pub updated_at: i64,
}

/// The scopes a certificate of `org_id` and `profile` (of a device of `model`) may get: the
/// model's own rule, else the profile's rule for every model; `None` when there is neither.
pub async fn scopes_for(
    db: &Db,
    org_id: &str,
    profile: &str,
    model: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let row: Option<String> = sqlx::query_scalar(
        "SELECT scopes FROM certificate_client_scopes WHERE org_id = $1 AND profile = $2 \
         AND (model = $3 OR model = '') ORDER BY model DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(profile)
    .bind(model)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|text| serde_json::from_str(&text).unwrap_or_default()))
}

/// An organization's rules, by profile and model.
pub async fn list(db: &Db, org_id: &str) -> Result<Vec<ClientScopes>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT org_id, profile, model, scopes, updated_at FROM certificate_client_scopes \
         WHERE org_id = $1 ORDER BY profile, model",
    )
    .bind(org_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(org_id, profile, model, scopes, updated_at)| ClientScopes {
                org_id,
                profile,
                model,
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                updated_at,
            },
        )
        .collect())
}

/// Sets (or, with no scopes, removes) the rule for `profile` (one of the CA's profiles) and
/// `model` in `org_id`; audited as `cert_client.scopes`. The CLI, the admin API and the
/// console all set rules here.
pub async fn set(
    ca: &Ca,
    actor: Actor,
    org_id: &str,
    profile: &str,
    model: &str,
    scopes: &[String],
) -> Result<(), CaError> {
    if ca.profiles.get(profile).is_none() {
        return Err(CaError::Invalid(format!(
            "no certificate profile {profile:?}"
        )));
    }
    if model.len() > 128 || model.chars().any(char::is_control) {
        return Err(CaError::Invalid(
            "a model is at most 128 characters, without control characters".into(),
        ));
    }
    if scopes.len() > 64 {
        return Err(CaError::Invalid("at most 64 scopes per rule".into()));
    }
    let db = &ca.core.db;
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.len() > 128 || s.contains(char::is_whitespace))
    {
        return Err(CaError::Invalid(format!("{bad:?} is not a scope")));
    }
    if let Some(bad) = scopes.iter().find(|s| is_management_scope(s)) {
        return Err(CaError::Invalid(format!(
            "{bad} is a management scope: certificates acting as clients of their own never get one"
        )));
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = db.begin().await?;
    if scopes.is_empty() {
        sqlx::query(
            "DELETE FROM certificate_client_scopes WHERE org_id = $1 AND profile = $2 AND model = $3",
        )
        .bind(org_id)
        .bind(profile)
        .bind(model)
        .execute(tx.conn())
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO certificate_client_scopes (org_id, profile, model, scopes, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, profile, model) \
             DO UPDATE SET scopes = $4, updated_at = $5",
        )
        .bind(org_id)
        .bind(profile)
        .bind(model)
        .bind(serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "cert_client.scopes", format!("org:{org_id}"))
                .details(json!({"profile": profile, "model": model, "scopes": scopes})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}
