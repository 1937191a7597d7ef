//! Proofing records: recording a proofing (with its identity binding and the level change),
//! reading a person's best live record and level, and the name edit that can lower it.

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::db::AnyConnection;
use kizuna_core::secret;

use super::{AssuranceError, Ial, NAME_ATTRIBUTES, Proofing, Record, Verifier, keyed_hash};
use crate::Idp;
use crate::store::assurance::{self as store, ProofingRow};
use crate::store::users as store_users;

fn to_record(r: ProofingRow) -> Record {
    Record {
        id: r.id,
        user_id: r.user_id,
        provider: r.provider,
        trust_framework: r.trust_framework,
        level: r.level.clamp(1, 3) as u8,
        claimed_level: r.claimed_level.clamp(1, 3) as u8,
        evidence_type: r.evidence_type,
        evidence_method: r.evidence_method,
        evidence_issuer: r.evidence_issuer,
        evidence_document: r.evidence_document,
        evidence_time: r.evidence_time,
        attributes: r.attributes,
        verifier_kind: r.verifier_kind,
        verifier_id: r.verifier_id,
        verified_at: r.verified_at,
        expires_at: r.expires_at,
    }
}

/// The record as stored.
fn to_row(r: &Record) -> ProofingRow {
    ProofingRow {
        id: r.id.clone(),
        user_id: r.user_id.clone(),
        provider: r.provider.clone(),
        trust_framework: r.trust_framework.clone(),
        level: r.level as i64,
        claimed_level: r.claimed_level as i64,
        evidence_type: r.evidence_type.clone(),
        evidence_method: r.evidence_method.clone(),
        evidence_issuer: r.evidence_issuer.clone(),
        evidence_document: r.evidence_document.clone(),
        evidence_time: r.evidence_time,
        attributes: r.attributes.clone(),
        verifier_kind: r.verifier_kind.clone(),
        verifier_id: r.verifier_id.clone(),
        verified_at: r.verified_at,
        expires_at: r.expires_at,
    }
}

