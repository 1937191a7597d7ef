//! Enrollment at installation: who may get a device certificate, and for which device.
//! Three ways in — a one-time token, a manufacturer's certificate (IDevID) chaining to a
//! configured vendor anchor, or the device's current Kizuna certificate (re-enrollment,
//! possibly with a new key, and within a profile's grace window after expiry). The EST
//! protocol (`est`) and the admin surfaces call these.

pub mod est;
pub mod pkcs7;
pub mod tokens;

use std::path::PathBuf;

use serde_json::json;
use x509_cert::Certificate;
use x509_cert::der::Decode;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::pki::CertStatus;

use crate::csr::{self, Csr};
use crate::device_name::{DeviceName, Parsed};
use crate::devices::{self, Device, DeviceStatus, NewDevice};
use crate::issue::{self, IssueRequest, Issued};
use crate::names::San;
use crate::store::{self, CertRecord};
use crate::{Ca, CaError, verify};

/// Why an enrollment was refused, in the terms an EST client is answered in.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// No or bad credentials (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A malformed request (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Ca(CaError),
}

impl From<CaError> for EnrollError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::Csr(e) => EnrollError::BadRequest(e.to_string()),
            CaError::NotAllowed(m) | CaError::Forbidden(m) => EnrollError::Forbidden(m),
            CaError::Invalid(m) => EnrollError::BadRequest(m),
            CaError::Conflict(m) => EnrollError::Conflict(m),
            CaError::UnknownProfile(p) => EnrollError::BadRequest(format!("unknown profile {p}")),
            other => EnrollError::Ca(other),
        }
    }
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Ca(CaError::Db(e))
    }
}

/// Reads PEM files of trust anchors (each may hold several certificates).
pub fn load_anchors(files: &[PathBuf]) -> Result<Vec<Certificate>, String> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let certs = Certificate::load_pem_chain(text.as_bytes())
            .map_err(|e| format!("{}: not PEM certificates: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", file.display()));
        }
        out.extend(certs);
    }
    Ok(out)
}

/// A manufacturer-issued device identity (IDevID) that chained to a vendor anchor.
#[derive(Debug, Clone)]
pub struct VendorIdentity {
    /// The subject serialNumber (or, without one, the common name): the hardware serial.
    pub hardware_serial: String,
    pub anchor: String,
}

/// A client certificate as Kizuna sees it.
#[derive(Debug, Clone)]
pub enum Presented {
    /// One Kizuna issued (exactly these bytes are in the certificate store).
    Kizuna(Box<CertRecord>),
    Vendor(VendorIdentity),
}

/// A certificate's serial as the store keys it (hex, without the DER sign byte).
pub fn serial_hex(cert: &Certificate) -> String {
    let bytes = cert.tbs_certificate().serial_number().as_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    kizuna_core::secret::hex(&bytes[skip.min(bytes.len().saturating_sub(1))..])
}

/// Identifies a client certificate chain (leaf first, DER): a Kizuna certificate by its
/// stored bytes, or a vendor certificate by its chain to a configured anchor. Validity is
/// checked by the caller for Kizuna certificates (a grace window may apply), here for
/// vendor ones.
pub async fn identify(ca: &Ca, chain: &[Vec<u8>]) -> Result<Presented, EnrollError> {
    let unknown = || {
        EnrollError::Forbidden(
            "the client certificate was not issued by this Kizuna or a configured manufacturer"
                .into(),
        )
    };
    let leaf_der = chain.first().ok_or_else(unknown)?;
    let leaf = Certificate::from_der(leaf_der).map_err(|_| unknown())?;
    if let Some(record) = store::get(&ca.core.db, &serial_hex(&leaf)).await?
        && kizuna_core::secret::constant_time_eq(&record.der, leaf_der)
    {
        return Ok(Presented::Kizuna(Box::new(record)));
    }
    let intermediates: Vec<Certificate> = chain[1..]
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    let now = kizuna_core::time::now_unix();
    let current = |c: &Certificate| {
        let (from, to) = verify::validity(c);
        from <= now && now <= to
    };
    let mut at = leaf.clone();
    for _ in 0..6 {
        if !current(&at) {
            return Err(EnrollError::Forbidden(
                "the manufacturer certificate chain is expired or not yet valid".into(),
            ));
        }
        let issuer = at.tbs_certificate().issuer();
        if let Some(anchor) = ca
            .vendor_anchors
            .iter()
            .find(|a| a.tbs_certificate().subject() == issuer && verify::signed_by(&at, a).is_ok())
        {
            let subject = leaf.tbs_certificate().subject();
            let hardware_serial = csr::attribute(subject, csr::SERIAL_NUMBER)
                .or_else(|| csr::attribute(subject, csr::CN))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    EnrollError::Forbidden(
                        "the manufacturer certificate names no serial number".into(),
                    )
                })?;
            return Ok(Presented::Vendor(VendorIdentity {
                hardware_serial,
                anchor: anchor.tbs_certificate().subject().to_string(),
            }));
        }
        let Some(next) = intermediates.iter().find(|c| {
            c.tbs_certificate().subject() == issuer
                && verify::is_ca(c).is_ok()
                && verify::signed_by(&at, c).is_ok()
        }) else {
            return Err(unknown());
        };
        at = next.clone();
    }
    Err(unknown())
}

