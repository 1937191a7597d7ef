//! The CA hierarchy: a root and issuing CAs under it (one per logical name, e.g. `issuing`,
//! `devices`, `services`), each with generations for rollover. A root may also live offline:
//! Kizuna then holds only the issuing CA's key, sends its CSR out, and imports the signed
//! certificate. The root itself rolls over with cross-certificates and an overlap during
//! which both roots are trusted.

mod init;
mod offline;
mod root_rollover;
mod trust;

pub use init::{InitReport, create_issuer, init};
pub use offline::{import_cross, import_issuer, start_offline_issuer};
pub use root_rollover::{
    Retired, RootRollover, RootRolloverPlan, plan_root_rollover, retire_root, rollover_root,
};
pub use trust::{bridges, published_chain, trust_bundle};

use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyIdMethod, KeyUsagePurpose,
};
use serde::Serialize;
use x509_cert::Certificate;
use x509_cert::der::Decode;

use kizuna_core::custody::KeyAlgorithm;
use kizuna_core::db::{AnyConnection, Db};

use crate::{Ca, CaError};
use kizuna_core::custody::CustodySigner;

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

/// Takes the next CRL number of CA `id`: one more than the last, and never less than the
/// time in milliseconds. Monotonic across replicas (one row update), and across a restore
/// to an earlier backup: the numbers published since were below the time they were made,
/// so the restored CA's next number is above every one of them (RFC 5280 §5.2.3).
pub(crate) async fn next_crl_number(ca: &Ca, id: &str) -> Result<i64, sqlx::Error> {
    let now_ms = kizuna_core::time::now().unix_timestamp_nanos() / 1_000_000;
    sqlx::query_scalar(
        "UPDATE cas SET crl_number = CASE WHEN crl_number + 1 > $2 THEN crl_number + 1 ELSE $2 END \
         WHERE id = $1 RETURNING crl_number",
    )
    .bind(id)
    .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
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

/// The generation of `name` that issues new certificates.
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

/// Makes this replica look up the active CA of `name` again.
fn forget_active(ca: &Ca, name: &str) {
    if let Ok(mut cache) = ca.active.lock() {
        cache.remove(name);
    }
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
