//! The CA hierarchy: a root and issuing CAs under it (one per logical name, e.g. `issuing`,
//! `devices`, `services`), each with generations for rollover. A root may also live offline:
//! Kizuna then holds only the issuing CA's key, sends its CSR out, and imports the signed
//! certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose,
};
use serde::Serialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::KeyAlgorithm;
use kizuna_core::db::{AnyConnection, Db};

use crate::ext;
use crate::signer::CustodySigner;
use crate::{Ca, CaError};

/// A CA as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CaRecord {
    pub id: String,
    pub name: String,
    pub generation: i64,
    pub kind: String,
    pub parent_id: Option<String>,
    #[serde(skip)]
    pub key_id: Option<String>,
    #[serde(skip)]
    pub cert_der: Option<Vec<u8>>,
    pub status: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub crl_shards: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, generation, kind, parent_id, key_id, cert_der, status, not_before, not_after, crl_shards, created_at";

pub async fn list(ca: &Ca) -> Result<Vec<CaRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas ORDER BY kind DESC, name, generation"
    ))
    .fetch_all(ca.core.db.pool())
    .await
}

pub async fn get(ca: &Ca, id: &str) -> Result<Option<CaRecord>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM cas WHERE id = $1"))
        .bind(id)
        .fetch_optional(ca.core.db.pool())
        .await
}

/// The generation of `name` that issues new certificates.
/// Takes the next CRL number of CA `id` (monotonic across replicas).
pub(crate) async fn next_crl_number(ca: &Ca, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE cas SET crl_number = crl_number + 1 WHERE id = $1 RETURNING crl_number",
    )
    .bind(id)
    .fetch_one(ca.core.db.pool())
    .await
}

/// Issuing CAs that have a certificate (`(id, cert_der)`), for the OCSP responder.
pub(crate) async fn issuing_certificates(db: &Db) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, cert_der FROM cas WHERE kind = 'issuing' AND cert_der IS NOT NULL AND status <> 'pending'",
    )
    .fetch_all(db.pool())
    .await
}

pub async fn active(ca: &Ca, name: &str) -> Result<Option<CaRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas WHERE name = $1 AND status = 'active' ORDER BY generation DESC LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(ca.core.db.pool())
    .await
}

fn key_algorithm(name: &str) -> KeyAlgorithm {
    match name {
        "p384" => KeyAlgorithm::P384,
        "rsa3072" => KeyAlgorithm::Rsa3072,
        "rsa4096" => KeyAlgorithm::Rsa4096,
        _ => KeyAlgorithm::P256,
    }
}

fn display_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The subject of a new CA certificate: C, O and CN (as the CA/B root profile expects).
fn subject(ca: &Ca, cn: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString(
            ca.config
                .country
                .clone()
                .try_into()
                .expect("validated country"),
        ),
    );
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(ca.config.organization.clone()),
    );
    dn.push(DnType::CommonName, DnValue::Utf8String(cn));
    dn
}