/// Audits a refused enrollment (no secret in it) and returns the error.
async fn refused(ca: &Ca, actor: Actor, target: String, e: EnrollError) -> EnrollError {
    let event = AuditEvent::new(actor, "enroll.refused", target)
        .outcome(Outcome::Denied)
        .details(json!({"reason": e.to_string()}));
    if let Err(failure) = ca.core.audit.record(event).await {
        tracing::error!(error = %failure, "auditing a refused enrollment");
    }
    e
}

/// The names to certify for a device: its SPIFFE ID. The request may ask for that name (in
/// either form) or for nothing; anything else is refused, naming another organization's
/// device first.
fn device_names(
    ca: &Ca,
    csr: &Csr,
    org_id: &str,
    device_id: &str,
) -> Result<Vec<San>, EnrollError> {
    let own = DeviceName {
        org: org_id.to_string(),
        device: device_id.to_string(),
    };
    let spiffe = own.spiffe_id(&ca.trust_domain);
    for san in &csr.requested_sans {
        let named = match san {
            San::Uri(uri) => DeviceName::parse(uri, &ca.trust_domain),
            _ => Parsed::Other,
        };
        match named {
            Parsed::Device(name) if name == own => {}
            Parsed::Device(name) if name.org != org_id => {
                return Err(EnrollError::Forbidden(format!(
                    "the request names a device of another organization ({san}); the credential is for organization {org_id}"
                )));
            }
            _ => {
                return Err(EnrollError::Forbidden(format!(
                    "the request asks for {san}, which this enrollment does not allow (only URI:{spiffe})"
                )));
            }
        }
    }
    Ok(vec![San::Uri(spiffe)])
}

/// Refuses a request whose subject serialNumber differs from the registered hardware serial
/// (a swapped or cloned device).
fn check_hardware_serial(csr: &Csr, device: &Device) -> Result<(), EnrollError> {
    if let (Some(registered), Some(asked)) = (
        &device.hardware_serial,
        csr::attribute(&csr.subject, csr::SERIAL_NUMBER),
    ) && *registered != asked
    {
        return Err(EnrollError::Forbidden(format!(
            "the request's serialNumber {asked:?} is not the registered hardware serial of device {}",
            device.id
        )));
    }
    Ok(())
}

fn check_label(label: Option<&str>, profile: &str, what: &str) -> Result<(), EnrollError> {
    match label {
        Some(label) if label != profile => Err(EnrollError::Forbidden(format!(
            "{what} is for profile {profile}, not {label}"
        ))),
        _ => Ok(()),
    }
}

fn usable_device(device: &Device) -> Result<(), EnrollError> {
    if matches!(device.status, DeviceStatus::Pending | DeviceStatus::Active) {
        Ok(())
    } else {
        Err(EnrollError::Forbidden(format!(
            "device {} is {}",
            device.id, device.status
        )))
    }
}

/// First enrollment with a one-time token (EST `simpleenroll` with HTTP Basic). The token is
/// spent first, in one statement (so two requests racing with it get one certificate), and
/// given back if the enrollment is then refused or fails.
pub async fn with_token(
    ca: &Ca,
    token: &str,
    label: Option<&str>,
    csr_bytes: &[u8],
) -> Result<Issued, EnrollError> {
    let serial = issue::random_serial();
    let new_device = kizuna_core::secret::new_id();
    let record = match tokens::usable(&ca.core.db, token).await? {
        Ok(record) => record,
        Err(refusal) => {
            let e = EnrollError::Unauthorized(refusal.to_string());
            return Err(refused(ca, Actor::anonymous(), "token:unknown".into(), e).await);
        }
    };
    let serial_hex = serial.1.clone();
    match token_enrollment(ca, &record, &new_device, serial, label, csr_bytes).await {
        Ok(issued) => Ok(issued),
        Err(e) => {
            if let Err(undo) = tokens::release(&ca.core.db, &record.id, &serial_hex).await {
                tracing::error!(error = %undo, token = %record.id, "giving back an enrollment token");
            }
            Err(refused(ca, Actor::anonymous(), format!("token:{}", record.id), e).await)
        }
    }
}

