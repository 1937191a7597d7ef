//! Creating the hierarchy: the first root and `issuing` CA, and new generations of an
//! issuing CA (rollover), signed by the active root.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose,
};
use serde::Serialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::KeyHandle;
use kizuna_core::db::AnyConnection;

use super::{
    CaRecord, active, display_name, forget_active, insert, key_algorithm, load, next_generation,
    subject,
};
use crate::ext;
use crate::{Ca, CaError};
use kizuna_core::custody::CustodySigner;

pub(super) fn ca_params(
    dn: DistinguishedName,
    path_len: Option<u8>,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = kizuna_core::time::now() - Duration::minutes(5);
    params.not_after = not_after;
    params.serial_number = Some(crate::issue::random_serial().0);
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// What `init` did.
#[derive(Debug, Serialize)]
pub struct InitReport {
    pub created: Vec<CaRecord>,
}

/// Creates a root and the `issuing` CA under it when there is no CA yet. Safe to call from
/// every replica at start-up.
pub async fn init(ca: &Ca, actor: Actor) -> Result<InitReport, CaError> {
    let Some(lock) = ca.core.db.try_job_lock("ca-hierarchy").await? else {
        return Ok(InitReport { created: vec![] });
    };
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cas")
        .fetch_one(ca.core.db.pool())
        .await?;
    if existing > 0 {
        lock.release().await?;
        return Ok(InitReport { created: vec![] });
    }
    let root = create_root(ca, actor.clone()).await?;
    let issuing = create_issuer(ca, "issuing", actor).await?;
    lock.release().await?;
    Ok(InitReport {
        created: vec![root, issuing],
    })
}

async fn create_root(ca: &Ca, actor: Actor) -> Result<CaRecord, CaError> {
    let mut tx = ca.core.db.begin().await?;
    let (record, _, _) = new_root_in(tx.conn(), ca).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "ca.create", format!("ca:{}", record.id))
            .details(json!({"kind": "root", "key_backend": ca.config.key_backend, "not_after": record.not_after}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(record)
}

/// Creates the key and self-signed certificate of the next root generation inside `conn`'s
/// transaction and stores it as `active`. Returns its record, the parameters it was made
/// from (an rcgen issuer built from them signs with its name and key identifier exactly as
/// in its certificate) and its key.
pub(super) async fn new_root_in(
    conn: &mut AnyConnection,
    ca: &Ca,
) -> Result<(CaRecord, CertificateParams, KeyHandle), CaError> {
    let generation = next_generation(conn, "root").await?;
    let key = ca
        .core
        .custody
        .generate_in_backend(
            &mut *conn,
            &ca.config.key_backend,
            "ca-root",
            key_algorithm(&ca.config.key_algorithm),
        )
        .await?;
    let not_after = kizuna_core::time::now() + Duration::days(ca.config.root_validity_days);
    let cn = format!("{} Root CA {generation}", ca.config.organization);
    let params = ca_params(subject(ca, cn), None, not_after);
    let cert = params
        .self_signed(&CustodySigner(key.clone()))
        .map_err(CaError::from)?;
    let record = CaRecord {
        id: format!("root-{generation}"),
        name: "root".into(),
        generation,
        kind: "root".into(),
        parent_id: None,
        key_id: Some(key.id().to_string()),
        cert_der: Some(cert.der().to_vec()),
        status: "active".into(),
        not_before: Some(params.not_before.unix_timestamp()),
        not_after: Some(not_after.unix_timestamp()),
        crl_shards: 1,
        created_at: kizuna_core::time::now_unix(),
    };
    insert(conn, &record, None).await?;
    Ok((record, params, key))
}

/// Checks a logical issuing CA name: lower-case letters, digits and `-`, not `root`.
fn check_issuer_name(name: &str) -> Result<(), CaError> {
    if name == "root"
        || name == "cross"
        || name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(CaError::Invalid(format!(
            "{name:?} is not a valid CA name (lower-case letters, digits, -)"
        )));
    }
    Ok(())
}

/// Creates (or rolls over to) a new generation of the issuing CA `name`, signed by the
/// active root. Earlier generations stay valid for the certificates they issued.
pub async fn create_issuer(ca: &Ca, name: &str, actor: Actor) -> Result<CaRecord, CaError> {
    check_issuer_name(name)?;
    let root = active(ca, "root")
        .await?
        .ok_or_else(|| CaError::NotReady("there is no active root CA".into()))?;
    let root = load(ca, root).await?;
    let mut tx = ca.core.db.begin().await?;
    let record = new_issuer_in(tx.conn(), ca, name, &root.record, &root.issuer).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "ca.create", format!("ca:{}", record.id)).details(json!({
            "kind": "issuing", "parent": root.record.id, "generation": record.generation, "not_after": record.not_after,
        }))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    forget_active(ca, name);
    // The new CA's certificates get OCSP answers from the start.
    crate::ocsp_signer::ensure(ca).await?;
    Ok(record)
}

