//! The `[mfa]` and `[mail]` configuration sections.

use serde::{Deserialize, Serialize};

/// Multi-factor authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// The WebAuthn relying party id: the public URL's host unless set (a parent domain of
    /// it, to share passkeys with sibling hosts).
    pub rp_id: Option<String>,
    /// The name authenticators show for this site.
    pub rp_name: String,
    /// The issuer label authenticator apps show beside TOTP codes.
    pub totp_issuer: String,
    /// Wrong second-factor codes (TOTP or recovery) per account within
    /// `code_window_secs` before further tries are refused.
    pub code_max_failures: i64,
    pub code_window_secs: i64,
    /// How recent the last authentication must be to change factors on the account page.
    pub reauth_secs: i64,
    /// How long a pending second-factor step (after the password, or a step-up) may take.
    pub pending_ttl_secs: i64,
    /// The assurance level every account holding a staff role (any role assignment) must
    /// reach at sign-in, whatever the client asks (0 turns the rule off).
    pub staff_min_aal: u8,
    /// Authenticator models staff accounts may register as passkeys. Empty: any
    /// authenticator, no attestation asked (the default for everyone else, always).
    pub staff_authenticators: Vec<StaffAuthenticator>,
    /// How recent the re-proofing a helpdesk reset names must be, for an account proven
    /// at IAL2 or above.
    pub reset_proofing_max_age_secs: i64,
}

/// An authenticator model allowed for staff: its AAGUID and the manufacturer's attestation
/// root that must sign its attestation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffAuthenticator {
    pub aaguid: String,
    /// PEM or DER file with the manufacturer's attestation root certificate.
    pub ca_file: std::path::PathBuf,
    #[serde(default)]
    pub name: String,
}

impl Default for MfaConfig {
    fn default() -> Self {
        MfaConfig {
            rp_id: None,
            rp_name: "Kizuna".into(),
            totp_issuer: "Kizuna".into(),
            code_max_failures: 5,
            code_window_secs: 300,
            reauth_secs: 300,
            pending_ttl_secs: 600,
            staff_min_aal: 2,
            staff_authenticators: Vec::new(),
            reset_proofing_max_age_secs: 86_400,
        }
    }
}

impl MfaConfig {
    /// Checks ranges; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let checks: [(&'static str, i64, i64, i64); 6] = [
            ("mfa.code_max_failures", self.code_max_failures, 1, 1_000),
            ("mfa.code_window_secs", self.code_window_secs, 30, 86_400),
            ("mfa.reauth_secs", self.reauth_secs, 30, 3_600),
            ("mfa.pending_ttl_secs", self.pending_ttl_secs, 60, 3_600),
            ("mfa.staff_min_aal", self.staff_min_aal as i64, 0, 3),
            (
                "mfa.reset_proofing_max_age_secs",
                self.reset_proofing_max_age_secs,
                300,
                30 * 86_400,
            ),
        ];
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err((
                    key,
                    format!("{value} is out of range: allowed {min} to {max}"),
                ));
            }
        }
        for a in &self.staff_authenticators {
            if uuid::Uuid::parse_str(&a.aaguid).is_err() {
                return Err((
                    "mfa.staff_authenticators",
                    format!("aaguid {:?} is not a UUID", a.aaguid),
                ));
            }
            if !a.ca_file.is_file() {
                return Err((
                    "mfa.staff_authenticators",
                    format!("ca_file {} does not exist", a.ca_file.display()),
                ));
            }
        }
        if self.rp_name.trim().is_empty() || self.totp_issuer.contains(':') {
            return Err((
                "mfa.totp_issuer",
                "rp_name must not be empty and totp_issuer must not contain ':'".into(),
            ));
        }
        Ok(())
    }
}

/// How notification mail leaves: through an SMTP relay, or (no relay set, development) it
/// stays in the `mail_outbox` table, readable on the account page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The relay's host name; unset keeps mail in the outbox.
    pub relay: Option<String>,
    pub port: u16,
    /// `starttls` (default), `tls` (implicit TLS, port 465) or `none` (loopback relays only).
    pub security: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    /// The sender address.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            relay: None,
            port: 587,
            security: "starttls".into(),
            username: None,
            password: None,
            password_file: None,
            from: "Kizuna <no-reply@localhost>".into(),
        }
    }
}

impl MailConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !matches!(self.security.as_str(), "starttls" | "tls" | "none") {
            return Err((
                "mail.security",
                format!("{:?}: use starttls, tls or none", self.security),
            ));
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err((
                "mail.from",
                format!("{:?} is not a mail address", self.from),
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err((
                "mail.password",
                "set password or password_file, not both".into(),
            ));
        }
        Ok(())
    }

    /// The relay password, read from `password_file` when given that way.
    pub fn password(&self) -> Result<Option<String>, String> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|p| Some(p.trim().to_string()))
                .map_err(|e| format!("cannot read mail.password_file {}: {e}", path.display())),
            (None, None) => Ok(None),
        }
    }
}