async fn token_enrollment(
    ca: &Ca,
    token: &tokens::TokenRecord,
    new_device: &str,
    serial: (rcgen::SerialNumber, String),
    label: Option<&str>,
    csr_bytes: &[u8],
) -> Result<Issued, EnrollError> {
    check_label(label, &token.profile, "the enrollment token")?;
    let csr = issue::parse_csr(ca, &token.profile, csr_bytes).map_err(CaError::from)?;
    let cn = csr::attribute(&csr.subject, csr::CN).unwrap_or_default();
    if !tokens::glob_matches(&token.subject_pattern, &cn) {
        return Err(EnrollError::Forbidden(format!(
            "the request's subject CN={cn:?} does not match the token's pattern {:?}",
            token.subject_pattern
        )));
    }
    let profile = ca
        .profiles
        .get(&token.profile)
        .ok_or_else(|| CaError::UnknownProfile(token.profile.clone()))?;
    let (device, registers) = match &token.device_id {
        Some(id) => {
            let device = devices::find(&ca.core.db, id).await?;
            usable_device(&device)?;
            check_hardware_serial(&csr, &device)?;
            (Some(device), false)
        }
        None if profile.device_uri => {
            let mut device = NewDevice {
                id: Some(new_device.to_string()),
                org_id: token.org_id.clone(),
                model: token.model.clone().unwrap_or_default(),
                hardware_serial: csr::attribute(&csr.subject, csr::SERIAL_NUMBER),
                ..NewDevice::default()
            }
            .into_device(DeviceStatus::Active)?;
            device.enrolled_at = Some(device.created_at);
            device.last_seen_at = Some(device.created_at);
            (Some(device), true)
        }
        None => (None, false),
    };
    let sans = match &device {
        Some(d) => Some(device_names(ca, &csr, &token.org_id, &d.id)?),
        None => None,
    };
    let actor = match &device {
        Some(d) => Actor::device(&d.id),
        None => Actor::system(format!("enrollment-token:{}", token.id)),
    };
    let device_id = device.as_ref().map(|d| d.id.clone());
    let prepared = issue::prepare_parsed(
        ca,
        IssueRequest::parsed(
            token.profile.clone(),
            sans,
            Some(token.org_id.clone()),
            actor.clone(),
        ),
        csr,
    )
    .await?
    .with_serial(serial)
    .audit_details(json!({"via": "est", "auth": "token", "token_id": token.id}));
    // Every check has passed: only now is the token spent (a refused request leaves it
    // usable), atomically, so two requests with one token cannot both go on.
    if !tokens::spend(
        &ca.core.db,
        &token.id,
        device_id.as_deref(),
        prepared.serial(),
    )
    .await?
    {
        return Err(EnrollError::Unauthorized(
            "the enrollment token was used by another request".into(),
        ));
    }
    let mut events = Vec::new();
    match (&device, registers) {
        (Some(d), true) => {
            devices::insert_in(ca.core.db.writer().await?.conn(), d).await?;
            events.push(devices::created_event(actor.clone(), d, "enrollment"));
        }
        (Some(d), false) => {
            devices::mark_enrolled_in(ca.core.db.writer().await?.conn(), &d.id).await?
        }
        (None, _) => {}
    }
    // The token's use is audited with the certificate, in its transaction.
    events.push(
        AuditEvent::new(actor, "enroll.token.use", format!("token:{}", token.id)).details(
            json!({"device_id": device_id, "serial": prepared.serial(), "batch_id": token.batch_id}),
        ),
    );
    match issue::finish(ca, prepared.audit_with(events)).await {
        Ok(issued) => Ok(issued),
        Err(e) => {
            // Nothing was issued: remove a device registered only for this enrollment (the
            // caller gives the token back).
            if registers && let Some(id) = &device_id {
                let removed = devices::remove_in(ca.core.db.writer().await?.conn(), id).await;
                if let Err(undo) = removed {
                    tracing::error!(error = %undo, device = %id, "removing a device after a failed enrollment");
                }
            }
            Err(e.into())
        }
    }
}

/// First enrollment with a manufacturer certificate: the device must be registered with the
/// IDevID's serial as its hardware serial (unknown devices are refused).
pub async fn with_idevid(
    ca: &Ca,
    idevid: &VendorIdentity,
    label: Option<&str>,
    csr_bytes: &[u8],
) -> Result<Issued, EnrollError> {
    let target = format!("idevid:{}", idevid.hardware_serial);
    let result = async {
        let found = devices::by_hardware_serial(&ca.core.db, &idevid.hardware_serial).await?;
        let device = match found.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(EnrollError::Forbidden(format!(
                    "no registered device has hardware serial {:?}; register it before installation",
                    idevid.hardware_serial
                )));
            }
            _ => {
                return Err(EnrollError::Forbidden(format!(
                    "hardware serial {:?} is registered in more than one organization",
                    idevid.hardware_serial
                )));
            }
        };
        usable_device(&device)?;
        let profile = label.unwrap_or(&ca.config.enrollment.idevid_profile);
        let csr = issue::parse_csr(ca, profile, csr_bytes).map_err(CaError::from)?;
        check_hardware_serial(&csr, &device)?;
        let sans = device_names(ca, &csr, &device.org_id, &device.id)?;
        certify_device(
            ca,
            &device,
            profile,
            sans,
            csr,
            json!({"via": "est", "auth": "idevid", "anchor": idevid.anchor}),
        )
        .await
    }
    .await;
    match result {
        Ok(issued) => Ok(issued),
        Err(e) => Err(refused(ca, Actor::anonymous(), target, e).await),
    }
}