/// The person's best live proofing record (highest level, then newest).
pub async fn current(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<Record>, sqlx::Error> {
    Ok(
        store::best_live(conn, user_id, kizuna_core::time::now_unix())
            .await?
            .map(to_record),
    )
}

/// The person's identity assurance level now (IAL1 without a live record).
pub async fn level(conn: &mut AnyConnection, user_id: &str) -> Result<Ial, sqlx::Error> {
    Ok(current(conn, user_id)
        .await?
        .map(|r| r.ial())
        .unwrap_or(Ial::One))
}

/// Records a proofing in one transaction: the identity binding (refused, and audited, when
/// the identity belongs to another account), the record at the level its provider's ceiling
/// allows, older records it outranks superseded, the verified name copied to the account,
/// and the audit entries for the proofing and the level change.
pub async fn record(idp: &Idp, user_id: &str, p: Proofing) -> Result<Record, AssuranceError> {
    let binding = match &p.binding {
        Some(identifier) => Some(keyed_hash(idp, "binding", identifier).await?),
        None => None,
    };
    let number_hash = match &p.evidence.number {
        Some(n) => Some(keyed_hash(idp, "evidence", n).await?),
        None => None,
    };
    let actor = match &p.verifier {
        Verifier::Person(id) => Actor::user(id),
        Verifier::System(id) => Actor::system(id),
    };
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    if crate::users::find(tx.conn(), user_id).await?.is_none() {
        return Err(AssuranceError::NoAccount(user_id.to_string()));
    }
    if let Some(hash) = &binding {
        store::bind_identity(tx.conn(), hash, user_id, &p.provider, now).await?;
        let owner = store::binding_owner(tx.conn(), hash)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if owner != user_id {
            drop(tx);
            let event = AuditEvent::new(
                actor,
                "assurance.binding_refused",
                format!("user:{user_id}"),
            )
            .outcome(Outcome::Denied)
            .details(json!({"provider": p.provider, "bound_to": owner}));
            idp.core.audit.record(event).await?;
            return Err(AssuranceError::AlreadyBound);
        }
    }
    let before = level(tx.conn(), user_id).await?;
    let reached = p.claimed.min(p.ceiling);
    store::supersede_up_to(tx.conn(), user_id, reached.level() as i64, now).await?;
    let (verifier_kind, verifier_id) = match &p.verifier {
        Verifier::Person(id) => ("person", id.clone()),
        Verifier::System(id) => ("system", id.clone()),
    };
    let record = Record {
        id: secret::new_id(),
        user_id: user_id.to_string(),
        provider: p.provider.clone(),
        trust_framework: idp.assurance.config.trust_framework.clone(),
        level: reached.level(),
        claimed_level: p.claimed.level(),
        evidence_type: p.evidence.kind.as_str().to_string(),
        evidence_method: p.evidence.method.clone(),
        evidence_issuer: p.evidence.issuer.clone(),
        evidence_document: p.evidence.document.clone(),
        evidence_time: p.evidence.time,
        attributes: p.attributes.clone(),
        verifier_kind: verifier_kind.into(),
        verifier_id,
        verified_at: now,
        expires_at: p.expires_at,
    };
    store::insert_record(tx.conn(), &to_row(&record), number_hash.as_deref()).await?;
    if let Some(name) = record.attributes.get("name") {
        store_users::set_name(tx.conn(), user_id, name, now).await?;
    }
    let after = level(tx.conn(), user_id).await?;
    let mut events = vec![
        AuditEvent::new(
            actor.clone(),
            "assurance.proofing",
            format!("user:{user_id}"),
        )
        .details(json!({
            "record": record.id,
            "provider": record.provider,
            "level": record.level,
            "claimed_level": record.claimed_level,
            "capped": reached < p.claimed,
            "evidence_type": record.evidence_type,
            "evidence_document": record.evidence_document,
            "attributes": record.attributes.keys().collect::<Vec<_>>(),
            "bound": binding.is_some(),
            "expires_at": record.expires_at,
        })),
    ];
    if after != before {
        events.push(level_event(actor, user_id, before, after, "proofing"));
    }
    let entries = audit::append_in(tx.conn(), &events).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(record)
}

fn level_event(actor: Actor, user_id: &str, from: Ial, to: Ial, cause: &str) -> AuditEvent {
    AuditEvent::new(actor, "assurance.level", format!("user:{user_id}"))
        .details(json!({"from": from.level(), "to": to.level(), "cause": cause}))
}

/// Audits a refused proofing attempt (nothing else is written).
pub async fn audit_refusal(idp: &Idp, user_id: &str, provider: &str, reason: &str) {
    let event = AuditEvent::new(
        Actor::system(provider),
        "assurance.proofing",
        format!("user:{user_id}"),
    )
    .outcome(Outcome::Denied)
    .details(json!({"provider": provider, "reason": reason}));
    if let Err(e) = idp.core.audit.record(event).await {
        tracing::error!(error = %e, "auditing a refused proofing");
    }
}

/// The person changes their own name. A name that proofing verified cannot change without
/// losing the level: every live record that verified a name is superseded (audited as a
/// level change). Returns whether the level dropped.
pub async fn edit_name(idp: &Idp, user_id: &str, name: &str) -> Result<bool, AssuranceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AssuranceError::BadAttribute("name".into()));
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let before = level(tx.conn(), user_id).await?;
    let verified = current(tx.conn(), user_id).await?;
    let changes_verified = verified.as_ref().is_some_and(|r| {
        r.attributes.get("name").is_some_and(|v| v != name)
            || (!r.attributes.contains_key("name")
                && NAME_ATTRIBUTES
                    .iter()
                    .any(|a| r.attributes.contains_key(*a)))
    });
    if changes_verified {
        store::supersede_edited(tx.conn(), user_id, now).await?;
    }
    store_users::set_name(tx.conn(), user_id, name, now).await?;
    let after = level(tx.conn(), user_id).await?;
    let actor = Actor::user(user_id);
    let mut events = vec![
        AuditEvent::new(
            actor.clone(),
            "user.profile_edit",
            format!("user:{user_id}"),
        )
        .details(json!({"attributes": ["name"], "verified_attribute_changed": changes_verified})),
    ];
    if after != before {
        events.push(level_event(
            actor,
            user_id,
            before,
            after,
            "attribute edited",
        ));
    }
    let entries = audit::append_in(tx.conn(), &events).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(after < before)
}