fn ca_params(
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

/// A loaded CA that can sign: its record, rcgen issuer (DN, key identifier, key usages as
/// in its certificate), certificate, and the name constraints of its certificate and of
/// every CA above it, which relying parties will enforce.
pub struct LoadedCa {
    pub record: CaRecord,
    pub issuer: Issuer<'static, CustodySigner>,
    pub cert_der: Vec<u8>,
    pub name_constraints: Vec<crate::names::NameConstraints>,
}

/// The name constraints extension of a certificate, if it has one.
fn name_constraints_of(der: &[u8]) -> Result<Option<crate::names::NameConstraints>, CaError> {
    let cert = Certificate::from_der(der)
        .map_err(|e| CaError::Invalid(format!("stored CA certificate: {e}")))?;
    let Some(extension) = cert
        .tbs_certificate()
        .extensions()
        .and_then(|e| e.iter().find(|e| e.extn_id.to_string() == "2.5.29.30"))
    else {
        return Ok(None);
    };
    crate::ext::read_name_constraints(extension.extn_value.as_bytes())
        .map(Some)
        .map_err(CaError::Invalid)
}

/// Rebuilds what rcgen needs to sign as this CA from its stored certificate.
pub async fn load(ca: &Ca, record: CaRecord) -> Result<Arc<LoadedCa>, CaError> {
    if let Some(loaded) = ca
        .loaded
        .lock()
        .ok()
        .and_then(|c| c.get(&record.id).cloned())
    {
        return Ok(loaded);
    }
    let cert_der = record
        .cert_der
        .clone()
        .ok_or_else(|| CaError::NotReady(record.id.clone()))?;
    let key_id = record
        .key_id
        .clone()
        .ok_or_else(|| CaError::NotReady(format!("{} has no key here (offline)", record.id)))?;
    let key = ca.core.custody.get(&key_id).await?;
    let cert = Certificate::from_der(&cert_der)
        .map_err(|e| CaError::Invalid(format!("stored CA certificate: {e}")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn_from(cert.tbs_certificate().subject())?;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = match subject_key_identifier(&cert) {
        Some(ski) => KeyIdMethod::PreSpecified(ski),
        None => KeyIdMethod::Sha256,
    };
    let mut name_constraints = Vec::new();
    for der in chain(ca, &record.id).await? {
        name_constraints.extend(name_constraints_of(&der)?);
    }
    let loaded = Arc::new(LoadedCa {
        issuer: Issuer::new(params, CustodySigner(key)),
        cert_der,
        record,
        name_constraints,
    });
    if let Ok(mut cache) = ca.loaded.lock() {
        cache.insert(loaded.record.id.clone(), loaded.clone());
    }
    Ok(loaded)
}

/// The subject key identifier of a certificate, if it has one.
pub fn subject_key_identifier(cert: &Certificate) -> Option<Vec<u8>> {
    let extensions = cert.tbs_certificate().extensions()?;
    let ski = extensions
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.14")?;
    let octets = x509_cert::der::asn1::OctetString::from_der(ski.extn_value.as_bytes()).ok()?;
    Some(octets.as_bytes().to_vec())
}

/// Converts a parsed subject into rcgen's form, keeping attribute order and string types so
/// the issuer name in new certificates matches the CA certificate's subject byte for byte.
fn dn_from(name: &x509_cert::name::Name) -> Result<DistinguishedName, CaError> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    use x509_cert::der::{Tag, Tagged};
    let mut dn = DistinguishedName::new();
    for rdn in name.iter_rdn() {
        if rdn.iter().count() != 1 {
            return Err(CaError::Invalid(
                "multi-valued RDNs in a CA subject are not supported".into(),
            ));
        }
        for atv in rdn.iter() {
            let oid = atv.oid.to_string();
            let kind = match oid.as_str() {
                "2.5.4.3" => DnType::CommonName,
                "2.5.4.6" => DnType::CountryName,
                "2.5.4.10" => DnType::OrganizationName,
                "2.5.4.11" => DnType::OrganizationalUnitName,
                "2.5.4.7" => DnType::LocalityName,
                "2.5.4.8" => DnType::StateOrProvinceName,
                _ => DnType::CustomDnType(oid.split('.').filter_map(|a| a.parse().ok()).collect()),
            };
            let bad = || {
                CaError::Invalid(format!(
                    "CA subject attribute {oid} has an unsupported string type"
                ))
            };
            let value = match atv.value.tag() {
                Tag::PrintableString => DnValue::PrintableString(
                    atv.value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map_err(|_| bad())?
                        .to_string()
                        .try_into()
                        .map_err(|_| bad())?,
                ),
                Tag::Utf8String => DnValue::Utf8String(
                    atv.value
                        .decode_as::<Utf8StringRef<'_>>()
                        .map_err(|_| bad())?
                        .to_string(),
                ),
                Tag::Ia5String => DnValue::Ia5String(
                    atv.value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map_err(|_| bad())?
                        .to_string()
                        .try_into()
                        .map_err(|_| bad())?,
                ),
                _ => return Err(bad()),
            };
            dn.push(kind, value);
        }
    }
    Ok(dn)
}

async fn insert(
    conn: &mut AnyConnection,
    r: &CaRecord,
    csr: Option<&[u8]>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cas (id, name, generation, kind, parent_id, key_id, cert_der, csr_der, status, not_before, not_after, crl_shards, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&r.id)
    .bind(&r.name)
    .bind(r.generation)
    .bind(&r.kind)
    .bind(&r.parent_id)
    .bind(&r.key_id)
    .bind(&r.cert_der)
    .bind(csr.map(<[u8]>::to_vec))
    .bind(&r.status)
    .bind(r.not_before)
    .bind(r.not_after)
    .bind(r.crl_shards)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn next_generation(conn: &mut AnyConnection, name: &str) -> Result<i64, sqlx::Error> {
    let max: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(generation), 0) FROM cas WHERE name = $1")
            .bind(name)
            .fetch_one(conn)
            .await?;
    Ok(max + 1)
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
    let generation = next_generation(tx.conn(), "root").await?;
    let key = ca
        .core
        .custody
        .generate_in_backend(
            tx.conn(),
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
    insert(tx.conn(), &record, None).await?;
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

/// Creates (or rolls over to) a new generation of the issuing CA `name`, signed by the
/// active root. Earlier generations stay valid for the certificates they issued.
pub async fn create_issuer(ca: &Ca, name: &str, actor: Actor) -> Result<CaRecord, CaError> {
    if name == "root"
        || name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(CaError::Invalid(format!(
            "{name:?} is not a valid CA name (lower-case letters, digits, -)"
        )));
    }
    let root = active(ca, "root")
        .await?
        .ok_or_else(|| CaError::NotReady("there is no active root CA".into()))?;
    let root = load(ca, root).await?;
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
    let root_not_after = OffsetDateTime::from_unix_timestamp(root.record.not_after.unwrap_or(0))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let not_after = (kizuna_core::time::now() + Duration::days(ca.config.issuing_validity_days))
        .min(root_not_after);
    let cn = format!(
        "{} {} CA {generation}",
        ca.config.organization,
        display_name(name)
    );
    let mut params = ca_params(subject(ca, cn), Some(0), not_after);
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![ca.pki_url(&format!("/pki/crl/{}.crl", root.record.id))],
    }];
    params.custom_extensions.push(ext::authority_info_access(
        None,
        &ca.pki_url(&format!("/pki/ca/{}.der", root.record.id)),
    ));
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
        .signed_by(&CustodySigner(key.clone()), &root.issuer)
        .map_err(CaError::from)?;
    sqlx::query("UPDATE cas SET status = 'superseded' WHERE name = $1 AND status = 'active'")
        .bind(name)
        .execute(tx.conn())
        .await?;
    let record = CaRecord {
        id: format!("{name}-{generation}"),
        name: name.to_string(),
        generation,
        kind: "issuing".into(),
        parent_id: Some(root.record.id.clone()),
        key_id: Some(key.id().to_string()),
        cert_der: Some(cert.der().to_vec()),
        status: "active".into(),
        not_before: Some(params.not_before.unix_timestamp()),
        not_after: Some(not_after.unix_timestamp()),
        crl_shards: ca.config.crl_shards,
        created_at: kizuna_core::time::now_unix(),
    };
    insert(tx.conn(), &record, None).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "ca.create", format!("ca:{}", record.id)).details(json!({
            "kind": "issuing", "parent": root.record.id, "generation": generation, "not_after": record.not_after,
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

/// Makes this replica look up the active CA of `name` again.
fn forget_active(ca: &Ca, name: &str) {
    if let Ok(mut cache) = ca.active.lock() {
        cache.remove(name);
    }
}

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

/// The chain from a CA up to its root, leaf-most first, as DER.
pub async fn chain(ca: &Ca, id: &str) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let mut out = Vec::new();
    let mut next = Some(id.to_string());
    while let Some(id) = next {
        let Some(record) = get(ca, &id).await? else {
            break;
        };
        if let Some(der) = record.cert_der {
            out.push(der);
        }
        next = record.parent_id;
        if out.len() > 8 {
            break;
        }
    }
    Ok(out)
}