/// Signs the next generation of issuing CA `name` under `root` (signing as `root_issuer`)
/// inside `conn`'s transaction, stores it as the active generation and marks the earlier
/// active one superseded (it keeps answering for what it issued).
pub(super) async fn new_issuer_in(
    conn: &mut AnyConnection,
    ca: &Ca,
    name: &str,
    root: &CaRecord,
    root_issuer: &Issuer<'_, CustodySigner>,
) -> Result<CaRecord, CaError> {
    let generation = next_generation(conn, name).await?;
    let key = ca
        .core
        .custody
        .generate_in_backend(
            &mut *conn,
            &ca.config.key_backend,
            &format!("ca-{name}"),
            key_algorithm(&ca.config.key_algorithm),
        )
        .await?;
    let root_not_after = OffsetDateTime::from_unix_timestamp(root.not_after.unwrap_or(0))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let not_after = (kizuna_core::time::now() + Duration::days(ca.config.issuing_validity_days))
        .min(root_not_after);
    let cn = format!(
        "{} {} CA {generation}",
        ca.config.organization,
        display_name(name)
    );
    let mut params = ca_params(subject(ca, cn), Some(0), not_after);
    add_issuer_urls(ca, &mut params, &root.id);
    params
        .custom_extensions
        .extend(ext::certificate_policies(&[ext::ANY_POLICY.to_string()]));
    if let Some(nc) = ca
        .config
        .issuers
        .get(name)
        .and_then(|i| ext::name_constraints(&i.name_constraints))
    {
        params.custom_extensions.push(nc);
    }
    let cert = params
        .signed_by(&CustodySigner(key.clone()), root_issuer)
        .map_err(CaError::from)?;
    sqlx::query("UPDATE cas SET status = 'superseded' WHERE name = $1 AND status = 'active'")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    let record = CaRecord {
        id: format!("{name}-{generation}"),
        name: name.to_string(),
        generation,
        kind: "issuing".into(),
        parent_id: Some(root.id.clone()),
        key_id: Some(key.id().to_string()),
        cert_der: Some(cert.der().to_vec()),
        status: "active".into(),
        not_before: Some(params.not_before.unix_timestamp()),
        not_after: Some(not_after.unix_timestamp()),
        crl_shards: ca.config.crl_shards,
        created_at: kizuna_core::time::now_unix(),
    };
    insert(conn, &record, None).await?;
    Ok(record)
}

/// What a certificate signed by root `root_id` names about its issuer: the Authority Key
/// Identifier, the root's CRL and where to download the root's certificate.
pub(super) fn add_issuer_urls(ca: &Ca, params: &mut CertificateParams, root_id: &str) {
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![ca.pki_url(&format!("/pki/crl/{root_id}.crl"))],
    }];
    params.custom_extensions.push(ext::authority_info_access(
        None,
        &ca.pki_url(&format!("/pki/ca/{root_id}.der")),
    ));
}
