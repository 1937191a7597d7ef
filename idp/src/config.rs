//! The `[oidc]` configuration section.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    pub id_token_ttl_secs: i64,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub code_ttl_secs: i64,
    /// How long a single sign-on session lasts after sign-in.
    pub session_ttl_secs: i64,
    /// How long a person has to finish signing in and consenting.
    pub auth_request_ttl_secs: i64,
    pub par_ttl_secs: i64,
    pub device_code_ttl_secs: i64,
    pub device_poll_interval_secs: i64,
    /// Signing keys rotate after this many days (the next key is already published).
    pub key_rotation_days: i64,
    /// Failed passwords before an account is locked for `login_lockout_secs`.
    pub login_max_failures: i64,
    pub login_lockout_secs: i64,
    /// Failed sign-ins from one address within `login_ip_window_secs` before it is throttled.
    pub login_ip_max_failures: i64,
    pub login_ip_window_secs: i64,
    /// Every request to an upstream provider (discovery, token, UserInfo) gives up after this.
    pub upstream_timeout_secs: i64,
    /// Clock skew allowed on an upstream's `exp` and `iat`.
    pub upstream_clock_skew_secs: i64,
    /// The longest a resident's consent to a service lasts; a client may set a shorter
    /// lifetime and the resident may end it sooner.
    pub consent_max_lifetime_days: i64,
    /// How long a release of a person's data stays in their history (and its export).
    pub release_retention_days: i64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            id_token_ttl_secs: 600,
            access_token_ttl_secs: 600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 60,
            session_ttl_secs: 10 * 3600,
            auth_request_ttl_secs: 1800,
            par_ttl_secs: 90,
            device_code_ttl_secs: 600,
            device_poll_interval_secs: 5,
            key_rotation_days: 90,
            login_max_failures: 5,
            login_lockout_secs: 300,
            login_ip_max_failures: 50,
            login_ip_window_secs: 300,
            upstream_timeout_secs: 5,
            upstream_clock_skew_secs: 60,
            consent_max_lifetime_days: 365,
            release_retention_days: 3 * 365,
        }
    }
}

impl OidcConfig {
    /// Checks ranges; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let checks: [(&'static str, i64, i64, i64); 17] = [
            ("oidc.id_token_ttl_secs", self.id_token_ttl_secs, 60, 86_400),
            (
                "oidc.access_token_ttl_secs",
                self.access_token_ttl_secs,
                60,
                86_400,
            ),
            (
                "oidc.refresh_token_ttl_secs",
                self.refresh_token_ttl_secs,
                300,
                365 * 86_400,
            ),
            ("oidc.code_ttl_secs", self.code_ttl_secs, 10, 600),
            (
                "oidc.session_ttl_secs",
                self.session_ttl_secs,
                300,
                30 * 86_400,
            ),
            (
                "oidc.auth_request_ttl_secs",
                self.auth_request_ttl_secs,
                60,
                86_400,
            ),
            ("oidc.par_ttl_secs", self.par_ttl_secs, 10, 600),
            (
                "oidc.device_code_ttl_secs",
                self.device_code_ttl_secs,
                60,
                3_600,
            ),
            (
                "oidc.device_poll_interval_secs",
                self.device_poll_interval_secs,
                1,
                60,
            ),
            ("oidc.key_rotation_days", self.key_rotation_days, 1, 3_650),
            ("oidc.login_max_failures", self.login_max_failures, 1, 1_000),
            (
                "oidc.login_lockout_secs",
                self.login_lockout_secs,
                1,
                86_400,
            ),
            (
                "oidc.login_ip_max_failures",
                self.login_ip_max_failures,
                1,
                1_000_000,
            ),
            (
                "oidc.login_ip_window_secs",
                self.login_ip_window_secs,
                1,
                86_400,
            ),
            (
                "oidc.upstream_timeout_secs",
                self.upstream_timeout_secs,
                1,
                60,
            ),
            (
                "oidc.upstream_clock_skew_secs",
                self.upstream_clock_skew_secs,
                0,
                300,
            ),
            (
                "oidc.release_retention_days",
                self.release_retention_days,
                30,
                3_650,
            ),
        ];
        let consent = [(
            "oidc.consent_max_lifetime_days",
            self.consent_max_lifetime_days,
            1,
            3650,
        )];
        for (key, value, min, max) in checks.into_iter().chain(consent) {
            if !(min..=max).contains(&value) {
                return Err((
                    key,
                    format!("{value} is out of range: allowed {min} to {max}"),
                ));
            }
        }
        Ok(())
    }

    /// The longest any token signed now can stay valid: how long a retired key stays in JWKS.
    pub fn max_signed_token_ttl(&self) -> i64 {
        self.id_token_ttl_secs.max(self.access_token_ttl_secs)
    }
}
