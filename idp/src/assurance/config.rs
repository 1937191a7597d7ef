//! The `[assurance]` configuration section: the proofing providers a city enables, their
//! trust ceilings and how long what they prove stays valid.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Identity assurance settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssuranceConfig {
    /// How long a proofing attempt (a signature challenge, an eKYC transaction) stays open.
    pub attempt_ttl_secs: i64,
    /// The `trust_framework` value of released `verified_claims` (OpenID Connect for
    /// Identity Assurance 1.0 §5.1.1; the predefined value for NIST SP 800-63A levels).
    pub trust_framework: String,
    /// The signature-certificate provider (`x509-signature`); off unless trust anchors are set.
    pub x509: X509Config,
    /// eKYC vendors (`webhook:<name>`).
    pub webhook: Vec<WebhookConfig>,
    /// In-person checks at a counter (`counter`), recorded by registrars.
    pub counter: CounterConfig,
    /// Upstream OpenID providers that are the JPKI OP (`jpki-oidc:<alias>`).
    pub jpki_oidc: JpkiOidcConfig,
}

/// The My Number card through an upstream OpenID provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JpkiOidcConfig {
    /// Aliases of federation upstreams (`kizuna upstream add --alias …`) that are the JPKI
    /// OP: their answers prove IAL3, capped by the upstream's trust ceiling.
    pub upstreams: Vec<String>,
    pub valid_days: i64,
}

impl Default for JpkiOidcConfig {
    fn default() -> Self {
        JpkiOidcConfig {
            upstreams: Vec::new(),
            valid_days: 1825,
        }
    }
}

impl Default for AssuranceConfig {
    fn default() -> Self {
        AssuranceConfig {
            attempt_ttl_secs: 600,
            trust_framework: "nist_800_63A".into(),
            x509: X509Config::default(),
            webhook: Vec::new(),
            counter: CounterConfig::default(),
            jpki_oidc: JpkiOidcConfig::default(),
        }
    }
}

/// A JPKI-like signature certificate check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct X509Config {
    /// PEM files with the CA certificates the person's certificate must chain to (for JPKI:
    /// the signature CA of J-LIS). Empty turns the provider off.
    pub trust_anchors: Vec<PathBuf>,
    /// The highest level this provider can grant.
    pub ceiling: u8,
    /// How long the proofing stays valid (capped by the certificate's own expiry).
    pub valid_days: i64,
    /// The longest a fetched CRL is used before it is fetched again (its nextUpdate ends it
    /// earlier).
    pub crl_cache_secs: i64,
    /// How long a CRL fetch may take before the check fails (closed).
    pub crl_timeout_secs: u64,
}

impl Default for X509Config {
    fn default() -> Self {
        X509Config {
            trust_anchors: Vec::new(),
            ceiling: 3,
            valid_days: 1825,
            crl_cache_secs: 3600,
            crl_timeout_secs: 5,
        }
    }
}

/// An eKYC vendor that calls back with a signed result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Short name: the provider is `webhook:<name>`.
    pub name: String,
    /// What the person sees (Japanese, English).
    #[serde(default)]
    pub label_ja: String,
    #[serde(default)]
    pub label_en: String,
    /// Where Kizuna posts a new transaction; the vendor answers with the URL to send the
    /// person to.
    pub start_url: String,
    /// The vendor's public key (a JWK, JSON text) that signs results.
    pub jwk: String,
    #[serde(default = "default_webhook_ceiling")]
    pub ceiling: u8,
    #[serde(default = "default_valid_days")]
    pub valid_days: i64,
    /// How long the vendor may take to answer the start request.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How old a signed result may be.
    #[serde(default = "default_result_age")]
    pub max_result_age_secs: i64,
}

fn default_webhook_ceiling() -> u8 {
    2
}
fn default_valid_days() -> i64 {
    1825
}
fn default_timeout() -> u64 {
    10
}
fn default_result_age() -> i64 {
    300
}

/// In-person checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CounterConfig {
    pub ceiling: u8,
    pub valid_days: i64,
}

impl Default for CounterConfig {
    fn default() -> Self {
        CounterConfig {
            ceiling: 3,
            valid_days: 1825,
        }
    }
}

impl AssuranceConfig {
    /// Checks ranges and files; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let range = |key: &'static str, value: i64, min: i64, max: i64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err((
                    key,
                    format!("{value} is out of range: allowed {min} to {max}"),
                ))
            }
        };
        range(
            "assurance.attempt_ttl_secs",
            self.attempt_ttl_secs,
            60,
            3600,
        )?;
        range("assurance.x509.ceiling", self.x509.ceiling as i64, 1, 3)?;
        range("assurance.x509.valid_days", self.x509.valid_days, 1, 3650)?;
        range(
            "assurance.x509.crl_cache_secs",
            self.x509.crl_cache_secs,
            0,
            86_400,
        )?;
        range(
            "assurance.x509.crl_timeout_secs",
            self.x509.crl_timeout_secs as i64,
            1,
            60,
        )?;
        range(
            "assurance.counter.ceiling",
            self.counter.ceiling as i64,
            1,
            3,
        )?;
        range(
            "assurance.counter.valid_days",
            self.counter.valid_days,
            1,
            3650,
        )?;
        for path in &self.x509.trust_anchors {
            if !path.is_file() {
                return Err((
                    "assurance.x509.trust_anchors",
                    format!("{} does not exist", path.display()),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for w in &self.webhook {
            let valid_name = !w.name.is_empty()
                && w.name.len() <= 32
                && w.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_name || !names.insert(w.name.clone()) {
                return Err((
                    "assurance.webhook.name",
                    format!("{:?}: names are unique, 1-32 of a-z 0-9 -", w.name),
                ));
            }
            if url::Url::parse(&w.start_url).is_err() {
                return Err((
                    "assurance.webhook.start_url",
                    format!("{:?} is not a URL", w.start_url),
                ));
            }
            let jwk: Result<serde_json::Value, _> = serde_json::from_str(&w.jwk);
            if jwk
                .ok()
                .and_then(|j| kizuna_core::jose::PublicJwk::parse(&j).ok())
                .is_none()
            {
                return Err((
                    "assurance.webhook.jwk",
                    format!("the key of {:?} is not a public JWK", w.name),
                ));
            }
            range("assurance.webhook.ceiling", w.ceiling as i64, 1, 3)?;
            range("assurance.webhook.valid_days", w.valid_days, 1, 3650)?;
            range(
                "assurance.webhook.timeout_secs",
                w.timeout_secs as i64,
                1,
                120,
            )?;
            range(
                "assurance.webhook.max_result_age_secs",
                w.max_result_age_secs,
                10,
                3600,
            )?;
        }
        Ok(())
    }
}
