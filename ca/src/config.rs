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
    /// Name constraints by logical issuing CA name, written into new issuing CA certificates
    /// and enforced at issuance.
    pub issuers: BTreeMap<String, IssuerConfig>,
    pub profiles: BTreeMap<String, ProfileConfig>,
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
            issuers: BTreeMap::new(),
            profiles: BTreeMap::new(),
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
        crate::profile::Profiles::new(&self.profiles).map_err(|e| ("ca.profiles", e))?;
        Ok(())
    }
}
