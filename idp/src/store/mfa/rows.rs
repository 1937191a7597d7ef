//! The rows of the second-factor tables as the rest of the crate sees them.

use serde::Serialize;

/// A passkey as the account page lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub hardware_bound: i64,
    pub attested: i64,
    pub possibly_cloned: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A new passkey: the credential id (base64url), and the webauthn-rs credential as JSON.
pub(crate) struct NewPasskey<'a> {
    pub info: &'a PasskeyInfo,
    pub credential_id: &'a str,
    pub passkey: &'a str,
    pub aaguid: Option<&'a str>,
}

/// A stored passkey found by its credential id.
pub(crate) struct StoredPasskey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The webauthn-rs credential as JSON.
    pub passkey: String,
    pub hardware_bound: bool,
    pub possibly_cloned: bool,
}

/// A sign-in waiting for its second factor, as stored.
#[derive(Debug, Clone)]
pub(crate) struct PendingStep {
    pub user_id: String,
    pub sid: Option<String>,
    pub amr: Vec<String>,
    pub req: Option<String>,
    pub next: Option<String>,
    /// The level (1 to 3) the second factor must bring the sign-in to.
    pub target_aal: i64,
}
