//! Issuing a certificate from a PKCS#10 request under a profile: proof of possession, key
//! type, names (profile rules, the organization's allowed names, the CA's name constraints),
//! then a certificate with a 128-bit random serial, key identifiers, CRL distribution point
//! and authority information access, stored and audited before it is returned.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SerialNumber,
};
use serde::Serialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use kizuna_core::audit::{Actor, AuditEvent};
use kizuna_core::orgs;

use crate::csr::{self, Csr};
use crate::device_name::{DeviceName, Parsed};
use crate::ext;
use crate::hierarchy;
use crate::keys::KeyType;
use crate::names::{AllowedNames, San, valid_dns_name};
use crate::profile::{ExtendedUsage, NameRule, Profile, Usage};
use crate::store::{CertRecord, Sans};
use crate::{Ca, CaError};

/// A fresh serial: 128 bits from the CSPRNG, as rcgen wants it and as stored (hex).
pub fn random_serial() -> (SerialNumber, String) {
    let mut bytes = kizuna_core::secret::random_bytes::<16>();
    // A leading zero byte would be dropped from the DER INTEGER; keep 16 significant bytes.
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    (
        SerialNumber::from_slice(&bytes),
        kizuna_core::secret::hex(&bytes),
    )
}

/// What a requester asks for.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The PKCS#10 request: PEM, DER or base64 DER.
    pub csr: Vec<u8>,
    pub profile: String,
    /// Names to certify instead of those in the request.
    pub sans: Option<Vec<San>>,
    /// The organization the certificate belongs to.
    pub org_id: Option<String>,
    pub actor: Actor,
    /// Kizuna itself asking (may use internal profiles such as `ocsp-signer`).
    pub internal: bool,
    /// Internal requests only: the subject CN, and a specific CA (generation) to issue from.
    pub common_name: Option<String>,
    pub ca_id: Option<String>,
}

