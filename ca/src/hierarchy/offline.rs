//! Issuing CAs under an offline root: the pending CA's key and CSR, then the import of the
//! certificate the offline root signed; and the cross-certificates of an offline root's
//! rollover, made where the roots are kept.

use rcgen::CertificateParams;
use serde_json::json;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use kizuna_core::audit::{self, Actor, AuditEvent};

use super::trust::spki_of;
use super::{
    COLUMNS, CaRecord, display_name, forget_active, insert, key_algorithm, next_generation, subject,
};
use crate::{Ca, CaError};
use kizuna_core::custody::CustodySigner;

/// Starts an issuing CA whose root is kept offline: creates its key and returns its CSR
/// (DER). The CA is `pending` until [`import_issuer`].
pub async fn start_offline_issuer(ca: &Ca, name: &str, actor: Actor) -> Result<Vec<u8>, CaError> {
    let mut tx = ca.core.db.begin().await?;
    let generation = next_generation(tx.conn(), name).await?;
    let key = ca
        .core
        .custody
        .generate_in_backend(
            tx.conn(),
            &ca.config.key_backend,
            &format!("ca-{name}"),
            key_algorithm(&ca.config.key_algorithm),
        )
        .await?;
    let cn = format!(
        "{} {} CA {generation}",
        ca.config.organization,
        display_name(name)
    );
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(ca, cn);
    let csr = params
        .serialize_request(&CustodySigner(key.clone()))
        .map_err(CaError::from)?;
    let record = CaRecord {
        id: format!("{name}-{generation}"),
        name: name.to_string(),
        generation,
        kind: "issuing".into(),
        parent_id: None,
        key_id: Some(key.id().to_string()),
        cert_der: None,
        status: "pending".into(),
        not_before: None,
        not_after: None,
        crl_shards: ca.config.crl_shards,
        created_at: kizuna_core::time::now_unix(),
    };
    insert(tx.conn(), &record, Some(csr.der())).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "ca.csr", format!("ca:{}", record.id))
                .details(json!({"kind": "issuing", "offline_root": true})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(csr.der().to_vec())
}

fn pem_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    let text = std::str::from_utf8(input).map_err(|_| CaError::Invalid("not PEM text".into()))?;
    let mut out = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body = block
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap_or("");
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        out.push(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                .map_err(|_| CaError::Invalid("a PEM certificate is not valid base64".into()))?,
        );
    }
    if out.is_empty() {
        return Err(CaError::Invalid("no PEM certificate found".into()));
    }
    Ok(out)
}

/// Installs the certificate an offline root signed for a pending issuing CA, with that
/// root's certificate. Checks that the certificate is for the pending key, is a CA, is
/// valid now, and verifies under the root.
pub async fn import_issuer(
    ca: &Ca,
    issuer_pem: &[u8],
    root_pem: &[u8],
    actor: Actor,
) -> Result<CaRecord, CaError> {
    let issuer_der = pem_certificates(issuer_pem)?.remove(0);
    let root_der = pem_certificates(root_pem)?.remove(0);
    let issuer_cert = Certificate::from_der(&issuer_der)
        .map_err(|e| CaError::Invalid(format!("issuing CA certificate: {e}")))?;
    let root_cert = Certificate::from_der(&root_der)
        .map_err(|e| CaError::Invalid(format!("root certificate: {e}")))?;
    let spki = issuer_cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CaError::Invalid(e.to_string()))?;
    let pending: Vec<CaRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas WHERE status = 'pending'"
    ))
    .fetch_all(ca.core.db.pool())
    .await?;
    let mut matched = None;
    for record in pending {
        let Some(key_id) = &record.key_id else {
            continue;
        };
        if ca.core.custody.get(key_id).await?.public_key().spki_der() == spki {
            matched = Some(record);
        }
    }
    let mut record = matched.ok_or_else(|| {
        CaError::Invalid("the certificate is not for any pending issuing CA's key".into())
    })?;
    crate::verify::is_ca(&issuer_cert).map_err(CaError::Invalid)?;
    crate::verify::signed_by(&issuer_cert, &root_cert).map_err(CaError::Invalid)?;
    let (not_before, not_after) = crate::verify::validity(&issuer_cert);
    let now = kizuna_core::time::now_unix();
    if not_before > now + 300 || not_after <= now {
        return Err(CaError::Invalid(
            "the issuing CA certificate is not valid now".into(),
        ));
    }
    let mut tx = ca.core.db.begin().await?;
    let root_fp = kizuna_core::secret::hex(&kizuna_core::secret::sha256(&root_der));
    let root_id = format!("root-ext-{}", &root_fp[..12]);
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cas WHERE id = $1")
        .bind(&root_id)
        .fetch_one(tx.conn())
        .await?;
    if exists == 0 {
        let (rb, ra) = crate::verify::validity(&root_cert);
        let generation = next_generation(tx.conn(), "root").await?;
        insert(
            tx.conn(),
            &CaRecord {
                id: root_id.clone(),
                name: "root".into(),
                generation,
                kind: "root".into(),
                parent_id: None,
                key_id: None,
                cert_der: Some(root_der.clone()),
                status: "offline".into(),
                not_before: Some(rb),
                not_after: Some(ra),
                crl_shards: 1,
                created_at: now,
            },
            None,
        )
        .await?;
    }
    sqlx::query("UPDATE cas SET status = 'superseded' WHERE name = $1 AND status = 'active'")
        .bind(&record.name)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE cas SET cert_der = $1, status = 'active', parent_id = $2, not_before = $3, not_after = $4 WHERE id = $5")
        .bind(&issuer_der)
        .bind(&root_id)
        .bind(not_before)
        .bind(not_after)
        .bind(&record.id)
        .execute(tx.conn())
        .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "ca.import", format!("ca:{}", record.id))
                .details(json!({"root": root_id, "not_after": not_after})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    forget_active(ca, &record.name);
    crate::ocsp_signer::ensure(ca).await?;
    record.cert_der = Some(issuer_der);
    record.status = "active".into();
    record.parent_id = Some(root_id);
    record.not_before = Some(not_before);
    record.not_after = Some(not_after);
    Ok(record)
}

