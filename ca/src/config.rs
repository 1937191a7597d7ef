//! The `[ca]` configuration section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::NameConstraints;
use crate::profile::ProfileConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// Create a root and an issuing CA on first start when there is none.
    pub auto_init: bool,
    /// `O=` of the CA certificates (the city or its promotion body).
    pub organization: String,
    /// `C=` of the CA certificates.
    pub country: String,
    /// Key type of new CA keys: `p256`, `p384`, or `rsa3072`.
    pub key_algorithm: String,
    /// Where new CA keys live: `software` or `pkcs11`.
    pub key_backend: String,
    pub root_validity_days: i64,
    pub issuing_validity_days: i64,
    /// CRL partitions per issuing CA (each certificate's CDP names its shard).
    pub crl_shards: i64,
    /// The base URL written into certificates and CRLs (CRL distribution points, OCSP and
    /// CA-issuer URLs). Relying parties fetch these before they can trust any TLS, so they are
    /// plain HTTP (RFC 5280 §4.2.1.13/§4.2.2.1, RFC 5019, the CA/Browser Forum baseline):
    /// default the public URL with `https` replaced by `http`.
    pub pki_url: Option<String>,
    /// The SPIFFE trust domain of device names (`spiffe://<trust domain>/org/<org>/device/<id>`);
    /// default the public URL's host.
    pub trust_domain: Option<String>,
    /// Name constraints by logical issuing CA name, written into new issuing CA certificates
    /// and enforced at issuance.
    pub issuers: BTreeMap<String, IssuerConfig>,
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Device enrollment: tokens, EST, manufacturer (IDevID) trust.
    pub enrollment: EnrollmentConfig,
    /// The ACME server for services.
    pub acme: AcmeConfig,
}

/// The `[ca.enrollment]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollmentConfig {
    /// Default lifetime of an enrollment token.
    pub token_ttl_secs: i64,
    /// PEM files with manufacturers' trust anchors: a device presenting a certificate
    /// (IDevID) that chains to one of them may enroll without a token, if it is registered
    /// with the IDevID's serial number as its hardware serial.
    pub idevid_anchors: Vec<std::path::PathBuf>,
    /// The profile IDevID enrollments get when the EST URL names none.
    pub idevid_profile: String,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            token_ttl_secs: 86_400,
            idevid_anchors: Vec::new(),
            idevid_profile: "device".into(),
        }
    }
}

/// The `[ca.acme]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Serve ACME under /acme/.
    pub enabled: bool,
    /// The profile ACME certificates are issued under.
    pub profile: String,
    /// Accounts must be bound to an organization with external account binding (without
    /// one, an account may order nothing, since only organizations have allowed names).
    pub require_eab: bool,
    /// The port http-01 validation connects to (80 in production; tests use a free port).
    pub http01_port: u16,
    /// The port tls-alpn-01 validation connects to (443 in production).
    pub tls_alpn01_port: u16,
    /// Static name → address overrides for validation (development and tests; no DNS).
    pub resolve: BTreeMap<String, std::net::IpAddr>,
    /// How long an order and its authorizations stay usable.
    pub order_lifetime_secs: i64,
    /// How long a validation connection may take.
    pub validation_timeout_secs: u64,
    /// How long an external account binding key stays usable after it is created.
    pub eab_ttl_secs: i64,
    /// ACME requests one client address may make per minute (each stores a nonce); past
    /// it, `rateLimited`. 0: no limit.
    pub requests_per_address_per_minute: u32,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: true,
            profile: "service".into(),
            require_eab: true,
            http01_port: 80,
            tls_alpn01_port: 443,
            resolve: BTreeMap::new(),
            order_lifetime_secs: 86_400,
            validation_timeout_secs: 10,
            eab_ttl_secs: 7 * 86_400,
            requests_per_address_per_minute: 300,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    pub name_constraints: NameConstraints,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            auto_init: true,
            organization: "Kizuna".into(),
            country: "JP".into(),
            key_algorithm: "p256".into(),
            key_backend: "software".into(),
            root_validity_days: 20 * 365,
            issuing_validity_days: 5 * 365,
            crl_shards: 16,
            pki_url: None,
            trust_domain: None,
            issuers: BTreeMap::new(),
            profiles: BTreeMap::new(),
            enrollment: EnrollmentConfig::default(),
            acme: AcmeConfig::default(),
        }
    }
}