impl IssueRequest {
    /// A request from outside Kizuna whose CSR the caller parsed already (for
    /// [`prepare_parsed`], which takes the parsed CSR beside it).
    pub fn parsed(
        profile: impl Into<String>,
        sans: Option<Vec<San>>,
        org_id: Option<String>,
        actor: Actor,
    ) -> IssueRequest {
        IssueRequest {
            csr: Vec::new(),
            profile: profile.into(),
            sans,
            org_id,
            actor,
            internal: false,
            common_name: None,
            ca_id: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    #[serde(flatten)]
    pub record: CertRecord,
    pub certificate_pem: String,
    /// The issuing CA and its parents, PEM, leaf-most first.
    pub chain_pem: String,
    /// Extensions the request asked for that were not copied into the certificate.
    pub ignored_extensions: Vec<String>,
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn not_allowed(message: impl Into<String>) -> CaError {
    CaError::NotAllowed(message.into())
}

/// Checks each name against the profile and the organization; returns the device id when
/// the profile takes a device URI.
fn check_names(
    profile: &Profile,
    sans: &[San],
    org: Option<&orgs::Organization>,
    allowed: &AllowedNames,
    internal: bool,
    trust_domain: &str,
) -> Result<Option<String>, CaError> {
    if sans.is_empty() {
        return Err(not_allowed(format!(
            "profile {} needs at least one subject alternative name",
            profile.name
        )));
    }
    if sans.len() > 100 {
        return Err(not_allowed("at most 100 subject alternative names"));
    }
    let mut device_id = None;
    let mut hardware_modules = None;
    for san in sans {
        let rule = |rule: NameRule, kind: &str| -> Result<(), CaError> {
            match rule {
                NameRule::No => Err(not_allowed(format!(
                    "profile {} does not allow {kind} names ({san})",
                    profile.name
                ))),
                // Kizuna certifying its own configured host needs no organization.
                NameRule::OrgNames if !internal && !allowed.allows(san) => Err(not_allowed(
                    format!("{san} is not among the names the organization may use"),
                )),
                _ => Ok(()),
            }
        };
        match san {
            San::Dns(name) => {
                if !valid_dns_name(name) {
                    return Err(not_allowed(format!(
                        "{name:?} is not a valid DNS name (lower case, no wildcards)"
                    )));
                }
                rule(profile.dns, "DNS")?;
            }
            San::Ip(_) => rule(profile.ip, "IP address")?,
            San::Email(email) => {
                if !email.contains('@') || email.len() > 254 {
                    return Err(not_allowed(format!("{email:?} is not an email address")));
                }
                rule(profile.email, "email")?;
            }
            San::HardwareModule { .. } => {
                if !profile.hardware_module_name {
                    return Err(not_allowed(format!(
                        "profile {} does not allow a HardwareModuleName",
                        profile.name
                    )));
                }
                if hardware_modules.replace(san).is_some() {
                    return Err(not_allowed("one HardwareModuleName per certificate"));
                }
            }
            San::Uri(uri) => {
                let name = match DeviceName::parse(uri, trust_domain) {
                    Parsed::Device(name) if profile.device_uri => name,
                    Parsed::Invalid(why) if profile.device_uri => return Err(not_allowed(why)),
                    _ => {
                        return Err(not_allowed(format!(
                            "profile {} does not allow the URI {uri}",
                            profile.name
                        )));
                    }
                };
                let org = org.ok_or_else(|| {
                    not_allowed("a device certificate needs an owning organization")
                })?;
                if name.org != org.id {
                    return Err(not_allowed(format!(
                        "{uri} names another organization than the requester's ({})",
                        org.id
                    )));
                }
                let device = name.device;
                if device_id.replace(device.to_string()).is_some() {
                    return Err(not_allowed("one device URI per certificate"));
                }
            }
        }
    }
    if profile.device_uri && device_id.is_none() {
        return Err(not_allowed(format!(
            "profile {} needs a device URI spiffe://{trust_domain}/org/<organization>/device/<device-id>",
            profile.name
        )));
    }
    Ok(device_id)
}

/// The names a certificate carries: its SANs, the device it identifies, and for Kizuna's own
/// certificates (OCSP signers) the common name it chose.
struct Naming<'a> {
    sans: &'a [San],
    device_id: Option<&'a str>,
    common_name: Option<&'a str>,
}

fn params(
    ca: &Ca,
    profile: &Profile,
    csr: &Csr,
    naming: &Naming<'_>,
    ca_record: &hierarchy::CaRecord,
    serial: SerialNumber,
) -> Result<CertificateParams, CaError> {
    let sans = naming.sans;
    let now = kizuna_core::time::now();
    let ca_not_after =
        OffsetDateTime::from_unix_timestamp(ca_record.not_after.unwrap_or(0)).unwrap_or(now);
    let mut p = CertificateParams::default();
    p.serial_number = Some(serial);
    p.not_before = now - Duration::minutes(5);
    // Never outlive the issuing CA.
    p.not_after = (now + Duration::days(profile.validity_days)).min(ca_not_after);
    let mut dn = DistinguishedName::new();
    let cn = match (naming.device_id, naming.common_name, sans.first()) {
        (Some(device), _, _) => Some(device.to_string()),
        (None, Some(name), _) => Some(name.to_string()),
        (None, None, Some(San::Dns(d))) => Some(d.clone()),
        (None, None, Some(San::Ip(ip))) => Some(ip.to_string()),
        _ => None,
    };
    if let Some(cn) = cn.filter(|c| c.len() <= 64) {
        dn.push(DnType::CommonName, cn);
    }
    if profile.subject_serial_number
        && let Some(serial) = csr::attribute(&csr.subject, csr::SERIAL_NUMBER)
            .filter(|s| !s.is_empty() && s.len() <= 64)
    {
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            rcgen::DnValue::PrintableString(
                serial.try_into().map_err(|_| {
                    not_allowed("the subject serialNumber must be a PrintableString")
                })?,
            ),
        );
    }
    // Written by Kizuna rather than rcgen, for the name forms rcgen lacks (HardwareModuleName).
    p.custom_extensions
        .extend(ext::subject_alt_name(sans, dn.iter().next().is_none()).map_err(not_allowed)?);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    let rsa = matches!(csr.key.key_type, KeyType::Rsa(_));
    p.key_usages = profile
        .key_usage
        .iter()
        .map(|u| match u {
            Usage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
            Usage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
            Usage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
        })
        .collect();
    // RSA key transport (TLS 1.2 without ECDHE) needs keyEncipherment on server keys.
    if rsa
        && profile
            .extended_key_usage
            .contains(&ExtendedUsage::ServerAuth)
        && !p.key_usages.contains(&KeyUsagePurpose::KeyEncipherment)
    {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = profile
        .extended_key_usage
        .iter()
        .map(|u| match u {
            ExtendedUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedUsage::OcspSigning => ExtendedKeyUsagePurpose::OcspSigning,
            ExtendedUsage::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
            ExtendedUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
        })
        .collect();
    if !profile.ocsp_nocheck {
        let shard = crate::crl_shard(&serial_hex_of(&p), ca_record.crl_shards);
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![ca.pki_url(&format!("/pki/crl/{}/{shard}.crl", ca_record.id))],
        }];
    }
    p.custom_extensions.push(ext::authority_info_access(
        (!profile.ocsp_nocheck)
            .then(|| ca.pki_url(&format!("/ocsp/{}", ca_record.id)))
            .as_deref(),
        &ca.pki_url(&format!("/pki/ca/{}.der", ca_record.id)),
    ));
    if profile.ocsp_nocheck {
        p.custom_extensions.push(ext::ocsp_nocheck());
    }
    if let Some(policies) = ext::certificate_policies(&profile.policies) {
        p.custom_extensions.push(policies);
    }
    Ok(p)
}