/// Publishes a cross-certificate made where an offline root is kept (NewWithOld or
/// OldWithNew): it must be a CA certificate, valid now, for the key of a root Kizuna knows
/// and under that root's exact name (or relying parties would not chain through it), and
/// signed by another root Kizuna knows. It is then in the trust bundle and chains until
/// either root is retired.
pub async fn import_cross(ca: &Ca, cert_pem: &[u8], actor: Actor) -> Result<CaRecord, CaError> {
    let der = pem_certificates(cert_pem)?.remove(0);
    let cert = Certificate::from_der(&der)
        .map_err(|e| CaError::Invalid(format!("cross-certificate: {e}")))?;
    crate::verify::is_ca(&cert).map_err(CaError::Invalid)?;
    let (not_before, not_after) = crate::verify::validity(&cert);
    let now = kizuna_core::time::now_unix();
    if not_before > now + 300 || not_after <= now {
        return Err(CaError::Invalid(
            "the cross-certificate is not valid now".into(),
        ));
    }
    let roots: Vec<CaRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas WHERE kind = 'root' AND status <> 'retired' AND cert_der IS NOT NULL \
         ORDER BY generation"
    ))
    .fetch_all(ca.core.db.pool())
    .await?;
    let parsed: Vec<(&CaRecord, Certificate)> = roots
        .iter()
        .filter_map(|r| Some((r, Certificate::from_der(r.cert_der.as_deref()?).ok()?)))
        .collect();
    let key = spki_of(&der);
    let (subject, subject_cert) = parsed
        .iter()
        .find(|(r, _)| r.cert_der.as_deref().and_then(spki_of) == key)
        .ok_or_else(|| {
            CaError::Invalid(
                "the certificate does not certify the key of any root here; import the issuing \
                 CA under the new root first (kizuna ca import-issuer), which records that root"
                    .into(),
            )
        })?;
    if cert.tbs_certificate().subject().to_der().ok()
        != subject_cert.tbs_certificate().subject().to_der().ok()
    {
        return Err(CaError::Invalid(format!(
            "the certificate's subject is not {}'s subject exactly: relying parties would not \
             chain through it",
            subject.id
        )));
    }
    let (issuer, _) = parsed
        .iter()
        .filter(|(r, _)| r.id != subject.id)
        .find(|(_, c)| crate::verify::signed_by(&cert, c).is_ok())
        .ok_or_else(|| {
            CaError::Invalid(format!(
                "the certificate for {}'s key is not signed by another root here",
                subject.id
            ))
        })?;
    let id = format!("{}-by-{}", subject.id, issuer.id);
    let mut tx = ca.core.db.begin().await?;
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cas WHERE id = $1")
        .bind(&id)
        .fetch_one(tx.conn())
        .await?;
    if exists > 0 {
        return Err(CaError::Conflict(format!(
            "there is already a cross-certificate {id}"
        )));
    }
    let record = CaRecord {
        id,
        name: "cross".into(),
        generation: next_generation(tx.conn(), "cross").await?,
        kind: "cross".into(),
        parent_id: Some(issuer.id.clone()),
        key_id: None,
        cert_der: Some(der),
        status: "active".into(),
        not_before: Some(not_before),
        not_after: Some(not_after),
        crl_shards: 1,
        created_at: now,
    };
    insert(tx.conn(), &record, None).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "ca.import_cross", format!("ca:{}", record.id)).details(
                json!({"root": subject.id, "signed_by": issuer.id, "not_after": not_after}),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(record)
}