impl CaConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !matches!(
            self.key_algorithm.as_str(),
            "p256" | "p384" | "rsa3072" | "rsa4096"
        ) {
            return Err((
                "ca.key_algorithm",
                format!(
                    "{:?}: use p256, p384, rsa3072 or rsa4096",
                    self.key_algorithm
                ),
            ));
        }
        if !matches!(self.key_backend.as_str(), "software" | "pkcs11") {
            return Err((
                "ca.key_backend",
                format!("{:?}: use software or pkcs11", self.key_backend),
            ));
        }
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err((
                "ca.country",
                format!(
                    "{:?} is not a two-letter country code such as JP",
                    self.country
                ),
            ));
        }
        if self.organization.trim().is_empty() || self.organization.len() > 64 {
            return Err(("ca.organization", "must be 1 to 64 characters".into()));
        }
        if !(365..=30 * 365).contains(&self.root_validity_days) {
            return Err((
                "ca.root_validity_days",
                "must be between 365 and 10950".into(),
            ));
        }
        if !(30..=self.root_validity_days).contains(&self.issuing_validity_days) {
            return Err((
                "ca.issuing_validity_days",
                "must be at least 30 and at most the root's validity".into(),
            ));
        }
        if let Some(url) = &self.pki_url
            && (!url.starts_with("http://") || url.ends_with('/') || url.len() <= "http://".len())
        {
            return Err((
                "ca.pki_url",
                format!("{url:?}: use an http:// base URL without a trailing slash"),
            ));
        }
        if !(1..=256).contains(&self.crl_shards) {
            return Err(("ca.crl_shards", "must be between 1 and 256".into()));
        }
        for issuer in self.issuers.values() {
            issuer
                .name_constraints
                .validate()
                .map_err(|e| ("ca.issuers", e))?;
        }
        let profiles =
            crate::profile::Profiles::new(&self.profiles).map_err(|e| ("ca.profiles", e))?;
        if !(60..=crate::enroll::tokens::MAX_TTL_SECS).contains(&self.enrollment.token_ttl_secs) {
            return Err((
                "ca.enrollment.token_ttl_secs",
                "must be between 60 and 2592000 (30 days)".into(),
            ));
        }
        if profiles.get(&self.enrollment.idevid_profile).is_none() {
            return Err((
                "ca.enrollment.idevid_profile",
                format!("no profile {:?}", self.enrollment.idevid_profile),
            ));
        }
        crate::enroll::load_anchors(&self.enrollment.idevid_anchors)
            .map_err(|e| ("ca.enrollment.idevid_anchors", e))?;
        if profiles.get(&self.acme.profile).is_none_or(|p| p.internal) {
            return Err((
                "ca.acme.profile",
                format!("no requestable profile {:?}", self.acme.profile),
            ));
        }
        if !(300..=30 * 86_400).contains(&self.acme.order_lifetime_secs) {
            return Err((
                "ca.acme.order_lifetime_secs",
                "must be between 300 and 2592000".into(),
            ));
        }
        if !(1..=120).contains(&self.acme.validation_timeout_secs) {
            return Err((
                "ca.acme.validation_timeout_secs",
                "must be between 1 and 120".into(),
            ));
        }
        if !(60..=365 * 86_400).contains(&self.acme.eab_ttl_secs) {
            return Err((
                "ca.acme.eab_ttl_secs",
                "must be between 60 and 31536000".into(),
            ));
        }
        Ok(())
    }
}
