//! The `[ocsp]` configuration section.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// nextUpdate − thisUpdate of responses; they are re-signed at half of it.
    pub response_validity_secs: i64,
    /// Cache-Control max-age of GET responses (never beyond nextUpdate).
    pub max_age_secs: i64,
    /// Responses one client address may have signed on demand per minute (requests with a
    /// nonce, several certificates, an unknown serial); past it, `tryLater`. Pre-signed
    /// responses are never limited. 0: no limit.
    pub live_signing_per_address_per_minute: u32,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            response_validity_secs: 4 * 3600,
            max_age_secs: 60,
            live_signing_per_address_per_minute: 600,
        }
    }
}

impl OcspConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(300..=7 * 86_400).contains(&self.response_validity_secs) {
            return Err((
                "ocsp.response_validity_secs",
                "must be between 300 and 604800".into(),
            ));
        }
        if !(0..=86_400).contains(&self.max_age_secs) {
            return Err(("ocsp.max_age_secs", "must be between 0 and 86400".into()));
        }
        Ok(())
    }
}