/// Marks the device seen and issues its certificate.
async fn certify_device(
    ca: &Ca,
    device: &Device,
    profile: &str,
    sans: Vec<San>,
    csr: Csr,
    details: serde_json::Value,
) -> Result<Issued, EnrollError> {
    let actor = Actor::device(&device.id);
    let prepared = issue::prepare_parsed(
        ca,
        IssueRequest::parsed(
            profile.to_string(),
            Some(sans),
            Some(device.org_id.clone()),
            actor,
        ),
        csr,
    )
    .await?
    .audit_details(details);
    let mut tx = ca.core.db.begin().await?;
    devices::mark_enrolled_in(tx.conn(), &device.id).await?;
    tx.commit().await?;
    Ok(issue::finish(ca, prepared).await?)
}

/// Re-enrollment (EST `simplereenroll`) with the current Kizuna certificate: it must be
/// valid — or expired, unrevoked and within its profile's grace window — and its device
/// active. The new certificate names what the current one names, possibly for a new key.
pub async fn reenroll(
    ca: &Ca,
    current: &CertRecord,
    label: Option<&str>,
    csr_bytes: &[u8],
) -> Result<Issued, EnrollError> {
    let actor = current
        .device_id
        .as_ref()
        .map(Actor::device)
        .unwrap_or_else(|| Actor::system(format!("cert:{}", current.serial)));
    let result = async {
        check_label(label, &current.profile, "the current certificate")?;
        match current.status {
            CertStatus::Valid => {}
            CertStatus::Hold => {
                return Err(EnrollError::Forbidden(
                    "the current certificate is on hold (the device is suspended)".into(),
                ));
            }
            CertStatus::Revoked => {
                return Err(EnrollError::Forbidden(
                    "the current certificate is revoked".into(),
                ));
            }
        }
        let profile = ca
            .profiles
            .get(&current.profile)
            .ok_or_else(|| CaError::UnknownProfile(current.profile.clone()))?;
        let now = kizuna_core::time::now_unix();
        let expired_for = now - current.not_after;
        if expired_for > profile.renewal_grace_days * 86_400 {
            return Err(EnrollError::Forbidden(if profile.renewal_grace_days == 0 {
                "the current certificate has expired; this profile allows no renewal after expiry"
                    .into()
            } else {
                format!(
                    "the current certificate expired more than the profile's {} days of grace ago",
                    profile.renewal_grace_days
                )
            }));
        }
        let csr = issue::parse_csr(ca, &current.profile, csr_bytes).map_err(CaError::from)?;
        let names = &current.sans.0;
        let sorted = |list: &[San]| {
            let mut texts: Vec<String> = list.iter().map(ToString::to_string).collect();
            texts.sort();
            texts
        };
        if !csr.requested_sans.is_empty() && sorted(&csr.requested_sans) != sorted(names) {
            return Err(EnrollError::Forbidden(
                "a re-enrollment must ask for the names of the current certificate".into(),
            ));
        }
        let details = json!({
            "via": "est", "auth": "certificate", "previous": current.serial,
            "rekey": csr.key.fingerprint() != current.key_sha256,
            "after_expiry": expired_for > 0,
        });
        match &current.device_id {
            Some(device_id) => {
                let device = devices::find(&ca.core.db, device_id).await?;
                if device.status != DeviceStatus::Active {
                    return Err(EnrollError::Forbidden(format!(
                        "device {} is {}",
                        device.id, device.status
                    )));
                }
                check_hardware_serial(&csr, &device)?;
                certify_device(ca, &device, &current.profile, names.clone(), csr, details).await
            }
            None => {
                let prepared = issue::prepare_parsed(
                    ca,
                    IssueRequest::parsed(
                        current.profile.clone(),
                        Some(names.clone()),
                        current.org_id.clone(),
                        actor.clone(),
                    ),
                    csr,
                )
                .await?
                .audit_details(details);
                Ok(issue::finish(ca, prepared).await?)
            }
        }
    }
    .await;
    match result {
        Ok(issued) => Ok(issued),
        Err(e) => Err(refused(ca, actor, format!("cert:{}", current.serial), e).await),
    }
}
