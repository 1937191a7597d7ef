//! Root CA rollover (RFC 4210 §4.4, root CA key update): a new root, the two
//! cross-certificates — NewWithOld (the new root's key certified by the old root) and
//! OldWithNew (the old root's key certified by the new root) — and new generations of the
//! issuing CAs under the new root, in one transaction; then, once the overlap is over, the
//! old root's retirement.

use rcgen::{CertificateParams, Issuer, KeyIdMethod};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::der::Decode;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::AnyConnection;
use kizuna_core::time::{now_unix, unix_to_rfc3339};

use super::init::{add_issuer_urls, ca_params, new_issuer_in, new_root_in};
use super::trust::spki_of;
use super::{
    COLUMNS, CaRecord, active, dn_from, forget_active, get, insert, load, next_generation,
    subject_key_identifier,
};
use crate::{Ca, CaError, ext};
use kizuna_core::custody::CustodySigner;

/// What a root rollover would change: the root it replaces and the issuing CAs (logical
/// names) that get a new generation under the new root.
#[derive(Debug, Serialize)]
pub struct RootRolloverPlan {
    pub old_root: CaRecord,
    pub issuers: Vec<String>,
}

/// What a root rollover did.
#[derive(Debug, Serialize)]
pub struct RootRollover {
    pub old_root: String,
    pub new_root: CaRecord,
    /// NewWithOld, then OldWithNew.
    pub cross_certificates: Vec<CaRecord>,
    /// The new generations of the issuing CAs, under the new root.
    pub issuers: Vec<CaRecord>,
    /// When the overlap ends at the latest: the old root's (and the cross-certificates')
    /// notAfter.
    pub overlap_until: i64,
}

/// Checks that the root can be rolled over now and says what would change. Refuses when
/// the root is kept offline (the rollover then happens on the offline machine), when an
/// earlier rollover's overlap is still open, and when the active root has expired.
pub async fn plan_root_rollover(ca: &Ca) -> Result<RootRolloverPlan, CaError> {
    let now = now_unix();
    let open: Option<CaRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas WHERE kind = 'root' AND status = 'superseded' AND not_after > $1 \
         ORDER BY generation LIMIT 1"
    ))
    .bind(now)
    .fetch_optional(ca.core.db.pool())
    .await?;
    if let Some(old) = open {
        return Err(CaError::Conflict(format!(
            "the previous root rollover is still in its overlap: {} is trusted beside the active \
             root until {} or until it is retired; retire it first (kizuna ca retire-root), then \
             roll over again",
            old.id,
            unix_to_rfc3339(old.not_after.unwrap_or(0))
        )));
    }
    let old_root = active(ca, "root")
        .await?
        .filter(|r| r.key_id.is_some())
        .ok_or_else(|| {
            CaError::NotReady(
                "there is no active root CA with its key on this server: a root kept offline is \
                 rolled over on the offline machine (see docs/ca.md, \"Root rollover with an \
                 offline root\")"
                    .into(),
            )
        })?;
    if old_root.not_after.is_none_or(|t| t <= now) {
        return Err(CaError::Invalid(format!(
            "the active root {} has expired: a cross-certificate from it would not be valid",
            old_root.id
        )));
    }
    let issuers = sqlx::query_scalar(
        "SELECT name FROM cas WHERE kind = 'issuing' AND status = 'active' AND parent_id = $1 \
         ORDER BY name",
    )
    .bind(&old_root.id)
    .fetch_all(ca.core.db.pool())
    .await?;
    Ok(RootRolloverPlan { old_root, issuers })
}