fn serial_hex_of(p: &CertificateParams) -> String {
    p.serial_number
        .as_ref()
        .map(|s| kizuna_core::secret::hex(s.as_ref()))
        .unwrap_or_default()
}

/// A request that passed every check, ready to be signed: what [`prepare`] returns and
/// [`finish`] consumes. Nothing is stored until [`finish`].
pub struct Prepared {
    profile: Profile,
    csr: Csr,
    sans: Vec<San>,
    org_id: Option<String>,
    device_id: Option<String>,
    /// Kizuna's own certificates only: the subject CN it chose.
    common_name: Option<String>,
    loaded: std::sync::Arc<hierarchy::LoadedCa>,
    actor: Actor,
    details: serde_json::Value,
    /// Entries committed with the certificate (how it was requested).
    events: Vec<AuditEvent>,
    serial: SerialNumber,
    serial_hex: String,
}

impl Prepared {
    /// The serial (hex) the certificate will carry.
    pub fn serial(&self) -> &str {
        &self.serial_hex
    }

    /// The device the certificate will name, if the profile takes a device URI.
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    /// Adds fields to the `cert.issue` audit entry (e.g. how the requester authenticated).
    pub fn audit_details(mut self, extra: serde_json::Value) -> Self {
        self.details = extra;
        self
    }

    /// Uses a serial chosen beforehand (e.g. recorded with a spent enrollment token).
    pub fn with_serial(mut self, serial: (SerialNumber, String)) -> Self {
        (self.serial, self.serial_hex) = serial;
        self
    }

    /// Audit entries to commit in the certificate's transaction, before `cert.issue`.
    pub fn audit_with(mut self, events: Vec<AuditEvent>) -> Self {
        self.events = events;
        self
    }
}

/// Issues a certificate: checks, signs, stores, audits.
pub async fn issue(ca: &Ca, req: IssueRequest) -> Result<Issued, CaError> {
    let prepared = prepare(ca, req).await?;
    finish(ca, prepared).await
}

/// Every check an issuance makes (profile, key, names, name constraints, issuing CA ready),
/// without side effects.
pub async fn prepare(ca: &Ca, req: IssueRequest) -> Result<Prepared, CaError> {
    let csr = parse_csr(ca, &req.profile, &req.csr)?;
    prepare_parsed(ca, req, csr).await
}

/// Parses and verifies a request under the key rule of `profile`, so a key the profile does
/// not take is reported as such rather than as a failed proof of possession. With no such
/// profile any key passes here; the issuance that follows refuses the profile.
pub fn parse_csr(ca: &Ca, profile: &str, input: &[u8]) -> Result<Csr, csr::CsrError> {
    match ca.profiles.get(profile) {
        Some(p) => csr::parse(input, |key| p.allows_key(key)),
        None => csr::parse(input, |_| Ok(())),
    }
}

