//! The `[console]` configuration section.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The assurance level every console sign-in must reach (2: a passkey or TOTP).
    pub min_aal: u8,
    /// The level a city administrator's console sign-in must reach (3: a hardware-bound
    /// passkey).
    pub city_admin_aal: u8,
    /// How long a console session lasts at most (it also ends with the sign-in session).
    pub session_ttl_secs: i64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            min_aal: 2,
            city_admin_aal: 3,
            session_ttl_secs: 8 * 3600,
        }
    }
}

impl ConsoleConfig {
    /// The levels staff sign-ins must reach, for every management surface.
    pub fn levels(&self) -> kizuna_core::access::Levels {
        kizuna_core::access::Levels {
            min_aal: self.min_aal,
            city_admin_aal: self.city_admin_aal,
        }
    }

    /// Checks ranges; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(2..=3).contains(&self.min_aal) {
            return Err(("console.min_aal", "must be 2 or 3".into()));
        }
        if !(self.min_aal..=3).contains(&self.city_admin_aal) {
            return Err((
                "console.city_admin_aal",
                "must be between min_aal and 3".into(),
            ));
        }
        if !(300..=86_400).contains(&self.session_ttl_secs) {
            return Err(("console.session_ttl_secs", "must be 300 to 86400".into()));
        }
        Ok(())
    }
}