/// Rolls the root over: a new root key (in the configured key backend) and self-signed
/// certificate, the cross-certificates NewWithOld and OldWithNew (valid until the old root
/// expires), and a new generation of every issuing CA the old root signed, under the new
/// root. All in one transaction with its `ca.rollover_root` audit entry. New certificates
/// then chain to the new root; those already issued keep chaining to the old one, which
/// stays trusted and published until [`retire_root`] or its expiry.
pub async fn rollover_root(ca: &Ca, actor: Actor) -> Result<RootRollover, CaError> {
    let lock = ca
        .core
        .db
        .try_job_lock("ca-hierarchy")
        .await?
        .ok_or_else(|| {
            CaError::Conflict("another change to the CA hierarchy is running; try again".into())
        })?;
    let plan = plan_root_rollover(ca).await?;
    let old = load(ca, plan.old_root).await?;
    let old_key = ca
        .core
        .custody
        .get(old.record.key_id.as_deref().unwrap_or_default())
        .await?;
    let mut tx = ca.core.db.begin().await?;
    let conn = tx.conn();
    sqlx::query("UPDATE cas SET status = 'superseded' WHERE id = $1 AND status = 'active'")
        .bind(&old.record.id)
        .execute(&mut *conn)
        .await?;
    let (new_root, new_params, new_key) = new_root_in(conn, ca).await?;
    let new_issuer = Issuer::new(new_params, CustodySigner(new_key.clone()));
    let overlap_until = old
        .record
        .not_after
        .unwrap_or(0)
        .min(new_root.not_after.unwrap_or(0));
    let new_with_old = cross_in(
        conn,
        ca,
        (&new_root, &CustodySigner(new_key)),
        (&old.record, &old.issuer),
        overlap_until,
    )
    .await?;
    let old_with_new = cross_in(
        conn,
        ca,
        (&old.record, &CustodySigner(old_key)),
        (&new_root, &new_issuer),
        overlap_until,
    )
    .await?;
    let mut issuers = Vec::new();
    for name in &plan.issuers {
        issuers.push(new_issuer_in(conn, ca, name, &new_root, &new_issuer).await?);
    }
    let ids = |records: &[CaRecord]| records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let cross_certificates = vec![new_with_old, old_with_new];
    let entries = audit::append_in(
        conn,
        &[
            AuditEvent::new(actor, "ca.rollover_root", format!("ca:{}", new_root.id)).details(
                json!({
                    "old_root": old.record.id,
                    "new_root": new_root.id,
                    "key_backend": ca.config.key_backend,
                    "cross_certificates": ids(&cross_certificates),
                    "issuers": ids(&issuers),
                    "overlap_until": overlap_until,
                }),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    lock.release().await?;
    audit::publish(&entries);
    forget_active(ca, "root");
    for name in &plan.issuers {
        forget_active(ca, name);
    }
    // The new CAs answer OCSP and publish CRLs from the start.
    crate::ocsp_signer::ensure(ca).await?;
    crate::crl::refresh(ca).await?;
    Ok(RootRollover {
        old_root: old.record.id.clone(),
        new_root,
        cross_certificates,
        issuers,
        overlap_until,
    })
}

/// Certifies the key of root `subject` (its name, key and key identifier exactly as in its
/// own certificate) under root `issuer`, valid until `not_after`, and stores it as a `cross`
/// CA certificate `<subject>-by-<issuer>`.
async fn cross_in(
    conn: &mut AnyConnection,
    ca: &Ca,
    (subject, subject_key): (&CaRecord, &CustodySigner),
    (issuer, signer): (&CaRecord, &Issuer<'_, CustodySigner>),
    not_after: i64,
) -> Result<CaRecord, CaError> {
    let subject_der = subject
        .cert_der
        .as_deref()
        .ok_or_else(|| CaError::NotReady(subject.id.clone()))?;
    let cert = Certificate::from_der(subject_der)
        .map_err(|e| CaError::Invalid(format!("stored CA certificate: {e}")))?;
    let not_after = OffsetDateTime::from_unix_timestamp(not_after)
        .map_err(|e| CaError::Invalid(format!("overlap end: {e}")))?;
    let mut params: CertificateParams =
        ca_params(dn_from(cert.tbs_certificate().subject())?, None, not_after);
    if let Some(ski) = subject_key_identifier(&cert) {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    }
    add_issuer_urls(ca, &mut params, &issuer.id);
    params
        .custom_extensions
        .extend(ext::certificate_policies(&[ext::ANY_POLICY.to_string()]));
    let der = params
        .signed_by(subject_key, signer)
        .map_err(CaError::from)?;
    let record = CaRecord {
        id: format!("{}-by-{}", subject.id, issuer.id),
        name: "cross".into(),
        generation: next_generation(conn, "cross").await?,
        kind: "cross".into(),
        parent_id: Some(issuer.id.clone()),
        key_id: None,
        cert_der: Some(der.der().to_vec()),
        status: "active".into(),
        not_before: Some(params.not_before.unix_timestamp()),
        not_after: Some(not_after.unix_timestamp()),
        crl_shards: 1,
        created_at: now_unix(),
    };
    insert(conn, &record, None).await?;
    Ok(record)
}

/// What retiring a root did.
#[derive(Debug, Serialize)]
pub struct Retired {
    pub root: String,
    pub cross_certificates: Vec<String>,
    /// Certificates under the root that were still valid (retired anyway with `force`).
    pub still_valid: i64,
}

/// Ends a root rollover's overlap: root `id` (by default the superseded root of the last
/// rollover) and the cross-certificates that involve it are retired — no longer in the
/// trust bundle, EST `/cacerts`, chains or `/pki/ca/`. Refuses a root that still signs an
/// active issuing CA, and — unless `force` — one under which certificates are still valid
/// (relying parties that only trust the new root validate those through OldWithNew). The
/// root's key stays in custody; its issuing CAs keep answering OCSP and publishing CRLs.
pub async fn retire_root(
    ca: &Ca,
    id: Option<&str>,
    force: bool,
    actor: Actor,
) -> Result<Retired, CaError> {
    let root = match id {
        Some(id) => get(ca, id)
            .await?
            .ok_or_else(|| CaError::NotFound(format!("there is no CA {id} (kizuna ca list)")))?,
        None => sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM cas WHERE kind = 'root' AND status = 'superseded' \
             ORDER BY generation LIMIT 1"
        ))
        .fetch_optional(ca.core.db.pool())
        .await?
        .ok_or_else(|| {
            CaError::Invalid(
                "no root is in a rollover overlap: there is nothing to retire (kizuna ca list)"
                    .into(),
            )
        })?,
    };
    if root.kind != "root" {
        return Err(CaError::Invalid(format!(
            "{} is a {} CA, not a root",
            root.id, root.kind
        )));
    }
    if root.status == "retired" {
        return Err(CaError::Invalid(format!("{} is already retired", root.id)));
    }
    let signing: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM cas WHERE kind = 'issuing' AND status IN ('active', 'pending') AND parent_id = $1 \
         ORDER BY id",
    )
    .bind(&root.id)
    .fetch_all(ca.core.db.pool())
    .await?;
    if root.status == "active" || !signing.is_empty() {
        return Err(CaError::Invalid(format!(
            "{} is the root new certificates chain to (issuing CAs: {}); roll the root over first \
             (kizuna ca rollover-root)",
            root.id,
            if signing.is_empty() {
                "none".into()
            } else {
                signing.join(", ")
            }
        )));
    }
    let under: Vec<String> =
        sqlx::query_scalar("SELECT id FROM cas WHERE kind = 'issuing' AND parent_id = $1")
            .bind(&root.id)
            .fetch_all(ca.core.db.pool())
            .await?;
    let (still_valid, last) =
        crate::store::count_still_valid(&ca.core.db, &under, now_unix()).await?;
    if still_valid > 0 && !force {
        return Err(CaError::Conflict(format!(
            "{still_valid} certificates issued under {} are still valid (the last until {}); \
             relying parties that trust only the new root validate them through the \
             cross-certificate, which retiring withdraws. Retire after they have expired or \
             been renewed, or run again with --force",
            root.id,
            unix_to_rfc3339(last.unwrap_or(0))
        )));
    }
    let key = root.cert_der.as_deref().and_then(spki_of);
    let crosses: Vec<CaRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas WHERE kind = 'cross' AND status <> 'retired' ORDER BY generation"
    ))
    .fetch_all(ca.core.db.pool())
    .await?;
    let crosses: Vec<String> = crosses
        .into_iter()
        .filter(|c| {
            c.parent_id.as_deref() == Some(root.id.as_str())
                || (key.is_some() && c.cert_der.as_deref().and_then(spki_of) == key)
        })
        .map(|c| c.id)
        .collect();
    let mut tx = ca.core.db.begin().await?;
    for id in std::iter::once(&root.id).chain(&crosses) {
        sqlx::query("UPDATE cas SET status = 'retired' WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "ca.retire_root", format!("ca:{}", root.id)).details(json!({
                "cross_certificates": crosses,
                "still_valid": still_valid,
                "forced": force && still_valid > 0,
            })),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(Retired {
        root: root.id,
        cross_certificates: crosses,
        still_valid,
    })
}