/// [`prepare`] for a request whose CSR the caller has parsed (and so verified) already.
pub async fn prepare_parsed(ca: &Ca, req: IssueRequest, csr: Csr) -> Result<Prepared, CaError> {
    let profile = ca
        .profiles
        .get(&req.profile)
        .ok_or_else(|| CaError::UnknownProfile(req.profile.clone()))?
        .clone();
    if profile.internal && !req.internal {
        return Err(CaError::Forbidden(format!(
            "profile {} is issued by Kizuna itself only",
            profile.name
        )));
    }
    // Parsed with the profile's key rule already (see [`parse_csr`]); checked again here
    // because a caller may have parsed it otherwise.
    profile
        .allows_key(csr.key.key_type)
        .map_err(CaError::NotAllowed)?;
    // A device name asked for in the legacy URN form is certified as its SPIFFE ID.
    let mut sans: Vec<San> = req
        .sans
        .clone()
        .unwrap_or_else(|| csr.requested_sans.clone())
        .into_iter()
        .map(|san| match &san {
            San::Uri(uri) => match DeviceName::parse(uri, &ca.trust_domain) {
                Parsed::Device(name) => San::Uri(name.spiffe_id(&ca.trust_domain)),
                _ => san,
            },
            _ => san,
        })
        .collect();
    sans.dedup();
    let (org, allowed) = match &req.org_id {
        Some(id) => {
            let (org, allowed) = ca.organization(id).await?;
            (Some(org), allowed)
        }
        None => (None, AllowedNames::default()),
    };
    let device_id = if profile.internal && sans.is_empty() {
        None
    } else {
        check_names(
            &profile,
            &sans,
            org.as_ref(),
            &allowed,
            req.internal,
            &ca.trust_domain,
        )?
    };
    let loaded = match (&req.ca_id, req.internal) {
        (Some(id), true) => {
            let record = hierarchy::get(ca, id)
                .await?
                .ok_or_else(|| CaError::NotFound(format!("no CA {id}")))?;
            hierarchy::load(ca, record).await?
        }
        _ => ca.active_issuer(&profile.issuer).await?,
    };
    // The constraints written in the CA certificates (relying parties enforce those), not
    // the configuration, which may have changed since the CA was made.
    if let Some(v) = loaded
        .name_constraints
        .iter()
        .find_map(|nc| sans.iter().find_map(|s| nc.violation(s)))
    {
        return Err(CaError::NotAllowed(v));
    }
    let (serial, serial_hex) = random_serial();
    Ok(Prepared {
        serial,
        serial_hex,
        profile,
        csr,
        sans,
        org_id: org.map(|o| o.id),
        device_id,
        common_name: req.common_name.filter(|_| req.internal),
        loaded,
        actor: req.actor,
        details: serde_json::Value::Null,
        events: Vec::new(),
    })
}

/// Signs, stores and audits a prepared request.
pub async fn finish(ca: &Ca, prepared: Prepared) -> Result<Issued, CaError> {
    let Prepared {
        profile,
        csr,
        sans,
        org_id,
        device_id,
        common_name,
        loaded,
        actor,
        details,
        mut events,
        serial,
        serial_hex,
    } = prepared;
    let naming = Naming {
        sans: &sans,
        device_id: device_id.as_deref(),
        common_name: common_name.as_deref(),
    };
    let p = params(ca, &profile, &csr, &naming, &loaded.record, serial)?;
    let cert = p
        .signed_by(&csr.key, &loaded.issuer)
        .map_err(CaError::from)?;
    let record = CertRecord {
        serial: serial_hex.clone(),
        ca_id: loaded.record.id.clone(),
        subject: p
            .distinguished_name
            .get(&DnType::CommonName)
            .map(|v| format!("CN={}", dn_text(v)))
            .unwrap_or_default(),
        sans: Sans(sans.clone()),
        profile: profile.name.clone(),
        org_id,
        device_id,
        key_sha256: csr.key.fingerprint(),
        not_before: p.not_before.unix_timestamp(),
        not_after: p.not_after.unix_timestamp(),
        status: kizuna_core::pki::CertStatus::Valid,
        revoked_at: None,
        revocation_reason: None,
        status_changed_at: None,
        requested_by: format!("{}:{}", actor.kind.as_str(), actor.id),
        der: cert.der().to_vec(),
        created_at: kizuna_core::time::now_unix(),
    };
    let mut audit_details = json!({
        "profile": profile.name,
        "ca": record.ca_id,
        "sans": sans.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "key": csr.key.key_type.to_string(),
        "org_id": record.org_id,
        "device_id": record.device_id,
        "not_after": record.not_after,
        "ignored_extensions": csr.ignored_extensions,
    });
    if let (Some(all), serde_json::Value::Object(extra)) = (audit_details.as_object_mut(), details)
    {
        all.extend(extra);
    }
    events.push(
        AuditEvent::new(actor, "cert.issue", format!("cert:{serial_hex}")).details(audit_details),
    );
    ca.writer
        .store(record.clone(), events)
        .await
        .map_err(CaError::Storage)?;
    let chain = ca.chain_pem(&record.ca_id).await?;
    Ok(Issued {
        certificate_pem: pem("CERTIFICATE", cert.der()),
        chain_pem: chain.to_string(),
        ignored_extensions: csr.ignored_extensions,
        record,
    })
}

fn dn_text(value: &rcgen::DnValue) -> String {
    match value {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_string(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_string(),
        other => format!("{other:?}"),
    }
}
