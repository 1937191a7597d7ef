//! Delegated OCSP signers (RFC 6960 §4.2.2.2): each issuing CA gets its own signing key and
//! an `ocsp-signer` certificate (id-pkix-ocsp-nocheck, 30 days), replaced a week before it
//! expires. The responder reads them from the `ocsp_signers` table.

use rcgen::CertificateParams;

use kizuna_core::audit::Actor;
use kizuna_core::custody::KeyAlgorithm;

use crate::crl::publishing_cas;
use crate::issue::{IssueRequest, issue};
use crate::{Ca, CaError};
use kizuna_core::custody::CustodySigner;

/// A signer is replaced when it has less than this left.
const RENEW_BEFORE_SECS: i64 = 7 * 86_400;

/// Makes sure every issuing CA has a signer valid for at least a week more. Returns the CA
/// ids that got a new one.
pub async fn ensure(ca: &Ca) -> Result<Vec<String>, CaError> {
    let Some(lock) = ca.core.db.try_job_lock("ocsp-signers").await? else {
        return Ok(vec![]);
    };
    let now = kizuna_core::time::now_unix();
    let mut renewed = Vec::new();
    for record in publishing_cas(ca)
        .await?
        .into_iter()
        .filter(|c| c.kind == "issuing")
    {
        if record.not_after.is_some_and(|t| t <= now) {
            continue;
        }
        let current: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ocsp_signers WHERE ca_id = $1 AND not_after > $2",
        )
        .bind(&record.id)
        .bind(now + RENEW_BEFORE_SECS)
        .fetch_one(ca.core.db.pool())
        .await?;
        if current > 0 {
            continue;
        }
        let key = ca
            .core
            .custody
            .generate("ocsp-signer", KeyAlgorithm::P256)
            .await?;
        let csr = CertificateParams::default()
            .serialize_request(&CustodySigner(key.clone()))
            .map_err(CaError::from)?;
        let issued = issue(
            ca,
            IssueRequest {
                csr: csr.der().to_vec(),
                profile: "ocsp-signer".into(),
                sans: Some(vec![]),
                org_id: None,
                actor: Actor::system("kizuna"),
                internal: true,
                common_name: Some(format!("{} OCSP Responder", record.id)),
                ca_id: Some(record.id.clone()),
            },
        )
        .await?;
        sqlx::query(
            "INSERT INTO ocsp_signers (serial, ca_id, key_id, cert_der, not_before, not_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&issued.record.serial)
        .bind(&record.id)
        .bind(key.id())
        .bind(&issued.record.der)
        .bind(issued.record.not_before)
        .bind(issued.record.not_after)
        .bind(now)
        .execute(ca.core.db.pool())
        .await?;
        renewed.push(record.id);
    }
    lock.release().await?;
    Ok(renewed)
}

/// CA `ca_id`'s newest OCSP signer valid at `now`: `(serial, key_id, cert_der)`.
pub(crate) async fn newest(
    db: &kizuna_core::db::Db,
    ca_id: &str,
    now: i64,
) -> Result<Option<(String, String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT serial, key_id, cert_der FROM ocsp_signers WHERE ca_id = $1 AND not_before <= $2 \
         AND not_after > $2 ORDER BY not_after DESC LIMIT 1",
    )
    .bind(ca_id)
    .bind(now)
    .fetch_optional(db.pool())
    .await
}
